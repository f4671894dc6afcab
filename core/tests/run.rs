//! `Run` frames (PROTOCOL.md, "Run"): a batch of transactions in columns.
//! They decode back to each transaction's exact bytes, apply like the
//! `Txns` frame they replace, are much smaller for a catch-up, and refuse
//! hostile input (bad indexes, kinds, expansion bombs) without panicking.

mod common;

use common::{key, op, update};
use minidote_core::wire::{frame_txns, run_frame, split_run, txns_frame, txns_frames, RUN_TAG};
use minidote_core::{
    CatchUp, Config, CrdtType, DecodeError, Frame, Op, Pos, Replica, ReplicaId, TxnBytes, Value,
    VectorClock,
};

fn log_of(r: &Replica) -> Vec<TxnBytes> {
    match r.catch_up(&VectorClock::new()) {
        CatchUp::Txns(t) => t,
        other => panic!("expected transactions, got {other:?}"),
    }
}

/// Three writers, many keys and types, multi-key transactions, and deps
/// across writers.
fn history() -> (Vec<TxnBytes>, Replica) {
    let mut rs: Vec<Replica> = (1..=3)
        .map(|i| {
            Replica::new(
                ReplicaId(0x1000 + i),
                Config {
                    snapshot_every: 0,
                    ..Config::default()
                },
            )
        })
        .collect();
    let c = key("likes", CrdtType::CounterPn);
    let s = key("tags", CrdtType::SetAw);
    let t = key("doc", CrdtType::Text);
    let m = key("todo", CrdtType::MapRr);
    for round in 0..60u64 {
        let i = (round % 3) as usize;
        let r = &mut rs[i];
        match round % 5 {
            0 => {
                op(r, &c, Op::Increment(round as i64));
            }
            1 => {
                op(r, &s, Op::Add(Value::from(format!("t{round}"))));
            }
            2 => {
                let len = match r.value(&t) {
                    Value::Str(s) => s.chars().count() as u64,
                    _ => 0,
                };
                op(
                    r,
                    &t,
                    Op::Insert(
                        Pos {
                            at: len,
                            utf16: false,
                        },
                        Value::from("ab"),
                    ),
                );
            }
            3 => {
                update(
                    r,
                    vec![
                        (c.clone(), Op::Increment(1)),
                        (s.clone(), Op::Add(Value::from("x"))),
                    ],
                );
            }
            _ => {
                let u = Op::parse(
                    CrdtType::MapRr,
                    "update",
                    Some(Value::List(vec![
                        Value::List(vec![Value::from("done"), Value::from("flag_ew")]),
                        Value::from("enable"),
                    ])),
                )
                .expect("valid");
                op(r, &m, u);
            }
        }
        // Everyone syncs every few rounds, so deps cross writers.
        if round % 4 == 3 {
            for a in 0..3 {
                for b in 0..3 {
                    if a != b {
                        common::sync_pair(&mut rs, a, b);
                    }
                }
            }
        }
    }
    for a in 1..3 {
        common::sync_pair(&mut rs, a, 0);
    }
    let log = log_of(&rs[0]);
    (log, rs.swap_remove(0))
}

#[test]
fn a_run_decodes_to_every_transactions_exact_bytes() {
    let (log, _) = history();
    assert!(log.len() > 50);
    let run = run_frame(&log).expect("every transaction re-encodes");
    assert!(minidote_core::wire::is_run(&run));
    let back = split_run(&run).expect("valid");
    assert_eq!(back.len(), log.len());
    for (a, b) in back.iter().zip(&log) {
        assert_eq!(&a[..], &b[..]);
    }
    // As a frame, it is the Txns frame it replaces.
    let txns = txns_frame(log.iter().map(|t| &t[..]));
    assert_eq!(Frame::decode(&run), Frame::decode(&txns));
    let via: Vec<Vec<u8>> = frame_txns(&run)
        .unwrap()
        .into_iter()
        .map(|c| c.into_owned())
        .collect();
    assert_eq!(via, back);
    assert!(run.len() < txns.len(), "{} vs {}", run.len(), txns.len());
}

