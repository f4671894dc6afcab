//! Counters for observability (DESIGN.md §2.6).

use super::*;

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

impl Replica {
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
}
