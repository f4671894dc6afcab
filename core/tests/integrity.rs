//! Integrity under hostile peers, at a replica (SECURITY.md): each test is
//! an attack that used to split, erase or forge data, and now is refused
//! or made harmless.

mod common;

use common::*;
use minidote_core::wire::{encode_txn_bytes, error_code, Frame, Hello, Txn};
use minidote_core::{
    CatchUp, CrdtType, DecodeError, Effect, Key, LinkId, LinkPolicy, Op, ProtocolError, Replica,
    ReplicaId, Snapshot, Value, VectorClock,
};

fn txns_of(r: &Replica, since: &VectorClock) -> Vec<minidote_core::TxnBytes> {
    match r.catch_up(since) {
        CatchUp::Txns(t) => t,
        other => panic!("expected transactions, got {other:?}"),
    }
}

/// Re-encodes `txn` with `deps` as its declared dependencies.
fn with_deps(txn: &Txn, deps: &VectorClock) -> Vec<u8> {
    let refs: Vec<(&Key, &Effect)> = txn.effects.iter().map(|(k, e)| (k, e)).collect();
    encode_txn_bytes(txn.origin, txn.seq, deps, &refs)
}

fn hello_from(id: u64, clock: VectorClock) -> Vec<u8> {
    Frame::Hello(Hello {
        replica: ReplicaId(id),
        room: "default".into(),
        clock,
        token: None,
    })
    .encode()
}

/// Opens `link` on `r` with `policy` and completes the peer's side of the
/// handshake as replica `peer`.
fn linked(r: &mut Replica, link: u64, peer: u64, policy: LinkPolicy) {
    r.link_open_with(LinkId(link), None, policy, 0);
    r.handle_frame(LinkId(link), &hello_from(peer, VectorClock::new()), 0)
        .expect("hello");
    while r.poll_transmit().is_some() {}
}

fn last_error_frame(r: &mut Replica, link: u64) -> Option<u16> {
    std::iter::from_fn(|| r.poll_transmit())
        .filter(|t| t.link == LinkId(link))
        .filter_map(|t| match Frame::decode(&t.frame) {
            Ok(Frame::Error { code, .. }) => Some(code),
            _ => None,
        })
        .last()
}

#[test]
fn a_remove_that_hides_its_dependency_waits_for_the_removed_dot() {
    let set = key("s", CrdtType::SetAw);
    let mut a = replica(1);
    let mut b = replica(2);
    let mut c = replica(3);
    op(&mut a, &set, Op::Add(Value::from("x")));
    sync(&a, &mut b);
    op(&mut b, &set, Op::Remove(Value::from("x")));
    // B's remove, re-encoded to declare no deps at all.
    let b1 = txns_of(&b, &a.clock().clone()).remove(0);
    let lying = with_deps(&Txn::decode(&b1).unwrap(), &VectorClock::new());
    assert_ne!(&lying[..], &b1[..]);
    let st = c.handle_txns(None, vec![lying.into()]).unwrap();
    assert_eq!(st.delivered, 0, "the remove must wait for (A,1)");
    assert_eq!(st.buffered, 1);
    assert_eq!(st.missing.len(), 1);
    sync(&a, &mut c);
    assert_eq!(c.clock(), b.clock());
    assert_eq!(read(&mut c, &set), read(&mut b, &set));
    assert_eq!(read(&mut c, &set), strs(&[]));
}

#[test]
fn an_effect_that_observes_its_own_future_does_not_decode() {
    let flag = key("f", CrdtType::FlagEw);
    let mut a = replica(1);
    op(&mut a, &flag, Op::Enable);
    op(&mut a, &flag, Op::Disable);
    let txns = txns_of(&a, &VectorClock::new());
    let mut second = Txn::decode(&txns[1]).unwrap();
    // Seq 2 removes (A,1), which is fine; claim it removes (A,2) as well.
    let Effect::FlagEw(minidote_core::effect::FlagEw { removed, .. }) = &mut second.effects[0].1
    else {
        panic!("flag effect")
    };
    removed.push(minidote_core::Dot::new(ReplicaId(1), 2));
    let bad = second.encode();
    assert!(matches!(
        Txn::decode(&bad),
        Err(DecodeError::Inconsistent(_))
    ));
}

