//! Deterministic simulation of a Minidote cluster.
//!
//! 3–7 persistent replicas, linked as a mesh or a chain, over a simulated
//! network that drops, duplicates, reorders and delays frames, cuts and heals
//! links, and crashes replicas (losing whatever was not yet stored, sometimes
//! leaving a torn record behind) and restarts them from their stored records.
//! Client sessions carry vector clocks from replica to replica and run random
//! multi-key transactions and reads.
//!
//! Checked throughout and at the end:
//! * every read returns exactly the state obtained by replaying the
//!   transactions its clock covers (atomic, causal delivery: state is a
//!   function of the clock), and a clock ≥ the session's (read-your-writes,
//!   monotonic reads);
//! * no replica's clock ever includes a transaction without its causal past;
//! * a transaction's sparse deps expand to exactly its origin's clock;
//! * no seq is ever reused for a different transaction once exposed;
//! * after the final heal and quiesce, all replicas have equal clocks and
//!   states, and every acknowledged update is in them.
//!
//! In about half the seeds a **hostile replica** joins through one honest
//! gateway, on a link that may speak only for itself (as a write-token peer
//! at a relay or an authenticated listener). It writes for real, and it
//! also sends forged snapshots, transactions under honest replicas' ids,
//! removes that hide their dependencies, second copies of its own dots with
//! other bytes, register timestamps beyond its past, and bloated clocks.
//! The honest replicas must still pass every check above.
//!
//! `MINIDOTE_SIM_SEEDS=N` runs N seeds (default 1000); `MINIDOTE_SIM_SEED=S`
//! replays one. A failure prints its seed.

use std::collections::{HashMap, HashSet};

use minidote_core::{
    CatchUp, Config, CrdtType, Dot, Effect, Event, Field, Frame, Hello, Key, LinkId, LinkPolicy,
    Op, ReadOutcome, Record, Replica, ReplicaId, Snapshot, Ticket, Txn, TxnHeader, Update,
    UpdateOutcome, Value, VectorClock,
};

// ---------- deterministic randomness ----------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 1.0 < p
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

// ---------- the world ----------

#[derive(Clone)]
struct Stored {
    lsn: u64,
    snapshot: bool,
    bytes: Vec<u8>,
}

struct Node {
    id: ReplicaId,
    replica: Option<Replica>,
    disk: Vec<Stored>,
    unsynced: Vec<Stored>,
    /// Current epoch of the link to each peer (None = no link).
    links: Vec<Option<u64>>,
    down_until: u64,
}

struct Msg {
    at: u64,
    from: usize,
    to: usize,
    epoch: u64,
    bytes: Vec<u8>,
}

enum Waiting {
    Update(usize, Ticket, u64),
    Read(usize, Ticket, Vec<Key>, u64),
}

struct Session {
    clock: VectorClock,
    waiting: Option<Waiting>,
}

struct TxnInfo {
    bytes: Vec<u8>,
    deps: VectorClock,
}

/// The peer index of the hostile replica in link ids.
const HOSTILE: usize = 63;

/// A hostile replica and its one link, to an honest gateway.
struct Hostile {
    replica: Replica,
    gateway: usize,
    epoch: Option<u64>,
    /// Its transactions as the room took them, in seq order.
    sent: Vec<Vec<u8>>,
    attacks: [u64; 7],
}

struct Sim {
    seed: u64,
    hostile: Option<Hostile>,
    rng: Rng,
    now: u64,
    nodes: Vec<Node>,
    edges: Vec<(usize, usize)>,
    cut: HashSet<(usize, usize)>,
    net: Vec<Msg>,
    next_epoch: u64,
    sessions: Vec<Session>,
    registry: HashMap<Dot, TxnInfo>,
    causal_past: HashMap<Dot, VectorClock>,
    /// Highest seq per origin ever seen in a transmitted frame.
    sent: VectorClock,
    /// Merge of every clock handed to a client.
    exposed: VectorClock,
    acked: Vec<Dot>,
    keys: Vec<Key>,
    config: Config,
    drop_p: f64,
    dup_p: f64,
    stats: SimStats,
}

#[derive(Default, Debug)]
struct SimStats {
    txns: u64,
    reads_checked: u64,
    crashes: u64,
    torn: u64,
    snapshots_sent: u64,
    /// Hostile steps taken, by kind: real write, lying deps, conflicting
    /// copy, foreign origin, forged snapshot, huge register time, bloated
    /// Need.
    hostile_kinds: [u64; 7],
    /// Hostile frames the gateway refused (the link was closed).
    hostile_refused: u64,
}

fn link_id(peer: usize, epoch: u64) -> LinkId {
    LinkId(epoch * 64 + peer as u64)
}

