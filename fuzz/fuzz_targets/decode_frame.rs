//! Every decoder over untrusted bytes returns `Ok` or `Err`, never panics,
//! and whatever decodes re-encodes to the same bytes (canonical encoding).
//! A transaction's decoded deps also hold the dots its effects observe, so
//! it re-encodes to its own bytes only when its writer declared them; it
//! always round-trips as a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidote_core::wire::HelloHead;
use minidote_core::{Codec, Frame, Snapshot, Txn, TxnHeader, Value, VectorClock};

fn check_txn(bytes: &[u8]) {
    let Ok(txn) = Txn::decode(bytes) else { return };
    let h = TxnHeader::parse(bytes).expect("a decodable transaction has a header");
    assert_eq!((txn.origin, txn.seq), (h.origin, h.seq));
    assert!(h.deps.leq(&txn.deps), "declared deps are kept");
    if h.deps == txn.deps {
        assert_eq!(&txn.encode()[..], bytes);
    }
    assert_eq!(Txn::decode(&txn.encode()).as_ref(), Ok(&txn));
}

fuzz_target!(|data: &[u8]| {
    if minidote_core::wire::is_run(data) {
        // A `Run` is another encoding of a `Txns` frame, not a canonical
        // one: it decodes to the transactions it carries, which re-encode.
        if let Ok(f) = Frame::decode(data) {
            let Frame::Txns(txns) = &f else { panic!("a Run decodes to Txns") };
            let split = minidote_core::wire::split_run(data).expect("a decoded Run splits");
            assert_eq!(split.len(), txns.len());
            assert_eq!(Frame::decode(&f.encode()).as_ref(), Ok(&f));
            for t in txns {
                check_txn(t);
            }
        }
        return;
    }
    if let Ok(f) = Frame::decode(data) {
        assert_eq!(f.encode(), data, "frames are canonical");
        if let Frame::Txns(txns) = &f {
            // The framing-only split agrees with the full decode.
            let split = minidote_core::wire::split_txns(data).expect("a decoded frame splits");
            assert_eq!(split.len(), txns.len());
            for (a, b) in split.iter().zip(txns) {
                assert_eq!(*a, &b[..]);
            }
            for t in txns {
                TxnHeader::parse(t).expect("split by header");
                check_txn(t);
            }
        }
        if let Frame::Hello(h) = &f {
            // What a server reads before checking the token agrees.
            let head = HelloHead::parse(data).expect("a Hello has a head");
            assert_eq!(head.replica, h.replica);
            assert_eq!(head.room, h.room);
            assert_eq!(head.token, h.token.as_deref());
        }
        if let Frame::Snapshot(s) = &f {
            if let Ok(snap) = Snapshot::decode(s) {
                assert_eq!(&snap.encode(), s);
            }
        }
    }
    check_txn(data);
    if let Ok(v) = Value::from_bytes(data) {
        assert_eq!(v.to_bytes(), data, "values are canonical");
    }
    let _ = HelloHead::parse(data);
    if let Ok(s) = Snapshot::decode(data) {
        assert_eq!(s.encode(), data);
    }
    if let Ok(c) = VectorClock::from_bytes(data) {
        assert_eq!(c.to_bytes(), data, "clocks are canonical");
    }
});
