//! Repair of a replica restored from an older copy of its file: its
//! writes from the first reused seq are re-issued under a new id.

use super::*;

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

/// The id a restored replica re-issues its writes under: a hash of the old
/// id, the first reused seq and the re-issued transactions (so two copies
/// that made the same writes pick the same id and the same transactions),
/// never 0, the old id or an id the clock knows.
pub(super) fn reissue_id(
    old: ReplicaId,
    from: u64,
    txns: &[&[u8]],
    clock: &VectorClock,
) -> ReplicaId {
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

impl Replica {
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

    /// A trusted peer holds our seq `seq` with other bytes: every link is
    /// closed and refused until the binding calls [`Replica::repair`].
    pub(super) fn begin_repair(&mut self, seq: u64, from: Option<LinkId>) {
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
}
