//! What the demo's inspector and progress bar read: sync progress events
//! during a catch-up, the history of delivered transactions, what waits in
//! the causal buffer, and the shape of a text.

mod common;

use common::{key, op};
use minidote_core::{
    Config, CrdtType, Event, LinkId, Op, Pos, Replica, ReplicaId, SyncProgress, Value, VectorClock,
};

fn replica_with(id: u64, f: impl FnOnce(&mut Config)) -> Replica {
    let mut c = Config::default();
    f(&mut c);
    Replica::new(ReplicaId(id), c)
}

fn progress(r: &mut Replica, out: &mut Vec<SyncProgress>) {
    while let Some(e) = r.poll_event() {
        if let Event::Progress(p) = e {
            out.push(p);
        }
    }
}

/// Moves frames between `a` and `b` on link 1 until both are quiet, or
/// until `limit` frames went from `a` to `b`. Returns the frames moved a→b.
fn pump(a: &mut Replica, b: &mut Replica, seen: &mut Vec<SyncProgress>, limit: usize) -> usize {
    let mut to_b = 0;
    loop {
        let mut moved = false;
        while to_b < limit {
            let Some(t) = a.poll_transmit() else { break };
            b.handle_frame(LinkId(1), &t.frame, 1).expect("valid");
            progress(b, seen);
            to_b += 1;
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_frame(LinkId(1), &t.frame, 1).expect("valid");
            moved = true;
        }
        progress(a, &mut Vec::new());
        if !moved || to_b >= limit {
            return to_b;
        }
    }
}

fn link(a: &mut Replica, b: &mut Replica) {
    a.link_open(LinkId(1), None, 0);
    b.link_open(LinkId(1), None, 0);
}

fn writes(r: &mut Replica, n: usize) {
    let k = key("c", CrdtType::CounterPn);
    for _ in 0..n {
        op(r, &k, Op::Increment(1));
    }
}

fn check_monotonic(seen: &[SyncProgress]) {
    for w in seen.windows(2) {
        assert!(w[0].received <= w[1].received, "{seen:?}");
        assert!(w[0].bytes <= w[1].bytes, "{seen:?}");
        assert!(!w[0].done, "only the last event is done: {seen:?}");
    }
}

#[test]
fn a_catch_up_reports_progress_until_every_expected_transaction_arrived() {
    // Small frames, so the catch-up takes many.
    let mut a = replica_with(1, |c| c.max_frame_bytes = 4096);
    writes(&mut a, 5000);
    let mut b = replica_with(2, |c| c.max_frame_bytes = 4096);
    link(&mut a, &mut b);
    let mut seen = Vec::new();
    pump(&mut a, &mut b, &mut seen, usize::MAX);
    assert_eq!(b.value(&key("c", CrdtType::CounterPn)), Value::Int(5000));
    assert!(
        seen.len() > 5,
        "one event per frame that moved it: {seen:?}"
    );
    assert!(seen.iter().all(|p| p.expected == 5000), "{seen:?}");
    check_monotonic(&seen);
    let last = seen.last().expect("events");
    assert!(
        last.done && last.received == 5000 && last.bytes > 5000 * 3,
        "{last:?}"
    );
    assert!(seen[0].received < 5000);

    // Linked again with nothing new: no catch-up, no events.
    a.link_closed(LinkId(1));
    b.link_closed(LinkId(1));
    progress(&mut b, &mut seen);
    let before = seen.len();
    link(&mut a, &mut b);
    pump(&mut a, &mut b, &mut seen, usize::MAX);
    assert_eq!(seen.len(), before, "{:?}", &seen[before..]);
}

#[test]
fn a_catch_up_from_a_snapshot_counts_what_the_snapshot_covers() {
    let mut a = replica_with(1, |c| c.snapshot_every = 100);
    writes(&mut a, 1000);
    let mut b = replica_with(2, |_| {});
    link(&mut a, &mut b);
    let mut seen = Vec::new();
    pump(&mut a, &mut b, &mut seen, usize::MAX);
    assert_eq!(b.value(&key("c", CrdtType::CounterPn)), Value::Int(1000));
    check_monotonic(&seen);
    let last = seen.last().expect("events");
    assert_eq!(
        (last.received, last.expected, last.done),
        (1000, 1000, true)
    );
}

