//! What `flush` rests on: peers tell a writer, with `Stored` frames, which
//! of its writes they hold durably (relays and replicas alike), and
//! `Event::LocalUpdate` hands an app each local write once it is durable.

mod common;

use common::key;
use minidote_core::{
    Config, CrdtType, Event, Frame, LinkId, Op, Replica, ReplicaId, Update, UpdateOutcome, Value,
};

fn config(persistent: bool) -> Config {
    Config {
        persistent,
        emit_local_updates: true,
        ..Config::default()
    }
}

/// A replica whose store commits only when the test says so.
struct Node {
    r: Replica,
    unsaved: Vec<u64>,
    local_updates: Vec<Vec<u8>>,
    stored_frames: usize,
}

impl Node {
    fn new(id: u64, persistent: bool) -> Node {
        Node {
            r: Replica::new(ReplicaId(id), config(persistent)),
            unsaved: Vec::new(),
            local_updates: Vec::new(),
            stored_frames: 0,
        }
    }

    fn write(&mut self, n: i64) {
        let k = key("c", CrdtType::CounterPn);
        let out = self
            .r
            .update_objects(vec![Update::new(k, Op::Increment(n))], None)
            .expect("valid");
        assert!(matches!(
            out,
            UpdateOutcome::Committed(_) | UpdateOutcome::Pending(_)
        ));
        self.settle();
    }

    fn settle(&mut self) {
        while let Some(rec) = self.r.poll_record() {
            self.unsaved.push(rec.lsn());
        }
        while let Some(e) = self.r.poll_event() {
            if let Event::LocalUpdate(f) = e {
                self.local_updates.push(f);
            }
        }
    }

    /// The store commits everything it was given.
    fn save(&mut self) {
        if let Some(&lsn) = self.unsaved.iter().max() {
            self.unsaved.clear();
            self.r.persisted(lsn);
        }
        self.settle();
    }

    fn value(&self) -> Value {
        self.r.value(&key("c", CrdtType::CounterPn))
    }
}

/// Runs frames between `a` and `b` on link 1 until both are quiet.
fn pump(a: &mut Node, b: &mut Node) {
    while step(a, b) | step(b, a) {}
}

fn step(from: &mut Node, to: &mut Node) -> bool {
    let mut moved = false;
    from.settle();
    while let Some(t) = from.r.poll_transmit() {
        moved = true;
        if matches!(Frame::decode(&t.frame), Ok(Frame::Stored(_))) {
            to.stored_frames += 1;
        }
        to.r.handle_frame(LinkId(1), &t.frame, 1)
            .expect("valid frame");
    }
    to.settle();
    moved
}

fn link(a: &mut Node, b: &mut Node) {
    a.r.link_open(LinkId(1), None, 0);
    b.r.link_open(LinkId(1), None, 0);
    pump(a, b);
}

fn unlink(a: &mut Node, b: &mut Node) {
    a.r.link_closed(LinkId(1));
    b.r.link_closed(LinkId(1));
}

#[test]
fn a_memory_peer_reports_the_writes_it_holds() {
    let (mut a, mut b) = (Node::new(1, false), Node::new(2, false));
    a.write(1);
    assert!(!a.r.stored_everywhere(), "no peer yet");
    link(&mut a, &mut b);
    assert_eq!(b.value(), Value::Int(1));
    assert!(a.r.stored_everywhere());
    assert!(b.r.stored_everywhere(), "b wrote nothing: trivially stored");
    a.write(2);
    assert!(!a.r.stored_everywhere(), "not reported yet");
    pump(&mut a, &mut b);
    assert!(a.r.stored_everywhere());
    // Offline writes are reported after the catch-up; a link with nothing
    // new is told at once what its peer already holds.
    unlink(&mut a, &mut b);
    a.write(3);
    link(&mut a, &mut b);
    assert!(a.r.stored_everywhere());
    unlink(&mut a, &mut b);
    link(&mut a, &mut b);
    assert!(a.r.stored_everywhere(), "a rejoining writer learns at once");
    assert_eq!(b.value(), Value::Int(6));
}

#[test]
fn a_persistent_peer_reports_only_what_its_store_committed() {
    let (mut a, mut b) = (Node::new(1, true), Node::new(2, true));
    a.write(5);
    assert!(!a.r.stored_everywhere(), "not even stored here");
    a.save();
    link(&mut a, &mut b);
    assert_eq!(b.value(), Value::Int(5), "delivered");
    assert!(!a.r.stored_everywhere(), "b has not stored it");
    let before = a.stored_frames;
    b.save();
    pump(&mut a, &mut b);
    assert!(a.r.stored_everywhere());
    assert_eq!(
        a.stored_frames,
        before + 1,
        "one Stored frame for the batch"
    );
    // Nothing new stored: no more Stored frames.
    b.save();
    pump(&mut a, &mut b);
    assert_eq!(a.stored_frames, before + 1);
    // A restart of b keeps what it stored: a reconnecting a learns it.
    unlink(&mut a, &mut b);
    let snap = b.r.state_snapshot().encode();
    let mut b2 = Node {
        r: Replica::restore(ReplicaId(2), config(true), Some(&snap), [], 100)
            .expect("restores")
            .0,
        unsaved: Vec::new(),
        local_updates: Vec::new(),
        stored_frames: 0,
    };
    link(&mut a, &mut b2);
    assert!(a.r.stored_everywhere());
}