#[test]
fn a_link_that_speaks_for_itself_cannot_carry_another_origin() {
    let k = key("n", CrdtType::CounterPn);
    let mut a = replica(1);
    op(&mut a, &k, Op::Increment(5));
    let frame =
        minidote_core::wire::txns_frame(txns_of(&a, &VectorClock::new()).iter().map(|t| &t[..]));
    let mut r = replica(9);
    linked(&mut r, 1, 2, LinkPolicy::OWN);
    // Dropped and counted, not an error: an honest peer with other links
    // forwards what it has.
    r.handle_frame(LinkId(1), &frame, 1).unwrap();
    assert_eq!(last_error_frame(&mut r, 1), None);
    assert_eq!(read(&mut r, &k), Value::Int(0), "nothing was applied");
    assert!(r.clock().is_empty());
    assert_eq!(r.stats().refused, 1);
    assert!(r.link_established(LinkId(1)));

    // The same frame from the origin itself, on such a link, is taken.
    linked(&mut r, 2, 1, LinkPolicy::OWN);
    r.handle_frame(LinkId(2), &frame, 1).unwrap();
    assert_eq!(read(&mut r, &k), Value::Int(5));
}

#[test]
fn only_a_trusted_link_may_send_a_snapshot() {
    let set = key("s", CrdtType::SetAw);
    let mut r = replica(9);
    op(&mut r, &set, Op::Add(Value::from("keep")));
    // The forged snapshot of the issue: a huge clock and no objects.
    let forged = Snapshot {
        clock: [(ReplicaId(9), 1), (ReplicaId(1), u64::MAX)]
            .into_iter()
            .collect(),
        objects: Vec::new(),
    };
    let frame = Frame::Snapshot(forged.encode()).encode();
    linked(&mut r, 1, 2, LinkPolicy::OWN);
    let err = r.handle_frame(LinkId(1), &frame, 1).unwrap_err();
    assert_eq!(err, ProtocolError::SnapshotForbidden(ReplicaId(2)));
    assert_eq!(last_error_frame(&mut r, 1), Some(error_code::FORBIDDEN));
    assert_eq!(read(&mut r, &set), strs(&["keep"]));
    assert_eq!(r.clock().get(ReplicaId(1)), 0);
}

#[test]
fn a_snapshot_that_claims_this_replicas_future_is_refused() {
    let set = key("s", CrdtType::SetAw);
    let mut r = replica(9);
    op(&mut r, &set, Op::Add(Value::from("keep")));
    let forged = Snapshot {
        clock: [(ReplicaId(9), u64::MAX)].into_iter().collect(),
        objects: Vec::new(),
    };
    linked(&mut r, 1, 2, LinkPolicy::TRUSTED);
    let err = r
        .handle_frame(LinkId(1), &Frame::Snapshot(forged.encode()).encode(), 1)
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::ForgedSnapshot {
            claimed: u64::MAX,
            durable: 1
        }
    );
    assert_eq!(last_error_frame(&mut r, 1), Some(error_code::INTEGRITY));
    assert_eq!(read(&mut r, &set), strs(&["keep"]));
    // This replica can still write.
    op(&mut r, &set, Op::Add(Value::from("more")));
    assert_eq!(r.clock().get(ReplicaId(9)), 2);
}

#[test]
fn a_second_copy_of_a_dot_with_other_bytes_is_refused_and_counted() {
    let reg = key("r", CrdtType::RegisterMv);
    let mut a = replica(1);
    op(&mut a, &reg, Op::Assign(Value::from("real")));
    let real = txns_of(&a, &VectorClock::new()).remove(0);
    let mut spoof = Txn::decode(&real).unwrap();
    spoof.effects[0].1 = Effect::RegisterMv(minidote_core::effect::RegisterMv {
        removed: Vec::new(),
        value: Some(Value::from("spoofed")),
    });
    let spoof = spoof.encode();

    let mut r = replica(9);
    linked(&mut r, 1, 2, LinkPolicy::TRUSTED);
    r.handle_frame(
        LinkId(1),
        &minidote_core::wire::txns_frame([&real[..]].into_iter()),
        1,
    )
    .unwrap();
    // The same bytes again are a plain duplicate.
    r.handle_frame(
        LinkId(1),
        &minidote_core::wire::txns_frame([&real[..]].into_iter()),
        1,
    )
    .unwrap();
    assert_eq!(r.stats().duplicates, 1);
    let err = r
        .handle_frame(
            LinkId(1),
            &minidote_core::wire::txns_frame([&spoof[..]].into_iter()),
            1,
        )
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::IntegrityConflict(minidote_core::Dot::new(ReplicaId(1), 1))
    );
    assert_eq!(last_error_frame(&mut r, 1), Some(error_code::INTEGRITY));
    assert_eq!(r.stats().integrity_conflicts, 1);
    assert_eq!(
        read(&mut r, &reg),
        strs(&["real"]),
        "the first copy is kept"
    );
}

