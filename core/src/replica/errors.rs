//! Why a link closes, and why a repair cannot run.

use crate::clock::{Dot, ReplicaId};
use crate::error::DecodeError;
use crate::version::error_code;

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
    SameReplicaId(ReplicaId),
    /// A second `Hello` on the link announced another replica id.
    #[error("peer changed its replica id from {was} to {now} on an open link")]
    PeerChanged {
        /// The id from the first Hello.
        was: ReplicaId,
        /// The id from the later Hello.
        now: ReplicaId,
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
        peer: ReplicaId,
        /// The origin it tried to speak for.
        origin: ReplicaId,
    },
    /// The link may only read (its token has the read scope), and it sent
    /// transactions.
    #[error("peer {0} sent transactions on a read-only link; refused")]
    ReadOnlyLink(ReplicaId),
    /// The link sent a snapshot, and only trusted links (a relay this
    /// replica dialed, or a peer with the snapshot scope) may.
    #[error("peer {0} sent a snapshot; this link may not (snapshots need the snapshot scope)")]
    SnapshotForbidden(ReplicaId),
    /// A second copy of a transaction with other bytes: two different
    /// transactions under one dot. The first one is kept.
    #[error("integrity conflict: transaction {0:?} arrived again with other bytes; the first copy is kept and this link is closed")]
    IntegrityConflict(Dot),
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
    RestoredBackup(Dot),
    /// A frame handed to [`crate::Replica::apply_update`] carries no
    /// update (only `Txns`, `Snapshot` and `SnapshotPart` do).
    #[error(
        "a {0} frame carries no update; apply_update takes Txns, Snapshot and SnapshotPart frames"
    )]
    NotAnUpdate(&'static str),
}

impl ProtocolError {
    /// True when reconnecting cannot help until something changes on this
    /// side (a token, the software, the room or a copied database): the
    /// peer refused us as unauthorized, read-only, in another room or on
    /// another protocol version, or it shares our replica id. A binding
    /// stops reconnecting after one of these and reports it.
    pub fn is_permanent(&self) -> bool {
        use error_code as c;
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

/// Why a cursor cannot be made or resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CursorError {
    /// The bytes are not a cursor.
    #[error("not a cursor: {0}")]
    Malformed(#[from] DecodeError),
    /// Cursors point into `list` and `text` objects only.
    #[error("cursors point into list and text objects, not {0}")]
    NotASequence(crate::key::CrdtType),
    /// The index is out of range.
    #[error(transparent)]
    Index(#[from] crate::error::UpdateError),
    /// The cursor's element has not reached this replica yet (the cursor
    /// was made by a replica that is ahead; wait for its writes).
    #[error("the cursor's element {0:?} has not reached this replica yet")]
    Unknown(Dot),
}
