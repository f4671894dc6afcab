//! A replica restored from an older copy of its file (SECURITY.md,
//! "Restored backups"): it finds out from a trusted peer that holds its
//! seqs with other bytes, re-issues its own writes from there on under a
//! new replica id, and takes the peer's copies of the old seqs. Every
//! write from both lineages ends up everywhere, and no seq is used twice.
//!
//! The replicas here talk the full link protocol through frames, with a
//! toy store for the persistent one, so the handshake's comparison of
//! own seqs (the hold) is exercised as a binding would drive it.

mod common;

use common::{key, strs};
use minidote_core::{
    Config, CrdtType, Event, Key, LinkId, LinkPolicy, Op, ProtocolError, ReadOutcome, Record,
    RepairError, Replica, ReplicaId, Update, UpdateOutcome, Value,
};

/// Records kept in order, pruned behind the latest snapshot.
#[derive(Default, Clone)]
struct Store {
    /// `snapshot_every` of the replica (0: the default).
    every: u64,
    id: Option<ReplicaId>,
    snapshot: Option<(u64, Vec<u8>)>,
    txns: Vec<(u64, Vec<u8>)>,
}

impl Store {
    fn drain(&mut self, r: &mut Replica) {
        let mut top = None;
        while let Some(rec) = r.poll_record() {
            top = Some(rec.lsn());
            match rec {
                Record::Txn { lsn, bytes, .. } => self.txns.push((lsn, bytes.to_vec())),
                Record::Snapshot { lsn, bytes } => {
                    self.txns.retain(|(l, _)| *l > lsn);
                    self.snapshot = Some((lsn, bytes));
                }
                Record::Reissue {
                    lsn,
                    id,
                    snapshot,
                    txns,
                } => {
                    self.id = Some(id);
                    self.txns.retain(|(l, _)| *l > lsn);
                    self.snapshot = Some((lsn, snapshot));
                    for (i, t) in txns.iter().enumerate() {
                        self.txns.push((lsn + 1 + i as u64, t.to_vec()));
                    }
                }
            }
        }
        if let Some(lsn) = top {
            r.persisted(lsn);
        }
    }

    fn open(&self, id: ReplicaId) -> Replica {
        let next = self
            .txns
            .last()
            .map(|t| t.0)
            .or(self.snapshot.as_ref().map(|s| s.0))
            .unwrap_or(0)
            + 1;
        let mut config = persistent();
        if self.every > 0 {
            config.snapshot_every = self.every;
        }
        Replica::restore(
            self.id.unwrap_or(id),
            config,
            self.snapshot.as_ref().map(|s| s.1.as_slice()),
            self.txns.iter().map(|t| t.1.as_slice()),
            next,
        )
        .unwrap()
        .0
    }
}

fn persistent() -> Config {
    Config {
        persistent: true,
        ..Config::default()
    }
}

/// A replica and, if it is persistent, its store.
struct Node {
    r: Replica,
    store: Option<Store>,
    events: Vec<Event>,
    parked: Vec<minidote_core::Transmit>,
}

impl Node {
    fn memory(id: u64) -> Node {
        Node {
            r: Replica::new(ReplicaId(id), Config::default()),
            store: None,
            events: Vec::new(),
            parked: Vec::new(),
        }
    }

    fn stored(id: u64) -> Node {
        Node {
            r: Replica::new(ReplicaId(id), persistent()),
            store: Some(Store::default()),
            events: Vec::new(),
            parked: Vec::new(),
        }
    }

    fn settle(&mut self) {
        if let Some(s) = &mut self.store {
            s.drain(&mut self.r);
        }
        while let Some(e) = self.r.poll_event() {
            self.events.push(e);
        }
    }

    fn write(&mut self, updates: Vec<(Key, Op)>) {
        let ups = updates
            .into_iter()
            .map(|(k, op)| Update::new(k, op))
            .collect();
        match self.r.update_objects(ups, None).expect("valid") {
            UpdateOutcome::Committed(_) | UpdateOutcome::Pending(_) => {}
        }
        self.settle();
    }

