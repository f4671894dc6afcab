//! Every decoder over untrusted bytes returns `Ok` or `Err`, never panics,
//! and whatever decodes re-encodes to the same bytes (canonical encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidote_core::{Frame, Snapshot, Txn, TxnHeader, VectorClock};

fuzz_target!(|data: &[u8]| {
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
                let h = TxnHeader::parse(t).expect("split by header");
                if let Ok(txn) = Txn::decode(t) {
                    assert_eq!((txn.origin, txn.seq), (h.origin, h.seq));
                    assert_eq!(&txn.encode()[..], &t[..]);
                }
            }
        }
        if let Frame::Snapshot(s) = &f {
            if let Ok(snap) = Snapshot::decode(s) {
                assert_eq!(&snap.encode(), s);
            }
        }
    }
    if let Ok(t) = Txn::decode(data) {
        assert_eq!(t.encode(), data);
    }
    if let Ok(s) = Snapshot::decode(data) {
        assert_eq!(s.encode(), data);
    }
    if let Ok(c) = VectorClock::from_bytes(data) {
        assert_eq!(c.to_bytes(), data, "clocks are canonical");
        // Skipping a clock consumes exactly what decoding does.
        let mut r = minidote_core::codec::Reader::new(&data[1..]);
        VectorClock::skip(&mut r).expect("a decodable clock skips");
        assert_eq!(r.remaining(), 0);
    }
});
