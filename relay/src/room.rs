//! A room: its log, its clock and its peers. No IO and no awaiting: the
//! connection tasks call in under the room's lock, and what must be sent
//! goes to the peers' bounded outboxes.
//!
//! The relay knows transactions only by their header `(origin, seq, deps)`.
//! It holds:
//! * `bases`: snapshot frames that peers sent because the relay lacked
//!   transactions they had pruned. The relay cannot merge states, so it
//!   keeps every base that no other base dominates.
//! * `log`: transactions in an order that respects causality (each was
//!   delivered only once its dependencies were in the room).
//! * `clock`: the join of the bases' clocks and the logged transactions.
//!
//! A peer with clock `K` is served every base whose clock `K` does not
//! cover, then every logged transaction `K` lacks, in log order. A
//! transaction that a base covers is pruned from the log: a peer that lacks
//! it also lacks part of that base, so it gets the base.

use std::sync::Arc;

use bytes::Bytes;
use minidote_core::wire::{error_code, TxnHeader};
use minidote_core::{Causal, CausalBuffer, ReplicaId, VectorClock};

use crate::metrics::Metrics;
use crate::outbox::{Out, Outbox};
use crate::store::{LoadedRoom, StoreOp};

/// A transaction held until its dependencies arrive.
#[derive(Debug)]
pub struct Held {
    /// Its header.
    pub header: TxnHeader,
    /// The whole encoded transaction.
    pub bytes: Bytes,
}

impl Causal for Held {
    fn origin(&self) -> ReplicaId {
        self.header.origin
    }
    fn seq(&self) -> u64 {
        self.header.seq
    }
    fn deps(&self) -> &VectorClock {
        &self.header.deps
    }
}

#[derive(Debug)]
struct Entry {
    idx: u64,
    origin: ReplicaId,
    seq: u64,
    bytes: Bytes,
}

#[derive(Debug)]
struct Base {
    idx: u64,
    clock: VectorClock,
    frame: Bytes,
}

#[derive(Debug)]
struct Peer {
    conn: u64,
    /// What the peer has, as far as the relay knows: its last `Hello` or
    /// `Need`, plus everything sent to it or received from it since.
    known: VectorClock,
    /// Caught up, so new transactions are forwarded to it as they come.
    live: bool,
    outbox: Outbox,
}

/// What a peer that is catching up must be sent next.
#[derive(Debug, Default)]
pub struct CatchUp {
    /// Snapshot frames, in order.
    pub bases: Vec<Bytes>,
    /// Encoded transactions, in an order that respects causality.
    pub txns: Vec<Bytes>,
}

/// What became of a batch of transactions from one peer.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// New to the room (delivered now or held).
    pub new: usize,
    /// Some are held for missing dependencies: the sender should be asked
    /// for what the room lacks.
    pub gap: bool,
}

/// One replication group.
#[derive(Debug)]
pub struct Room {
    name: Arc<str>,
    clock: VectorClock,
    bases: Vec<Base>,
    log: Vec<Entry>,
    buffer: CausalBuffer<Held>,
    peers: Vec<Peer>,
    next_idx: u64,
    compacting: bool,
}

/// The part of a room's log to fold into one base (see [`crate::compact`]).
#[derive(Debug)]
pub struct CompactionInput {
    /// The room's name.
    pub room: Arc<str>,
    /// Every base, as `Snapshot` frames.
    pub bases: Vec<Bytes>,
    /// The oldest logged transactions, in log order.
    pub txns: Vec<Bytes>,
}

impl Room {
    /// An empty room.
    pub fn new(name: &str, buffer_capacity: usize) -> Self {
        Self {
            name: name.into(),
            clock: VectorClock::new(),
            bases: Vec::new(),
            log: Vec::new(),
            buffer: CausalBuffer::new(buffer_capacity),
            peers: Vec::new(),
            next_idx: 1,
            compacting: false,
        }
    }

    /// A room rebuilt from the store. Rows that do not parse are skipped
    /// and counted (they can only come from a damaged file).
    pub fn restore(loaded: LoadedRoom, buffer_capacity: usize) -> (Self, usize) {
        let mut room = Self::new(&loaded.name, buffer_capacity);
        let mut skipped = 0;
        for (idx, frame) in loaded.bases {
            room.next_idx = room.next_idx.max(idx + 1);
            match frame
                .get(2..)
                .ok_or(())
                .and_then(|b| minidote_core::wire::snapshot_clock(b).map_err(|_| ()))
            {
                Ok(clock) => {
                    room.clock.merge(&clock);
                    room.bases.push(Base { idx, clock, frame });
                }
                Err(()) => skipped += 1,
            }
        }
        for (idx, bytes) in loaded.txns {
            room.next_idx = room.next_idx.max(idx + 1);
            match TxnHeader::parse(&bytes) {
                Ok(h) => {
                    room.clock.raise(h.origin, h.seq);
                    room.log.push(Entry {
                        idx,
                        origin: h.origin,
                        seq: h.seq,
                        bytes,
                    });
                }
                Err(_) => skipped += 1,
            }
        }
        (room, skipped)
    }

