//! Regression inputs: every file in `tests/fuzz-crashers/` is hostile or
//! malformed, and must decode to an error (never a panic, never `Ok`).
//! Add every input the fuzzers (`make fuzz`) ever find here.

use minidote_core::{DecodeError, Frame, Snapshot, Txn};

/// Decodes a frame the way a replica does: the frame, then every
/// transaction's effects and any snapshot.
fn decode_fully(bytes: &[u8]) -> Result<Frame, DecodeError> {
    let f = Frame::decode(bytes)?;
    match &f {
        Frame::Txns(txns) => {
            for t in txns {
                Txn::decode(t)?;
            }
        }
        Frame::Snapshot(s) => {
            Snapshot::decode(s)?;
        }
        _ => {}
    }
    Ok(f)
}

#[test]
fn every_recorded_crasher_decodes_to_an_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-crashers");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let r = decode_fully(&bytes);
        assert!(r.is_err(), "{} decoded as a frame: {r:?}", path.display());
        assert!(
            Txn::decode(&bytes).is_err(),
            "{} decoded as a transaction",
            path.display()
        );
        assert!(
            Snapshot::decode(&bytes).is_err(),
            "{} decoded as a snapshot",
            path.display()
        );
        n += 1;
    }
    assert!(n >= 10, "the crasher corpus is missing");
}