#[test]
fn a_catch_up_whose_link_drops_ends_where_it_stands() {
    let mut a = replica_with(1, |c| c.max_frame_bytes = 4096);
    writes(&mut a, 5000);
    let mut b = replica_with(2, |c| c.max_frame_bytes = 4096);
    link(&mut a, &mut b);
    let mut seen = Vec::new();
    // Hello, then two frames of transactions.
    pump(&mut a, &mut b, &mut seen, 3);
    assert!(!seen.is_empty() && !seen.last().unwrap().done, "{seen:?}");
    b.link_closed(LinkId(1));
    progress(&mut b, &mut seen);
    let last = seen.last().unwrap();
    assert!(last.done, "{seen:?}");
    assert!(
        0 < last.received && last.received < last.expected,
        "{last:?}"
    );
    check_monotonic(&seen);
}

#[test]
fn the_history_keeps_the_last_transactions_with_their_deps_and_keys() {
    let (x, y) = (key("x", CrdtType::CounterPn), key("y", CrdtType::SetAw));
    let mut a = replica_with(1, |_| {});
    let mut b = replica_with(2, |_| {});
    assert_eq!(b.history().len(), 0);
    b.set_history(3);
    op(&mut a, &x, Op::Increment(1));
    common::sync(&a, &mut b);
    common::update(
        &mut b,
        vec![
            (x.clone(), Op::Increment(2)),
            (y.clone(), Op::Add(Value::from("v"))),
        ],
    );
    let h: Vec<_> = b.history().cloned().collect();
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].origin, h[0].seq, h[0].local),
        (ReplicaId(1), 1, false)
    );
    assert_eq!(h[0].keys, vec![x.clone()]);
    assert_eq!((h[1].origin, h[1].seq, h[1].local), (ReplicaId(2), 1, true));
    assert_eq!(h[1].keys, vec![x.clone(), y.clone()]);
    assert_eq!(h[1].deps.get(ReplicaId(1)), 1, "b's write followed a's");
    for _ in 0..5 {
        op(&mut b, &x, Op::Increment(1));
    }
    let seqs: Vec<u64> = b.history().map(|t| t.seq).collect();
    assert_eq!(seqs, vec![4, 5, 6], "bounded, oldest first");
    b.set_history(1);
    assert_eq!(b.history().len(), 1);
    b.set_history(0);
    op(&mut b, &x, Op::Increment(1));
    assert_eq!(b.history().len(), 0, "off");
}

#[test]
fn the_buffer_shows_what_each_waiting_transaction_lacks() {
    let x = key("x", CrdtType::CounterPn);
    let mut a = replica_with(1, |_| {});
    let mut c = replica_with(3, |_| {});
    op(&mut c, &x, Op::Increment(1));
    common::sync(&c, &mut a);
    op(&mut a, &x, Op::Increment(1));
    op(&mut a, &x, Op::Increment(1));
    // b gets a's second write only: it waits for a's first.
    let mut b = replica_with(2, |_| {});
    let frames = a.export_since(&VectorClock::from_iter([
        (ReplicaId(1), 1),
        (ReplicaId(3), 1),
    ]));
    assert_eq!(frames.len(), 1);
    let st = b.apply_update(&frames[0]).expect("valid");
    assert_eq!(st.buffered, 1);
    let held = b.buffered(10);
    assert_eq!(held.len(), 1);
    assert_eq!((held[0].origin, held[0].seq), (ReplicaId(1), 2));
    // Deps are sparse: c's write is implied through a's first, which it
    // waits for.
    assert_eq!(
        held[0].waits_for,
        VectorClock::from_iter([(ReplicaId(1), 1)])
    );
    assert!(b.buffered(0).is_empty());
}