fn link_peer(l: LinkId) -> (usize, u64) {
    ((l.0 % 64) as usize, l.0 / 64)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng = Rng(seed);
        let n = 3 + rng.below(5) as usize;
        let chain = rng.chance(0.3);
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if !chain || j == i + 1 {
                    edges.push((i, j));
                }
            }
        }
        let config = Config {
            room: "sim".into(),
            persistent: true,
            snapshot_every: *rng.pick(&[3, 8, 25, 1000]),
            buffer_capacity: *rng.pick(&[2, 5, 1000]),
            buffer_bytes: *rng.pick(&[300, 1 << 20]),
            buffer_hold_ms: *rng.pick(&[0, 3_000, 300_000]),
            anti_entropy_ms: 200,
            idle_timeout_ms: 5_000,
            max_frame_bytes: *rng.pick(&[600, 1 << 20]),
            max_snapshot_bytes: 1 << 30,
            emit_changes: false,
            emit_local_updates: *rng.pick(&[false, true]),
        };
        let mut keys = Vec::new();
        for ty in CrdtType::ALL {
            for name in ["k1", "k2"] {
                keys.push(Key::new(name, ty, "b"));
            }
        }
        let nodes = (0..n)
            .map(|i| Node {
                id: ReplicaId(rng.next() | (i as u64 + 1)),
                replica: None,
                disk: Vec::new(),
                unsynced: Vec::new(),
                links: vec![None; n],
                down_until: 0,
            })
            .collect();
        let sessions = (0..1 + rng.below(4))
            .map(|_| Session {
                clock: VectorClock::new(),
                waiting: None,
            })
            .collect();
        let drop_p = *rng.pick(&[0.0, 0.05, 0.2]);
        let dup_p = *rng.pick(&[0.0, 0.05, 0.2]);
        let hostile = rng.chance(0.5).then(|| Hostile {
            replica: Replica::new(
                ReplicaId(0xbad0_0000_0000_0000 | seed),
                Config {
                    room: "sim".into(),
                    snapshot_every: 0,
                    ..Config::default()
                },
            ),
            gateway: rng.below(n as u64) as usize,
            epoch: None,
            sent: Vec::new(),
            attacks: [0; 7],
        });
        let mut sim = Sim {
            seed,
            hostile,
            rng,
            now: 1,
            nodes,
            edges,
            cut: HashSet::new(),
            net: Vec::new(),
            next_epoch: 1,
            sessions,
            registry: HashMap::new(),
            causal_past: HashMap::new(),
            sent: VectorClock::new(),
            exposed: VectorClock::new(),
            acked: Vec::new(),
            keys,
            config,
            drop_p,
            dup_p,
            stats: SimStats::default(),
        };
        for i in 0..n {
            sim.start(i);
        }
        sim
    }

    fn fail(&self, msg: &str) -> ! {
        panic!(
            "simulation seed {} failed at t={}ms: {msg}\nreplay with MINIDOTE_SIM_SEED={}",
            self.seed, self.now, self.seed
        );
    }

    // ----- node lifecycle -----

    fn start(&mut self, i: usize) {
        let node = &self.nodes[i];
        let snap_idx = node.disk.iter().rposition(|s| s.snapshot);
        let snapshot = snap_idx.map(|k| node.disk[k].bytes.clone());
        let after_snapshot = snap_idx.map_or(0, |k| k + 1);
        let records: Vec<Vec<u8>> = node.disk[after_snapshot..]
            .iter()
            .filter(|s| !s.snapshot)
            .map(|s| s.bytes.clone())
            .collect();
        let next_lsn = node.disk.last().map_or(1, |s| s.lsn + 1);
        let (replica, report) = Replica::restore(
            node.id,
            self.config.clone(),
            snapshot.as_deref(),
            records.iter().map(|r| r.as_slice()),
            next_lsn,
        )
        .unwrap_or_else(|e| self.fail(&format!("restore failed: {e}")));
        if let Some((idx, _)) = &report.corrupt {
            // Only a torn last record may be refused; drop it like a binding
            // would, keeping the intact prefix.
            if *idx != records.len() - 1 {
                self.fail(&format!(
                    "restore refused record {idx} of {}: {report:?}",
                    records.len()
                ));
            }
            self.nodes[i].disk.pop();
        }
        // Durability: every acknowledged local transaction survived.
        let own = replica.clock().get(self.nodes[i].id);
        for d in &self.acked {
            if d.replica == self.nodes[i].id && d.seq > own {
                self.fail(&format!(
                    "acknowledged {d:?} lost by restart (restored clock {own})"
                ));
            }
        }
        let clock = replica.clock().clone();
        self.nodes[i].replica = Some(replica);
        self.check_state(i, &clock);
        for j in 0..self.nodes.len() {
            self.maybe_connect(i, j);
        }
    }

    fn crash(&mut self, i: usize) {
        self.stats.crashes += 1;
        // Unsynced records: a random prefix reaches the disk (a partial
        // group commit), possibly followed by one torn record.
        let unsynced = std::mem::take(&mut self.nodes[i].unsynced);
        let keep = self.rng.below(unsynced.len() as u64 + 1) as usize;
        let mut lost = Vec::new();
        for (k, s) in unsynced.into_iter().enumerate() {
            if k < keep {
                self.nodes[i].disk.push(s);
            } else {
                if k == keep && !s.snapshot && self.rng.chance(0.5) {
                    let cut = self.rng.below(s.bytes.len() as u64) as usize;
                    let mut torn = s.clone();
                    torn.bytes.truncate(cut);
                    self.nodes[i].disk.push(torn);
                    self.stats.torn += 1;
                }
                lost.push(s);
            }
        }
        let id = self.nodes[i].id;
        // Own writes a stored snapshot already holds are stored again after
        // it only to be compared with peers' copies: losing such a copy
        // loses nothing.
        let folded = self.nodes[i]
            .disk
            .iter()
            .filter(|s| s.snapshot)
            .filter_map(|s| Snapshot::decode(&s.bytes).ok())
            .map(|snap| snap.clock.get(id))
            .max()
            .unwrap_or(0);
        let on_disk: std::collections::HashSet<u64> = self.nodes[i]
            .disk
            .iter()
            .filter(|s| !s.snapshot)
            .filter_map(|s| TxnHeader::parse(&s.bytes).ok())
            .filter(|h| h.origin == id)
            .map(|h| h.seq)
            .collect();
        for s in lost.iter().filter(|s| !s.snapshot) {
            let Ok(h) = TxnHeader::parse(&s.bytes) else {
                continue;
            };
            if h.origin == id && (h.seq <= folded || on_disk.contains(&h.seq)) {
                continue;
            }
            if h.origin == id {
                let d = Dot::new(h.origin, h.seq);
                if self.sent.get(id) >= h.seq || self.exposed.get(id) >= h.seq {
                    self.fail(&format!(
                        "{d:?} was sent or acknowledged before it was stored"
                    ));
                }
                // The seq may be reused by a different transaction now.
                self.registry.remove(&d);
                self.causal_past.remove(&d);
            }
        }
        self.nodes[i].replica = None;
        for j in 0..self.nodes.len() {
            self.disconnect(i, j);
        }
        if let Some(h) = self.hostile.as_mut().filter(|h| h.gateway == i) {
            h.epoch = None;
        }
        for s in &mut self.sessions {
            match &s.waiting {
                Some(Waiting::Update(n, ..)) | Some(Waiting::Read(n, ..)) if *n == i => {
                    s.waiting = None
                }
                _ => {}
            }
        }
        self.nodes[i].down_until = self.now + 50 + self.rng.below(2_000);
    }

    // ----- links -----

    fn edge(&self, i: usize, j: usize) -> bool {
        self.edges.contains(&(i.min(j), i.max(j)))
    }

    fn maybe_connect(&mut self, i: usize, j: usize) {
        if i == j
            || !self.edge(i, j)
            || self.cut.contains(&(i.min(j), i.max(j)))
            || self.nodes[i].replica.is_none()
            || self.nodes[j].replica.is_none()
            || self.nodes[i].links[j].is_some()
        {
            return;
        }
        let e = self.next_epoch;
        self.next_epoch += 1;
        self.nodes[i].links[j] = Some(e);
        self.nodes[j].links[i] = Some(e);
        let now = self.now;
        self.nodes[i]
            .replica
            .as_mut()
            .unwrap()
            .link_open(link_id(j, e), None, now);
        self.nodes[j]
            .replica
            .as_mut()
            .unwrap()
            .link_open(link_id(i, e), None, now);
        // Hellos travel first on a new connection (a real link is a stream).
        for (a, b) in [(i, j), (j, i)] {
            let hello = {
                let r = self.nodes[a].replica.as_mut().unwrap();
                r.poll_transmit().expect("hello queued on open")
            };
            let r = self.nodes[b].replica.as_mut().unwrap();
            if let Err(err) = r.handle_frame(link_id(a, e), &hello.frame, now) {
                self.fail(&format!("hello refused: {err}"));
            }
        }
        self.drain(i);
        self.drain(j);
    }

    fn disconnect(&mut self, i: usize, j: usize) {
        if let Some(e) = self.nodes[i].links[j].take() {
            if let Some(r) = self.nodes[i].replica.as_mut() {
                r.link_closed(link_id(j, e));
            }
        }
        if let Some(e) = self.nodes[j].links[i].take() {
            if let Some(r) = self.nodes[j].replica.as_mut() {
                r.link_closed(link_id(i, e));
            }
        }
    }

    // ----- outputs -----

    /// Drains one node's outputs: records (stored, maybe synced), frames
    /// (into the network), events (to sessions).
    fn drain(&mut self, i: usize) {
        loop {
            let mut progressed = self.drain_records_only(i);
            if !self.nodes[i].unsynced.is_empty() && self.rng.chance(0.3) {
                self.fsync(i);
                progressed = true;
            }
            while let Some(t) = self.nodes[i]
                .replica
                .as_mut()
                .and_then(Replica::poll_transmit)
            {
                progressed = true;
                self.transmit(i, t.link, t.frame);
            }
            while let Some(ev) = self.nodes[i].replica.as_mut().and_then(Replica::poll_event) {
                progressed = true;
                self.event(i, ev);
            }
            if !progressed {
                break;
            }
        }
    }

    fn fsync(&mut self, i: usize) {
        let unsynced = std::mem::take(&mut self.nodes[i].unsynced);
        let Some(top) = unsynced.last().map(|s| s.lsn) else {
            return;
        };
        let node = &mut self.nodes[i];
        node.disk.extend(unsynced);
        // Prune what the latest stored snapshot covers, as a binding does.
        if let Some(k) = node.disk.iter().rposition(|s| s.snapshot) {
            node.disk.drain(..k);
        }
        node.replica.as_mut().unwrap().persisted(top);
    }

    fn register(&mut self, bytes: &[u8]) {
        let txn = Txn::decode(bytes)
            .unwrap_or_else(|e| self.fail(&format!("own txn does not decode: {e}")));
        let d = Dot::new(txn.origin, txn.seq);
        if let Some(old) = self.registry.get(&d) {
            if old.bytes != bytes {
                self.fail(&format!("{d:?} reused for a different transaction"));
            }
            return;
        }
        self.registry.insert(
            d,
            TxnInfo {
                bytes: bytes.to_vec(),
                deps: txn.deps,
            },
        );
        self.stats.txns += 1;
    }

    fn transmit(&mut self, from: usize, link: LinkId, frame: Vec<u8>) {
        let (to, epoch) = link_peer(link);
        if to == HOSTILE {
            return; // what the gateway tells the hostile replica is not used
        }
        if self.nodes[from].links[to] != Some(epoch) {
            return;
        }
        match Frame::decode(&frame) {
            Ok(Frame::Txns(txns)) => {
                for t in txns {
                    let h = TxnHeader::parse(&t).unwrap();
                    let d = Dot::new(h.origin, h.seq);
                    match self.registry.get(&d) {
                        Some(info) if *info.bytes == *t => {}
                        Some(_) => {
                            self.fail(&format!("{d:?} sent with different bytes than registered"))
                        }
                        None => self.fail(&format!("{d:?} sent but never recorded by its origin")),
                    }
                    self.sent.raise(h.origin, h.seq);
                }
            }
            Ok(Frame::Snapshot(_)) => self.stats.snapshots_sent += 1,
            Ok(_) => {}
            Err(e) => self.fail(&format!("replica sent an undecodable frame: {e}")),
        }
        if self.rng.chance(self.drop_p) {
            return;
        }
        let copies = if self.rng.chance(self.dup_p) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + 1 + self.rng.below(40);
            self.net.push(Msg {
                at,
                from,
                to,
                epoch,
                bytes: frame.clone(),
            });
        }
    }

    fn event(&mut self, i: usize, ev: Event) {
        match ev {
            Event::Committed { ticket, clock } => {
                let id = self.nodes[i].id;
                for s in 0..self.sessions.len() {
                    if let Some(Waiting::Update(n, t, _)) = &self.sessions[s].waiting {
                        if *n == i && *t == ticket {
                            self.ack(s, id, clock.clone());
                        }
                    }
                }
            }
            Event::ReadReady {
                ticket,
                values,
                clock,
            } => {
                for s in 0..self.sessions.len() {
                    if let Some(Waiting::Read(n, t, keys, _)) = &self.sessions[s].waiting {
                        if *n == i && *t == ticket {
                            let keys = keys.clone();
                            self.read_done(s, &keys, values.clone(), clock.clone());
                        }
                    }
                }
            }
            // A batch that grew past the frame limit by the time it ran (a
            // reset names every observed token), or whose list or text
            // index is out of range by then (it waited for a session clock
            // while others deleted), is refused whole: fine.
            Event::UpdateFailed {
                ticket,
                error:
                    minidote_core::UpdateError::TooLarge { .. }
                    | minidote_core::UpdateError::IndexOutOfRange { .. },
            } => {
                for s in 0..self.sessions.len() {
                    if let Some(Waiting::Update(n, t, _)) = &self.sessions[s].waiting {
                        if *n == i && *t == ticket {
                            self.sessions[s].waiting = None;
                        }
                    }
                }
            }
            Event::UpdateFailed { ticket, error } => {
                self.fail(&format!("{ticket:?} failed: {error}"))
            }
            // No replica here is restored from an older copy of its file
            // (core/tests/restored.rs covers that), and no peer may make
            // one believe it was.
            Event::RepairNeeded { conflict } => {
                self.fail(&format!("replica {i} asked for a repair at {conflict:?}"))
            }
            Event::LinkFailed { link, .. } if link_peer(link).0 == HOSTILE => {
                if let Some(h) = self.hostile.as_mut() {
                    h.epoch = None;
                }
            }
            Event::LinkFailed { link, error } => {
                let (peer, _) = link_peer(link);
                if !matches!(error, minidote_core::ProtocolError::IdleTimeout(_)) {
                    self.fail(&format!("link failed: {error}"));
                }
                self.disconnect(i, peer);
            }
            Event::Progress(p) => {
                assert!(p.received <= p.expected, "progress past its target: {p:?}");
            }
            Event::LinkUp { .. }
            | Event::Changed(_)
            | Event::Delta { .. }
            | Event::LocalUpdate(_) => {}
        }
    }

    fn ack(&mut self, s: usize, id: ReplicaId, clock: VectorClock) {
        let session = &mut self.sessions[s];
        if !session.clock.leq(&clock) {
            self.fail("an update's clock does not include the session's clock");
        }
        let d = Dot::new(id, clock.get(id));
        session.clock = clock.clone();
        session.waiting = None;
        self.exposed.merge(&clock);
        if !self.registry.contains_key(&d) {
            self.fail(&format!("acknowledged {d:?} was never recorded"));
        }
        self.acked.push(d);
    }

    fn read_done(&mut self, s: usize, keys: &[Key], values: Vec<Value>, clock: VectorClock) {
        if !self.sessions[s].clock.leq(&clock) {
            self.fail(&format!(
                "monotonic reads violated: session {:?}, read {:?}",
                self.sessions[s].clock, clock
            ));
        }
        let expected = self.oracle_values(&clock, keys);
        if expected != values {
            self.fail(&format!(
                "read at {clock:?} returned {values:?}, replay gives {expected:?}"
            ));
        }
        self.stats.reads_checked += 1;
        self.sessions[s].clock = clock.clone();
        self.sessions[s].waiting = None;
        self.exposed.merge(&clock);
    }

    // ----- the oracle -----

    /// The full causal past of a transaction, from its sparse deps.
    fn past(&mut self, d: Dot) -> VectorClock {
        if let Some(c) = self.causal_past.get(&d) {
            return c.clone();
        }
        // Iterative to keep the stack shallow on long histories.
        let mut stack = vec![d];
        while let Some(&top) = stack.last() {
            if self.causal_past.contains_key(&top) {
                stack.pop();
                continue;
            }
            let Some(info) = self.registry.get(&top) else {
                self.fail(&format!("{top:?} is a dependency but was never recorded"));
            };
            let mut preds: Vec<Dot> = info
                .deps
                .iter()
                .filter(|(r, _)| *r != top.replica)
                .map(|(r, s)| Dot::new(r, s))
                .collect();
            if top.seq > 1 {
                preds.push(Dot::new(top.replica, top.seq - 1));
            }
            let missing: Vec<Dot> = preds
                .iter()
                .copied()
                .filter(|p| !self.causal_past.contains_key(p))
                .collect();
            if missing.is_empty() {
                let mut c = VectorClock::new();
                for p in &preds {
                    c.merge(&self.causal_past[p]);
                }
                c.raise(top.replica, top.seq);
                self.causal_past.insert(top, c);
                stack.pop();
            } else {
                stack.extend(missing);
            }
        }
        self.causal_past[&d].clone()
    }

    /// Replays every transaction the clock covers into a fresh replica.
    fn oracle(&mut self, clock: &VectorClock) -> Replica {
        let mut dots: Vec<(u64, Dot)> = Vec::new();
        for (r, s) in clock.iter() {
            for seq in 1..=s {
                let d = Dot::new(r, seq);
                let past = self.past(d);
                if !past.leq(clock) {
                    self.fail(&format!(
                        "clock {clock:?} includes {d:?} but not its past {past:?}"
                    ));
                }
                dots.push((past.iter().map(|(_, s)| s).sum(), d));
            }
        }
        // Sorting by the size of the causal past gives a linear extension of
        // the causal order.
        dots.sort();
        let mut o = Replica::new(ReplicaId(u64::MAX), Config::default());
        let txns = dots
            .iter()
            .map(|(_, d)| self.registry[d].bytes.as_slice().into())
            .collect();
        let st = o.handle_txns(None, txns).unwrap();
        assert_eq!(
            st.buffered, 0,
            "seed {}: oracle order not causal",
            self.seed
        );
        assert_eq!(o.clock(), clock, "seed {}", self.seed);
        o
    }

    fn oracle_values(&mut self, clock: &VectorClock, keys: &[Key]) -> Vec<Value> {
        let o = self.oracle(clock);
        keys.iter().map(|k| o.value(k)).collect()
    }

    /// A replica's whole state equals the replay of its clock.
    fn check_state(&mut self, i: usize, clock: &VectorClock) {
        let o = self.oracle(clock);
        let got = self.nodes[i].replica.as_ref().unwrap().state_snapshot();
        let want = o.state_snapshot();
        if got.objects != want.objects {
            self.fail(&format!(
                "node {i} state differs from the replay of its clock {clock:?}:\n got {:?}\nwant {:?}",
                got.objects, want.objects
            ));
        }
    }

    // ----- workload -----

    fn random_op(&mut self, k: &Key) -> Op {
        self.random_op_of(k.ty, 0)
    }

    /// An op on an object of type `ty`; maps nest two deep, and removes
    /// and resets are frequent so that they race with field updates.
    fn random_op_of(&mut self, ty: CrdtType, depth: usize) -> Op {
        let v = |rng: &mut Rng| -> Value {
            match rng.below(3) {
                0 => Value::Int(rng.below(4) as i64),
                1 => Value::from(["a", "b", "c"][rng.below(3) as usize]),
                _ => Value::List(vec![Value::Int(rng.below(2) as i64)]),
            }
        };
        use CrdtType::*;
        if matches!(ty, MapRr | MapGo) {
            let mut fields = vec![
                Field::new("c", CounterPn),
                Field::new("c", SetAw),
                Field::new("p", CounterPnSb),
                Field::new("l", RegisterLww),
                Field::new("f", FlagEw),
                Field::new("s", SetRw),
            ];
            if depth == 0 {
                fields.push(Field::new("m", MapRr));
                fields.push(Field::new("g", MapGo));
                fields.push(Field::new("q", List));
                fields.push(Field::new("x", Text));
            }
            let f = self.rng.pick(&fields).clone();
            if ty == MapRr {
                let roll = self.rng.below(20);
                if roll < 5 {
                    return Op::Remove(Value::List(vec![
                        f.name.to_string().into(),
                        f.ty.name().into(),
                    ]));
                }
                if roll == 5 {
                    return Op::Reset;
                }
            }
            let inner = self.random_op_of(f.ty, depth + 1);
            return Op::Update(f, Box::new(inner));
        }
        let r = &mut self.rng;
        match ty {
            CounterPn | CounterPnSb => {
                let n = r.below(5) as i64 - 1;
                if r.chance(0.5) {
                    Op::Increment(n)
                } else {
                    Op::Decrement(n)
                }
            }
            SetAw | SetRw | Set2p => match r.below(if ty == Set2p { 4 } else { 5 }) {
                0 => Op::Add(v(r)),
                1 => Op::Remove(v(r)),
                2 => Op::AddAll(vec![v(r), v(r)]),
                3 => Op::RemoveAll(vec![v(r)]),
                _ => Op::Reset,
            },
            SetGo => {
                if r.chance(0.5) {
                    Op::Add(v(r))
                } else {
                    Op::AddAll(vec![v(r), v(r)])
                }
            }
            RegisterMv => {
                if r.chance(0.8) {
                    Op::Assign(v(r))
                } else {
                    Op::Reset
                }
            }
            RegisterLww => Op::Assign(v(r)),
            FlagEw | FlagDw => match r.below(3) {
                0 => Op::Enable,
                1 => Op::Disable,
                _ => Op::Reset,
            },
            // Inside maps only inserts at the start (always in range);
            // top-level objects get raw indexes that `fit` brings into
            // range against the replica the client writes to.
            List | Text if depth > 0 => Op::Insert(pos(0), Value::from("m")),
            List => match r.below(4) {
                0 | 1 => Op::Insert(pos(r.below(1000)), v(r)),
                2 => Op::InsertAll(pos(r.below(1000)), vec![v(r), v(r)]),
                _ => Op::Delete(pos(r.below(1000)), 1 + r.below(3)),
            },
            Text => {
                let s = ["a", "bc", "é", "😀x", "hello"][r.below(5) as usize].to_owned();
                match r.below(5) {
                    0..=2 => Op::Insert(pos(r.below(1000)), Value::Str(s)),
                    3 => Op::Delete(pos(r.below(1000)), 1 + r.below(3)),
                    _ => Op::Splice(pos(r.below(1000)), r.below(3), s),
                }
            }
            _ => unreachable!("maps are handled above"),
        }
    }

    fn client_step(&mut self, s: usize) {
        if let Some(w) = &self.sessions[s].waiting {
            let (n, t, since) = match w {
                Waiting::Update(n, t, since) | Waiting::Read(n, t, _, since) => (*n, *t, *since),
            };
            if self.now > since + 3_000 {
                // The client gives up (its timeout); the request is cancelled.
                if let Some(r) = self.nodes[n].replica.as_mut() {
                    r.cancel(t);
                }
                self.sessions[s].waiting = None;
            }
            return;
        }
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].replica.is_some())
            .collect();
        if live.is_empty() {
            return;
        }
        let i = *self.rng.pick(&live);
        let clock = self.sessions[s].clock.clone();
        if self.rng.chance(0.6) {
            let n = 1 + self.rng.below(4) as usize;
            let mut updates = Vec::new();
            for _ in 0..n {
                let k = self.rng.pick(&self.keys).clone();
                let op = self.random_op(&k);
                updates.push(Update::new(k, op));
            }
            // Bring list and text indexes into range, op after op.
            {
                let r = self.nodes[i].replica.as_ref().unwrap();
                let mut lens: HashMap<Key, u64> = HashMap::new();
                for u in &mut updates {
                    if matches!(u.key.ty, CrdtType::List | CrdtType::Text) {
                        let len = *lens
                            .entry(u.key.clone())
                            .or_insert_with(|| seq_len(&r.value(&u.key)));
                        let op = std::mem::replace(&mut u.op, Op::Reset);
                        let (op, n) = fit(u.key.ty, op, len);
                        u.op = op;
                        lens.insert(u.key.clone(), n);
                    }
                }
            }
            let invalid = self.rng.chance(0.05);
            if invalid {
                updates.push(Update::new(
                    Key::new("bad", CrdtType::SetGo, "b"),
                    Op::Remove(Value::Null),
                ));
            }
            let r = self.nodes[i].replica.as_mut().unwrap();
            let before = (r.clock().clone(), r.state_snapshot());
            let immediate = clock.leq(r.clock());
            match r.update_objects(updates, Some(&clock)) {
                Err(e) if invalid || matches!(e, minidote_core::UpdateError::TooLarge { .. }) => {
                    if (r.clock().clone(), r.state_snapshot()) != before {
                        self.fail("an invalid batch changed the replica");
                    }
                }
                Err(e) => self.fail(&format!("valid batch refused: {e}")),
                Ok(_) if invalid => self.fail("invalid batch accepted"),
                Ok(UpdateOutcome::Committed(_)) => {
                    self.fail("persistent replica acknowledged before storage")
                }
                Ok(UpdateOutcome::Pending(t)) => {
                    if immediate {
                        // Its sparse deps must expand to exactly the clock
                        // the origin had when it made the transaction.
                        let mut creation = before.0.clone();
                        let id = self.nodes[i].id;
                        let seq = creation.get(id) + 1;
                        creation.raise(id, seq);
                        self.drain_records_only(i);
                        let past = self.past(Dot::new(id, seq));
                        if past != creation {
                            self.fail(&format!(
                                "deps of {id:?}:{seq} expand to {past:?}, origin had {creation:?}"
                            ));
                        }
                    }
                    self.sessions[s].waiting = Some(Waiting::Update(i, t, self.now));
                }
            }
        } else {
            let keys: Vec<Key> = (0..1 + self.rng.below(3))
                .map(|_| self.rng.pick(&self.keys).clone())
                .collect();
            let r = self.nodes[i].replica.as_mut().unwrap();
            match r.read_objects(keys.clone(), Some(&clock)) {
                ReadOutcome::Ready(values, c) => self.read_done(s, &keys, values, c),
                ReadOutcome::Pending(t) => {
                    self.sessions[s].waiting = Some(Waiting::Read(i, t, keys, self.now))
                }
            }
        }
        self.drain(i);
    }

    /// Moves freshly emitted records to the unsynced list (registering local
    /// transactions) without syncing or sending anything.
    fn drain_records_only(&mut self, i: usize) -> bool {
        let mut any = false;
        while let Some(rec) = self.nodes[i]
            .replica
            .as_mut()
            .and_then(Replica::poll_record)
        {
            any = true;
            let stored = match rec {
                Record::Txn { lsn, local, bytes } => {
                    if local {
                        self.register(&bytes);
                    }
                    Stored {
                        lsn,
                        snapshot: false,
                        bytes: bytes.to_vec(),
                    }
                }
                Record::Snapshot { lsn, bytes } => Stored {
                    lsn,
                    snapshot: true,
                    bytes,
                },
                Record::Reissue { lsn, .. } => self.fail(&format!("unexpected re-issue at {lsn}")),
            };
            self.nodes[i].unsynced.push(stored);
        }
        any
    }

    // ----- the loop -----

    fn deliver_due(&mut self) {
        self.net.sort_by_key(|m| m.at);
        let due: Vec<Msg> = {
            let k = self.net.partition_point(|m| m.at <= self.now);
            self.net.drain(..k).collect()
        };
        for m in due {
            if self.nodes[m.to].links[m.from] != Some(m.epoch) {
                continue; // the link was cut while the frame was in flight
            }
            let now = self.now;
            let r = self.nodes[m.to].replica.as_mut().unwrap();
            if let Err(e) = r.handle_frame(link_id(m.from, m.epoch), &m.bytes, now) {
                self.fail(&format!(
                    "node {} refused a frame from {}: {e}",
                    m.to, m.from
                ));
            }
            self.drain(m.to);
        }
    }

    fn tick(&mut self) {
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .replica
                .as_ref()
                .and_then(Replica::poll_timeout);
            if due.is_some_and(|t| t <= self.now) {
                let now = self.now;
                self.nodes[i].replica.as_mut().unwrap().handle_timeout(now);
                self.drain(i);
            }
            // Group commits lag behind sometimes, so crashes find records
            // that were handed out but not stored.
            let sync_now = self.drop_p == 0.0 && self.dup_p == 0.0 && self.cut.is_empty()
                || self.rng.chance(0.5);
            if self.nodes[i].replica.is_some() && !self.nodes[i].unsynced.is_empty() && sync_now {
                self.fsync(i);
                self.drain(i);
            }
        }
    }

    fn chaos_step(&mut self) {
        let n = self.nodes.len();
        if self.rng.chance(0.01) {
            let &(i, j) = self.rng.pick(&self.edges);
            if self.cut.insert((i, j)) {
                self.disconnect(i, j);
            }
        }
        if self.rng.chance(0.02) && !self.cut.is_empty() {
            let all: Vec<_> = self.cut.iter().copied().collect();
            let e = *self.rng.pick(&all);
            self.cut.remove(&e);
            self.maybe_connect(e.0, e.1);
        }
        if self.rng.chance(0.004) {
            let i = self.rng.below(n as u64) as usize;
            if self.nodes[i].replica.is_some() {
                self.crash(i);
            }
        }
        for i in 0..n {
            if self.nodes[i].replica.is_none() && self.now >= self.nodes[i].down_until {
                self.start(i);
            }
        }
    }

    fn run(&mut self, steps: usize) {
        for step in 0..steps {
            self.now += self.rng.below(15);
            self.chaos_step();
            self.deliver_due();
            let s = self.rng.below(self.sessions.len() as u64) as usize;
            if self.rng.chance(0.5) {
                self.client_step(s);
            }
            if self.hostile.is_some() && self.rng.chance(0.1) {
                self.hostile_step();
            }
            self.tick();
            if step % 25 == 0 {
                let live: Vec<usize> = (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].replica.is_some())
                    .collect();
                if !live.is_empty() {
                    let i = *self.rng.pick(&live);
                    let c = self.nodes[i].replica.as_ref().unwrap().clock().clone();
                    self.check_state(i, &c);
                }
            }
        }
        self.heal_and_quiesce();
    }

    // ----- the hostile replica -----

    /// Opens the hostile link at the gateway if it is down; false if the
    /// gateway is down.
    fn hostile_link(&mut self) -> Option<LinkId> {
        let h = self.hostile.as_ref()?;
        let g = h.gateway;
        self.nodes[g].replica.as_ref()?;
        if let Some(e) = h.epoch {
            return Some(link_id(HOSTILE, e));
        }
        let e = self.next_epoch;
        self.next_epoch += 1;
        let link = link_id(HOSTILE, e);
        let now = self.now;
        let hello = Frame::Hello(Hello {
            replica: h.replica.id(),
            room: "sim".into(),
            clock: h.replica.clock().clone(),
            token: None,
        })
        .encode();
        let r = self.nodes[g].replica.as_mut().unwrap();
        r.link_open_with(link, None, LinkPolicy::OWN, now);
        if let Err(err) = r.handle_frame(link, &hello, now) {
            self.fail(&format!("the hostile Hello was refused: {err}"));
        }
        self.hostile.as_mut().unwrap().epoch = Some(e);
        self.drain(g);
        Some(link)
    }

    /// Hands the gateway a frame from the hostile replica.
    fn hostile_send(&mut self, frame: &[u8]) -> bool {
        let Some(link) = self.hostile_link() else {
            self.fail("hostile frames need the gateway up");
        };
        let g = self.hostile.as_ref().unwrap().gateway;
        let now = self.now;
        let res = self.nodes[g]
            .replica
            .as_mut()
            .unwrap()
            .handle_frame(link, frame, now);
        if std::env::var("MINIDOTE_SIM_DEBUG").is_ok() {
            eprintln!("hostile frame {:?}: {res:?}", frame.get(1));
        }
        let ok = res.is_ok();
        if !ok {
            self.stats.hostile_refused += 1;
        }
        self.drain(g);
        ok
    }

    /// Sends the gateway the hostile replica's real transactions it lacks.
    fn hostile_resend(&mut self) {
        let Some(h) = self.hostile.as_ref() else {
            return;
        };
        if self.nodes[h.gateway].replica.is_none() {
            return;
        }
        let Some(have) = self.nodes[h.gateway]
            .replica
            .as_ref()
            .map(|r| r.clock().get(h.replica.id()))
        else {
            return;
        };
        let from = (have as usize).min(h.sent.len());
        if from == h.sent.len() {
            return;
        }
        let frame = minidote_core::wire::txns_frame(h.sent[from..].iter().map(|t| &t[..]));
        if !self.hostile_send(&frame) {
            self.fail("the hostile replica's real transactions were refused");
        }
    }

    /// Brings the hostile replica's state up to the gateway's (so its
    /// removes observe real dots), without its own transactions.
    fn hostile_sync(&mut self) {
        let h = self.hostile.as_ref().unwrap();
        let Some(r) = self.nodes[h.gateway].replica.as_ref() else {
            return;
        };
        let me = h.replica.id();
        match r.catch_up(h.replica.clock()) {
            CatchUp::Txns(t) => {
                let others: Vec<_> = t
                    .into_iter()
                    .filter(|b| TxnHeader::parse(b).map(|h| h.origin != me).unwrap_or(false))
                    .collect();
                let h = self.hostile.as_mut().unwrap();
                let _ = h.replica.handle_txns(None, others);
            }
            CatchUp::Snapshot(snap) => {
                let h = self.hostile.as_mut().unwrap();
                if snap.clock.get(me) <= h.replica.clock().get(me) {
                    h.replica.merge_snapshot(&snap);
                }
            }
            CatchUp::UpToDate | CatchUp::Deferred => {}
        }
    }

    fn hostile_step(&mut self) {
        let g = self.hostile.as_ref().unwrap().gateway;
        if self.nodes[g].replica.is_none() {
            return;
        }
        self.hostile_resend();
        self.hostile_sync();
        let attack = self.rng.below(7) as usize;
        self.hostile.as_mut().unwrap().attacks[attack] += 1;
        self.stats.hostile_kinds[attack] += 1;
        let me = self.hostile.as_ref().unwrap().replica.id();
        match attack {
            // 0, 1, 5: real writes; the second re-encoded to declare no
            // deps (a remove then hides the dots it removes); the third a
            // register write with a timestamp at or near u64::MAX, which
            // must not freeze the register for the writes that observe it.
            0 | 1 | 5 => {
                let (k, op) = if attack == 5 {
                    (
                        Key::new("k1", CrdtType::RegisterLww, "b"),
                        Op::Assign(Value::from("frozen?")),
                    )
                } else {
                    let k = self.rng.pick(&self.keys).clone();
                    let op = self.random_op(&k);
                    (k, op)
                };
                let huge = u64::MAX - self.rng.below(3);
                let h = self.hostile.as_mut().unwrap();
                let before = h.replica.clock().clone();
                if h.replica
                    .update_objects(vec![Update::new(k, op)], None)
                    .is_err()
                {
                    return;
                }
                let CatchUp::Txns(mut t) = h.replica.catch_up(&before) else {
                    return;
                };
                let Some(bytes) = t.pop() else { return };
                let mut bytes = bytes.to_vec();
                if attack != 0 {
                    let mut txn = Txn::decode(&bytes).unwrap();
                    let deps = if attack == 1 {
                        VectorClock::new()
                    } else {
                        TxnHeader::parse(&bytes).unwrap().deps
                    };
                    for (_, e) in &mut txn.effects {
                        if let Effect::RegisterLww(minidote_core::effect::RegisterLww {
                            ts, ..
                        }) = e
                        {
                            *ts = huge;
                        }
                    }
                    let refs: Vec<(&Key, &Effect)> =
                        txn.effects.iter().map(|(k, e)| (k, e)).collect();
                    bytes =
                        minidote_core::wire::encode_txn_bytes(txn.origin, txn.seq, &deps, &refs);
                }
                self.register(&bytes);
                self.hostile.as_mut().unwrap().sent.push(bytes);
                self.hostile_resend();
            }
            // 2: a second copy of its last stored dot with other bytes
            // (only once the gateway stored the first: a gateway that
            // crashed before storing forwards the copy it got first, and
            // that is the limit SECURITY.md states).
            2 => {
                let g = self.hostile.as_ref().unwrap().gateway;
                let Some(last) = self.hostile.as_ref().unwrap().sent.last().cloned() else {
                    return;
                };
                let mut txn = Txn::decode(&last).unwrap();
                let stored = self.nodes[g]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.clock().get(me) >= txn.seq)
                    && self.nodes[g].unsynced.is_empty();
                if !stored {
                    return;
                }
                txn.effects = vec![(
                    Key::new("evil", CrdtType::CounterPn, "b"),
                    Effect::CounterPn(minidote_core::effect::CounterPn::delta(666)),
                )];
                let before = self.nodes[g].replica.as_ref().unwrap().clock().clone();
                let frame = minidote_core::wire::txns_frame([&txn.encode()[..]].into_iter());
                // Refused when the gateway still logs the first copy, dropped
                // as a duplicate once a snapshot pruned it; never taken (the
                // registry check in `transmit` sees any copy it forwards).
                self.hostile_send(&frame);
                if let Some(r) = self.nodes[g].replica.as_ref() {
                    if r.clock() != &before {
                        self.fail("a second copy of a dot changed the gateway's clock");
                    }
                }
            }
            // 3: a transaction under an honest replica's id.
            3 => {
                let victim = self.nodes[self.rng.below(self.nodes.len() as u64) as usize].id;
                let txn = Txn {
                    origin: victim,
                    seq: 1 + self.rng.below(50),
                    deps: VectorClock::new(),
                    effects: vec![(
                        Key::new("evil", CrdtType::CounterPn, "b"),
                        Effect::CounterPn(minidote_core::effect::CounterPn::delta(1)),
                    )],
                };
                let g = self.hostile.as_ref().unwrap().gateway;
                let before = self.nodes[g].replica.as_ref().unwrap().clock().clone();
                let frame = minidote_core::wire::txns_frame([&txn.encode()[..]].into_iter());
                // Dropped and counted; the registry check in `transmit`
                // would catch it if it were ever forwarded.
                self.hostile_send(&frame);
                if let Some(r) = self.nodes[g].replica.as_ref() {
                    if r.clock().get(victim) != before.get(victim) {
                        self.fail("a transaction under another replica's id was delivered");
                    }
                }
            }
            // 4: a forged snapshot that claims an honest replica's future.
            4 => {
                let victim = self.nodes[self.rng.below(self.nodes.len() as u64) as usize].id;
                let snap = Snapshot {
                    clock: [(victim, u64::MAX)].into_iter().collect(),
                    objects: Vec::new(),
                };
                if self.hostile_send(&Frame::Snapshot(snap.encode()).encode()) {
                    self.fail("a forged snapshot was accepted");
                }
            }
            // 6: a bloated clock in a Need.
            _ => {
                let n = 1 + self.rng.below(3_000);
                let clock: VectorClock = (0..n)
                    .map(|i| (ReplicaId(0xb10a_0000_0000_0000 | i), 1 + i))
                    .collect();
                if !self.hostile_send(&Frame::Need(clock).encode()) {
                    self.fail("a Need with a large clock was refused");
                }
            }
        }
    }

    fn heal_and_quiesce(&mut self) {
        self.drop_p = 0.0;
        self.dup_p = 0.0;
        self.cut.clear();
        for i in 0..self.nodes.len() {
            if self.nodes[i].replica.is_none() {
                self.start(i);
            }
        }
        for &(i, j) in &self.edges.clone() {
            self.maybe_connect(i, j);
        }
        for _ in 0..20_000 {
            self.now += 10;
            self.deliver_due();
            // The hostile replica stops attacking, but what it wrote for
            // real is still resent until the room has it.
            self.hostile_resend();
            self.tick();
            for s in 0..self.sessions.len() {
                if self.sessions[s].waiting.is_some() {
                    self.client_step(s);
                }
            }
            let first = self.nodes[0].replica.as_ref().unwrap().clock().clone();
            let all_equal = self
                .nodes
                .iter()
                .all(|n| n.replica.as_ref().unwrap().clock() == &first);
            // Pings and anti-entropy requests never stop; data frames must.
            let data_in_flight = self
                .net
                .iter()
                .any(|m| matches!(m.bytes.get(1), Some(1) | Some(3)));
            if all_equal && !data_in_flight && self.nodes.iter().all(|n| n.unsynced.is_empty()) {
                return self.final_checks(first);
            }
        }
        let clocks: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.replica.as_ref().unwrap().clock().clone())
            .collect();
        self.fail(&format!("did not converge after healing: {clocks:?}"));
    }

    fn final_checks(&mut self, clock: VectorClock) {
        let snaps: Vec<_> = self
            .nodes
            .iter()
            .map(|n| n.replica.as_ref().unwrap().state_snapshot())
            .collect();
        for (i, s) in snaps.iter().enumerate() {
            if s != &snaps[0] {
                self.fail(&format!(
                    "node {i} state differs from node 0 after quiescence"
                ));
            }
        }
        for d in self.acked.clone() {
            if !clock.contains(&d) {
                self.fail(&format!("acknowledged {d:?} missing after quiescence"));
            }
        }
        self.check_state(0, &clock);
        for n in &self.nodes {
            let st = n.replica.as_ref().unwrap().stats();
            assert_eq!(st.buffered, 0, "seed {}: buffer not drained", self.seed);
        }
    }
}

