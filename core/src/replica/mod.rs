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
use crate::codec::{Codec, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::hashing::KeyedMap;
use crate::key::{CrdtType, Key};
use crate::types::store::{apply_at, with_state};
use crate::types::{prepare, prepare_apply, Effect, Op, Rename, State, Update};
use crate::value::Value;
use crate::wire::{error_code, Frame, Hello, Snapshot, Txn, TxnBytes};

mod cursors;
mod durability;
mod errors;
mod inspect;
mod links;
mod log;
mod objects;
mod pending;
mod progress;
mod repair;
mod stats;
mod transport;

pub use durability::Record;
use durability::{MAX_UNCONFIRMED, MAX_UNCONFIRMED_BYTES};
pub use errors::{CursorError, ProtocolError, RepairError};
pub use inspect::{BufferedTxn, SeqStats, TxnSummary};
use links::forward;
pub use links::{ImportStatus, LinkId, LinkPolicy, Transmit};
pub use log::CatchUp;
use log::Lacking;
use objects::intern_in;
pub use pending::{ReadOutcome, Ticket, UpdateOutcome};
pub use progress::{SyncProgress, MAX_PROGRESS_ORIGINS};
pub use repair::Repaired;
pub use stats::{PeerStats, Stats};

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
    /// Emit [`Event::LocalUpdate`] with each local transaction's frame once
    /// it is durable (bring-your-own transport).
    pub emit_local_updates: bool,
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
            emit_local_updates: false,
        }
    }
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
    /// What changed in a `list` or `text` object, as a delta in document
    /// order (only with [`Config::emit_changes`]). It comes right before
    /// the [`Event::Changed`] that names its key.
    Delta {
        /// The object.
        key: Key,
        /// The change.
        delta: Vec<crate::types::DeltaOp>,
    },
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
    /// Local transactions became durable (only with
    /// [`Config::emit_local_updates`]): a `Txns` frame of them, for the
    /// app to carry over its own channel to [`Replica::apply_update`].
    LocalUpdate(Vec<u8>),
    /// A catch-up from peers moved (see [`SyncProgress`]): a peer's Hello
    /// showed transactions this replica lacks, and frames since brought
    /// some of them.
    Progress(SyncProgress),
    /// A link must be closed: send its queued frames, then close it.
    LinkFailed {
        /// The link.
        link: LinkId,
        /// Why.
        error: ProtocolError,
    },
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
    /// The peer's own entry of the last `Stored` frame we sent it.
    stored_told: u64,
    /// A snapshot arriving in pieces.
    parts: crate::wire::SnapshotAssembler,
}

/// A Minidote replica: state, clock, log, causal buffer, pending requests
/// and the link protocol, with no IO.
#[derive(Debug)]
pub struct Replica {
    id: ReplicaId,
    config: Config,
    objects: KeyedMap<Key, State>,
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
    log_index: KeyedMap<ReplicaId, Vec<(u64, u32)>>,
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
    /// Others' transactions durably stored here (in memory, for a memory
    /// replica): what `Stored` frames tell each peer of its own writes.
    stored_here: VectorClock,
    /// `(lsn, origin, seq)` of remote writes whose record is not persisted.
    unstored: VecDeque<(u64, ReplicaId, u64)>,
    /// `stored_here` grew since peers were last told.
    stored_dirty: bool,
    links: BTreeMap<LinkId, Link>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    now_ms: u64,
    stats: Stats,
    /// A snapshot arriving in pieces outside any link
    /// ([`Replica::apply_update`]).
    loose_parts: crate::wire::SnapshotAssembler,
    /// Summaries of the last delivered transactions (inspect.rs).
    history: VecDeque<inspect::TxnSummary>,
    /// How many of them to keep (0: none).
    history_cap: usize,
    /// The catch-up in progress, if any (progress.rs).
    progress: Option<progress::Tracker>,
}

impl Replica {
    /// A new, empty replica.
    pub fn new(id: ReplicaId, config: Config) -> Self {
        let buffer = CausalBuffer::with_limits(config.buffer_capacity, config.buffer_bytes);
        Self {
            id,
            config,
            objects: KeyedMap::default(),
            clock: VectorClock::new(),
            changed: Vec::new(),
            deps_full: true,

            log: Vec::new(),
            log_bytes: Vec::new(),
            log_index: KeyedMap::default(),
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
            stored_here: VectorClock::new(),
            unstored: VecDeque::new(),
            stored_dirty: false,
            links: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            now_ms: 0,
            stats: Stats::default(),
            loose_parts: Default::default(),
            history: VecDeque::new(),
            history_cap: 0,
            progress: None,
        }
    }

    /// Turns [`Event::Changed`] and [`Event::Delta`] on or off (a binding
    /// turns them on when an app subscribes).
    pub fn set_emit_changes(&mut self, on: bool) {
        self.config.emit_changes = on;
    }

    /// Turns [`Event::LocalUpdate`] on or off (a binding turns it on when
    /// an app asks for its local updates).
    pub fn set_emit_local_updates(&mut self, on: bool) {
        self.config.emit_local_updates = on;
    }

    /// Whether any link's handshake has completed.
    pub fn any_link_established(&self) -> bool {
        self.links.values().any(|l| l.peer.is_some())
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
        r.stored_here = r.clock.clone();
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

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- internals -----
}
