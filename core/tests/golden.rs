//! Golden byte vectors: they pin the wire format documented in PROTOCOL.md.
//! A change here is a protocol change: bump PROTOCOL_VERSION and document it.

#[allow(dead_code)]
#[path = "../examples/golden_dump.rs"]
mod dump;

use minidote_core::{Codec, Frame, Snapshot, Txn, Value, VectorClock};

const GOLDEN: &[(&str, &str)] = &[
    ("clock", "06020a00000000000000030b0000000000000001"),
    ("clock_packed", "06030a0402472f"),
    ("txns_counter_increment", "0601010a0000000000000001000f0100056c696b65730464656d6f0102"),
    ("txns_counter_increment_two_deps", "0601010a0000000000000005020b00000000000000040c00000000000000020f0100056c696b65730464656d6f0102"),
    ("txn_set_aw_add", "0b0000000000000002010a00000000000000011e0102046c6973740464656d6f0105046d696c6b010a000000000000000101"),
    ("txn_register_lww_assign", "0b0000000000000003010a00000000000000011c0107057469746c650464656d6f010a00000000000000010205026869"),
    ("txn_map_rr_update_two_deep", "0a0000000000000001001f010a03646f630464656d6f01046d6574610a01047461677302010501780001"),
    ("snapshot_map_rr", "06010a0000000000000001010a03646f630464656d6f01046d6574610a0104746167730201050178010a0000000000000001"),
    ("txn_map_rr_remove_counter", "0a0000000000000002001b010a03646f630464656d6f01016e00020a00000000000000010700"),
    ("stored", "0607010a0000000000000007"),
    ("snapshot_part", "06080807060504030201ac02c801ababab"),
    ("hello", "06000a000000000000000464656d6f010a0000000000000001010174"),
    ("need", "0602010b0000000000000002"),
    ("error", "06040304726f6f6d"),
    ("ping", "0605ac02"),
    ("pong", "0606ac02"),
    ("values", "0708000102030304000000000000f83f0502c3a9070103020801016b0601ff"),
    ("snapshot", "06010a00000000000000010200056c696b65730464656d6f010a000000000000000102000008056d61696e740464656d6f010a0000000000000001"),
    ("txn_text_insert", "0a0000000000000002001b010d03646f630464656d6f0100020a000000000000000101000121"),
    ("txn_text_delete", "0a00000000000000030019010d03646f630464656d6f0101020a00000000000000010001"),
    ("snapshot_text", "06010a0000000000000003010d03646f630464656d6f010a0000000000000003000001000109000101010900020001026921"),
    ("snapshot_list", "06010b0000000000000001010c056974656d730464656d6f010b000000000000000101000100020302050178"),
    ("run", "0609020a000000000000000b000000000000000100056c696b65730464656d6f040300000501010a0000000000000002000602000f020001610164010200016201640101020102020102020102"),
];

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn encodings_match_the_golden_vectors() {
    let vectors = dump::vectors();
    assert_eq!(vectors.len(), GOLDEN.len());
    for ((name, bytes), (gname, ghex)) in vectors.iter().zip(GOLDEN) {
        assert_eq!(name, gname);
        assert_eq!(
            &hex(bytes),
            ghex,
            "{name} changed: this is a wire format change"
        );
    }
}

#[test]
fn golden_vectors_decode_and_re_encode_identically() {
    for (name, bytes) in dump::vectors() {
        let again = match name {
            "clock" | "clock_packed" => VectorClock::from_bytes(&bytes).unwrap().to_bytes(),
            "txn_set_aw_add"
            | "txn_register_lww_assign"
            | "txn_map_rr_update_two_deep"
            | "txn_map_rr_remove_counter"
            | "txn_text_insert"
            | "txn_text_delete" => Txn::decode(&bytes).unwrap().encode(),
            "snapshot" | "snapshot_map_rr" | "snapshot_text" | "snapshot_list" => {
                Snapshot::decode(&bytes).unwrap().encode()
            }
            "values" => Value::from_bytes(&bytes).unwrap().to_bytes(),
            // A run re-encodes from the transactions it carries.
            "run" => {
                minidote_core::wire::run_frame(&minidote_core::wire::split_run(&bytes).unwrap())
                    .unwrap()
            }
            _ => Frame::decode(&bytes).unwrap().encode(),
        };
        assert_eq!(again, bytes, "{name}");
    }
}

#[test]
fn one_counter_increment_fits_in_32_bytes_on_the_wire() {
    let (_, bytes) = dump::vectors()
        .into_iter()
        .find(|(n, _)| *n == "txns_counter_increment")
        .unwrap();
    assert!(bytes.len() <= 32, "{} bytes", bytes.len());
}