fn pos(at: u64) -> minidote_core::Pos {
    minidote_core::Pos { at, utf16: false }
}

/// The length of a list or text value (code points).
fn seq_len(v: &Value) -> u64 {
    match v {
        Value::Str(s) => s.chars().count() as u64,
        Value::List(l) => l.len() as u64,
        _ => 0,
    }
}

/// Brings a list or text op's raw index into range for an object of
/// length `len` (a delete of an empty object becomes an insert); returns
/// the length after it.
fn fit(ty: CrdtType, op: Op, len: u64) -> (Op, u64) {
    let at = |p: minidote_core::Pos, n: u64| pos(p.at % n.max(1));
    match op {
        Op::Insert(p, v) => {
            let n = match &v {
                Value::Str(s) => s.chars().count() as u64,
                _ => 1,
            };
            (Op::Insert(at(p, len + 1), v), len + n)
        }
        Op::InsertAll(p, l) => {
            let n = l.len() as u64;
            (Op::InsertAll(at(p, len + 1), l), len + n)
        }
        Op::Delete(..) | Op::Splice(..) if len == 0 => {
            let v = if ty == CrdtType::Text {
                Value::from("z")
            } else {
                Value::Null
            };
            (Op::Insert(pos(0), v), 1)
        }
        Op::Delete(p, n) => {
            let a = at(p, len);
            let n = n.min(len - a.at);
            (Op::Delete(a, n), len - n)
        }
        Op::Splice(p, n, s) => {
            let a = at(p, len);
            let n = n.min(len - a.at);
            let k = s.chars().count() as u64;
            (Op::Splice(a, n, s), len - n + k)
        }
        op => (op, len),
    }
}

