//! The sans-IO replica state machine.
//!
//! Methods come in four kinds, as in quinn-proto:
//! * getters: [`Replica::id`], [`Replica::clock`], [`Replica::stats`], ...;
//! * commands: [`Replica::update_objects`], [`Replica::read_objects`],
//!   [`Replica::snapshot`], [`Replica::link_open`], [`Replica::link_closed`];
//! * inputs: [`Replica::handle_frame`], [`Replica::handle_txns`],
//!   [`Replica::handle_timeout`], [`Replica::persisted`];
//! * outputs: [`Replica::poll_record`], [`Replica::poll_transmit`],
//!   [`Replica::poll_event`], [`Replica::poll_timeout`].
//!
//! **After every command or input, drain the outputs** in this order:
//! records (store them, then call `persisted`), transmits, events. Local
//! transactions are only acknowledged and sent once their record was
//! reported persisted, so a crash can never reuse a seq that a peer or a
//! client has seen.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::buffer::{CausalBuffer, MissingRange, Offer, Waiting};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::Writer;
use crate::error::{DecodeError, UpdateError};
use crate::types::store::{apply_at, with_state};
use crate::types::{prepare, prepare_apply, Effect, Op, Rename, State, Update};

pub mod errors;
use crate::key::Key;
use crate::value::Value;
use crate::wire::{error_code, Frame, Hello, Snapshot, Txn, TxnBytes};
pub use errors::{ProtocolError, RepairError};

type FxMap<K, V> = crate::hashing::KeyedMap<K, V>;

/// A frame's bytes around one transaction's effects: version, tag, count,
/// origin, seq, deps (generously) and the blob length.
const TXN_FRAME_OVERHEAD: usize = 64;

/// Bound on interned key strings, so hostile peers cannot grow it forever.
const MAX_INTERNED: usize = 100_000;

/// Most own transactions, and bytes of them, kept past a snapshot for
/// comparison with peers' copies (restored backups); older ones count as
/// confirmed.
const MAX_UNCONFIRMED: usize = 10_000;
const MAX_UNCONFIRMED_BYTES: usize = 16 << 20;

/// Settings of a replica.
#[derive(Clone, Debug)]
pub struct Config {
    /// The replication group; links to peers in other rooms are refused.
    pub room: String,
    /// Emit records for storage and hold acknowledgements until they are
    /// reported persisted. False for memory-only replicas.
    pub persistent: bool,
    /// Take a snapshot (and prune the log) every this many records. In a
    /// memory-only replica this bounds the in-memory log. 0 = never.
    pub snapshot_every: u64,
    /// Most transactions held in the causal buffer.
    pub buffer_capacity: usize,
    /// Most bytes held in the causal buffer (encoded size, twice over for
    /// the decoded effects). One origin holds at most a quarter of this
    /// and of `buffer_capacity`.
    pub buffer_bytes: usize,
    /// A transaction held this long without its dependencies is dropped
    /// (and fetched again once it can be delivered). 0: never.
    pub buffer_hold_ms: u64,
    /// Interval between anti-entropy rounds on each link.
    pub anti_entropy_ms: u64,
    /// A link with no frame for this long is reported dead.
    pub idle_timeout_ms: u64,
    /// Largest frame this replica builds (transaction batches are split;
    /// larger snapshots are sent as `SnapshotPart` frames).
    pub max_frame_bytes: usize,
    /// Largest snapshot taken from a peer in `SnapshotPart` frames (the
    /// whole encoding; pieces are buffered as they arrive).
    pub max_snapshot_bytes: usize,
    /// Emit [`Event::Changed`] for every applied transaction.
    pub emit_changes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            room: "default".into(),
            persistent: false,
            snapshot_every: 10_000,
            buffer_capacity: 100_000,
            buffer_bytes: 64 << 20,
            buffer_hold_ms: 300_000,
            anti_entropy_ms: 2_000,
            idle_timeout_ms: 30_000,
            max_frame_bytes: 1 << 20,
            max_snapshot_bytes: 1 << 30,
            emit_changes: false,
        }
    }
}

/// What a link's peer may send (DESIGN.md §2.7). A link always speaks for
/// the replica id of its peer's `Hello`; only a trusted link may also carry
/// other replicas' transactions and whole-state snapshots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LinkPolicy {
    /// May send transactions at all (false for a read-only peer).
    pub write: bool,
    /// May carry transactions of other origins than the peer's own id (a
    /// relay, a mesh node that forwards, a server this replica dialed).
    pub forward: bool,
    /// May send `Snapshot` frames. A snapshot speaks for every origin its
    /// clock covers, and merging one can remove what it claims to have
    /// seen, so only a link trusted with the whole room may send one.
    pub snapshots: bool,
}

impl LinkPolicy {
    /// A peer trusted with the room: it may forward and send snapshots.
    /// Links this replica dials (to a relay or a peer it chose) use this.
    pub const TRUSTED: LinkPolicy = LinkPolicy {
        write: true,
        forward: true,
        snapshots: true,
    };
    /// A peer that may only speak for itself: its own transactions, no
    /// snapshots (an accepted peer whose token has the write scope only).
    pub const OWN: LinkPolicy = LinkPolicy {
        write: true,
        forward: false,
        snapshots: false,
    };
    /// A peer that may only read (a read-scope token).
    pub const READ: LinkPolicy = LinkPolicy {
        write: false,
        forward: false,
        snapshots: false,
    };
}

/// A request that waits for a clock (or for durability).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ticket(pub u64);

/// A link to a peer, numbered by the binding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LinkId(pub u64);

/// Result of [`Replica::update_objects`].
#[derive(Clone, PartialEq, Debug)]
pub enum UpdateOutcome {
    /// Applied and durable; the clock includes the new transaction.
    Committed(VectorClock),
    /// Waiting for the client clock or for the record to be persisted; an
    /// [`Event::Committed`] or [`Event::UpdateFailed`] follows.
    Pending(Ticket),
}

/// Result of [`Replica::read_objects`].
#[derive(Clone, PartialEq, Debug)]
pub enum ReadOutcome {
    /// The values (in key order) and the clock they reflect.
    Ready(Vec<Value>, VectorClock),
    /// Waiting for the client clock; an [`Event::ReadReady`] follows.
    Pending(Ticket),
}

/// Something the binding must store, in order. After storing (possibly
/// several at once), call [`Replica::persisted`] with the highest `lsn`.
#[derive(Clone, PartialEq, Debug)]
pub enum Record {
    /// A delivered transaction, local or remote.
    Txn {
        /// Log sequence number (rises by one per record).
        lsn: u64,
        /// Whether this replica made it.
        local: bool,
        /// The encoded transaction.
        bytes: TxnBytes,
    },
    /// A snapshot covering every earlier record: once it is stored, records
    /// with a smaller lsn may be deleted.
    Snapshot {
        /// Log sequence number.
        lsn: u64,
        /// The encoded [`Snapshot`].
        bytes: Vec<u8>,
    },
    /// [`Replica::repair`] re-issued this replica's writes under a new id.
    /// Store all of it in one atomic step: the new replica id (open the
    /// store with it from now on), the snapshot at `lsn` (covering every
    /// earlier record, which may be deleted), then `txns` as local
    /// transaction records at `lsn + 1`, `lsn + 2`, ...
    Reissue {
        /// The snapshot's lsn.
        lsn: u64,
        /// The replica's new id.
        id: ReplicaId,
        /// The encoded [`Snapshot`] of everything but the re-issued writes.
        snapshot: Vec<u8>,
        /// The re-issued transactions, in order.
        txns: Vec<TxnBytes>,
    },
}

impl Record {
    /// The record's lsn: the highest one it uses, which is what
    /// [`Replica::persisted`] is called with once it is stored.
    pub fn lsn(&self) -> u64 {
        match self {
            Record::Txn { lsn, .. } | Record::Snapshot { lsn, .. } => *lsn,
            Record::Reissue { lsn, txns, .. } => *lsn + txns.len() as u64,
        }
    }
}

/// Bytes to send on a link.
#[derive(Clone, PartialEq, Debug)]
pub struct Transmit {
    /// The link.
    pub link: LinkId,
    /// One encoded frame.
    pub frame: Vec<u8>,
}

/// Something that happened, for the binding to act on.
#[derive(Clone, PartialEq, Debug)]
pub enum Event {
    /// A pending update was applied and is durable.
    Committed {
        /// Its ticket.
        ticket: Ticket,
        /// The clock after it (merged with the client clock).
        clock: VectorClock,
    },
    /// A pending update failed when it ran.
    UpdateFailed {
        /// Its ticket.
        ticket: Ticket,
        /// Why.
        error: UpdateError,
    },
    /// A pending read completed.
    ReadReady {
        /// Its ticket.
        ticket: Ticket,
        /// The values, in key order.
        values: Vec<Value>,
        /// The clock they reflect (merged with the client clock).
        clock: VectorClock,
    },
    /// Objects changed (only with [`Config::emit_changes`]).
    Changed(Vec<Key>),
    /// A link's handshake completed.
    LinkUp {
        /// The link.
        link: LinkId,
        /// The peer's id.
        peer: ReplicaId,
    },
    /// A trusted peer holds one of this replica's own transactions with
    /// other bytes: the replica was restored from an older copy of its
    /// file. Its links are closed and refused until the binding calls
    /// [`Replica::repair`] with the latest stored snapshot.
    RepairNeeded {
        /// The first own transaction known to differ.
        conflict: Dot,
    },
    /// A link must be closed: send its queued frames, then close it.
    LinkFailed {
        /// The link.
        link: LinkId,
        /// Why.
        error: ProtocolError,
    },
}

/// What a peer lacks, as computed by [`Replica::catch_up`].
#[derive(Clone, PartialEq, Debug)]
pub enum CatchUp {
    /// The peer has everything.
    UpToDate,
    /// These transactions, in causal order.
    Txns(Vec<TxnBytes>),
    /// The log was pruned past the peer's clock: the whole state.
    Snapshot(Snapshot),
    /// A snapshot is needed but a local transaction is not durable yet; ask
    /// again after [`Replica::persisted`].
    Deferred,
}