    /// Replica 1 opened from `store` (a restart, or a restored copy).
    fn reopened(store: Store) -> Node {
        Node {
            r: store.open(ReplicaId(1)),
            store: Some(store),
            events: Vec::new(),
            parked: Vec::new(),
        }
    }

    fn read(&mut self, k: &Key) -> Value {
        match self.r.read_objects(vec![k.clone()], None) {
            ReadOutcome::Ready(mut v, _) => v.remove(0),
            ReadOutcome::Pending(_) => panic!("read pending"),
        }
    }

    fn repairs_needed(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::RepairNeeded { .. }))
            .count()
    }
}

/// Links `nodes[a]` (which dials, trusting the peer) to `nodes[b]` (which
/// accepts, letting it speak for itself only, as a relay does) and runs
/// frames both ways until both are quiet. Returns whether the link is
/// still up.
fn connect(nodes: &mut [Node], a: usize, b: usize, link: u64) -> bool {
    let l = LinkId(link);
    nodes[a].r.link_open(l, None, 0);
    nodes[b].r.link_open_with(l, None, LinkPolicy::OWN, 0);
    pump(nodes, a, b, l)
}

fn pump(nodes: &mut [Node], a: usize, b: usize, l: LinkId) -> bool {
    let mut up = true;
    for _ in 0..1000 {
        let mut moved = false;
        for (from, to) in [(a, b), (b, a)] {
            nodes[from].settle();
            // Frames for other links wait for their own pump.
            let mut frames = Vec::new();
            let n = &mut nodes[from];
            n.parked.extend(std::iter::from_fn(|| n.r.poll_transmit()));
            n.parked.retain(|t| {
                if t.link == l {
                    frames.push(t.frame.clone());
                }
                t.link != l
            });
            for f in frames {
                moved = true;
                if (nodes[to].r.link_established(l) || up)
                    && nodes[to].r.handle_frame(l, &f, 1).is_err()
                {
                    up = false;
                }
            }
            nodes[to].settle();
        }
        if !moved {
            break;
        }
    }
    if !up {
        disconnect(nodes, a, b, l.0);
    }
    up && nodes[a].r.link_established(l) && nodes[b].r.link_established(l)
}

fn disconnect(nodes: &mut [Node], a: usize, b: usize, link: u64) {
    for n in [a, b] {
        nodes[n].r.link_closed(LinkId(link));
        nodes[n].parked.retain(|t| t.link != LinkId(link));
    }
}

struct Keys {
    set: Key,
    counter: Key,
    bounded: Key,
    reg: Key,
}

fn keys() -> Keys {
    Keys {
        set: key("s", CrdtType::SetAw),
        counter: key("c", CrdtType::CounterPn),
        bounded: key("b", CrdtType::CounterPnSb),
        reg: key("r", CrdtType::RegisterMv),
    }
}

/// One write touching every kind of key: an element, `n` on both counters,
/// and the register (which observes the previous write).
fn write(node: &mut Node, k: &Keys, elem: &str, n: i64) {
    node.write(vec![
        (k.set.clone(), Op::Add(Value::from(elem))),
        (k.counter.clone(), Op::Increment(n)),
        (k.bounded.clone(), Op::Increment(n)),
        (k.reg.clone(), Op::Assign(Value::from(elem))),
    ]);
}

fn assert_converged(nodes: &mut [Node], k: &Keys) {
    let first = nodes[0].r.clock().clone();
    for n in nodes.iter_mut() {
        assert_eq!(n.r.clock(), &first, "clocks differ");
    }
    for key in [&k.set, &k.counter, &k.bounded, &k.reg] {
        let v = nodes[0].read(key);
        for n in nodes.iter_mut() {
            assert_eq!(n.read(key), v, "{key:?} differs");
        }
    }
}

const HUB: usize = 0;
const A: usize = 1;
const C: usize = 2;

