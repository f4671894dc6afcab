//! Bring your own transport: frames from `export_since`, carried by a
//! channel that shuffles and duplicates them, applied with `apply_update`.

mod common;

use common::{key, op, read, replica};
use minidote_core::{
    Config, CrdtType, Op, Pos, ProtocolError, Replica, ReplicaId, Value, VectorClock,
};

#[test]
fn frames_through_a_shuffling_duplicating_channel_converge() {
    let k = key("t", CrdtType::Text);
    let c = key("c", CrdtType::CounterPn);
    let mut a = replica(1);
    let mut b = replica(2);
    let mut chan: Vec<Vec<u8>> = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for round in 0..30u64 {
        op(
            &mut a,
            &k,
            Op::Insert(
                Pos {
                    at: 0,
                    utf16: false,
                },
                Value::from("a"),
            ),
        );
        op(
            &mut b,
            &k,
            Op::Insert(
                Pos {
                    at: 0,
                    utf16: false,
                },
                Value::from("b"),
            ),
        );
        op(&mut b, &c, Op::Increment(1));
        // Each side exports what the other had at the last round.
        chan.extend(a.export_since(&VectorClock::new()));
        if round % 3 == 0 {
            chan.extend(b.export_since(a.clock()));
        }
        // Shuffle, duplicate, deliver half.
        for i in (1..chan.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chan.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let dup = chan.clone();
        chan.extend(dup);
        let keep = chan.split_off(chan.len() / 2);
        for f in &chan {
            b.apply_update(f).expect("valid frame");
            a.apply_update(f).expect("valid frame");
        }
        chan = keep;
    }
    for f in a
        .export_since(b.clock())
        .into_iter()
        .chain(b.export_since(a.clock()))
    {
        a.apply_update(&f).unwrap();
        b.apply_update(&f).unwrap();
    }
    for f in std::mem::take(&mut chan) {
        a.apply_update(&f).unwrap();
        b.apply_update(&f).unwrap();
    }
    assert_eq!(a.clock(), b.clock());
    assert_eq!(read(&mut a, &k), read(&mut b, &k));
    assert_eq!(read(&mut a, &c), Value::Int(30));
    // A frame applied twice changes nothing.
    let snap = a.state_snapshot();
    for f in b.export_since(&VectorClock::new()) {
        a.apply_update(&f).unwrap();
    }
    assert_eq!(a.state_snapshot(), snap);
}

#[test]
fn garbage_and_frames_without_updates_are_refused_and_apply_nothing() {
    let mut a = replica(1);
    let mut b = replica(2);
    op(&mut a, &key("c", CrdtType::CounterPn), Op::Increment(3));
    let good = a.export_since(&VectorClock::new()).remove(0);
    let before = b.state_snapshot();
    for n in 0..good.len() {
        assert!(b.apply_update(&good[..n]).is_err(), "prefix {n}");
    }
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    let _ = b.apply_update(&flipped);
    let ping = minidote_core::Frame::Ping(7).encode();
    assert!(matches!(
        b.apply_update(&ping),
        Err(ProtocolError::NotAnUpdate(_))
    ));
    assert_eq!(b.clock(), &before.clock);
    assert_eq!(b.state_snapshot(), before);
}

#[test]
fn a_pruned_log_exports_a_snapshot() {
    let config = Config {
        snapshot_every: 5,
        ..Config::default()
    };
    let mut a = Replica::new(ReplicaId(1), config);
    let k = key("t", CrdtType::Text);
    for i in 0..40u64 {
        op(
            &mut a,
            &k,
            Op::Insert(
                Pos {
                    at: i,
                    utf16: false,
                },
                Value::from("x"),
            ),
        );
    }
    let frames = a.export_since(&VectorClock::new());
    let mut b = replica(2);
    for f in &frames {
        b.apply_update(f).unwrap();
    }
    assert_eq!(read(&mut b, &k), Value::from("x".repeat(40).as_str()));
}