/// What [`Replica::handle_txns`] did with a batch (compare Loro's
/// `ImportStatus`).
#[derive(Clone, Default, PartialEq, Debug)]
pub struct ImportStatus {
    /// Transactions delivered (including ones released from the buffer).
    pub delivered: usize,
    /// Transactions already seen.
    pub duplicates: usize,
    /// Transactions now waiting in the buffer.
    pub buffered: usize,
    /// Transactions dropped because the buffer was full.
    pub dropped: usize,
    /// What this replica must fetch for the buffer to drain.
    pub missing: Vec<MissingRange>,
}

/// What [`Replica::repair`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Repaired {
    /// The id the replica had (its seqs from `from_seq` on were used twice).
    pub old_id: ReplicaId,
    /// The id it has now: store it, and announce it on every link.
    pub new_id: ReplicaId,
    /// The first own seq a peer held with other bytes.
    pub from_seq: u64,
    /// Own transactions re-issued under the new id.
    pub reissued: u64,
}

/// What [`Replica::restore`] did.
#[derive(Clone, Default, PartialEq, Debug)]
pub struct RecoveryReport {
    /// Whether a snapshot was loaded.
    pub snapshot_loaded: bool,
    /// Transaction records replayed.
    pub replayed: u64,
    /// Records skipped because the snapshot already covered them.
    pub skipped: u64,
    /// The first record that could not be used, and why; it and every later
    /// record were ignored (a torn or corrupt tail).
    pub corrupt: Option<(usize, String)>,
}

/// Why [`Replica::restore`] refused its input.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestoreError {
    /// The snapshot does not decode.
    #[error("snapshot is corrupt: {0}")]
    Snapshot(#[from] DecodeError),
}

/// A link's per-peer view.
#[derive(Clone, PartialEq, Debug)]
pub struct PeerStats {
    /// The link.
    pub link: LinkId,
    /// The peer's replica id, once its Hello arrived.
    pub id: Option<ReplicaId>,
    /// True once the handshake completed.
    pub connected: bool,
    /// The last clock the peer announced, merged with what we sent it.
    pub clock: VectorClock,
    /// Transactions we have that the peer's clock lacks.
    pub lag: u64,
    /// This replica's seqs the peer reported durably stored (`Stored`
    /// frames, sent by a relay with a durable log); 0 if it never did.
    pub stored: u64,
}

/// Counters for observability (DESIGN.md §2.6).
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Stats {
    /// Replica id.
    pub id: ReplicaId,
    /// Current clock.
    pub clock: VectorClock,
    /// Transactions in the causal buffer.
    pub buffered: usize,
    /// Requests waiting for a clock or for durability.
    pub pending_requests: usize,
    /// Local transactions made (since start).
    pub txns_local: u64,
    /// Remote transactions delivered (since start).
    pub txns_remote: u64,
    /// Duplicate transactions dropped.
    pub duplicates: u64,
    /// Transactions dropped because the buffer was full.
    pub buffer_dropped: u64,
    /// Second copies of a transaction with other bytes (two different
    /// transactions under one dot): the first was kept, the link closed.
    pub integrity_conflicts: u64,
    /// Transactions and snapshots refused because their link may not send
    /// them (another origin without the forward scope, a snapshot without
    /// the snapshot scope, a snapshot that claims this replica's future).
    pub refused: u64,
    /// Frame bytes handed to transmits.
    pub bytes_sent: u64,
    /// Frame bytes received.
    pub bytes_received: u64,
    /// Transactions in the in-memory log (servable to peers).
    pub log_len: usize,
    /// Records handed out since the last snapshot.
    pub log_records: u64,
    /// Snapshots taken.
    pub snapshots: u64,
    /// Snapshots received from peers and merged.
    pub snapshots_merged: u64,
    /// Records replayed by the last restore.
    pub last_recovery_records: u64,
    /// Duration of the last restore, as reported by the binding.
    pub last_recovery_ms: Option<u64>,
    /// Times this replica found it was restored from an older copy and
    /// re-issued its writes under a new id ([`Replica::repair`]).
    pub restores: u64,
    /// Transactions re-issued by those repairs.
    pub reissued: u64,
    /// True while a repair waits for [`Replica::repair`].
    pub repair_pending: bool,
    /// Links.
    pub peers: Vec<PeerStats>,
}

enum Lacking<'a> {
    Entries(Vec<&'a LogEntry>),
    Snapshot,
}

/// A delivered transaction in the log; its bytes live in `Replica::log_bytes`
/// (one arena, so logging a transaction allocates nothing and pruning is a
/// truncate).
#[derive(Debug)]
struct LogEntry {
    origin: ReplicaId,
    seq: u64,
    start: usize,
    len: usize,
    /// Made by this replica (not an own-origin copy from a peer).
    local: bool,
}

#[derive(Debug)]
enum PendingKind {
    Update(Vec<Update>),
    Read(Vec<Key>),
}

#[derive(Debug)]
struct PendingRequest {
    ticket: Ticket,
    clock: VectorClock,
    kind: PendingKind,
}

/// A local transaction waiting for its record to be persisted.
#[derive(Debug)]
struct Unacked {
    seq: u64,
    lsn: u64,
    bytes: TxnBytes,
    ack: Option<(Ticket, VectorClock)>,
}

#[derive(Debug)]
struct Link {
    peer: Option<ReplicaId>,
    policy: LinkPolicy,
    /// The last `Stored` clock the peer sent: what it holds durably.
    stored: VectorClock,
    /// What the peer announced, merged with what we sent it.
    peer_clock: VectorClock,
    /// Encoded transactions waiting to be batched into a frame.
    out: Vec<TxnBytes>,
    /// The peer lacks pruned transactions; send a snapshot once every
    /// local transaction is durable.
    wants_snapshot: bool,
    last_recv_ms: u64,
    last_need_ms: u64,
    next_round_ms: u64,
    ping_nonce: u64,
    /// Nonzero while the peer has own seqs above [`Replica::confirmed`] up
    /// to this one that are not compared yet: own transactions above
    /// `confirmed` are not sent on the link until they are.
    hold: u64,
    /// The highest own seq sent on this link.
    sent_own: u64,
    /// A snapshot arriving in pieces.
    parts: crate::wire::SnapshotAssembler,
}

/// A Minidote replica: state, clock, log, causal buffer, pending requests
/// and the link protocol, with no IO.
#[derive(Debug)]
pub struct Replica {
    id: ReplicaId,
    config: Config,
    objects: FxMap<Key, State>,
    clock: VectorClock,
    /// Origins whose clock entry grew since the last local transaction: the
    /// next one's sparse deps.
    changed: Vec<ReplicaId>,
    /// The next local transaction carries the full clock as deps (after a
    /// restart or a snapshot merge).
    deps_full: bool,

    log: Vec<LogEntry>,
    log_bytes: Vec<u8>,
    /// Per origin, `(seq, position in log)` ascending: finds a logged
    /// transaction, so a second copy with other bytes is caught.
    log_index: FxMap<ReplicaId, Vec<(u64, u32)>>,
    /// Key strings seen in remote transactions, shared instead of
    /// allocated again for every transaction that names them.
    strings: crate::hashing::KeyedSet<Arc<str>>,
    /// The log holds every delivered transaction above this clock.
    log_base: VectorClock,
    buffer: CausalBuffer<Waiting>,
    pending: Vec<PendingRequest>,
    next_ticket: u64,
    records: VecDeque<Record>,
    next_lsn: u64,
    records_since_snapshot: u64,
    durable_seq: u64,
    /// Own seqs known to match a trusted peer's copy, byte for byte (or
    /// folded into our own snapshot, where they can no longer be compared).
    /// Above it, own transactions are pushed to a peer that already has
    /// some of them only once they are compared (a restored backup).
    confirmed: u64,
    /// Own transactions above `confirmed` that a snapshot folded out of
    /// the log, kept (and stored again after each snapshot) so a peer's
    /// copies can still be compared; at most [`MAX_UNCONFIRMED`].
    unconfirmed: VecDeque<(u64, TxnBytes)>,
    /// The first own seq a peer holds with other bytes, while a repair
    /// waits for the binding.
    repair_from: Option<u64>,
    unacked: VecDeque<Unacked>,
    links: BTreeMap<LinkId, Link>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    now_ms: u64,
    stats: Stats,
}

impl Replica {
    /// A new, empty replica.
    pub fn new(id: ReplicaId, config: Config) -> Self {
        let buffer = CausalBuffer::with_limits(config.buffer_capacity, config.buffer_bytes);
        Self {
            id,
            config,
            objects: FxMap::default(),
            clock: VectorClock::new(),
            changed: Vec::new(),
            deps_full: true,

            log: Vec::new(),
            log_bytes: Vec::new(),
            log_index: FxMap::default(),
            strings: Default::default(),
            log_base: VectorClock::new(),
            buffer,
            pending: Vec::new(),
            next_ticket: 1,
            records: VecDeque::new(),
            next_lsn: 1,
            records_since_snapshot: 0,
            durable_seq: 0,
            confirmed: 0,
            unconfirmed: VecDeque::new(),
            repair_from: None,
            unacked: VecDeque::new(),
            links: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            now_ms: 0,
            stats: Stats::default(),
        }
    }

