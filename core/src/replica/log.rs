//! The log of delivered transactions, snapshots and catch-up: what a peer
//! lacks, as transactions or as the whole state.

use super::*;
use crate::types::{diff, has_deltas};

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

pub(super) enum Lacking<'a> {
    Entries(Vec<&'a LogEntry>),
    Snapshot,
}

impl Replica {
    pub(super) fn load_snapshot(&mut self, snap: Snapshot) {
        self.objects = snap.objects.into_iter().collect();
        self.clock = snap.clock.clone();
        self.log_base = snap.clock;
        self.log.clear();
        self.log_bytes.clear();
        self.log_index.clear();
    }

    // ----- getters -----

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
            let old = (self.config.emit_changes && has_deltas(k.ty)).then(|| mine.value());
            mine.join(&self.clock, s, theirs);
            if let Some(old) = old {
                let delta = diff(&old, &mine.value());
                if !delta.is_empty() {
                    self.events.push_back(Event::Delta {
                        key: k.clone(),
                        delta,
                    });
                }
            }
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
        let before = self.next_lsn;
        self.snapshot();
        // What the snapshot brought is stored once its record is (not at
        // all while a repair holds snapshots back).
        if !self.config.persistent {
            self.note_stored(None, theirs);
        } else if self.next_lsn > before {
            self.note_stored(Some(self.next_lsn - 1), theirs);
        }
        self.release_holds();
        self.drain_buffer();
        self.run_pending();
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

    pub(super) fn lacking(&self, theirs: &VectorClock) -> Lacking<'_> {
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

    pub(super) fn log_txn(&self, e: &LogEntry) -> TxnBytes {
        Arc::from(&self.log_bytes[e.start..e.start + e.len])
    }

    pub(super) fn log_push(
        &mut self,
        origin: ReplicaId,
        seq: u64,
        start: usize,
        len: usize,
        local: bool,
    ) {
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
    pub(super) fn logged(&self, origin: ReplicaId, seq: u64) -> Option<&[u8]> {
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
}