#[test]
fn a_second_copy_with_other_bytes_is_refused_while_the_first_waits() {
    let k = key("n", CrdtType::CounterPn);
    let mut a = replica(1);
    op(&mut a, &k, Op::Increment(1));
    op(&mut a, &k, Op::Increment(2));
    let t = txns_of(&a, &VectorClock::new());
    let mut spoof = Txn::decode(&t[1]).unwrap();
    spoof.effects[0].1 = Effect::CounterPn(minidote_core::effect::CounterPn::delta(1000));
    let mut r = replica(9);
    // Seq 2 arrives first and waits; a different seq 2 follows.
    r.handle_txns(None, vec![t[1].clone()]).unwrap();
    let err = r
        .handle_txns(None, vec![spoof.encode().into()])
        .unwrap_err();
    assert!(matches!(err, ProtocolError::IntegrityConflict(_)), "{err}");
    r.handle_txns(None, vec![t[0].clone()]).unwrap();
    assert_eq!(read(&mut r, &k), Value::Int(3));
}

#[test]
fn a_bloated_clock_from_a_peer_costs_this_replica_nothing() {
    let mut r = replica(9);
    linked(&mut r, 1, 2, LinkPolicy::TRUSTED);
    let bloated: VectorClock = (1..=100_000u64).map(|i| (ReplicaId(i * 7), 1)).collect();
    r.handle_frame(LinkId(1), &Frame::Need(bloated).encode(), 1)
        .unwrap();
    let peer = &r.stats().peers[0];
    assert!(
        peer.clock.len() <= 1,
        "peer view kept {} entries",
        peer.clock.len()
    );
}

#[test]
fn a_clock_over_the_entry_cap_does_not_decode() {
    let n = minidote_core::MAX_CLOCK_ENTRIES + 1;
    let big: VectorClock = (1..=n).map(|i| (ReplicaId(i), 1)).collect();
    let frame = Frame::Need(big).encode();
    assert!(frame.len() < 200_000, "packed: {} bytes", frame.len());
    assert!(matches!(
        Frame::decode(&frame),
        Err(DecodeError::LengthOutOfRange { .. })
    ));
}

#[test]
fn a_state_based_counter_refuses_to_leave_the_i64_range_and_never_wraps() {
    let k = key("c", CrdtType::CounterPnSb);
    let mut a = replica(1);
    op(&mut a, &k, Op::Increment(i64::MAX));
    let err = a
        .update_objects(
            vec![minidote_core::Update::new(k.clone(), Op::Increment(1))],
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, minidote_core::UpdateError::Overflow { .. }),
        "{err}"
    );
    assert_eq!(read(&mut a, &k), Value::Int(i64::MAX));
    // Two replicas that each stayed in range sum past it: the value
    // saturates instead of wrapping to a negative number.
    let mut b = replica(2);
    op(&mut b, &k, Op::Increment(i64::MAX));
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Int(i64::MAX));
}

#[test]
fn a_register_cannot_be_frozen_by_a_huge_timestamp() {
    let reg = key("r", CrdtType::RegisterLww);
    let mut evil = replica(0xff);
    op(&mut evil, &reg, Op::Assign(Value::from("frozen")));
    let mut t = Txn::decode(&txns_of(&evil, &VectorClock::new())[0]).unwrap();
    t.effects[0].1 = Effect::RegisterLww(minidote_core::effect::RegisterLww {
        ts: u64::MAX,
        removed: Vec::new(),
        value: Some(Value::from("frozen")),
    });
    let mut r = replica(1);
    r.handle_txns(None, vec![t.encode().into()]).unwrap();
    assert_eq!(read(&mut r, &reg), Value::from("frozen"));
    // A write always wins over what it observed, whatever its timestamp
    // (it saturates at u64::MAX here, and the writer's id is lower).
    op(&mut r, &reg, Op::Assign(Value::from("mine")));
    assert_eq!(read(&mut r, &reg), Value::from("mine"));
    // Everyone who gets both agrees, in either order.
    let mut other = replica(2);
    sync(&r, &mut other);
    assert_eq!(read(&mut other, &reg), Value::from("mine"));
    // A write concurrent with the huge one still loses to it: the time
    // orders concurrent writes only.
    let mut c = replica(3);
    op(&mut c, &reg, Op::Assign(Value::from("concurrent")));
    sync(&c, &mut other);
    assert_eq!(read(&mut other, &reg), Value::from("mine"));
}