#[test]
fn seq_stats_count_runs_visible_elements_and_tombstones() {
    let t = key("t", CrdtType::Text);
    let mut a = replica_with(1, |_| {});
    assert_eq!(a.seq_stats(&t).map(|s| s.elements), Some(0));
    assert_eq!(a.seq_stats(&key("c", CrdtType::CounterPn)), None);
    op(
        &mut a,
        &t,
        Op::Insert(
            Pos {
                at: 0,
                utf16: false,
            },
            Value::from("hello"),
        ),
    );
    op(
        &mut a,
        &t,
        Op::Delete(
            Pos {
                at: 1,
                utf16: false,
            },
            2,
        ),
    );
    let s = a.seq_stats(&t).expect("text");
    assert_eq!((s.elements, s.visible, s.tombstones), (5, 3, 2));
    assert!(s.runs >= 1);
    assert_eq!(a.value(&t), Value::from("hlo"));
}

fn hello(id: u64, clock: &[(u64, u64)]) -> Vec<u8> {
    minidote_core::Frame::Hello(minidote_core::Hello {
        replica: ReplicaId(id),
        room: "default".into(),
        clock: clock.iter().map(|&(r, s)| (ReplicaId(r), s)).collect(),
        token: None,
    })
    .encode()
}

#[test]
fn a_peer_that_announces_what_it_never_sends_cannot_keep_a_catch_up_open() {
    let mut b = replica_with(2, |c| c.idle_timeout_ms = 30_000);
    b.link_open(LinkId(1), None, 0);
    let mut seen = Vec::new();
    b.handle_frame(LinkId(1), &hello(9, &[(9, 1_000_000), (7, 50)]), 10)
        .expect("valid");
    progress(&mut b, &mut seen);
    assert!(b.catching_up());
    assert_eq!(
        seen.last().map(|p| (p.expected, p.done)),
        Some((1_000_050, false))
    );
    // The peer stays linked (it answers pings) but sends nothing.
    for t in (1..30).map(|s| s * 1_000) {
        b.handle_frame(LinkId(1), &minidote_core::Frame::Pong(0).encode(), t)
            .expect("valid");
        b.handle_timeout(t);
    }
    assert!(b.catching_up(), "not before the idle timeout");
    b.handle_frame(LinkId(1), &minidote_core::Frame::Pong(0).encode(), 31_000)
        .expect("valid");
    b.handle_timeout(31_000);
    progress(&mut b, &mut seen);
    assert!(
        !b.catching_up(),
        "given up after the idle timeout with nothing arriving"
    );
    assert_eq!(seen.last().map(|p| (p.received, p.done)), Some((0, true)));
}

#[test]
fn a_repeated_hello_adds_nothing_and_a_link_that_may_not_forward_counts_only_its_own() {
    let mut b = replica_with(2, |_| {});
    b.link_open(LinkId(1), None, 0);
    let mut seen = Vec::new();
    b.handle_frame(LinkId(1), &hello(9, &[(9, 10)]), 1)
        .expect("valid");
    // Hello after Hello with ever new ids: the target does not grow.
    for i in 0..50u64 {
        let _ = b.handle_frame(LinkId(1), &hello(9, &[(9, 10), (1000 + i, 1_000)]), 2);
    }
    progress(&mut b, &mut seen);
    assert!(seen.iter().all(|p| p.expected == 10), "{seen:?}");
    // A peer that may speak only for itself: only its own entry counts.
    let mut c = replica_with(3, |_| {});
    c.link_open_with(LinkId(1), None, minidote_core::LinkPolicy::OWN, 0);
    c.handle_frame(LinkId(1), &hello(9, &[(9, 4), (7, 1_000)]), 1)
        .expect("valid");
    let mut seen = Vec::new();
    progress(&mut c, &mut seen);
    assert_eq!(seen.last().map(|p| p.expected), Some(4), "{seen:?}");
}
