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
//!
//! **Durable before forwarded.** With a durable store, a delivered
//! transaction is only forwarded, served or announced once the store's
//! group commit that holds it has returned ([`Room::committed`]): whatever
//! a peer received from the relay survives a crash of the relay. The room's
//! `durable` clock is what its `Hello` announces, and each writer is sent a
//! `Stored` frame with its own entry after each commit.
//!
//! **Integrity.** A transaction `(origin, seq)` that arrives again with
//! other bytes than the logged (or held) copy is refused, counted, and the
//! link that sent it closed: the first copy is kept.

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
    /// Its header, with the deps the effects imply (see
    /// [`minidote_core::Txn::deps`]).
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
    fn size(&self) -> usize {
        self.bytes.len()
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
    /// The replica id of its `Hello`.
    replica: ReplicaId,
    /// During a chunked catch-up: the log position (idx) served up to, the
    /// clock the pass filters by, and the base epoch it started in.
    pass: Option<(u64, VectorClock, u64)>,
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
    /// Encoded transactions, in an order that respects causality. They
    /// share the log's bytes: a catch-up copies nothing.
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
    /// A transaction arrived again with other bytes: the batch stopped
    /// there, and the link must be closed.
    pub conflict: Option<(ReplicaId, u64)>,
    /// Held transactions dropped because the room's buffer was full.
    pub dropped: usize,
}

/// One replication group.
#[derive(Debug)]
pub struct Room {
    name: Arc<str>,
    clock: VectorClock,
    /// What the store has committed (everything, without a durable store).
    durable: VectorClock,
    /// Log positions up to this one are committed.
    durable_idx: u64,
    /// Whether a store commits behind the room; without one, delivery is
    /// durability.
    stored: bool,
    /// Installs of bases so far: a catch-up pass that saw one start over.
    base_epoch: u64,
    bases: Vec<Base>,
    log: Vec<Entry>,
    /// Per origin, its logged transactions in seq order (sharing the
    /// log's bytes), to compare a second copy of a dot with the first.
    by_origin: std::collections::HashMap<ReplicaId, std::collections::VecDeque<(u64, Bytes)>>,
    buffer: CausalBuffer<Held>,
    peers: Vec<Peer>,
    next_idx: u64,
    compacting: bool,
    /// After a failed compaction, the log length at which to try again.
    compact_retry_at: usize,
    /// Dropped from the relay's rooms: a peer that still finds this object
    /// must look the room up again.
    evicted: bool,
    /// After a failed fold of incomparable bases, the base count at which
    /// to try again.
    merge_retry_bases: usize,
    /// Held transactions older than this (ms) are dropped; 0: never.
    hold_ms: u64,
    /// When the held transactions are next checked for age (ms since
    /// `born`).
    next_expiry_ms: u64,
    born: std::time::Instant,
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

/// Bytes of transactions one catch-up step hands out.
const CATCH_UP_STEP: usize = 4 << 20;

impl Room {
    /// An empty room. `stored`: a durable store commits behind it.
    pub fn new(name: &str, buffer_capacity: usize, buffer_bytes: usize, stored: bool) -> Self {
        Self {
            name: name.into(),
            clock: VectorClock::new(),
            durable: VectorClock::new(),
            durable_idx: 0,
            stored,
            base_epoch: 0,
            bases: Vec::new(),
            log: Vec::new(),
            by_origin: Default::default(),
            buffer: CausalBuffer::with_limits(buffer_capacity, buffer_bytes),
            peers: Vec::new(),
            next_idx: 1,
            compacting: false,
            compact_retry_at: 0,
            evicted: false,
            merge_retry_bases: 0,
            hold_ms: 0,
            next_expiry_ms: 0,
            born: std::time::Instant::now(),
        }
    }

    /// Held transactions waiting longer than `hold` for their dependencies
    /// are dropped (checked at most once a second, as batches arrive); their
    /// senders push them again when asked.
    pub fn set_buffer_hold(&mut self, hold: Option<std::time::Duration>) {
        self.hold_ms = hold.map_or(0, |d| d.as_millis().max(1) as u64);
    }

    /// True once the room was dropped from memory ([`Room::evict`]).
    pub fn is_evicted(&self) -> bool {
        self.evicted
    }

    /// Whether the room can leave memory without losing anything: no
    /// peers, no compaction running, and every change committed.
    pub fn evictable(&self) -> bool {
        self.peers.is_empty()
            && !self.compacting
            && self.stored
            && self.durable_idx + 1 >= self.next_idx
    }