#[test]
fn a_transaction_no_frame_could_carry_is_refused_whole() {
    let reg = key("r", CrdtType::RegisterLww);
    let mut r = replica(1);
    let big = Value::Bytes(vec![7; 1_100_000]);
    let err = r
        .update_objects(
            vec![minidote_core::Update::new(reg.clone(), Op::Assign(big))],
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, minidote_core::UpdateError::TooLarge { limit, .. } if limit == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("frame limit"), "{err}");
    assert!(r.clock().is_empty(), "nothing applied or logged");
    // A reset whose effect names more observed tokens than a frame holds is
    // refused too, with nothing applied, though the op itself is small.
    let set = key("s", CrdtType::SetAw);
    let cfg = minidote_core::Config {
        max_frame_bytes: 4096,
        ..Default::default()
    };
    let mut s = Replica::new(ReplicaId(3), cfg);
    for i in 0..400 {
        op(&mut s, &set, Op::Add(Value::Int(i)));
    }
    let before = s.clock().clone();
    let err = s
        .update_objects(
            vec![minidote_core::Update::new(set.clone(), Op::Reset)],
            None,
        )
        .unwrap_err();
    assert!(
        matches!(err, minidote_core::UpdateError::TooLarge { .. }),
        "{err}"
    );
    assert_eq!(s.clock(), &before);
    assert_eq!(
        read(&mut s, &set),
        Value::List((0..400).map(Value::Int).collect())
    );
}

#[test]
fn writes_that_name_nothing_they_overwrite_cannot_grow_a_register() {
    // A hostile origin writes a register 1,000 times, each effect naming
    // no observed write: the state keeps one entry per origin, and an
    // honest write that observes it stays small.
    for ty in [CrdtType::RegisterLww, CrdtType::RegisterMv] {
        let reg = key("r", ty);
        let mut evil = replica(0xff);
        let mut txns = Vec::new();
        for i in 0..1_000 {
            let before = evil.clock().clone();
            op(&mut evil, &reg, Op::Assign(Value::Int(i)));
            let mut t = Txn::decode(&txns_of(&evil, &before)[0]).unwrap();
            match &mut t.effects[0].1 {
                Effect::RegisterLww(minidote_core::effect::RegisterLww { removed, .. })
                | Effect::RegisterMv(minidote_core::effect::RegisterMv { removed, .. }) => {
                    removed.clear()
                }
                other => panic!("{other:?}"),
            }
            txns.push(t.encode().into());
        }
        let mut r = replica(1);
        r.handle_txns(None, txns).unwrap();
        let snap = r.state_snapshot();
        assert_eq!(snap.objects[0].1.tokens(), 1, "{ty}: one entry per origin");
        let before = r.clock().clone();
        op(&mut r, &reg, Op::Assign(Value::from("mine")));
        let mine = &txns_of(&r, &before)[0];
        assert!(mine.len() < 100, "{ty}: {} bytes", mine.len());
    }
}

/// Runs frames between two replicas linked as `LinkId(1)` on both sides
/// until both are quiet; returns the largest frame that went either way.
fn pump_pair(a: &mut Replica, b: &mut Replica) -> usize {
    let mut largest = 0;
    for _ in 0..10_000 {
        let mut moved = false;
        for flip in [false, true] {
            let (from, to) = if flip {
                (&mut *b, &mut *a)
            } else {
                (&mut *a, &mut *b)
            };
            let frames: Vec<Vec<u8>> = std::iter::from_fn(|| from.poll_transmit())
                .map(|t| t.frame)
                .collect();
            for f in frames {
                moved = true;
                largest = largest.max(f.len());
                let _ = to.handle_frame(LinkId(1), &f, 1);
            }
        }
        if !moved {
            break;
        }
    }
    largest
}