#[test]
fn local_updates_are_handed_out_once_durable_and_apply_elsewhere() {
    // Memory: at once, one frame per transaction.
    let mut a = Node::new(1, false);
    a.write(1);
    a.write(2);
    assert_eq!(a.local_updates.len(), 2);
    // Persistent: only after the store committed, one frame for the batch.
    let mut p = Node::new(3, true);
    p.write(10);
    p.write(20);
    assert!(p.local_updates.is_empty(), "not durable yet");
    p.save();
    assert_eq!(p.local_updates.len(), 1);
    let mut c = Replica::new(ReplicaId(9), Config::default());
    for f in a.local_updates.iter().chain(&p.local_updates) {
        let st = c.apply_update(f).expect("a valid frame");
        assert_eq!(st.buffered, 0);
    }
    assert_eq!(c.value(&key("c", CrdtType::CounterPn)), Value::Int(33));
    // Remote writes are not local updates.
    let before = a.local_updates.len();
    for f in &p.local_updates {
        a.r.apply_update(f).unwrap();
    }
    a.settle();
    assert_eq!(a.local_updates.len(), before);
    // Without the option, no events.
    let mut quiet = Replica::new(ReplicaId(4), Config::default());
    quiet
        .update_objects(
            vec![Update::new(key("c", CrdtType::CounterPn), Op::Increment(1))],
            None,
        )
        .unwrap();
    assert!(std::iter::from_fn(|| quiet.poll_event()).all(|e| !matches!(e, Event::LocalUpdate(_))));
}

#[test]
fn only_a_peer_trusted_with_the_room_confirms_our_seqs() {
    // A persistent replica accepts a write-scope peer: the peer's Stored
    // counts for flush, but does not confirm our seqs, so a Hello on a new
    // trusted link still announces none of them (they get compared there).
    let mut a = Node::new(1, true);
    a.write(1);
    a.write(2);
    a.save();
    let mut p = Node::new(2, false);
    a.r.link_open_with(LinkId(1), None, minidote_core::LinkPolicy::OWN, 0);
    p.r.link_open(LinkId(1), None, 0);
    pump(&mut a, &mut p);
    assert!(
        a.r.stored_everywhere(),
        "the peer's report counts for flush"
    );
    a.r.link_open(LinkId(2), None, 0);
    let hello = std::iter::from_fn(|| a.r.poll_transmit())
        .find(|t| t.link == LinkId(2))
        .expect("a Hello on the new link");
    let Ok(Frame::Hello(h)) = Frame::decode(&hello.frame) else {
        panic!("not a Hello")
    };
    assert_eq!(
        h.clock.get(ReplicaId(1)),
        0,
        "an untrusted Stored confirmed nothing"
    );
}

/// A memory replica that writes more than `snapshot_every` times before
/// its first link keeps those writes in its log until a peer confirms them:
/// a peer that takes no snapshot from it (a relay) still gets every one.
#[test]
fn writes_made_before_the_first_link_reach_a_peer_that_takes_no_snapshot_from_the_writer() {
    {
        let persistent = false;
        let mut a = Node {
            r: Replica::new(
                ReplicaId(1),
                Config {
                    persistent,
                    snapshot_every: 100,
                    ..Config::default()
                },
            ),
            unsaved: Vec::new(),
            local_updates: Vec::new(),
            stored_frames: 0,
        };
        let mut b = Node::new(2, false);
        for _ in 0..1000 {
            a.write(1);
            a.save();
        }
        assert_eq!(
            a.r.stats().snapshots,
            0,
            "no snapshot while the writes wait"
        );
        a.r.link_open(LinkId(1), None, 0);
        // b may take only a's own transactions from it, never a snapshot.
        b.r.link_open_with(LinkId(1), None, minidote_core::LinkPolicy::OWN, 0);
        pump(&mut a, &mut b);
        assert_eq!(b.value(), Value::Int(1000), "persistent: {persistent}");
        assert!(a.r.stored_everywhere());
        // Confirmed: the next records let the snapshot happen.
        for _ in 0..100 {
            a.write(1);
            a.save();
            pump(&mut a, &mut b);
        }
        assert!(a.r.stats().snapshots >= 1, "persistent: {persistent}");
        assert_eq!(b.value(), Value::Int(1100));
    }
}