#[test]
fn a_run_applies_like_the_transactions_it_carries() {
    let (log, source) = history();
    let mut a = common::replica(9);
    let mut b = common::replica(10);
    for f in txns_frames(&log, 1 << 20) {
        assert!(minidote_core::wire::is_run(&f), "a batch goes as a run");
        a.import_frame(&f).expect("valid");
    }
    b.handle_txns(None, log.clone()).expect("valid");
    assert_eq!(a.clock(), source.clock());
    assert_eq!(a.state_snapshot(), b.state_snapshot());
    assert_eq!(a.state_snapshot().objects, source.state_snapshot().objects);
}

#[test]
fn a_catch_up_of_single_writes_costs_a_few_bytes_each() {
    let mut r = common::replica(1);
    let c = key("likes", CrdtType::CounterPn);
    for _ in 0..10_000 {
        op(&mut r, &c, Op::Increment(1));
    }
    let log = log_of(&r);
    let txns: usize = txns_frames(&log, usize::MAX).iter().map(Vec::len).sum();
    let plain = txns_frame(log.iter().map(|t| &t[..])).len();
    assert!(txns * 5 < plain, "run {txns} bytes, txns {plain}");
    assert!(
        txns < 41_000,
        "{} bytes per transaction",
        txns as f64 / 10_000.0
    );
}

#[test]
fn small_batches_stay_txns_frames() {
    let mut r = common::replica(1);
    let c = key("likes", CrdtType::CounterPn);
    for _ in 0..3 {
        op(&mut r, &c, Op::Increment(1));
    }
    let frames = txns_frames(&log_of(&r), 1 << 20);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0][1], minidote_core::wire::TXNS_TAG);
}

fn frame(origins: &[u64], keys: &[&[u8]], count: u64, rest: &[u8]) -> Vec<u8> {
    let mut f = vec![
        minidote_core::PROTOCOL_VERSION,
        RUN_TAG,
        origins.len() as u8,
    ];
    for o in origins {
        f.extend_from_slice(&o.to_le_bytes());
    }
    f.push(keys.len() as u8);
    for k in keys {
        f.extend_from_slice(k);
    }
    f.push(count as u8);
    f.extend_from_slice(rest);
    f
}

/// `counter_pn` key "k" in bucket "b".
const KEY: &[u8] = &[0, 1, b'k', 1, b'b'];

#[test]
fn hostile_runs_are_refused_without_panicking() {
    // Origin index out of range.
    let f = frame(&[7], &[KEY], 1, &[1 << 2, 0, 2, 2, 1, 2]);
    assert!(split_run(&f).is_err());
    // "The same key as before" with no before.
    let f = frame(&[7], &[KEY], 1, &[0, 2, 2, 1]);
    assert!(matches!(split_run(&f), Err(DecodeError::NonCanonical(_))));
    // Key index out of range.
    let f = frame(&[7], &[KEY], 1, &[1, 1, 0, 5]);
    assert!(split_run(&f).is_err());
    // No keys at all.
    let f = frame(&[7], &[], 1, &[0, 0]);
    assert!(split_run(&f).is_err());
    // A body column shorter than its heads say.
    let f = frame(&[7], &[KEY], 2, &[1, 1, 0, 0, 0, 2, 2, 1]);
    assert!(split_run(&f).is_err());
    // Trailing bytes.
    let f = frame(&[7], &[KEY], 1, &[1, 1, 0, 0, 2, 2, 1, 99]);
    assert!(matches!(
        split_run(&f),
        Err(DecodeError::TrailingBytes { .. })
    ));
    // An honest one of the same shape decodes.
    let f = frame(&[7], &[KEY], 1, &[1, 1, 0, 0, 2, 2, 1]);
    let t = split_run(&f).expect("valid");
    assert_eq!(t.len(), 1);
    assert_eq!(&t[0][..8], &7u64.to_le_bytes());
}

#[test]
fn a_run_that_would_expand_past_its_bound_is_refused() {
    // A 600-byte key named once, then 2,000 one-byte-body transactions of
    // it: about 1.3 MB from a 10 KB frame.
    let mut key = vec![0u8];
    key.push(0xd8);
    key.push(0x04); // varint 600
    key.extend(std::iter::repeat_n(b'x', 600));
    key.push(0);
    let mut f = vec![minidote_core::PROTOCOL_VERSION, RUN_TAG, 1];
    f.extend_from_slice(&7u64.to_le_bytes());
    f.push(1);
    f.extend_from_slice(&key);
    f.extend_from_slice(&[0xd0, 0x0f]); // 2,000
    f.extend_from_slice(&[1, 1, 0, 0]);
    // 1,999 heads "the next seq, the same key".
    f.extend(std::iter::repeat_n(0u8, 1999));
    for _ in 0..2000 {
        f.extend_from_slice(&[1, 2]);
    }
    assert!(
        matches!(split_run(&f), Err(DecodeError::LengthOutOfRange { .. })),
        "{:?}",
        split_run(&f).map(|v| v.len())
    );
    // Every truncation is an error, never a panic.
    for n in 0..f.len().min(700) {
        assert!(split_run(&f[..n]).is_err());
    }
}