#[test]
fn a_snapshot_larger_than_a_frame_goes_in_pieces() {
    let small = minidote_core::Config {
        max_frame_bytes: 16 << 10,
        ..Default::default()
    };
    let mut a = Replica::new(ReplicaId(1), small.clone());
    let k = |i: usize| key(&format!("k{i}"), CrdtType::RegisterLww);
    for i in 0..20 {
        op(
            &mut a,
            &k(i),
            Op::Assign(Value::Bytes(vec![i as u8; 10_000])),
        );
    }
    // Pruned: a newcomer can only get the whole state (about 200 KB).
    a.snapshot();
    let mut b = Replica::new(ReplicaId(2), small);
    a.link_open(LinkId(1), None, 0);
    b.link_open(LinkId(1), None, 0);
    let largest = pump_pair(&mut a, &mut b);
    assert!(largest <= 16 << 10, "a frame of {largest} bytes");
    assert_eq!(b.clock(), a.clock());
    assert_eq!(b.stats().snapshots_merged, 1);
    assert_eq!(read(&mut b, &k(19)), Value::Bytes(vec![19; 10_000]));

    // Over a transport that reorders, loses and repeats frames, the pieces
    // of two sends of the same snapshot still make it whole.
    let state = a.state_snapshot().encode();
    let mut pieces = minidote_core::wire::snapshot_frames(&state, 16 << 10);
    assert!(pieces.len() > 10);
    let second = pieces.clone();
    pieces.reverse();
    pieces.remove(3); // lost the first time
    pieces.push(pieces[0].clone()); // and one repeated
    let mut c = Replica::new(ReplicaId(3), Default::default());
    linked(&mut c, 1, 1, LinkPolicy::TRUSTED);
    // Every seventh piece of the second send, from the sixth on.
    for f in pieces.iter().chain(second[5..].iter().step_by(7)) {
        c.handle_frame(LinkId(1), f, 1).unwrap();
    }
    assert_eq!(c.stats().snapshots_merged, 0, "one piece is still missing");
    for f in &second {
        c.handle_frame(LinkId(1), f, 1).unwrap();
        if c.stats().snapshots_merged == 1 {
            break;
        }
    }
    assert_eq!(c.clock(), a.clock());
    assert_eq!(read(&mut c, &k(7)), Value::Bytes(vec![7; 10_000]));
}

#[test]
fn snapshot_pieces_are_checked_as_they_arrive() {
    use minidote_core::wire::snapshot_part_frame;
    let mut r = Replica::new(
        ReplicaId(9),
        minidote_core::Config {
            max_snapshot_bytes: 4000,
            ..Default::default()
        },
    );
    // Over the limit: refused on the first piece's declared total, before
    // anything is held.
    linked(&mut r, 1, 2, LinkPolicy::TRUSTED);
    let err = r
        .handle_frame(LinkId(1), &snapshot_part_frame(7, 5000, 0, b"x"), 1)
        .unwrap_err();
    assert!(
        matches!(
            err,
            ProtocolError::Decode(DecodeError::LengthOutOfRange { .. })
        ),
        "{err}"
    );
    // A piece that overlaps another one of the same snapshot.
    let a600 = [b'a'; 600];
    let b600 = [b'b'; 600];
    linked(&mut r, 2, 3, LinkPolicy::TRUSTED);
    r.handle_frame(LinkId(2), &snapshot_part_frame(7, 2000, 0, &a600), 1)
        .unwrap();
    let err = r
        .handle_frame(LinkId(2), &snapshot_part_frame(7, 2000, 300, &b600), 1)
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Decode(_)), "{err}");
    // Tiny pieces (but the last) are refused: what pieces cost to hold
    // stays a small part of the limit.
    linked(&mut r, 5, 6, LinkPolicy::TRUSTED);
    let err = r
        .handle_frame(LinkId(5), &snapshot_part_frame(7, 2000, 0, b"abc"), 1)
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Decode(_)), "{err}");
    // A piece past its declared end does not even decode.
    assert!(Frame::decode(&snapshot_part_frame(7, 4, 2, b"xyz")).is_err());
    // Whole but garbage: a typed decode error, nothing merged.
    linked(&mut r, 3, 4, LinkPolicy::TRUSTED);
    r.handle_frame(LinkId(3), &snapshot_part_frame(7, 1200, 0, &a600), 1)
        .unwrap();
    let err = r
        .handle_frame(LinkId(3), &snapshot_part_frame(7, 1200, 600, &b600), 1)
        .unwrap_err();
    assert!(matches!(err, ProtocolError::Decode(_)), "{err}");
    assert_eq!(r.stats().snapshots_merged, 0);
    // A link that may not send snapshots may not send pieces either.
    linked(&mut r, 4, 5, LinkPolicy::OWN);
    let err = r
        .handle_frame(LinkId(4), &snapshot_part_frame(7, 6, 0, b"abc"), 1)
        .unwrap_err();
    assert!(matches!(err, ProtocolError::SnapshotForbidden(_)), "{err}");
}