    /// Rebuilds a replica from its latest stored snapshot and the
    /// transaction records stored after it, in lsn order. `next_lsn` is one
    /// more than the highest lsn the binding has stored.
    ///
    /// Records the snapshot covers are skipped. The first record that does
    /// not decode, or cannot be delivered in order, ends the replay: it and
    /// everything after it are reported in [`RecoveryReport::corrupt`] and
    /// ignored, so a torn tail never stops a replica from starting.
    pub fn restore<'a>(
        id: ReplicaId,
        config: Config,
        snapshot: Option<&[u8]>,
        records: impl IntoIterator<Item = &'a [u8]>,
        next_lsn: u64,
    ) -> Result<(Replica, RecoveryReport), RestoreError> {
        let mut r = Replica::new(id, config);
        r.next_lsn = next_lsn.max(1);
        let mut report = RecoveryReport::default();
        if let Some(bytes) = snapshot {
            let snap = Snapshot::decode(bytes)?;
            r.load_snapshot(snap);
            report.snapshot_loaded = true;
        }
        for (i, bytes) in records.into_iter().enumerate() {
            let txn = match Txn::decode(bytes) {
                Ok(t) => t,
                Err(e) => {
                    report.corrupt = Some((i, e.to_string()));
                    break;
                }
            };
            if r.clock.get(txn.origin) >= txn.seq {
                // An own write the snapshot folded in that no peer had
                // confirmed (stored again after it): kept for comparison.
                if txn.origin == id
                    && txn.seq <= r.log_base.get(id)
                    && r.unconfirmed.back().is_none_or(|(s, _)| *s < txn.seq)
                {
                    r.unconfirmed.push_back((txn.seq, TxnBytes::from(bytes)));
                }
                report.skipped += 1;
                continue;
            }
            if !r.deliverable(&txn) {
                report.corrupt = Some((
                    i,
                    format!(
                        "transaction {:?} is not deliverable after the records before it",
                        Dot::new(txn.origin, txn.seq)
                    ),
                ));
                break;
            }
            let local = txn.origin == id;
            r.apply_txn(&txn, bytes, local);
            report.replayed += 1;
            r.records_since_snapshot += 1;
        }
        r.durable_seq = r.clock.get(id);
        // Nothing says which own writes a peer has: from the first kept
        // one (or the snapshot's own entry) on, they are compared again.
        r.confirmed = r
            .unconfirmed
            .front()
            .map_or(r.log_base.get(id), |(s, _)| s - 1)
            .min(r.log_base.get(id));
        r.stats.last_recovery_records = report.replayed;
        Ok((r, report))
    }

    fn load_snapshot(&mut self, snap: Snapshot) {
        self.objects = snap.objects.into_iter().collect();
        self.clock = snap.clock.clone();
        self.log_base = snap.clock;
        self.log.clear();
        self.log_bytes.clear();
        self.log_index.clear();
    }

    // ----- getters -----

    /// This replica's id.
    pub fn id(&self) -> ReplicaId {
        self.id
    }

    /// The room.
    pub fn room(&self) -> &str {
        &self.config.room
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Everything delivered so far.
    pub fn clock(&self) -> &VectorClock {
        &self.clock
    }

    /// The seq the next local transaction will get.
    pub fn next_seq(&self) -> u64 {
        self.clock.get(self.id).saturating_add(1)
    }

    /// The current value of one object (without waiting for anything).
    pub fn value(&self, key: &Key) -> Value {
        match self.objects.get(key) {
            Some(s) => s.value(),
            None => State::bottom(key.ty).value(),
        }
    }

    /// The full state as a snapshot (objects sorted by key).
    pub fn state_snapshot(&self) -> Snapshot {
        let mut objects: Vec<(Key, State)> = self
            .objects
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        objects.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Snapshot {
            clock: self.clock.clone(),
            objects,
        }
    }

    /// Whether every established link's peer has reported (with `Stored`)
    /// that it durably stored every transaction this replica made, so a
    /// replica that goes away now loses nothing (the basis of the bindings'
    /// `flush`). False with no established link, or while a local
    /// transaction is not stored here yet.
    pub fn stored_everywhere(&self) -> bool {
        let own = self.clock.get(self.id);
        let mut any = false;
        for l in self.links.values().filter(|l| l.peer.is_some()) {
            any = true;
            if l.stored.get(self.id) < own {
                return false;
            }
        }
        any && self.all_local_durable()
    }

    /// Counters and per-link views.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        s.id = self.id;
        s.clock = self.clock.clone();
        s.buffered = self.buffer.len();
        s.pending_requests =
            self.pending.len() + self.unacked.iter().filter(|u| u.ack.is_some()).count();
        s.log_len = self.log.len();
        s.repair_pending = self.repair_from.is_some();
        s.log_records = self.records_since_snapshot;
        s.peers = self
            .links
            .iter()
            .map(|(id, l)| PeerStats {
                link: *id,
                id: l.peer,
                connected: l.peer.is_some(),
                clock: l.peer_clock.clone(),
                lag: self.clock.iter().fold(0u64, |acc, (r, s)| {
                    acc.saturating_add(s.saturating_sub(l.peer_clock.get(r)))
                }),
                stored: l.stored.get(self.id),
            })
            .collect();
        s
    }

    /// Records the duration of the restore, measured by the binding.
    pub fn set_recovery_ms(&mut self, ms: u64) {
        self.stats.last_recovery_ms = Some(ms);
    }

    /// What this replica must fetch for its causal buffer to drain.
    pub fn missing(&self) -> Vec<MissingRange> {
        self.buffer.missing(&self.clock)
    }

    // ----- commands -----

    /// Runs one atomic transaction. Every update is validated first: if any
    /// is invalid, nothing is applied, logged or sent. Several updates to one
    /// key apply left to right.
    ///
    /// With a `client_clock` this replica has not reached, the updates wait
    /// (validated, not applied) and a ticket is returned.
    pub fn update_objects(
        &mut self,
        updates: Vec<Update>,
        client_clock: Option<&VectorClock>,
    ) -> Result<UpdateOutcome, UpdateError> {
        let mut size = TXN_FRAME_OVERHEAD + self.deps_len();
        for (i, u) in updates.iter().enumerate() {
            u.op.check(u.key.ty, i)?;
            size += u.op.values_len() + u.key.key.len() + u.key.bucket.len();
        }
        self.check_size(size)?;
        let client = client_clock.cloned().unwrap_or_default();
        if !client.leq(&self.clock) {
            let ticket = self.ticket();
            self.pending.push(PendingRequest {
                ticket,
                clock: client,
                kind: PendingKind::Update(updates),
            });
            return Ok(UpdateOutcome::Pending(ticket));
        }
        let ticket = self.config.persistent.then(|| self.ticket());
        let clock = self.commit_local(updates, client, ticket)?;
        Ok(match (ticket, clock) {
            (Some(t), _) => UpdateOutcome::Pending(t),
            (None, Some(c)) => UpdateOutcome::Committed(c),
            (None, None) => unreachable!("a memory-only commit always returns its clock"),
        })
    }

    /// An upper bound on the encoded deps of the next local transaction.
    fn deps_len(&self) -> usize {
        let entries = if self.deps_full {
            self.clock.len()
        } else {
            self.changed.len()
        };
        2 + 18 * entries
    }

    /// Refuses a transaction of `size` bytes that no frame could carry.
    fn check_size(&self, size: usize) -> Result<(), UpdateError> {
        let limit = self.config.max_frame_bytes;
        if size > limit {
            return Err(UpdateError::TooLarge { size, limit });
        }
        Ok(())
    }

    /// Reads objects. With a `client_clock` this replica has not reached,
    /// or while a local transaction the read would see is not durable yet,
    /// returns a ticket; [`Event::ReadReady`] follows.
    pub fn read_objects(
        &mut self,
        keys: Vec<Key>,
        client_clock: Option<&VectorClock>,
    ) -> ReadOutcome {
        let client = client_clock.cloned().unwrap_or_default();
        if client.leq(&self.clock) && self.all_local_durable() {
            let values = keys.iter().map(|k| self.value(k)).collect();
            return ReadOutcome::Ready(values, self.clock.merged(&client));
        }
        let ticket = self.ticket();
        self.pending.push(PendingRequest {
            ticket,
            clock: client,
            kind: PendingKind::Read(keys),
        });
        ReadOutcome::Pending(ticket)
    }

    /// Abandons a request that is still waiting for its client clock (the
    /// binding's timeout fired). Returns false if the ticket is unknown or
    /// its transaction already ran: such an update only waits for its record
    /// to be stored, will be acknowledged, and cannot be taken back.
    pub fn cancel(&mut self, ticket: Ticket) -> bool {
        let before = self.pending.len();
        self.pending.retain(|p| p.ticket != ticket);
        self.pending.len() != before
    }

    /// Takes a snapshot now: emits a snapshot record (if persistent) and
    /// prunes the log.
    pub fn snapshot(&mut self) {
        if self.repair_from.is_some() {
            // The log must keep every own write the repair re-issues.
            return;
        }
        // Own writes no peer confirmed stay comparable (restored backups):
        // their bytes are kept, and stored again after the snapshot.
        if self.config.persistent {
            let keep: Vec<(u64, TxnBytes)> = self
                .log
                .iter()
                .filter(|e| e.origin == self.id && e.local && e.seq > self.confirmed)
                .map(|e| (e.seq, self.log_txn(e)))
                .collect();
            self.unconfirmed.extend(keep);
            let mut bytes: usize = self.unconfirmed.iter().map(|(_, b)| b.len()).sum();
            while self.unconfirmed.len() > MAX_UNCONFIRMED || bytes > MAX_UNCONFIRMED_BYTES {
                bytes -= self.unconfirmed.front().map_or(0, |(_, b)| b.len());
                // Too many to keep: the oldest count as confirmed.
                let (seq, _) = self.unconfirmed.pop_front().expect("non-empty");
                self.confirmed = self.confirmed.max(seq);
            }
            let bytes = self.state_snapshot().encode();
            let lsn = self.lsn();
            self.records.push_back(Record::Snapshot { lsn, bytes });
            let kept: Vec<TxnBytes> = self.unconfirmed.iter().map(|(_, b)| b.clone()).collect();
            for bytes in kept {
                let lsn = self.lsn();
                self.records.push_back(Record::Txn {
                    lsn,
                    local: true,
                    bytes,
                });
            }
        }
        self.log.clear();
        self.log_bytes.clear();
        self.log_index.clear();
        self.log_base = self.clock.clone();
        self.records_since_snapshot = 0;
        self.stats.snapshots += 1;
    }

    /// Merges a full state from another replica (state + clock), as in
    /// snapshot bootstrap and partition healing. Afterwards the buffer is
    /// drained of what the snapshot covered and of what it unblocked.
    pub fn merge_snapshot(&mut self, snap: &Snapshot) {
        let theirs = &snap.clock;
        if theirs.leq(&self.clock) {
            return;
        }
        // Objects only we have join with their bottom too: that drops dots
        // they saw and removed.
        for (k, s) in self.objects.iter_mut() {
            if snap.objects.binary_search_by(|(sk, _)| sk.cmp(k)).is_err() {
                s.join(&self.clock, &State::bottom(k.ty), theirs);
            }
        }
        let mut changed = Vec::new();
        for (k, s) in &snap.objects {
            let mine = self
                .objects
                .entry(k.clone())
                .or_insert_with(|| State::bottom(k.ty));
            mine.join(&self.clock, s, theirs);
            changed.push(k.clone());
        }
        self.objects.retain(|_, s| !s.is_bottom());
        // The log no longer holds every transaction above its base for the
        // origins the snapshot advanced.
        for (r, s) in theirs.iter() {
            if s > self.clock.get(r) {
                self.log_base.raise(r, s);
            }
        }
        self.clock.merge(theirs);
        self.deps_full = true;
        // Only our own transactions the peer already has are durable
        // elsewhere; local ones still waiting for storage stay unconfirmed.
        self.durable_seq = self.durable_seq.max(theirs.get(self.id));
        self.buffer.drop_covered(&self.clock);
        self.stats.snapshots_merged += 1;
        if self.config.emit_changes && !changed.is_empty() {
            self.events.push_back(Event::Changed(changed));
        }
        // Our state now includes transactions no record holds: persist it.
        self.snapshot();
        self.release_holds();
        self.drain_buffer();
        self.run_pending();
    }

    /// Re-issues this replica's writes after it found it was restored from
    /// an older copy of its file ([`Event::RepairNeeded`]): a trusted peer
    /// holds its seq `from` (and maybe later ones) with other bytes, so
    /// seqs were used twice. `base` is the latest stored snapshot (`None`
    /// if the store has none).
    ///
    /// The state is rebuilt from `base` and the log without our writes
    /// from `from` on; those are re-issued, in order, under a new replica
    /// id (observed dots and dependencies renamed), and the peers'
    /// transactions under the old seqs are taken like any others. Nothing
    /// written on either side is lost, and no seq is used twice from then
    /// on. The result is one [`Record::Reissue`]; links were closed and
    /// must be opened again (they announce the new id).
    ///
    /// The new id is derived from the re-issued transactions, so two copies
    /// that wrote the same thing re-issue the same transactions.
    pub fn repair(&mut self, base: Option<&[u8]>) -> Result<Repaired, RepairError> {
        let Some(from) = self.repair_from else {
            return Err(RepairError::NotNeeded);
        };
        if !self.all_local_durable() {
            return Err(RepairError::NotDurable);
        }
        let snap = match base {
            Some(b) => Snapshot::decode(b)?,
            None => Snapshot {
                clock: VectorClock::new(),
                objects: Vec::new(),
            },
        };
        if snap.clock != self.log_base {
            return Err(RepairError::BaseMismatch);
        }
        let old = self.id;
        if self.log_base.get(old) >= from {
            return Err(RepairError::Unrepairable(format!(
                "this replica's writes from seq {from} on were already folded into its snapshot"
            )));
        }
        let (mut keep, mut mine) = (Vec::new(), Vec::new());
        for e in &self.log {
            let bytes = &self.log_bytes[e.start..e.start + e.len];
            if e.origin == old && e.seq >= from {
                if !e.local {
                    return Err(RepairError::Unrepairable(format!(
                        "transaction {:?} under this replica's id came from a peer",
                        Dot::new(old, e.seq)
                    )));
                }
                mine.push(bytes);
            } else {
                keep.push(bytes);
            }
        }
        let new = reissue_id(old, from, &mine, &self.clock);
        // Everything but our re-issued writes, from the base.
        let mut scratch = Replica::new(new, self.config.clone());
        scratch.load_snapshot(snap);
        for bytes in keep {
            let txn = Txn::decode(bytes)?;
            if !scratch.deliverable(&txn) {
                return Err(RepairError::Unrepairable(format!(
                    "transaction {:?} depends on one of this replica's writes from seq {from} on",
                    Dot::new(txn.origin, txn.seq)
                )));
            }
            scratch.apply_txn(&txn, bytes, false);
        }
        let base_bytes = scratch.state_snapshot().encode();
        // Our writes, renamed: (old, s) for s >= from becomes (new, s - from + 1).
        let rn = Rename { old, new, from };
        let mut txns = Vec::with_capacity(mine.len());
        for bytes in mine {
            let txn = Txn::decode(bytes)?;
            let seq = txn.seq - from + 1;
            let mut deps: VectorClock = txn.deps.iter().filter(|(r, _)| *r != old).collect();
            // The old seqs before `from` were implied by the own-origin chain.
            deps.raise(old, from - 1);
            let mut effects = txn.effects;
            for (k, e) in effects.iter_mut() {
                // Observed dots renamed; per-origin totals restart from
                // the base's under the new id.
                e.rename(scratch.objects.get(k), &rn);
            }
            let refs: Vec<(&Key, &Effect)> = effects.iter().map(|(k, e)| (k, e)).collect();
            let mut w = Writer::new();
            crate::wire::encode_txn(&mut w, new, seq, &deps, &refs);
            let bytes = w.into_vec();
            let txn = Txn::decode(&bytes)?;
            if !scratch.deliverable(&txn) {
                return Err(RepairError::Unrepairable(format!(
                    "re-issued transaction {:?} is not deliverable",
                    Dot::new(new, seq)
                )));
            }
            scratch.apply_txn(&txn, &bytes, true);
            txns.push(TxnBytes::from(bytes));
        }
        // Take the rebuilt state.
        let reissued = txns.len() as u64;
        self.id = new;
        self.objects = std::mem::take(&mut scratch.objects);
        self.clock = std::mem::take(&mut scratch.clock);
        self.log = std::mem::take(&mut scratch.log);
        self.log_bytes = std::mem::take(&mut scratch.log_bytes);
        self.log_index = std::mem::take(&mut scratch.log_index);
        self.changed.clear();
        self.deps_full = true;
        self.durable_seq = 0;
        self.confirmed = 0;
        self.unconfirmed.clear();
        self.repair_from = None;
        self.records_since_snapshot = reissued;
        let lsn = self.lsn();
        for (i, bytes) in txns.iter().enumerate() {
            let seq = i as u64 + 1;
            self.unacked.push_back(Unacked {
                seq,
                lsn: lsn + seq,
                bytes: bytes.clone(),
                ack: None,
            });
        }
        self.next_lsn += reissued;
        self.records.push_back(Record::Reissue {
            lsn,
            id: new,
            snapshot: base_bytes,
            txns,
        });
        self.buffer.drop_covered(&self.clock);
        // Clients waiting on our writes from `from` on saw them under the
        // old id: they are the new id's now.
        for p in &mut self.pending {
            let s = p.clock.get(old);
            if s >= from {
                let mut c: VectorClock = p.clock.iter().filter(|(r, _)| *r != old).collect();
                c.raise(old, from - 1);
                c.raise(new, s - from + 1);
                p.clock = c;
            }
        }
        self.stats.restores += 1;
        self.stats.reissued += reissued;
        // Links opened meanwhile announced the old id.
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for l in links {
            self.fail_link(l, ProtocolError::RestoredBackup(Dot::new(old, from)));
        }
        if self.config.emit_changes {
            let keys: Vec<Key> = self.objects.keys().cloned().collect();
            self.events.push_back(Event::Changed(keys));
        }
        self.drain_buffer();
        self.run_pending();
        Ok(Repaired {
            old_id: old,
            new_id: new,
            from_seq: from,
            reissued,
        })
    }

    // ----- links -----

    /// A link to a peer is open: queues our `Hello`. `token` is sent to a
    /// relay that requires one. The peer is trusted with the room
    /// ([`LinkPolicy::TRUSTED`]): use this for links this replica dials.
    pub fn link_open(&mut self, link: LinkId, token: Option<String>, now_ms: u64) {
        self.link_open_with(link, token, LinkPolicy::TRUSTED, now_ms);
    }

    /// Like [`Replica::link_open`], with what the peer may send: an
    /// accepted peer whose token only lets it write as itself gets
    /// [`LinkPolicy::OWN`].
    pub fn link_open_with(
        &mut self,
        link: LinkId,
        token: Option<String>,
        policy: LinkPolicy,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        self.links.insert(
            link,
            Link {
                peer: None,
                policy,
                stored: VectorClock::new(),
                peer_clock: VectorClock::new(),
                out: Vec::new(),
                wants_snapshot: false,
                last_recv_ms: now_ms,
                last_need_ms: 0,
                next_round_ms: now_ms.saturating_add(self.config.anti_entropy_ms),
                ping_nonce: 0,
                hold: 0,
                sent_own: 0,
                parts: Default::default(),
            },
        );
        // Only a peer trusted with the room can hold our seqs to compare.
        let clock = if policy.forward {
            self.verifying_clock()
        } else {
            self.advertised_clock()
        };
        let hello = Frame::Hello(Hello {
            replica: self.id,
            room: self.config.room.clone(),
            clock,
            token,
        });
        self.send(link, &hello);
    }

    /// True once the peer's `Hello` on `link` was accepted.
    pub fn link_established(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| l.peer.is_some())
    }

    /// The link is gone (closed by either side, or after `LinkFailed`).
    pub fn link_closed(&mut self, link: LinkId) {
        self.links.remove(&link);
        self.transmits.retain(|t| t.link != link);
    }

    /// Handles one frame received on `link`. On a protocol error the link is
    /// forgotten, an `Error` frame is queued for it, and the error is
    /// returned (and also emitted as [`Event::LinkFailed`]); send the queued
    /// frame, then close the link. The replica itself is unaffected.
    pub fn handle_frame(
        &mut self,
        link: LinkId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        self.now_ms = self.now_ms.max(now_ms);
        self.buffer.set_now(self.now_ms);
        self.stats.bytes_received += bytes.len() as u64;
        match self.handle_frame_inner(link, bytes, now_ms) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.fail_link(link, e.clone());
                Err(e)
            }
        }
    }

    fn fail_link(&mut self, link: LinkId, e: ProtocolError) {
        let code = match &e {
            ProtocolError::Decode(DecodeError::UnsupportedVersion { .. }) => {
                Some(error_code::VERSION)
            }
            ProtocolError::Decode(_) => Some(error_code::MALFORMED),
            ProtocolError::HelloExpected(_) => Some(error_code::HELLO_EXPECTED),
            ProtocolError::RoomMismatch { .. } => Some(error_code::ROOM_MISMATCH),
            ProtocolError::SameReplicaId(_) => Some(error_code::DUPLICATE_ID),
            ProtocolError::PeerChanged { .. } => Some(error_code::MALFORMED),
            ProtocolError::IdleTimeout(_) => Some(error_code::IDLE),
            ProtocolError::ForeignOrigin { .. } | ProtocolError::SnapshotForbidden(_) => {
                Some(error_code::FORBIDDEN)
            }
            ProtocolError::ReadOnlyLink(_) => Some(error_code::READ_ONLY),
            ProtocolError::IntegrityConflict(_)
            | ProtocolError::ForgedSnapshot { .. }
            | ProtocolError::RestoredBackup(_) => Some(error_code::INTEGRITY),
            ProtocolError::Remote { .. } | ProtocolError::UnknownLink => None,
        };
        if let (Some(code), true) = (code, self.links.contains_key(&link)) {
            let f = Frame::Error {
                code,
                message: e.to_string(),
            };
            self.send(link, &f);
        }
        self.links.remove(&link);
        self.events.push_back(Event::LinkFailed { link, error: e });
    }

    fn handle_frame_inner(
        &mut self,
        link: LinkId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        let Some(l) = self.links.get_mut(&link) else {
            return Err(ProtocolError::UnknownLink);
        };
        l.last_recv_ms = now_ms;
        let established = l.peer.is_some();
        // Transaction batches, the bulk of the traffic, are applied straight
        // from the frame's bytes.
        if bytes.len() >= 2
            && bytes[0] == crate::PROTOCOL_VERSION
            && bytes[1] == crate::wire::TXNS_TAG
        {
            if !established {
                return Err(ProtocolError::HelloExpected("Txns"));
            }
            let slices = crate::wire::split_txns(bytes)?;
            return self.on_txns(link, &slices, now_ms);
        }
        let frame = Frame::decode(bytes)?;
        match frame {
            Frame::Hello(h) => {
                if h.room != self.config.room {
                    return Err(ProtocolError::RoomMismatch {
                        ours: self.config.room.clone(),
                        theirs: h.room,
                    });
                }
                if h.replica == self.id {
                    return Err(ProtocolError::SameReplicaId(h.replica));
                }
                if let Some(seq) = self.repair_from {
                    return Err(ProtocolError::RestoredBackup(Dot::new(self.id, seq)));
                }
                // The peer has own seqs we have not compared with our copies:
                // it echoes them (our Hello announced only `confirmed`), and
                // our later ones wait until they match (a restored backup
                // must not build on another lineage's seqs).
                let theirs_own = h.clock.get(self.id);
                let trusted = self.links.get(&link).is_some_and(|l| l.policy.forward);
                let hold = if self.config.persistent
                    && trusted
                    && theirs_own > self.confirmed
                    && self.clock.get(self.id) > self.confirmed
                {
                    theirs_own.min(self.clock.get(self.id))
                } else {
                    0
                };
                let l = self.links.get_mut(&link).expect("checked above");
                l.hold = hold;
                if let Some(was) = l.peer.filter(|p| *p != h.replica) {
                    return Err(ProtocolError::PeerChanged {
                        was,
                        now: h.replica,
                    });
                }
                l.peer = Some(h.replica);
                merge_known(&mut l.peer_clock, &h.clock, &self.clock);
                self.events.push_back(Event::LinkUp {
                    link,
                    peer: h.replica,
                });
                self.serve(link, &h.clock);
                Ok(())
            }
            Frame::Error { code, message } => Err(ProtocolError::Remote { code, message }),
            f if !established => Err(ProtocolError::HelloExpected(f.name())),
            // Unreachable in practice (the fast path above takes every
            // Txns frame), but correct if it ever is reached.
            Frame::Txns(txns) => {
                let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
                self.on_txns(link, &slices, now_ms)
            }
            Frame::Need(clock) => {
                if let Some(l) = self.links.get_mut(&link) {
                    merge_known(&mut l.peer_clock, &clock, &self.clock);
                }
                self.serve(link, &clock);
                if !clock.leq(&self.clock) {
                    self.request(link, now_ms);
                }
                Ok(())
            }
            Frame::Snapshot(bytes) => self.on_snapshot(link, &bytes),
            Frame::SnapshotPart {
                id,
                total,
                offset,
                bytes,
            } => {
                let limit = self.config.max_snapshot_bytes;
                let l = self.links.get_mut(&link).expect("checked above");
                if !l.policy.snapshots {
                    self.stats.refused += 1;
                    return Err(ProtocolError::SnapshotForbidden(l.peer.unwrap_or_default()));
                }
                match l.parts.push(id, total, offset, &bytes, limit)? {
                    Some(whole) => self.on_snapshot(link, &whole),
                    None => Ok(()),
                }
            }
            Frame::Stored(clock) => {
                if let Some(l) = self.links.get_mut(&link) {
                    merge_known(&mut l.stored, &clock, &self.clock);
                }
                self.confirm_sent(link, clock.get(self.id));
                Ok(())
            }
            Frame::Ping(n) => {
                self.send(link, &Frame::Pong(n));
                Ok(())
            }
            Frame::Pong(_) => Ok(()),
        }
    }

    /// A whole snapshot from `link` (in one frame or put together from
    /// pieces).
    fn on_snapshot(&mut self, link: LinkId, bytes: &[u8]) -> Result<(), ProtocolError> {
        let Some(l) = self.links.get(&link) else {
            return Err(ProtocolError::UnknownLink);
        };
        if !l.policy.snapshots {
            self.stats.refused += 1;
            return Err(ProtocolError::SnapshotForbidden(l.peer.unwrap_or_default()));
        }
        let snap = Snapshot::decode(bytes)?;
        let claimed = snap.clock.get(self.id);
        if claimed > self.durable_seq {
            self.stats.refused += 1;
            return Err(ProtocolError::ForgedSnapshot {
                claimed,
                durable: self.durable_seq,
            });
        }
        if let Some(l) = self.links.get_mut(&link) {
            merge_known(&mut l.peer_clock, &snap.clock, &snap.clock);
        }
        // The peer folded our seqs up to `claimed` into its state: they can
        // no longer be compared with its copies (SECURITY.md, restored
        // backups), so they count as confirmed.
        self.confirm(claimed);
        self.merge_snapshot(&snap);
        self.release_holds();
        Ok(())
    }

    /// Applies a batch received on `link`, asking for what it still lacks.
    fn on_txns(
        &mut self,
        link: LinkId,
        slices: &[&[u8]],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        let own: Vec<&[u8]>;
        let mut slices = slices;
        if let Some(l) = self.links.get(&link) {
            if !l.policy.write {
                self.stats.refused += slices.len() as u64;
                return Err(ProtocolError::ReadOnlyLink(l.peer.unwrap_or_default()));
            }
            if !l.policy.forward {
                // A link speaks for its own id only: other origins' transactions
                // are dropped (counted, never applied, stored or forwarded).
                // They are not an error: an honest peer with other links
                // forwards what it has, and closing its link for that would
                // only make it flap.
                let peer = l.peer.unwrap_or_default();
                if slices.iter().any(|t| origin_of(t) != Some(peer)) {
                    own = slices
                        .iter()
                        .copied()
                        .filter(|t| origin_of(t) == Some(peer))
                        .collect();
                    self.stats.refused += (slices.len() - own.len()) as u64;
                    slices = &own;
                }
            }
        }
        let status = self.handle_txn_slices(Some(link), slices)?;
        if !status.missing.is_empty() {
            self.request(link, now_ms);
        }
        Ok(())
    }

    /// Sends `Need` on `link` unless one went out very recently (a cheap
    /// guard against request storms while a gap cannot be filled).
    fn request(&mut self, link: LinkId, now_ms: u64) {
        let min_gap = (self.config.anti_entropy_ms / 20).max(1);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if now_ms < l.last_need_ms.saturating_add(min_gap) && l.last_need_ms != 0 {
            return;
        }
        l.last_need_ms = now_ms.max(1);
        let f = Frame::Need(self.need_clock(link));
        self.send(link, &f);
    }

    /// What a peer whose clock is `theirs` lacks: the transactions from the
    /// log in delivery (hence causal) order, or a snapshot of the whole state
    /// once some of them were pruned. Local transactions that are not
    /// durable yet are never included.
    pub fn catch_up(&self, theirs: &VectorClock) -> CatchUp {
        match self.lacking(theirs) {
            Lacking::Entries(e) if e.is_empty() => CatchUp::UpToDate,
            Lacking::Entries(e) => CatchUp::Txns(e.into_iter().map(|e| self.log_txn(e)).collect()),
            Lacking::Snapshot if self.all_local_durable() => {
                CatchUp::Snapshot(self.state_snapshot())
            }
            Lacking::Snapshot => CatchUp::Deferred,
        }
    }

    fn lacking(&self, theirs: &VectorClock) -> Lacking<'_> {
        if self.clock.leq(theirs) {
            return Lacking::Entries(Vec::new());
        }
        if !self.log_base.leq(theirs) {
            return Lacking::Snapshot;
        }
        Lacking::Entries(
            self.log
                .iter()
                .filter(|e| {
                    e.seq > theirs.get(e.origin)
                        && !(e.origin == self.id && e.seq > self.durable_seq)
                })
                .collect(),
        )
    }

    /// Queues on `link` what a peer with clock `theirs` lacks.
    fn serve(&mut self, link: LinkId, theirs: &VectorClock) {
        let entries: Vec<(ReplicaId, u64, TxnBytes)> = match self.lacking(theirs) {
            Lacking::Entries(e) => e
                .into_iter()
                .map(|e| (e.origin, e.seq, self.log_txn(e)))
                .collect(),
            Lacking::Snapshot => {
                // A snapshot holds every own write, compared or not. It is
                // not held back for the link's comparison: two peers that
                // both pruned would each wait for the other's (SECURITY.md).
                if self.all_local_durable() {
                    self.send_snapshot(link);
                } else if let Some(l) = self.links.get_mut(&link) {
                    l.wants_snapshot = true;
                }
                return;
            }
        };
        let (own, confirmed) = (self.id, self.confirmed);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        for (origin, seq, bytes) in entries {
            if origin == own {
                if l.hold > 0 && seq > confirmed {
                    continue;
                }
                l.sent_own = l.sent_own.max(seq);
            }
            l.peer_clock.raise(origin, seq);
            l.out.push(bytes);
        }
    }

    fn send_snapshot(&mut self, link: LinkId) {
        let snap = self.state_snapshot();
        let bytes = snap.encode();
        if let Some(l) = self.links.get_mut(&link) {
            l.wants_snapshot = false;
            l.peer_clock.merge(&snap.clock);
            // Transactions queued before the snapshot are covered by it.
            l.out.clear();
        }
        // A snapshot larger than a frame goes in pieces.
        for frame in crate::wire::snapshot_frames(&bytes, self.config.max_frame_bytes) {
            self.transmits.push_back(Transmit { link, frame });
        }
    }

    /// Handles a batch of encoded remote transactions (from a link, or from
    /// any other source when `from` is None), in order. Each transaction is
    /// applied whole or not at all. A malformed transaction stops the batch
    /// with an error; the ones before it stay applied (each was complete and
    /// causally ready, so that is safe), the ones after it are not looked at.
    ///
    /// A transaction that arrives again with other bytes than the logged
    /// copy stops the batch with [`ProtocolError::IntegrityConflict`]: the
    /// first copy is kept, the conflict counted in
    /// [`Stats::integrity_conflicts`].
    pub fn handle_txns(
        &mut self,
        from: Option<LinkId>,
        txns: Vec<TxnBytes>,
    ) -> Result<ImportStatus, ProtocolError> {
        let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
        self.handle_txn_slices(from, &slices)
    }

    /// Applies a whole `Txns` frame (as a link carries it, or as saved from
    /// [`crate::wire::txns_frame`]) that arrived outside any link: from a
    /// file, a relay log or another process. Like [`Replica::handle_txns`],
    /// but the transactions are read in place from the frame's bytes.
    pub fn import_frame(&mut self, frame: &[u8]) -> Result<ImportStatus, ProtocolError> {
        let slices = crate::wire::split_txns(frame)?;
        self.handle_txn_slices(None, &slices)
    }

    fn handle_txn_slices(
        &mut self,
        from: Option<LinkId>,
        txns: &[&[u8]],
    ) -> Result<ImportStatus, ProtocolError> {
        // Each transaction is decoded and handled in turn (it is hot in the
        // cache when applied). A malformed one stops the batch: the valid
        // transactions before it were each applied whole and in causal
        // order, which is safe; the error ends the link.
        let mut strings = std::mem::take(&mut self.strings);
        // A batch names few keys and usually one bucket over and over: the
        // last few strings are compared before the set is hashed.
        let mut recent: [Option<Arc<str>>; 4] = Default::default();
        let mut next = 0;
        let mut intern = |s: &str| -> Arc<str> {
            if let Some(a) = recent.iter().flatten().find(|a| &***a == s) {
                return a.clone();
            }
            let a = intern_in(&mut strings, s);
            recent[next] = Some(a.clone());
            next = (next + 1) % recent.len();
            a
        };
        let mut status = ImportStatus::default();
        let mut failed = None;
        for &bytes in txns {
            let txn = match Txn::decode_with(bytes, &mut intern) {
                Ok(t) => t,
                Err(e) => {
                    failed = Some(ProtocolError::Decode(e));
                    break;
                }
            };
            let (origin, seq) = (txn.origin, txn.seq);
            if let Some(l) = from.and_then(|f| self.links.get_mut(&f)) {
                l.peer_clock.raise(origin, seq);
            }
            if self.clock.get(origin) >= seq {
                match self.logged(origin, seq) {
                    Some(b) if b != bytes => {
                        let trusted = from
                            .is_none_or(|f| self.links.get(&f).is_some_and(|l| l.policy.forward));
                        if origin == self.id && self.config.persistent && trusted {
                            // Our own seq with other bytes, from a peer trusted
                            // with the room: we were restored from an older copy.
                            self.begin_repair(seq, from);
                            failed = Some(ProtocolError::RestoredBackup(Dot::new(origin, seq)));
                        } else {
                            self.stats.integrity_conflicts += 1;
                            failed = Some(ProtocolError::IntegrityConflict(Dot::new(origin, seq)));
                        }
                        break;
                    }
                    Some(_) if origin == self.id && seq == self.confirmed + 1 => {
                        self.confirm(seq);
                    }
                    _ => {}
                }
                status.duplicates += 1;
                self.stats.duplicates += 1;
                continue;
            }
            if origin == self.id
                && self.config.persistent
                && self.clock.get(origin) > self.confirmed
            {
                // A later seq of ours from a peer while our own writes above
                // `confirmed` are not compared yet: it may build on another
                // lineage of our seqs (a restored backup). The peer offers it
                // again once they are compared.
                status.duplicates += 1;
                continue;
            }
            if self
                .buffer
                .get(origin, seq)
                .is_some_and(|w| &w.bytes[..] != bytes)
            {
                self.stats.integrity_conflicts += 1;
                failed = Some(ProtocolError::IntegrityConflict(Dot::new(origin, seq)));
                break;
            }
            if self.deliverable(&txn) {
                self.deliver(&txn, bytes, None, from);
                status.delivered += 1;
                status.delivered += self.drain_buffer();
            } else {
                let w = Waiting {
                    txn,
                    bytes: Arc::from(bytes),
                };
                match self.buffer.offer(w) {
                    Offer::Held { evicted } => {
                        status.buffered += 1;
                        if evicted {
                            status.dropped += 1;
                            self.stats.buffer_dropped += 1;
                        }
                    }
                    Offer::Duplicate => {
                        status.duplicates += 1;
                        self.stats.duplicates += 1;
                    }
                    Offer::Dropped => {
                        status.dropped += 1;
                        self.stats.buffer_dropped += 1;
                    }
                }
            }
        }
        self.strings = strings;
        self.release_holds();
        status.buffered = status.buffered.min(self.buffer.len());
        if !self.buffer.is_empty() {
            status.missing = self.buffer.missing(&self.clock);
        }
        if status.delivered > 0 {
            self.run_pending();
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(status),
        }
    }

    // ----- time -----

    /// Advances time: starts anti-entropy rounds and pings, and reports links
    /// that stayed silent past the idle timeout.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.buffer.set_now(self.now_ms);
        let hold = self.config.buffer_hold_ms;
        if hold > 0 && !self.buffer.is_empty() {
            let dropped = self.buffer.expire(self.now_ms.saturating_sub(hold));
            self.stats.buffer_dropped += dropped as u64;
        }
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            let Some(l) = self.links.get_mut(&id) else {
                continue;
            };
            if now_ms.saturating_sub(l.last_recv_ms) > self.config.idle_timeout_ms {
                let e = ProtocolError::IdleTimeout(self.config.idle_timeout_ms);
                self.fail_link(id, e);
                continue;
            }
            if now_ms >= l.next_round_ms {
                l.next_round_ms = now_ms.saturating_add(self.config.anti_entropy_ms);
                l.ping_nonce += 1;
                let nonce = l.ping_nonce;
                let established = l.peer.is_some();
                if established {
                    l.last_need_ms = now_ms.max(1);
                    let f = Frame::Need(self.need_clock(id));
                    self.send(id, &f);
                }
                self.send(id, &Frame::Ping(nonce));
            }
        }
    }

    /// When to call [`Replica::handle_timeout`] next, if any link is open.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.links
            .values()
            .map(|l| {
                l.next_round_ms.min(
                    l.last_recv_ms
                        .saturating_add(self.config.idle_timeout_ms)
                        .saturating_add(1),
                )
            })
            .min()
    }

    // ----- outputs -----

    /// The next record to store. Store records in order.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// Reports that every record up to `lsn` is durably stored. Releases the
    /// acknowledgements and broadcasts of local transactions they hold.
    pub fn persisted(&mut self, lsn: u64) {
        let mut released = false;
        while self.unacked.front().is_some_and(|u| u.lsn <= lsn) {
            let u = self.unacked.pop_front().expect("checked");
            self.durable_seq = self.durable_seq.max(u.seq);
            if let Some((ticket, clock)) = u.ack {
                self.events.push_back(Event::Committed { ticket, clock });
            }
            forward(
                &mut self.links,
                self.id,
                self.id,
                u.seq,
                None,
                &u.bytes,
                &mut Some(u.bytes.clone()),
            );
            released = true;
        }
        if released {
            if self.all_local_durable() {
                let wanting: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.wants_snapshot)
                    .map(|(id, _)| *id)
                    .collect();
                for id in wanting {
                    self.send_snapshot(id);
                }
            }
            self.run_pending();
        }
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush_links();
        }
        let t = self.transmits.pop_front()?;
        self.stats.bytes_sent += t.frame.len() as u64;
        Some(t)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- internals -----

    fn ticket(&mut self) -> Ticket {
        let t = Ticket(self.next_ticket);
        self.next_ticket += 1;
        t
    }

    fn lsn(&mut self) -> u64 {
        let l = self.next_lsn;
        self.next_lsn += 1;
        l
    }

    fn all_local_durable(&self) -> bool {
        self.durable_seq >= self.clock.get(self.id)
    }

    /// Our clock as a link's `Hello` announces it: our own entry only up to
    /// what was compared with a peer's copies, so a peer that has more of
    /// our seqs sends them back to be compared (a restored backup is found
    /// before it builds on another lineage's seqs).
    fn verifying_clock(&self) -> VectorClock {
        let mut c = self.advertised_clock();
        if self.config.persistent && self.confirmed < c.get(self.id) {
            c = c.iter().filter(|(r, _)| *r != self.id).collect();
            c.raise(self.id, self.confirmed);
        }
        c
    }

    /// The clock a `Need` on `link` announces: while the link holds our
    /// writes, the verifying one.
    fn need_clock(&self, link: LinkId) -> VectorClock {
        match self.links.get(&link) {
            Some(l) if l.hold > 0 => self.verifying_clock(),
            _ => self.advertised_clock(),
        }
    }

    /// The peer on `link`, which we are not holding, announced our seq
    /// `theirs`: what it has of ours up to what we sent it on this link is
    /// our copy (a copy with other bytes would have been refused).
    fn confirm_sent(&mut self, link: LinkId, theirs: u64) {
        if let Some(l) = self.links.get(&link) {
            if l.hold == 0 && l.peer.is_some() {
                let upto = theirs.min(l.sent_own);
                self.confirm(upto);
            }
        }
    }

    /// Links whose peer's copies of our seqs are now all compared get our
    /// later writes.
    fn release_holds(&mut self) {
        let ready: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, l)| l.hold > 0 && l.hold <= self.confirmed)
            .map(|(id, _)| *id)
            .collect();
        for id in ready {
            let Some(l) = self.links.get_mut(&id) else {
                continue;
            };
            l.hold = 0;
            let theirs = l.peer_clock.clone();
            self.serve(id, &theirs);
        }
    }

    /// A trusted peer holds our seq `seq` with other bytes: every link is
    /// closed and refused until the binding calls [`Replica::repair`].
    fn begin_repair(&mut self, seq: u64, from: Option<LinkId>) {
        let first = self.repair_from.map_or(seq, |r| r.min(seq));
        self.repair_from = Some(first);
        let dot = Dot::new(self.id, first);
        self.events.push_back(Event::RepairNeeded { conflict: dot });
        let others: Vec<LinkId> = self
            .links
            .keys()
            .copied()
            .filter(|l| Some(*l) != from)
            .collect();
        for l in others {
            self.fail_link(l, ProtocolError::RestoredBackup(dot));
        }
    }

    /// Our clock as we announce it: without local transactions that are
    /// not durable yet.
    fn advertised_clock(&self) -> VectorClock {
        if self.all_local_durable() {
            return self.clock.clone();
        }
        let mut c: VectorClock = self.clock.iter().filter(|(r, _)| *r != self.id).collect();
        c.raise(self.id, self.durable_seq);
        c
    }

    fn deliverable(&self, txn: &Txn) -> bool {
        txn.seq - 1 == self.clock.get(txn.origin)
            && txn
                .deps
                .iter()
                .all(|(r, s)| r == txn.origin || self.clock.get(r) >= s)
    }

    /// Creates, applies and records one local transaction.
    fn commit_local(
        &mut self,
        mut updates: Vec<Update>,
        client: VectorClock,
        ticket: Option<Ticket>,
    ) -> Result<Option<VectorClock>, UpdateError> {
        let Some(seq) = self.clock.get(self.id).checked_add(1) else {
            return Err(UpdateError::SeqExhausted);
        };
        let dot = Dot::new(self.id, seq);
        let start = self.log_bytes.len();
        let mut changed_keys = Vec::new();
        // The one-lookup path applies as it prepares, so it is taken only
        // when the effect cannot be large: no reset, and an object whose
        // whole-object ops name few observed tokens.
        if updates.len() == 1 {
            // The common case, with one hash lookup and no effect list.
            let Update { key, op } = updates.pop().expect("one update");
            let deps_len = self.deps_len();
            let limit = self.config.max_frame_bytes;
            let origin = self.id;
            let effect = with_state(&mut self.objects, &key, key.ty, |st| {
                if !st.may_be_large(&op) {
                    return prepare_apply(st, &[(0, &op)], origin, dot);
                }
                // Many observed tokens: measure before applying.
                let effect = prepare(key.ty, Some(st), &[(0, &op)], origin)?;
                let mut w = Writer::new();
                key.encode(&mut w);
                effect.encode(&mut w);
                let size = TXN_FRAME_OVERHEAD + deps_len + w.len();
                if size > limit {
                    return Err(UpdateError::TooLarge { size, limit });
                }
                st.apply(&effect, dot);
                Ok(effect)
            })?;
            let deps = current_deps(self.id, &self.clock, &self.changed, self.deps_full);
            let mut w = Writer::from_vec(std::mem::take(&mut self.log_bytes));
            crate::wire::encode_txn(&mut w, self.id, seq, &deps, &[(&key, &effect)]);
            self.log_bytes = w.into_vec();
            if self.config.emit_changes {
                changed_keys.push(key);
            }
        } else {
            let effects = self.prepare_and_apply(&updates, dot)?;
            let deps = current_deps(self.id, &self.clock, &self.changed, self.deps_full);
            let refs: Vec<(&Key, &Effect)> = effects.iter().map(|(k, e)| (k, e)).collect();
            let mut w = Writer::from_vec(std::mem::take(&mut self.log_bytes));
            crate::wire::encode_txn(&mut w, self.id, seq, &deps, &refs);
            self.log_bytes = w.into_vec();
            drop(refs);
            if self.config.emit_changes {
                changed_keys.extend(effects.into_iter().map(|(k, _)| k));
            }
        }
        let len = self.log_bytes.len() - start;
        self.changed.clear();
        self.deps_full = false;
        self.clock.raise(self.id, seq);
        self.log_push(self.id, seq, start, len, true);
        self.stats.txns_local += 1;
        if self.config.emit_changes {
            self.events.push_back(Event::Changed(changed_keys));
        }
        let ack_clock = self.clock.merged(&client);
        if self.config.persistent {
            let bytes: TxnBytes = Arc::from(&self.log_bytes[start..start + len]);
            let lsn = self.lsn();
            self.records.push_back(Record::Txn {
                lsn,
                local: true,
                bytes: bytes.clone(),
            });
            self.unacked.push_back(Unacked {
                seq,
                lsn,
                bytes,
                ack: ticket.map(|t| (t, ack_clock)),
            });
            self.after_record();
            Ok(None)
        } else {
            self.durable_seq = seq;
            let bytes = &self.log_bytes[start..start + len];
            forward(
                &mut self.links,
                self.id,
                self.id,
                seq,
                None,
                bytes,
                &mut None,
            );
            self.after_record();
            Ok(Some(ack_clock))
        }
    }

    fn log_txn(&self, e: &LogEntry) -> TxnBytes {
        Arc::from(&self.log_bytes[e.start..e.start + e.len])
    }

    /// Validates nothing (the caller did), folds the updates, grouped by key
    /// in order of first appearance, into one effect per key, and applies
    /// them at `dot`. All or nothing: every effect is prepared (any type's
    /// prepare may fail) and the transaction measured before any is applied.
    fn prepare_and_apply(
        &mut self,
        updates: &[Update],
        dot: Dot,
    ) -> Result<Vec<(Key, Effect)>, UpdateError> {
        let mut index: FxMap<&Key, usize> =
            FxMap::with_capacity_and_hasher(updates.len(), Default::default());
        let mut groups: Vec<(&Key, Vec<(usize, &Op)>)> = Vec::new();
        let mut last: Option<usize> = None;
        for (i, u) in updates.iter().enumerate() {
            // Batches often hit one key many times in a row: skip the hash.
            if let Some(g) = last.filter(|&g| *groups[g].0 == u.key) {
                groups[g].1.push((i, &u.op));
                continue;
            }
            let g = *index.entry(&u.key).or_insert_with(|| {
                groups.push((&u.key, Vec::new()));
                groups.len() - 1
            });
            groups[g].1.push((i, &u.op));
            last = Some(g);
        }
        if let [(key, ops)] = groups.as_slice() {
            // One object: prepare and apply in one lookup, unless the effect
            // may be large and must be measured first.
            let (key, origin) = (*key, self.id);
            let large = ops.iter().any(|(_, op)| op.observes_all())
                || self
                    .objects
                    .get(key)
                    .is_some_and(|st| ops.iter().any(|(_, op)| st.may_be_large(op)));
            if !large {
                let effect = with_state(&mut self.objects, key, key.ty, |st| {
                    prepare_apply(st, ops, origin, dot)
                })?;
                return Ok(vec![(key.clone(), effect)]);
            }
        }
        let mut effects = Vec::with_capacity(groups.len());
        for (key, ops) in &groups {
            let effect = prepare(key.ty, self.objects.get(*key), ops, self.id)?;
            effects.push(((*key).clone(), effect));
        }
        let mut w = Writer::new();
        for (k, e) in &effects {
            k.encode(&mut w);
            e.encode(&mut w);
        }
        self.check_size(TXN_FRAME_OVERHEAD + self.deps_len() + w.len())?;
        self.apply_effects(&effects, dot);
        Ok(effects)
    }

    fn apply_effects(&mut self, effects: &[(Key, Effect)], dot: Dot) {
        for (k, e) in effects {
            apply_at(&mut self.objects, k, e, dot);
        }
    }

    /// Applies a remote (or replayed) transaction, advances the clock and
    /// logs its bytes.
    fn apply_txn(&mut self, txn: &Txn, bytes: &[u8], local: bool) {
        self.apply_effects(&txn.effects, Dot::new(txn.origin, txn.seq));
        self.clock.raise(txn.origin, txn.seq);
        if txn.origin != self.id && !self.changed.contains(&txn.origin) {
            self.changed.push(txn.origin);
        }
        let start = self.log_bytes.len();
        self.log_bytes.extend_from_slice(bytes);
        self.log_push(txn.origin, txn.seq, start, bytes.len(), local);
    }

    fn log_push(&mut self, origin: ReplicaId, seq: u64, start: usize, len: usize, local: bool) {
        let pos = u32::try_from(self.log.len()).unwrap_or(u32::MAX);
        self.log_index.entry(origin).or_default().push((seq, pos));
        self.log.push(LogEntry {
            origin,
            seq,
            start,
            len,
            local,
        });
    }

    /// The logged bytes of `(origin, seq)`, if the log still holds it.
    fn logged(&self, origin: ReplicaId, seq: u64) -> Option<&[u8]> {
        if let Some(v) = self.log_index.get(&origin) {
            if let Ok(i) = v.binary_search_by_key(&seq, |e| e.0) {
                let e = self.log.get(v[i].1 as usize)?;
                return Some(&self.log_bytes[e.start..e.start + e.len]);
            }
        }
        if origin == self.id {
            let i = self
                .unconfirmed
                .binary_search_by_key(&seq, |(s, _)| *s)
                .ok()?;
            return Some(&self.unconfirmed[i].1);
        }
        None
    }

    /// Our own seqs up to `seq` match a peer's copies.
    fn confirm(&mut self, seq: u64) {
        if seq <= self.confirmed {
            return;
        }
        self.confirmed = seq;
        while self.unconfirmed.front().is_some_and(|(s, _)| *s <= seq) {
            self.unconfirmed.pop_front();
        }
    }

    /// Delivers a remote transaction: apply, record, forward. `shared` is
    /// the transaction's bytes as shared storage, if the caller has them.
    fn deliver(
        &mut self,
        txn: &Txn,
        bytes: &[u8],
        mut shared: Option<TxnBytes>,
        from: Option<LinkId>,
    ) {
        self.apply_txn(txn, bytes, false);
        if txn.origin == self.id {
            // Our own transaction, coming back (e.g. after restoring an old
            // copy): it is durable somewhere, so never reuse its seq.
            self.durable_seq = self.durable_seq.max(txn.seq);
            if txn.seq == self.confirmed + 1 {
                self.confirm(txn.seq);
            }
        }
        self.stats.txns_remote += 1;
        if self.config.emit_changes {
            self.events.push_back(Event::Changed(
                txn.effects.iter().map(|(k, _)| k.clone()).collect(),
            ));
        }
        if self.config.persistent {
            let lsn = self.lsn();
            let b = shared.get_or_insert_with(|| Arc::from(bytes)).clone();
            self.records.push_back(Record::Txn {
                lsn,
                local: false,
                bytes: b,
            });
        }
        forward(
            &mut self.links,
            self.id,
            txn.origin,
            txn.seq,
            from,
            bytes,
            &mut shared,
        );
        self.after_record();
    }

    fn drain_buffer(&mut self) -> usize {
        let mut n = 0;
        // Released transactions go to every link that lacks them (the
        // peer-clock check prevents echoes), including the one whose
        // transaction unblocked them.
        while let Some(w) = self.buffer.pop_ready(&self.clock) {
            let Waiting { txn, bytes } = w;
            let shared = bytes.clone();
            self.deliver(&txn, &bytes, Some(shared), None);
            n += 1;
        }
        n
    }

    fn after_record(&mut self) {
        self.records_since_snapshot += 1;
        if self.config.snapshot_every > 0
            && self.records_since_snapshot >= self.config.snapshot_every
        {
            self.snapshot();
        }
    }

    /// Turns links' queued transactions into `Txns` frames no larger than
    /// the frame limit (a single oversized transaction gets a frame alone).
    fn flush_links(&mut self) {
        let max = self.config.max_frame_bytes;
        for (id, l) in self.links.iter_mut() {
            if l.out.is_empty() {
                continue;
            }
            for frame in crate::wire::txns_frames(&l.out, max) {
                self.transmits.push_back(Transmit { link: *id, frame });
            }
            l.out.clear();
        }
    }

    fn send(&mut self, link: LinkId, frame: &Frame) {
        // Transactions queued earlier must go out before this frame.
        if let Some(l) = self.links.get(&link) {
            if !l.out.is_empty() {
                self.flush_links();
            }
        }
        self.transmits.push_back(Transmit {
            link,
            frame: frame.encode(),
        });
    }

    /// Completes every pending request whose clock is now reached.
    fn run_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut i = 0;
        while i < self.pending.len() {
            let ready = self.pending[i].clock.leq(&self.clock)
                && match self.pending[i].kind {
                    PendingKind::Read(_) => self.all_local_durable(),
                    PendingKind::Update(_) => true,
                };
            if !ready {
                i += 1;
                continue;
            }
            let p = self.pending.remove(i);
            match p.kind {
                PendingKind::Read(keys) => {
                    let values = keys.iter().map(|k| self.value(k)).collect();
                    let clock = self.clock.merged(&p.clock);
                    self.events.push_back(Event::ReadReady {
                        ticket: p.ticket,
                        values,
                        clock,
                    });
                }
                PendingKind::Update(updates) => {
                    match self.commit_local(updates, p.clock, Some(p.ticket)) {
                        Ok(Some(clock)) => self.events.push_back(Event::Committed {
                            ticket: p.ticket,
                            clock,
                        }),
                        Ok(None) => {}
                        Err(error) => self.events.push_back(Event::UpdateFailed {
                            ticket: p.ticket,
                            error,
                        }),
                    }
                    // A local transaction may have unblocked nothing else,
                    // but restart the scan: the clock moved.
                    i = 0;
                }
            }
        }
    }
}