#[test]
fn a_restored_replica_reissues_its_offline_writes_and_takes_the_originals() {
    let k = keys();
    let mut nodes = vec![Node::memory(100), Node::stored(1), Node::memory(3)];
    assert!(connect(&mut nodes, A, HUB, 1));
    write(&mut nodes[A], &k, "a1", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    // The backup.
    let backup = nodes[A].store.clone().unwrap();
    write(&mut nodes[A], &k, "a2", 10);
    write(&mut nodes[A], &k, "a3", 10);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    assert_eq!(nodes[HUB].r.clock().get(ReplicaId(1)), 3);
    disconnect(&mut nodes, A, HUB, 1);

    // The file is replaced by the backup; the replica writes offline,
    // reusing seqs 2 and 3 (and going beyond them).
    nodes[A] = Node::reopened(backup);
    assert_eq!(nodes[A].r.next_seq(), 2);
    for (i, e) in ["b2", "b3", "b4"].iter().enumerate() {
        write(&mut nodes[A], &k, e, 100 + i as i64);
    }
    // Meanwhile another replica writes through the hub.
    assert!(connect(&mut nodes, C, HUB, 2));
    write(&mut nodes[C], &k, "c1", 1000);
    assert!(pump(&mut nodes, C, HUB, LinkId(2)));

    // Reconnecting finds the reused seqs: the hub echoes seq 2 with other
    // bytes, the link closes, and a repair is asked for. Nothing of the
    // restored lineage reached the hub.
    assert!(!connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].repairs_needed(), 1);
    assert!(nodes[A].r.stats().repair_pending);
    assert_eq!(nodes[HUB].r.clock().get(ReplicaId(1)), 3);
    assert_eq!(nodes[HUB].r.stats().integrity_conflicts, 0);
    // Refused until repaired, without touching the hub.
    assert!(!connect(&mut nodes, A, HUB, 1));
    assert!(nodes[HUB].read(&k.set) == strs(&["a1", "a2", "a3", "c1"]));

    // A stale base is refused; the stored one is taken.
    assert!(matches!(
        nodes[A].r.repair(Some(b"junk")),
        Err(RepairError::Decode(_))
    ));
    let other = nodes[HUB].r.state_snapshot().encode();
    assert_eq!(
        nodes[A].r.repair(Some(&other)),
        Err(RepairError::BaseMismatch)
    );
    let base = nodes[A]
        .store
        .as_ref()
        .unwrap()
        .snapshot
        .clone()
        .map(|s| s.1);
    let done = nodes[A].r.repair(base.as_deref()).expect("repair");
    nodes[A].settle();
    assert_eq!(done.old_id, ReplicaId(1));
    assert_eq!(done.from_seq, 2);
    assert_eq!(done.reissued, 3);
    assert_ne!(done.new_id, ReplicaId(1));
    assert_eq!(nodes[A].r.id(), done.new_id);
    assert_eq!(nodes[A].store.as_ref().unwrap().id, Some(done.new_id));
    assert_eq!(nodes[A].r.stats().restores, 1);

    // Reconnected under the new id, everyone converges on every write.
    assert!(connect(&mut nodes, A, HUB, 1));
    assert!(pump(&mut nodes, C, HUB, LinkId(2)));
    assert_converged(&mut nodes, &k);
    let all = strs(&["a1", "a2", "a3", "b2", "b3", "b4", "c1"]);
    assert_eq!(nodes[A].read(&k.set), all);
    let total = Value::Int(1 + 10 + 10 + 100 + 101 + 102 + 1000);
    assert_eq!(nodes[A].read(&k.counter), total);
    assert_eq!(nodes[A].read(&k.bounded), total);
    // The register's last writes: the original a3 and the re-issued b4 are
    // concurrent (each observed a1), then c1 saw only the original
    // lineage and the hub's copy of it.
    let reg = nodes[A].read(&k.reg);
    assert!(
        matches!(&reg, Value::List(v) if v.contains(&Value::from("b4"))),
        "{reg:?}"
    );
    // The old id's seqs stay the originals'; the new id continues.
    assert_eq!(nodes[A].r.clock().get(ReplicaId(1)), 3);
    assert_eq!(nodes[A].r.clock().get(done.new_id), 3);

    // After a restart from its store, it is the same replica under the
    // new id, and a new write uses the new id's next seq.
    let clock = nodes[A].r.clock().clone();
    nodes[A] = Node::reopened(nodes[A].store.clone().unwrap());
    assert_eq!(nodes[A].r.id(), done.new_id);
    assert_eq!(nodes[A].r.clock(), &clock);
    write(&mut nodes[A], &k, "b5", 1);
    assert!(connect(&mut nodes, A, HUB, 1));
    assert!(pump(&mut nodes, C, HUB, LinkId(2)));
    assert_converged(&mut nodes, &k);
    assert_eq!(nodes[HUB].r.clock().get(done.new_id), 4);
    assert_eq!(nodes[A].repairs_needed(), 0);
}