/// A held item of a given size, for buffer tests.
struct Sized(ReplicaId, u64, VectorClock, usize);

impl minidote_core::Causal for Sized {
    fn origin(&self) -> ReplicaId {
        self.0
    }
    fn seq(&self) -> u64 {
        self.1
    }
    fn deps(&self) -> &VectorClock {
        &self.2
    }
    fn size(&self) -> usize {
        self.3
    }
}

#[test]
fn one_origin_cannot_fill_the_causal_buffer_for_everyone() {
    use minidote_core::{CausalBuffer, Offer};
    let never = VectorClock::from_entries([(ReplicaId(99), 1)]);
    // Alone, one origin may use the whole buffer...
    let mut b = CausalBuffer::with_limits(100, 1 << 20);
    for s in 2..200 {
        b.offer(Sized(ReplicaId(1), s, never.clone(), 10));
    }
    assert_eq!(b.len(), 100);
    // ...but while it holds more than its share (a quarter), others' entries
    // take its newest ones' places instead of being dropped.
    for s in 2..30 {
        assert!(matches!(
            b.offer(Sized(ReplicaId(2), s, never.clone(), 10)),
            Offer::Held { evicted: true }
        ));
    }
    assert!(b.get(ReplicaId(1), 2).is_some(), "its lowest seqs stay");
    assert!(b.get(ReplicaId(1), 101).is_none());
    // The same by bytes.
    let mut b = CausalBuffer::with_limits(1000, 4000);
    for s in 2..100 {
        b.offer(Sized(ReplicaId(1), s, never.clone(), 100));
    }
    assert_eq!(b.bytes(), 4000);
    assert!(matches!(
        b.offer(Sized(ReplicaId(3), 2, never.clone(), 100)),
        Offer::Held { evicted: true }
    ));
    assert_eq!(b.len(), 40);
    // Within the hog, lower seqs still displace higher ones.
    assert!(matches!(
        b.offer(Sized(ReplicaId(1), 1, never.clone(), 100)),
        Offer::Held { evicted: true }
    ));
    assert!(b.get(ReplicaId(1), 1).is_some());
}

#[test]
fn held_transactions_expire() {
    use minidote_core::CausalBuffer;
    let never = VectorClock::from_entries([(ReplicaId(99), 1)]);
    let mut b = CausalBuffer::with_limits(100, 1 << 20);
    b.set_now(10);
    for s in 2..5 {
        b.offer(Sized(ReplicaId(1), s, never.clone(), 10));
    }
    b.set_now(1_000);
    b.offer(Sized(ReplicaId(2), 2, never.clone(), 10));
    assert_eq!(b.expire(500), 3);
    assert_eq!((b.len(), b.bytes()), (1, 10));
    assert!(b.get(ReplicaId(2), 2).is_some());
    // And a replica drops them on its timer.
    let mut r = Replica::new(
        ReplicaId(5),
        minidote_core::Config {
            buffer_hold_ms: 1_000,
            ..Default::default()
        },
    );
    let mut a = replica(1);
    let k = key("n", CrdtType::CounterPn);
    op(&mut a, &k, Op::Increment(1));
    op(&mut a, &k, Op::Increment(1));
    let second = txns_of(&a, &VectorClock::new()).remove(1);
    r.handle_timeout(100);
    assert_eq!(r.handle_txns(None, vec![second]).unwrap().buffered, 1);
    r.handle_timeout(900);
    assert_eq!(r.stats().buffered, 1);
    r.handle_timeout(1_200);
    assert_eq!(r.stats().buffered, 0);
    assert_eq!(r.stats().buffer_dropped, 1);
}