/// The shared copy of `s` in `strings`, added if new (up to
/// [`MAX_INTERNED`] strings, so hostile peers cannot grow it forever).
fn intern_in(strings: &mut crate::hashing::KeyedSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = strings.get(s) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(s);
    if strings.len() < MAX_INTERNED {
        strings.insert(a.clone());
    }
    a
}

/// The id a restored replica re-issues its writes under: a hash of the old
/// id, the first reused seq and the re-issued transactions (so two copies
/// that made the same writes pick the same id and the same transactions),
/// never 0, the old id or an id the clock knows.
fn reissue_id(old: ReplicaId, from: u64, txns: &[&[u8]], clock: &VectorClock) -> ReplicaId {
    use std::hash::Hasher;
    let mut h =
        siphasher::sip::SipHasher13::new_with_keys(0x6d69_6e69_646f_7465, 0x7265_6973_7375_6521);
    h.write_u64(old.0);
    h.write_u64(from);
    for t in txns {
        h.write_usize(t.len());
        h.write(t);
    }
    let mut n = 0u64;
    loop {
        let mut g = h;
        g.write_u64(n);
        let id = ReplicaId(g.finish());
        if id.0 != 0 && id != old && clock.get(id) == 0 {
            return id;
        }
        n += 1;
    }
}