    /// The room's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Everything the room holds.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// Logged transactions (not counting bases).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Stored bases.
    pub fn bases_len(&self) -> usize {
        self.bases.len()
    }

    /// Peers connected now.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Adds a peer that announced `clock`. It is not live until a
    /// [`Room::catch_up`] finds nothing more to send it.
    pub fn join(&mut self, conn: u64, clock: VectorClock, outbox: Outbox) {
        self.peers.push(Peer {
            conn,
            known: clock,
            live: false,
            outbox,
        });
    }

    /// Removes a peer.
    pub fn leave(&mut self, conn: u64) {
        self.peers.retain(|p| p.conn != conn);
    }

    fn peer(&mut self, conn: u64) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.conn == conn)
    }

    /// A peer's `Need`: it has `clock` (which may lack what is in flight
    /// to it; that is sent again, and dropped there as duplicate). It is
    /// taken off live forwarding until a catch-up finds it current. Returns
    /// whether the peer has something the room lacks.
    pub fn need(&mut self, conn: u64, clock: VectorClock) -> bool {
        let ahead = !clock.leq(&self.clock);
        if let Some(p) = self.peer(conn) {
            p.known = clock;
            p.live = false;
        }
        ahead
    }

    /// The next step of a peer's catch-up: what it lacks, or `None` once it
    /// lacks nothing, at which point it is live. The caller sends the result
    /// (waiting for room in the outbox, outside the lock) and calls again,
    /// so transactions that arrived meanwhile are not missed.
    pub fn catch_up(&mut self, conn: u64) -> Option<CatchUp> {
        let clock = self.clock.clone();
        let i = self.peers.iter().position(|p| p.conn == conn)?;
        if clock.leq(&self.peers[i].known) {
            self.peers[i].live = true;
            return None;
        }
        let mut k = self.peers[i].known.clone();
        let mut out = CatchUp::default();
        for b in &self.bases {
            if !b.clock.leq(&k) {
                out.bases.push(b.frame.clone());
            }
        }
        for b in &self.bases {
            k.merge(&b.clock);
        }
        out.txns.extend(
            self.log
                .iter()
                .filter(|e| e.seq > k.get(e.origin))
                .map(|e| e.bytes.clone()),
        );
        self.peers[i].known.merge(&clock);
        Some(out)
    }

    /// Transactions from peer `conn`: duplicates are dropped, the rest
    /// delivered in causal order (held until their dependencies arrive),
    /// logged, stored and forwarded to every live peer that lacks them.
    pub fn receive(
        &mut self,
        conn: u64,
        txns: Vec<Held>,
        store: &mut dyn FnMut(StoreOp),
        metrics: &Metrics,
    ) -> Received {
        let mut got = Received::default();
        if let Some(p) = self.peer(conn) {
            for t in &txns {
                p.known.raise(t.header.origin, t.header.seq);
            }
        }
        Metrics::add(&metrics.txns_received_total, txns.len() as u64);
        let mut any_held = false;
        for t in txns {
            let (origin, seq) = (t.header.origin, t.header.seq);
            if seq <= self.clock.get(origin) {
                Metrics::add(&metrics.txns_duplicate_total, 1);
                continue;
            }
            got.new += 1;
            if self.deliverable(&t.header) {
                self.deliver(t, store, metrics);
                any_held |= self.drain_buffer(store, metrics);
            } else {
                Metrics::add(&metrics.txns_buffered_total, 1);
                self.buffer.offer(t);
                any_held = true;
            }
        }
        got.gap = any_held && !self.buffer.is_empty();
        got
    }

    fn deliverable(&self, h: &TxnHeader) -> bool {
        self.clock.get(h.origin) == h.seq - 1
            && h.deps
                .iter()
                .all(|(r, s)| r == h.origin || self.clock.get(r) >= s)
    }

    /// Delivers whatever the buffer can now release; returns whether it
    /// released anything.
    fn drain_buffer(&mut self, store: &mut dyn FnMut(StoreOp), metrics: &Metrics) -> bool {
        let mut any = false;
        while let Some(t) = self.buffer.pop_ready(&self.clock) {
            if t.header.seq <= self.clock.get(t.header.origin) {
                continue;
            }
            self.deliver(t, store, metrics);
            any = true;
        }
        any
    }

    fn deliver(&mut self, t: Held, store: &mut dyn FnMut(StoreOp), metrics: &Metrics) {
        let Held { header, bytes } = t;
        let idx = self.next_idx;
        self.next_idx += 1;
        self.clock.raise(header.origin, header.seq);
        store(StoreOp::Txn {
            room: self.name.clone(),
            idx,
            bytes: bytes.clone(),
        });
        Metrics::add(&metrics.txns_stored_total, 1);
        let mut kicked = false;
        let mut delivered = 0;
        for p in &mut self.peers {
            if !p.live || p.known.get(header.origin) >= header.seq {
                continue;
            }
            p.known.raise(header.origin, header.seq);
            if p.outbox.try_push(Out::Txn(bytes.clone())) {
                delivered += 1;
            } else {
                slow(p, metrics);
                kicked = true;
            }
        }
        Metrics::add(&metrics.txns_delivered_total, delivered);
        if kicked {
            self.peers.retain(|p| !p.outbox.is_closed());
        }
        self.log.push(Entry {
            idx,
            origin: header.origin,
            seq: header.seq,
            bytes,
        });
    }

    /// A snapshot frame (`frame`, whose state has `clock`) from a peer that
    /// saw the room lacks transactions it pruned. Unless the room already
    /// covers `clock`, it becomes a base: bases and transactions it covers
    /// are pruned, held transactions may now be delivered, and live peers
    /// that lack part of it are sent it. Returns whether it was kept.
    pub fn receive_snapshot(
        &mut self,
        conn: u64,
        frame: Bytes,
        clock: VectorClock,
        store: &mut dyn FnMut(StoreOp),
        metrics: &Metrics,
    ) -> bool {
        if let Some(p) = self.peer(conn) {
            p.known.merge(&clock);
        }
        if clock.leq(&self.clock) {
            return false;
        }
        self.install_base(frame.clone(), clock.clone(), store);
        Metrics::add(&metrics.snapshots_stored_total, 1);
        self.clock.merge(&clock);
        self.buffer.drop_covered(&self.clock);
        let mut kicked = false;
        for p in &mut self.peers {
            if !p.live || clock.leq(&p.known) {
                continue;
            }
            p.known.merge(&clock);
            if p.outbox.try_push(Out::Frame(frame.clone())) {
                Metrics::add(&metrics.snapshots_sent_total, 1);
            } else {
                slow(p, metrics);
                kicked = true;
            }
        }
        if kicked {
            self.peers.retain(|p| !p.outbox.is_closed());
        }
        self.drain_buffer(store, metrics);
        true
    }

    /// Makes `frame` (a state with `clock`) a base: bases it dominates and
    /// logged transactions it covers are pruned, in memory and in the store.
    fn install_base(&mut self, frame: Bytes, clock: VectorClock, store: &mut dyn FnMut(StoreOp)) {
        let idx = self.next_idx;
        self.next_idx += 1;
        store(StoreOp::Base {
            room: self.name.clone(),
            idx,
            frame: frame.clone(),
        });
        let mut pruned_bases = Vec::new();
        self.bases.retain(|b| {
            let keep = !b.clock.leq(&clock);
            if !keep {
                pruned_bases.push(b.idx);
            }
            keep
        });
        let mut pruned_txns = Vec::new();
        self.log.retain(|e| {
            let keep = e.seq > clock.get(e.origin);
            if !keep {
                pruned_txns.push(e.idx);
            }
            keep
        });
        if !pruned_bases.is_empty() || !pruned_txns.is_empty() {
            store(StoreOp::Prune {
                room: self.name.clone(),
                txns: pruned_txns,
                bases: pruned_bases,
            });
        }
        self.bases.push(Base { idx, clock, frame });
    }

    /// When the log holds more than `after` transactions (and no compaction
    /// is running), the oldest ones, all but the newest `after / 2`, with
    /// every base, to fold into one base. `after == 0` never compacts.
    pub fn compaction_input(&mut self, after: usize) -> Option<CompactionInput> {
        if self.compacting || after == 0 || self.log.len() <= after {
            return None;
        }
        let cut = self.log.len() - after / 2;
        self.compacting = true;
        Some(CompactionInput {
            room: self.name.clone(),
            bases: self.bases.iter().map(|b| b.frame.clone()).collect(),
            txns: self.log[..cut].iter().map(|e| e.bytes.clone()).collect(),
        })
    }

    /// Installs a folded base (or gives up on a failed compaction). Peers
    /// that lack anything it covers are served it instead of the pruned
    /// transactions; peers that have it all are served only the tail.
    pub fn finish_compaction(
        &mut self,
        folded: Option<(Bytes, VectorClock)>,
        store: &mut dyn FnMut(StoreOp),
    ) {
        self.compacting = false;
        if let Some((frame, clock)) = folded {
            self.install_base(frame, clock, store);
        }
    }
}

fn slow(p: &mut Peer, metrics: &Metrics) {
    Metrics::add(&metrics.slow_consumers_total, 1);
    p.outbox.close(
        error_code::SLOW_CONSUMER,
        "slow consumer: the outgoing queue is full; reconnect to catch up".into(),
    );
}