#[test]
fn a_restored_replica_with_fewer_offline_writes_is_still_found() {
    // The original went further than the restored copy: the hub's Hello
    // claims seqs the copy never made, and the echo finds the first
    // reused one.
    let k = keys();
    let mut nodes = vec![Node::memory(100), Node::stored(1)];
    assert!(connect(&mut nodes, A, HUB, 1));
    write(&mut nodes[A], &k, "a1", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    let backup = nodes[A].store.clone().unwrap();
    for e in ["a2", "a3", "a4", "a5"] {
        write(&mut nodes[A], &k, e, 1);
    }
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    disconnect(&mut nodes, A, HUB, 1);
    nodes[A] = Node::reopened(backup);
    write(&mut nodes[A], &k, "b2", 1);
    assert!(!connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].repairs_needed(), 1);
    let base = nodes[A]
        .store
        .as_ref()
        .unwrap()
        .snapshot
        .clone()
        .map(|s| s.1);
    let done = nodes[A].r.repair(base.as_deref()).unwrap();
    nodes[A].settle();
    assert_eq!((done.from_seq, done.reissued), (2, 1));
    assert!(connect(&mut nodes, A, HUB, 1));
    assert_converged(&mut nodes, &k);
    assert_eq!(
        nodes[HUB].read(&k.set),
        strs(&["a1", "a2", "a3", "a4", "a5", "b2"])
    );
    assert_eq!(nodes[HUB].read(&k.counter), Value::Int(6));
}

#[test]
fn a_restored_replica_that_wrote_nothing_just_takes_its_own_history_back() {
    let k = keys();
    let mut nodes = vec![Node::memory(100), Node::stored(1)];
    assert!(connect(&mut nodes, A, HUB, 1));
    write(&mut nodes[A], &k, "a1", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    let backup = nodes[A].store.clone().unwrap();
    write(&mut nodes[A], &k, "a2", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    disconnect(&mut nodes, A, HUB, 1);
    nodes[A] = Node::reopened(backup);
    assert!(connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].repairs_needed(), 0);
    assert_converged(&mut nodes, &k);
    // Its next write continues after the seqs it took back.
    assert_eq!(nodes[A].r.next_seq(), 3);
    write(&mut nodes[A], &k, "a3", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    assert_converged(&mut nodes, &k);
    assert_eq!(nodes[A].r.id(), ReplicaId(1));
}

#[test]
fn an_honest_restart_compares_only_what_was_unconfirmed_and_repairs_nothing() {
    let k = keys();
    let mut nodes = vec![Node::memory(100), Node::stored(1)];
    assert!(connect(&mut nodes, A, HUB, 1));
    for e in ["a1", "a2", "a3"] {
        write(&mut nodes[A], &k, e, 1);
    }
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    disconnect(&mut nodes, A, HUB, 1);
    // Restarted from its own (current) file, it writes offline and
    // reconnects: the hub echoes its three seqs, they match, and the
    // offline write follows.
    let store = nodes[A].store.clone().unwrap();
    nodes[A] = Node::reopened(store);
    write(&mut nodes[A], &k, "a4", 1);
    assert!(connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].repairs_needed(), 0);
    assert_converged(&mut nodes, &k);
    assert_eq!(nodes[HUB].r.clock().get(ReplicaId(1)), 4);
    assert!(nodes[A].r.stats().duplicates >= 3, "the echo was compared");
    // The hub reports with `Stored` what it holds of ours, which confirms
    // what we pushed after the comparison (a4): the next reconnect
    // compares nothing.
    nodes[HUB].r.handle_timeout(5_000);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    assert_eq!(nodes[A].r.stats().peers[0].stored, 4);
    disconnect(&mut nodes, A, HUB, 1);
    let dups = nodes[A].r.stats().duplicates;
    write(&mut nodes[A], &k, "a5", 1);
    assert!(connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].r.stats().duplicates, dups);
    assert_converged(&mut nodes, &k);
}