#[test]
fn every_single_byte_change_of_a_run_decodes_or_errs_without_panicking() {
    let (log, _) = history();
    let run = run_frame(&log[..40]).expect("valid");
    for i in 0..run.len() {
        for b in [0u8, 1, 2, 3, 0x7f, 0x80, 0xff] {
            let mut m = run.clone();
            m[i] = b;
            if let Ok(txns) = split_run(&m) {
                // Whatever decodes applies or is refused, never panics.
                let mut r = common::replica(99);
                let _ = r.handle_txns(None, txns.into_iter().map(TxnBytes::from).collect());
            }
        }
    }
}

#[test]
fn a_run_that_compresses_goes_packed_and_packed_runs_are_checked() {
    let mut r = common::replica(1);
    let s = key("tags", CrdtType::SetAw);
    for i in 0..5_000 {
        op(
            &mut r,
            &s,
            Op::Add(Value::from(format!("tag number {}", i % 50))),
        );
    }
    let log = log_of(&r);
    let f = run_frame(&log).expect("valid");
    assert_eq!(
        f[1],
        minidote_core::wire::PACKED_RUN_TAG,
        "repetitive bodies compress"
    );
    let back = split_run(&f).expect("valid");
    assert_eq!(back.len(), log.len());
    for (a, b) in back.iter().zip(&log) {
        assert_eq!(&a[..], &b[..]);
    }
    let mut x = common::replica(2);
    x.import_frame(&f).expect("valid");
    assert_eq!(x.value(&s), r.value(&s));
    // A packed body that lies about its length, does not decompress, or
    // claims more than the bound: refused, never a panic.
    let mut lie = f.clone();
    lie[2] ^= 1;
    assert!(split_run(&lie).is_err());
    for n in 0..f.len().min(300) {
        assert!(split_run(&f[..n]).is_err());
    }
    let huge = [
        minidote_core::PROTOCOL_VERSION,
        minidote_core::wire::PACKED_RUN_TAG,
        0xff,
        0xff,
        0xff,
        0x7f,
        0,
    ];
    assert!(matches!(
        split_run(&huge),
        Err(DecodeError::LengthOutOfRange { .. })
    ));
}

#[test]
fn tables_are_bounded_and_a_run_is_never_larger_than_its_txns_frame() {
    // A table claiming more than MAX_TABLE entries is refused up front.
    let mut f = vec![minidote_core::PROTOCOL_VERSION, RUN_TAG];
    f.extend_from_slice(&[0x81, 0x80, 0x04]); // 65,537 origins
    f.extend(std::iter::repeat_n(0u8, 65_537 * 8));
    assert!(matches!(
        split_run(&f),
        Err(DecodeError::LengthOutOfRange { .. })
    ));
    // Writes by many origins, one each: a run would be larger, so Txns.
    let mut log = Vec::new();
    for i in 0..20u64 {
        let mut r = common::replica(1000 + i);
        op(&mut r, &key("c", CrdtType::CounterPn), Op::Increment(1));
        log.extend(log_of(&r));
    }
    let plain = txns_frame(log.iter().map(|t| &t[..]));
    if let Some(run) = run_frame(&log) {
        assert!(run.len() <= plain.len(), "{} > {}", run.len(), plain.len());
    }
    for f in txns_frames(&log, 1 << 20) {
        assert!(f.len() <= plain.len());
    }
    // 5,000 writes to 5,000 keys encode quickly and round-trip.
    let mut r = common::replica(1);
    for i in 0..5_000 {
        op(
            &mut r,
            &key(&format!("k{i}"), CrdtType::CounterPn),
            Op::Increment(1),
        );
    }
    let log = log_of(&r);
    let run = run_frame(&log).expect("valid");
    assert_eq!(split_run(&run).expect("valid").len(), 5_000);
}