fn run_seed(seed: u64) -> SimStats {
    let mut sim = Sim::new(seed);
    let steps = 300 + (seed % 200) as usize;
    sim.run(steps);
    sim.stats
}

#[test]
fn simulated_clusters_converge_without_losing_or_reordering_anything() {
    if let Ok(seed) = std::env::var("MINIDOTE_SIM_SEED") {
        let seed: u64 = seed.parse().expect("MINIDOTE_SIM_SEED must be an integer");
        let st = run_seed(seed);
        eprintln!("seed {seed}: {st:?}");
        return;
    }
    let seeds: u64 = std::env::var("MINIDOTE_SIM_SEEDS")
        .ok()
        .map(|s| s.parse().expect("MINIDOTE_SIM_SEEDS must be an integer"))
        .unwrap_or(1000);
    let mut total = SimStats::default();
    for seed in 0..seeds {
        let st = run_seed(seed);
        total.txns += st.txns;
        total.reads_checked += st.reads_checked;
        total.crashes += st.crashes;
        total.torn += st.torn;
        total.snapshots_sent += st.snapshots_sent;
        for (t, n) in total.hostile_kinds.iter_mut().zip(st.hostile_kinds) {
            *t += n;
        }
        total.hostile_refused += st.hostile_refused;
    }
    eprintln!("{seeds} seeds: {total:?}");
    assert!(total.txns > seeds, "the workload must actually write");
    assert!(total.reads_checked > seeds / 2, "reads must be checked");
    if seeds >= 100 {
        assert!(total.crashes > 0 && total.torn > 0, "crash paths must run");
        assert!(total.snapshots_sent > 0, "snapshot catch-up must run");
        assert!(
            total.hostile_kinds.iter().all(|n| *n > 0) && total.hostile_refused > 0,
            "every hostile attack must run"
        );
    }
}
