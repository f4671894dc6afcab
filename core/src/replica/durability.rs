//! Durability: the records a binding stores, acknowledgements once they
//! are persisted, and which own writes peers have confirmed.

use super::*;

/// Most own transactions, and bytes of them, kept past a snapshot for
/// comparison with peers' copies (restored backups); older ones count as
/// confirmed.
pub(super) const MAX_UNCONFIRMED: usize = 10_000;

/// Most log bytes kept past `snapshot_every` while own writes wait for a
/// peer to confirm them (see `Replica::holding_unsent`).
pub(super) const MAX_UNSENT_LOG_BYTES: usize = 32 << 20;

pub(super) const MAX_UNCONFIRMED_BYTES: usize = 16 << 20;

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

impl Replica {
    /// Whether every established link's peer has reported (with `Stored`)
    /// that it durably stored every transaction this replica made, so a
    /// replica that goes away now loses nothing (the basis of the bindings'
    /// `flush`). False with no established link, or while a local
    /// transaction is not stored here yet.
    pub fn stored_everywhere(&self) -> bool {
        // While our seqs are being compared with a peer's copies, or a
        // repair waits, what a peer holds may be another lineage's.
        if self.repair_from.is_some() {
            return false;
        }
        let own = self.clock.get(self.id);
        let mut any = false;
        for l in self.links.values().filter(|l| l.peer.is_some()) {
            any = true;
            if l.hold > 0 || l.stored.get(self.id) < own {
                return false;
            }
        }
        any && self.all_local_durable()
    }

    /// Queues a `Stored` frame on every established link whose peer has
    /// more of its own writes stored here than it was told.
    pub(super) fn tell_stored(&mut self) {
        for (id, l) in self.links.iter_mut() {
            let Some(peer) = l.peer else { continue };
            let have = self.stored_here.get(peer);
            if have > l.stored_told {
                l.stored_told = have;
                let c: VectorClock = [(peer, have)].into_iter().collect();
                self.transmits.push_back(Transmit {
                    link: *id,
                    frame: Frame::Stored(c).encode(),
                });
            }
        }
    }

    /// Notes that a snapshot record at `lsn` (persistent) or the state in
    /// memory holds others' writes up to `clock`.
    pub(super) fn note_stored(&mut self, lsn: Option<u64>, clock: &VectorClock) {
        match lsn {
            Some(lsn) => self.unstored.extend(
                clock
                    .iter()
                    .filter(|(r, _)| *r != self.id)
                    .map(|(r, s)| (lsn, r, s)),
            ),
            None => {
                self.stored_here.merge(clock);
                self.stored_dirty = true;
            }
        }
    }

    /// The next record to store. Store records in order.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// Reports that every record up to `lsn` is durably stored. Releases the
    /// acknowledgements and broadcasts of local transactions they hold.
    pub fn persisted(&mut self, lsn: u64) {
        while self.unstored.front().is_some_and(|u| u.0 <= lsn) {
            let (_, origin, seq) = self.unstored.pop_front().expect("checked");
            self.stored_here.raise(origin, seq);
            self.stored_dirty = true;
        }
        let mut released = false;
        let mut local_updates: Vec<TxnBytes> = Vec::new();
        while self.unacked.front().is_some_and(|u| u.lsn <= lsn) {
            let u = self.unacked.pop_front().expect("checked");
            self.durable_seq = self.durable_seq.max(u.seq);
            if let Some((ticket, clock)) = u.ack {
                self.events.push_back(Event::Committed { ticket, clock });
            }
            if self.config.emit_local_updates {
                local_updates.push(u.bytes.clone());
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
        for frame in crate::wire::txns_frames(&local_updates, self.config.max_frame_bytes) {
            self.events.push_back(Event::LocalUpdate(frame));
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

    pub(super) fn lsn(&mut self) -> u64 {
        let l = self.next_lsn;
        self.next_lsn += 1;
        l
    }

    pub(super) fn all_local_durable(&self) -> bool {
        self.durable_seq >= self.clock.get(self.id)
    }

    /// Our clock as a link's `Hello` announces it: our own entry only up to
    /// what was compared with a peer's copies, so a peer that has more of
    /// our seqs sends them back to be compared (a restored backup is found
    /// before it builds on another lineage's seqs).
    pub(super) fn verifying_clock(&self) -> VectorClock {
        let mut c = self.advertised_clock();
        if self.config.persistent && self.confirmed < c.get(self.id) {
            c = c.iter().filter(|(r, _)| *r != self.id).collect();
            c.raise(self.id, self.confirmed);
        }
        c
    }

    /// The peer on `link`, which we are not holding, announced our seq
    /// `theirs`: what it has of ours up to what we sent it on this link is
    /// our copy (a copy with other bytes would have been refused).
    pub(super) fn confirm_sent(&mut self, link: LinkId, theirs: u64) {
        if let Some(l) = self.links.get(&link) {
            if l.hold == 0 && l.peer.is_some() {
                let upto = theirs.min(l.sent_own);
                self.confirm(upto);
                // A snapshot that waited for these writes can happen now.
                if self.config.snapshot_every > 0
                    && self.records_since_snapshot >= self.config.snapshot_every
                    && !self.holding_unsent()
                {
                    self.snapshot();
                }
            }
        }
    }

    /// Links whose peer's copies of our seqs are now all compared get our
    /// later writes.
    pub(super) fn release_holds(&mut self) {
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

    /// Our clock as we announce it: without local transactions that are
    /// not durable yet.
    pub(super) fn advertised_clock(&self) -> VectorClock {
        if self.all_local_durable() {
            return self.clock.clone();
        }
        let mut c: VectorClock = self.clock.iter().filter(|(r, _)| *r != self.id).collect();
        c.raise(self.id, self.durable_seq);
        c
    }

    /// Our own seqs up to `seq` match a peer's copies.
    pub(super) fn confirm(&mut self, seq: u64) {
        if seq <= self.confirmed {
            return;
        }
        self.confirmed = seq;
        while self.unconfirmed.front().is_some_and(|(s, _)| *s <= seq) {
            self.unconfirmed.pop_front();
        }
    }

    pub(super) fn after_record(&mut self) {
        self.records_since_snapshot += 1;
        if self.config.snapshot_every > 0
            && self.records_since_snapshot >= self.config.snapshot_every
            && !self.holding_unsent()
        {
            self.snapshot();
        }
    }

    /// Whether the automatic snapshot of a memory replica waits: own
    /// writes no trusted peer has confirmed stay in the log, up to
    /// [`MAX_UNSENT_LOG_BYTES`] of log. Pruned, they could reach a relay
    /// only inside a snapshot, which a relay takes from no writer: a script
    /// that writes more than `snapshot_every` times before its first link
    /// would lose them. (A durable replica keeps them in its store, and
    /// its snapshots keep the unconfirmed ones; see the notes on issue 15.)
    fn holding_unsent(&self) -> bool {
        !self.config.persistent
            && self.clock.get(self.id) > self.confirmed
            && self.log_bytes.len() < MAX_UNSENT_LOG_BYTES
    }
}