    /// Checks a base's clock against the transactions the room holds: for
    /// each logged transaction the base claims, it must also claim that
    /// transaction's dependencies (declared, and every dot its effects
    /// observe). An honest state is causally closed; a clock that claims a
    /// writer's seqs without what they depended on is a forgery or a bug,
    /// and pruning by it would cut writes out of their causal past.
    pub fn check_base(&self, clock: &VectorClock) -> Result<(), String> {
        for e in &self.log {
            if e.seq > clock.get(e.origin) {
                continue;
            }
            let txn = minidote_core::Txn::decode(&e.bytes)
                .map_err(|err| format!("logged transaction does not decode: {err}"))?;
            let missing = txn
                .deps
                .iter()
                .find(|(r, s)| *r != e.origin && clock.get(*r) < *s);
            if let Some((r, s)) = missing {
                return Err(format!(
                    "the base claims transaction ({}, {}) but not its dependency ({r}, {s})",
                    e.origin, e.seq
                ));
            }
        }
        Ok(())
    }

    /// Marks the room dropped from memory.
    pub fn evict(&mut self) {
        self.evicted = true;
    }

    /// A room rebuilt from the store. Rows that do not parse are skipped
    /// and counted (they can only come from a damaged file).
    pub fn restore(
        loaded: LoadedRoom,
        buffer_capacity: usize,
        buffer_bytes: usize,
    ) -> (Self, usize) {
        let mut room = Self::new(&loaded.name, buffer_capacity, buffer_bytes, true);
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
                    room.log_push(idx, h.origin, h.seq, bytes);
                }
                Err(_) => skipped += 1,
            }
        }
        room.durable = room.clock.clone();
        room.durable_idx = room.next_idx - 1;
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

    /// What the room holds durably: what its `Hello` announces.
    pub fn durable(&self) -> &VectorClock {
        &self.durable
    }

    /// Bytes held in the causal buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.bytes()
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
    pub fn join(&mut self, conn: u64, replica: ReplicaId, clock: VectorClock, outbox: Outbox) {
        let known = self.known_part(&clock);
        self.peers.push(Peer {
            conn,
            replica,
            pass: None,
            known,
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
        let known = self.known_part(&clock);
        if let Some(p) = self.peer(conn) {
            p.known = known;
            p.live = false;
            p.pass = None;
        }
        ahead
    }

    /// The entries of a peer's clock for origins the room has: all that
    /// matters for serving it, and no more memory than the room's own
    /// clock, however large the clock the peer announced.
    fn known_part(&self, clock: &VectorClock) -> VectorClock {
        if clock.iter().all(|(r, _)| self.clock.get(r) > 0) {
            return clock.clone();
        }
        clock
            .iter()
            .filter(|(r, _)| self.clock.get(*r) > 0)
            .collect()
    }

    /// Appends a transaction to the log and its origin's index.
    fn log_push(&mut self, idx: u64, origin: ReplicaId, seq: u64, bytes: Bytes) {
        self.by_origin
            .entry(origin)
            .or_default()
            .push_back((seq, bytes.clone()));
        self.log.push(Entry {
            idx,
            origin,
            seq,
            bytes,
        });
    }

    /// The logged copy of `(origin, seq)`, if the log still holds it.
    fn logged(&self, origin: ReplicaId, seq: u64) -> Option<&Bytes> {
        let q = self.by_origin.get(&origin)?;
        let first = q.front()?.0;
        let (s, b) = q.get(usize::try_from(seq.checked_sub(first)?).ok()?)?;
        (*s == seq).then_some(b)
    }

    /// The next step of a peer's catch-up: what it lacks, or `None` once it
    /// lacks nothing, at which point it is live. The caller sends the result
    /// (waiting for room in the outbox, outside the lock) and calls again,
    /// so transactions that arrived meanwhile are not missed. Each step
    /// hands out at most a few MiB of transactions, sharing the log's
    /// bytes, and only what the store has committed.
    pub fn catch_up(&mut self, conn: u64) -> Option<CatchUp> {
        let i = self.peers.iter().position(|p| p.conn == conn)?;
        let p = &mut self.peers[i];
        let mut out = CatchUp::default();
        // A base installed since the pass began may have pruned entries the
        // peer still lacks: start over, so that base goes first.
        let pass = p.pass.take().filter(|(_, _, e)| *e == self.base_epoch);
        let (from, k, epoch) = match pass {
            Some(pass) => pass,
            None => {
                if self.durable.leq(&p.known) {
                    p.live = true;
                    return None;
                }
                let mut k = p.known.clone();
                // Bases are served at once: a compaction base folds only
                // committed transactions, and a snapshot-scope peer's base
                // is taken on its authority (SECURITY.md).
                for b in &self.bases {
                    if !b.clock.leq(&p.known) {
                        out.bases.push(b.frame.clone());
                    }
                    k.merge(&b.clock);
                }
                p.known.merge(&k);
                (0, k, self.base_epoch)
            }
        };
        let start = self.log.partition_point(|e| e.idx <= from);
        let mut bytes = 0;
        let mut last = from;
        let mut done = true;
        for e in &self.log[start..] {
            if e.idx > self.durable_idx {
                break;
            }
            if bytes >= CATCH_UP_STEP {
                done = false;
                break;
            }
            last = e.idx;
            if e.seq > k.get(e.origin) {
                bytes += e.bytes.len();
                p.known.raise(e.origin, e.seq);
                out.txns.push(e.bytes.clone());
            }
        }
        if !done {
            p.pass = Some((last, k, epoch));
        } else if epoch == self.base_epoch {
            // A base installed during the pass may have pruned entries the
            // peer lacks; then the next pass sends that base.
            p.known.merge(&self.durable);
        }
        if out.bases.is_empty() && out.txns.is_empty() && done && self.durable.leq(&p.known) {
            p.live = true;
            return None;
        }
        Some(out)
    }

    /// Transactions from peer `conn`: duplicates are dropped (a second
    /// copy with other bytes stops the batch as a conflict), the rest
    /// delivered in causal order (held until their dependencies arrive),
    /// logged and stored; they are forwarded to every live peer that lacks
    /// them once stored ([`Room::committed`]).
    pub fn receive(
        &mut self,
        conn: u64,
        txns: Vec<Held>,
        store: &mut dyn FnMut(StoreOp),
        metrics: &Metrics,
    ) -> Received {
        let mut got = Received::default();
        Metrics::add(&metrics.txns_received_total, txns.len() as u64);
        let now = self.born.elapsed().as_millis() as u64;
        self.buffer.set_now(now);
        if self.hold_ms > 0 && now >= self.next_expiry_ms && !self.buffer.is_empty() {
            self.next_expiry_ms = now + 1000;
            let n = self.buffer.expire(now.saturating_sub(self.hold_ms));
            Metrics::add(&metrics.buffer_expired_total, n as u64);
        }
        let mut any_held = false;
        for t in txns {
            let (origin, seq) = (t.header.origin, t.header.seq);
            if seq <= self.clock.get(origin) {
                if self.logged(origin, seq).is_some_and(|b| *b != t.bytes) {
                    got.conflict = Some((origin, seq));
                    break;
                }
                self.sender_has(conn, origin, seq);
                Metrics::add(&metrics.txns_duplicate_total, 1);
                continue;
            }
            if self
                .buffer
                .get(origin, seq)
                .is_some_and(|h| h.bytes != t.bytes)
            {
                got.conflict = Some((origin, seq));
                break;
            }
            // Before delivery, so it is never echoed back to its sender (but
            // only for origins the room knows: a peer's view must not grow
            // with origins that never deliver).
            if self.clock.get(origin) > 0 || seq == 1 {
                self.sender_has(conn, origin, seq);
            }
            got.new += 1;
            if self.deliverable(&t.header) {
                self.deliver(t, store, metrics);
                any_held |= self.drain_buffer(store, metrics);
            } else {
                Metrics::add(&metrics.txns_buffered_total, 1);
                match self.buffer.offer(t) {
                    minidote_core::Offer::Held { evicted: false } => {}
                    minidote_core::Offer::Held { evicted: true }
                    | minidote_core::Offer::Dropped => got.dropped += 1,
                    minidote_core::Offer::Duplicate => {}
                }
                any_held = true;
            }
        }
        if got.dropped > 0 {
            Metrics::add(&metrics.buffer_dropped_total, got.dropped as u64);
        }
        if got.conflict.is_some() {
            Metrics::add(&metrics.integrity_conflicts_total, 1);
        }
        self.commit_in_memory(metrics);
        got.gap = any_held && !self.buffer.is_empty();
        got
    }

    fn sender_has(&mut self, conn: u64, origin: ReplicaId, seq: u64) {
        if let Some(p) = self.peer(conn) {
            p.known.raise(origin, seq);
        }
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
        let Held { header, bytes, .. } = t;
        let idx = self.next_idx;
        self.next_idx += 1;
        self.clock.raise(header.origin, header.seq);
        store(StoreOp::Txn {
            room: self.name.clone(),
            idx,
            bytes: bytes.clone(),
        });
        Metrics::add(&metrics.txns_stored_total, 1);
        self.log_push(idx, header.origin, header.seq, bytes);
    }

    /// Without a durable store, delivery is commitment: forwards and
    /// reports what was delivered since the last call, once per batch.
    fn commit_in_memory(&mut self, metrics: &Metrics) {
        if !self.stored && self.next_idx > 0 {
            self.committed(self.next_idx - 1, metrics);
        }
    }

    /// The store has committed every change up to position `idx`: the
    /// transactions delivered since the last commit are forwarded to every
    /// live peer that lacks them, and each peer whose own transactions were
    /// among them is sent a `Stored` frame with its entry of the durable
    /// clock.
    pub fn committed(&mut self, idx: u64, metrics: &Metrics) {
        if idx <= self.durable_idx {
            return;
        }
        let start = self.log.partition_point(|e| e.idx <= self.durable_idx);
        let end = self.log.partition_point(|e| e.idx <= idx);
        // Bases announce what they cover once they are on disk too.
        for b in &self.bases {
            if b.idx > self.durable_idx && b.idx <= idx {
                self.durable.merge(&b.clock);
            }
        }
        self.durable_idx = idx;
        let mut kicked = false;
        let mut delivered = 0;
        let mut writers: Vec<ReplicaId> = Vec::new();
        for e in &self.log[start..end] {
            self.durable.raise(e.origin, e.seq);
            if !writers.contains(&e.origin) {
                writers.push(e.origin);
            }
            for p in &mut self.peers {
                if !p.live || p.known.get(e.origin) >= e.seq {
                    continue;
                }
                p.known.raise(e.origin, e.seq);
                if p.outbox.try_push(Out::Txn(e.bytes.clone())) {
                    delivered += 1;
                } else {
                    slow(p, metrics);
                    kicked = true;
                }
            }
        }
        Metrics::add(&metrics.txns_delivered_total, delivered);
        for p in &mut self.peers {
            if writers.contains(&p.replica) {
                let c: VectorClock = [(p.replica, self.durable.get(p.replica))]
                    .into_iter()
                    .collect();
                let f = minidote_core::wire::Frame::Stored(c).encode();
                // A full queue means the peer is stuck; the next frame
                // that cannot wait closes it.
                let _ = p.outbox.try_push(Out::Frame(Bytes::from(f)));
            }
        }
        if kicked {
            self.peers.retain(|p| !p.outbox.is_closed());
        }
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
        if !self.stored {
            self.durable.merge(&clock);
            self.durable_idx = self.next_idx - 1;
        }
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
        self.commit_in_memory(metrics);
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
        for (o, q) in self.by_origin.iter_mut() {
            let upto = clock.get(*o);
            while q.front().is_some_and(|(s, _)| *s <= upto) {
                q.pop_front();
            }
        }
        self.by_origin.retain(|_, q| !q.is_empty());
        self.base_epoch += 1;
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
    /// Bases whose clocks are incomparable (from snapshot-scope peers) are
    /// folded into one as soon as there are two, so a newcomer is sent one
    /// base, not one per peer that ever sent a snapshot.
    pub fn compaction_input(&mut self, after: usize) -> Option<CompactionInput> {
        let merge_bases = self.bases.len() > 1 && self.bases.len() >= self.merge_retry_bases;
        if self.compacting
            || after == 0
            || (!merge_bases && (self.log.len() <= after || self.log.len() < self.compact_retry_at))
        {
            return None;
        }
        // Only committed transactions are folded: a base is served at once.
        let cut = if self.log.len() > after {
            (self.log.len() - after / 2)
                .min(self.log.partition_point(|e| e.idx <= self.durable_idx))
        } else {
            0
        };
        if cut == 0 && !merge_bases {
            return None;
        }
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
        match folded {
            Some((frame, clock)) => {
                self.merge_retry_bases = 0;
                self.install_base(frame, clock, store)
            }
            // Not on every frame from now on: once the log grew a tenth, or
            // another base arrived.
            None => {
                self.compact_retry_at = self.log.len() + self.log.len() / 10 + 1;
                self.merge_retry_bases = self.bases.len() + 1;
            }
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