#[test]
fn a_peer_that_only_speaks_for_itself_cannot_trigger_a_repair() {
    // On a link with the write scope only, our own origin is foreign: the
    // copy is dropped before any comparison.
    let k = keys();
    let mut nodes = [Node::memory(100), Node::stored(1)];
    write(&mut nodes[A], &k, "a1", 1);
    let mut other = Node::memory(1);
    write(&mut other, &k, "forged", 1);
    let forged = match other.r.catch_up(&minidote_core::VectorClock::new()) {
        minidote_core::CatchUp::Txns(t) => t,
        _ => unreachable!(),
    };
    let frame = minidote_core::wire::txns_frame(forged.iter().map(|t| &t[..]));
    let l = LinkId(7);
    nodes[A].r.link_open_with(l, None, LinkPolicy::OWN, 0);
    let hello = minidote_core::Frame::Hello(minidote_core::Hello {
        replica: ReplicaId(100),
        room: "default".into(),
        clock: Default::default(),
        token: None,
    })
    .encode();
    nodes[A].r.handle_frame(l, &hello, 0).unwrap();
    nodes[A].r.handle_frame(l, &frame, 0).unwrap();
    nodes[A].settle();
    assert_eq!(nodes[A].repairs_needed(), 0);
    assert_eq!(nodes[A].r.stats().refused, 1);
    // Even a trusted memory-only replica never repairs: it cannot have
    // been restored, so such a copy is an integrity conflict.
    let mut m = Node::memory(1);
    write(&mut m, &k, "a1", 1);
    let err = m.r.handle_txns(None, forged).unwrap_err();
    assert!(matches!(err, ProtocolError::IntegrityConflict(_)), "{err}");
}

#[test]
fn a_restored_replica_whose_offline_writes_were_folded_is_found_and_says_so() {
    // The restored copy takes a snapshot every 2 records: its offline
    // writes are folded into its state before it reconnects. Their bytes
    // are kept, so the reused seqs are still found, and the repair says it
    // cannot separate them instead of merging silently.
    let k = keys();
    let store = Store {
        every: 2,
        ..Store::default()
    };
    let mut a = Node::reopened(store);
    let mut nodes = vec![Node::memory(100)];
    nodes.push(std::mem::replace(&mut a, Node::memory(0)));
    assert!(connect(&mut nodes, A, HUB, 1));
    write(&mut nodes[A], &k, "a1", 1);
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    let backup = nodes[A].store.clone().unwrap();
    for e in ["a2", "a3"] {
        write(&mut nodes[A], &k, e, 1);
    }
    assert!(pump(&mut nodes, A, HUB, LinkId(1)));
    disconnect(&mut nodes, A, HUB, 1);
    nodes[A] = Node::reopened(backup);
    for e in ["b2", "b3", "b4", "b5", "b6"] {
        write(&mut nodes[A], &k, e, 1);
    }
    assert!(
        nodes[A].r.stats().snapshots >= 2,
        "the offline writes were folded"
    );
    // Restarted too: the kept bytes survive in the store.
    let store = nodes[A].store.clone().unwrap();
    nodes[A].r = store.open(ReplicaId(1));
    assert!(!connect(&mut nodes, A, HUB, 1));
    assert_eq!(nodes[A].repairs_needed(), 1);
    let base = nodes[A]
        .store
        .as_ref()
        .unwrap()
        .snapshot
        .clone()
        .map(|s| s.1);
    let err = nodes[A].r.repair(base.as_deref()).unwrap_err();
    assert!(matches!(err, RepairError::Unrepairable(_)), "{err}");
    assert!(nodes[A].r.stats().repair_pending);
    // The hub took nothing of the restored lineage.
    assert_eq!(nodes[HUB].r.clock().get(ReplicaId(1)), 3);
    assert_eq!(nodes[HUB].read(&k.set), strs(&["a1", "a2", "a3"]));
}
