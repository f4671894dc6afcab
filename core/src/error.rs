//! One error enum per boundary: decoding remote bytes, validating updates,
//! and the link protocol.

use crate::key::CrdtType;

/// Bytes that could not be decoded. Returned for any malformed, truncated or
/// hostile input; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("input ended unexpectedly; the frame or record is truncated")]
    UnexpectedEnd,
    /// A varint was longer than 10 bytes or overflowed 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A length or count is larger than the input can hold or than allowed.
    #[error("length {len} is out of range (at most {limit} allowed here)")]
    LengthOutOfRange {
        /// The length that was read.
        len: u64,
        /// The largest length accepted at that point.
        limit: u64,
    },
    /// A string was not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A tag byte had no meaning at that position.
    #[error("invalid {what} tag {tag:#04x}")]
    InvalidTag {
        /// What was being decoded.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// The frame was written by a protocol version this build does not speak.
    #[error("unsupported protocol version {found} (this build speaks version {supported}); upgrade the older side")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// Values or keys nested deeper than [`crate::codec::MAX_DEPTH`].
    #[error("value nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{count} trailing bytes after the end of the value")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The encoding is valid but not in canonical form (e.g. unsorted clock
    /// entries, a zero seq, duplicate map keys).
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// The bytes decode, but describe something no honest replica writes
    /// (e.g. a transaction that observes its own future).
    #[error("inconsistent content: {0}")]
    Inconsistent(&'static str),
}

/// Why one update in an `update_objects` batch is invalid. The whole batch is
/// refused: nothing is applied, logged or sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The type name is not one of the ten in DESIGN.md §2.2.
    #[error("unknown CRDT type {0:?}; expected one of counter_pn, counter_pn_sb, set_aw, set_rw, set_go, set_2p, register_mv, register_lww, flag_ew, flag_dw")]
    UnknownType(String),
    /// The op name does not exist for that type.
    #[error("update #{index}: type {ty} has no operation {op:?} (it supports: {supported})")]
    UnknownOp {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name given.
        op: String,
        /// The ops that type supports.
        supported: &'static str,
    },
    /// The op needs an argument and none was given.
    #[error("update #{index}: operation {op:?} on {ty} needs an argument ({expected})")]
    MissingArgument {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name.
        op: &'static str,
        /// What kind of argument is expected.
        expected: &'static str,
    },
    /// The argument has the wrong type, or was given to an op that takes none.
    #[error("update #{index}: operation {op:?} on {ty} expects {expected}, got {got}")]
    WrongArgument {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name.
        op: &'static str,
        /// What kind of argument is expected.
        expected: &'static str,
        /// What was given.
        got: &'static str,
    },
    /// A state-based counter total would leave the u64 range.
    #[error("update #{index}: counter_pn_sb would leave the range of its totals (u64) or of its value (i64); split the object")]
    Overflow {
        /// Position of the update in the batch.
        index: usize,
    },
    /// This replica's seq space is used up (only a hostile peer that sent
    /// our own id with seq `u64::MAX` can cause this).
    #[error("this replica has used every seq; start a new replica with a new id")]
    SeqExhausted,
    /// The transaction could never be delivered: its frame would be over
    /// the frame limit every peer and relay applies.
    #[error("transaction of at least {size} bytes is over the frame limit of {limit} bytes, so no peer or relay could receive it; split it into smaller transactions")]
    TooLarge {
        /// Its size (at least), in bytes.
        size: usize,
        /// The limit ([`crate::Config::max_frame_bytes`]).
        limit: usize,
    },
    /// A value nests lists or maps too deeply to be stored.
    #[error("update #{index}: value nested deeper than {max} levels")]
    TooDeep {
        /// Position of the update in the batch.
        index: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a link must be closed. The replica itself is unaffected; the binding
/// closes the link (after sending the queued `Error` frame, if any).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The peer sent bytes that do not decode.
    #[error("malformed frame: {0}")]
    Decode(#[from] DecodeError),
    /// The peer's first frame was not `Hello`.
    #[error("expected Hello as the first frame, got {0}")]
    HelloExpected(&'static str),
    /// The peer joined another room.
    #[error("room mismatch: this replica is in room {ours:?}, the peer in {theirs:?}")]
    RoomMismatch {
        /// Our room.
        ours: String,
        /// The peer's room.
        theirs: String,
    },
    /// The peer announced our own replica id: a copied database file.
    #[error("peer claims this replica's own id {0}; two replicas share one id (copied database?)")]
    SameReplicaId(crate::ReplicaId),
    /// A second `Hello` on the link announced another replica id.
    #[error("peer changed its replica id from {was} to {now} on an open link")]
    PeerChanged {
        /// The id from the first Hello.
        was: crate::ReplicaId,
        /// The id from the later Hello.
        now: crate::ReplicaId,
    },
    /// The peer reported an error and closed.
    #[error("peer reported error {code}: {message}")]
    Remote {
        /// Error code from the peer.
        code: u16,
        /// Message from the peer.
        message: String,
    },
    /// The peer stayed silent past the idle timeout.
    #[error("peer silent for more than {0} ms")]
    IdleTimeout(u64),
    /// A frame arrived for a link the replica does not know.
    #[error("unknown link")]
    UnknownLink,
    /// The link carried a transaction of another replica, and it may only
    /// speak for its own `Hello` id (it lacks the forward scope).
    #[error("peer {peer} sent a transaction of {origin}; this link may only carry its own transactions (forwarding needs the forward scope)")]
    ForeignOrigin {
        /// The link's peer.
        peer: crate::ReplicaId,
        /// The origin it tried to speak for.
        origin: crate::ReplicaId,
    },
    /// The link may only read (its token has the read scope), and it sent
    /// transactions.
    #[error("peer {0} sent transactions on a read-only link; refused")]
    ReadOnlyLink(crate::ReplicaId),
    /// The link sent a snapshot, and only trusted links (a relay this
    /// replica dialed, or a peer with the snapshot scope) may.
    #[error("peer {0} sent a snapshot; this link may not (snapshots need the snapshot scope)")]
    SnapshotForbidden(crate::ReplicaId),
    /// A second copy of a transaction with other bytes: two different
    /// transactions under one dot. The first one is kept.
    #[error("integrity conflict: transaction {0:?} arrived again with other bytes; the first copy is kept and this link is closed")]
    IntegrityConflict(crate::Dot),
    /// A snapshot claims transactions of this replica that it never made
    /// durable: a forgery (or a copy of this replica's file restored from
    /// an older backup).
    #[error("snapshot claims this replica's seq {claimed}, but it has only made {durable} durable; refused")]
    ForgedSnapshot {
        /// The seq the snapshot claims for this replica.
        claimed: u64,
        /// This replica's last durable seq.
        durable: u64,
    },
    /// A trusted peer holds a transaction of this replica's own id with
    /// other bytes than this replica's copy: this replica was restored from
    /// an older copy of its file and reused seqs. Links stay closed until
    /// the binding calls [`crate::Replica::repair`], which re-issues this
    /// replica's writes from that seq on under a new replica id.
    #[error("transaction {0:?} of this replica exists elsewhere with other bytes: this replica was restored from an older copy of its file; its writes from that seq on are re-issued under a new replica id")]
    RestoredBackup(crate::Dot),
}

impl ProtocolError {
    /// True when reconnecting cannot help until something changes on this
    /// side (a token, the software, the room or a copied database): the
    /// peer refused us as unauthorized, read-only, in another room or on
    /// another protocol version, or it shares our replica id. A binding
    /// stops reconnecting after one of these and reports it.
    pub fn is_permanent(&self) -> bool {
        use crate::wire::error_code as c;
        match self {
            ProtocolError::Remote { code, .. } => {
                matches!(
                    *code,
                    c::VERSION | c::ROOM_MISMATCH | c::UNAUTHORIZED | c::READ_ONLY
                )
            }
            ProtocolError::Decode(DecodeError::UnsupportedVersion { .. })
            | ProtocolError::RoomMismatch { .. }
            | ProtocolError::SameReplicaId(_) => true,
            _ => false,
        }
    }
}

/// Why [`crate::Replica::repair`] could not re-issue a restored replica's
/// writes. Nothing changed; the replica stays offline (its links are
/// refused) until the cause is fixed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RepairError {
    /// No repair is pending.
    #[error("no repair is pending")]
    NotNeeded,
    /// A local transaction is not stored yet: store the pending records,
    /// call `persisted`, and try again.
    #[error("local transactions are not stored yet; store the pending records and try again")]
    NotDurable,
    /// The snapshot given is not the replica's latest stored one.
    #[error("the snapshot given is not this replica's latest stored snapshot")]
    BaseMismatch,
    /// The snapshot given does not decode.
    #[error("the snapshot given is corrupt: {0}")]
    Decode(#[from] DecodeError),
    /// The writes to re-issue are no longer separable from the rest of the
    /// state.
    #[error("cannot re-issue this replica's writes: {0}")]
    Unrepairable(String),
}