/// The origin of an encoded transaction (its first 8 bytes).
fn origin_of(txn: &[u8]) -> Option<ReplicaId> {
    let b: [u8; 8] = txn.get(..8)?.try_into().ok()?;
    Some(ReplicaId(u64::from_le_bytes(b)))
}

/// Raises `into` by the entries of `theirs` whose origin `ours` knows: a
/// peer's view is kept only for origins this replica has seen, so a peer
/// that announces a bloated clock costs no memory here (an origin learnt
/// later is forwarded to the peer once, and dropped there as a duplicate).
fn merge_known(into: &mut VectorClock, theirs: &VectorClock, ours: &VectorClock) {
    if theirs.iter().all(|(r, _)| ours.get(r) > 0) {
        into.merge(theirs);
        return;
    }
    let known: VectorClock = theirs.iter().filter(|(r, _)| ours.get(*r) > 0).collect();
    into.merge(&known);
}

/// The sparse deps of the next local transaction: the entries that grew since
/// the previous one (or the whole clock after a restart or snapshot merge).
fn current_deps(
    id: ReplicaId,
    clock: &VectorClock,
    changed: &[ReplicaId],
    full: bool,
) -> VectorClock {
    if full {
        clock.iter().filter(|(r, _)| *r != id).collect()
    } else {
        changed.iter().map(|r| (*r, clock.get(*r))).collect()
    }
}

/// Queues a delivered transaction on every established link, except its
/// source, whose peer does not have it yet. The shared bytes are made at most
/// once, and only if some link needs them.
fn forward(
    links: &mut BTreeMap<LinkId, Link>,
    own: ReplicaId,
    origin: ReplicaId,
    seq: u64,
    from: Option<LinkId>,
    bytes: &[u8],
    shared: &mut Option<TxnBytes>,
) {
    for (id, l) in links.iter_mut() {
        if Some(*id) == from || l.peer.is_none() || l.peer_clock.get(origin) >= seq {
            continue;
        }
        if origin == own {
            // Held until the peer's copies of our earlier seqs are compared.
            if l.hold > 0 {
                continue;
            }
            l.sent_own = l.sent_own.max(seq);
        }
        l.out
            .push(shared.get_or_insert_with(|| Arc::from(bytes)).clone());
        l.peer_clock.raise(origin, seq);
    }
}
