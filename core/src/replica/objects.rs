//! Objects: reads, and local transactions from updates to one logged
//! effect per key (every effect prepared before any is applied).

use super::*;
use crate::types::{compose, has_deltas, SeqEdit, LARGE_OBSERVED};

/// A frame's bytes around one transaction's effects: version, tag, count,
/// origin, seq, deps (generously) and the blob length.
pub(super) const TXN_FRAME_OVERHEAD: usize = 64;

/// Bound on interned key strings, so hostile peers cannot grow it forever.
pub(super) const MAX_INTERNED: usize = 100_000;

/// The shared copy of `s` in `strings`, added if new (up to
/// [`MAX_INTERNED`] strings, so hostile peers cannot grow it forever).
pub(super) fn intern_in(strings: &mut crate::hashing::KeyedSet<Arc<str>>, s: &str) -> Arc<str> {
    if let Some(a) = strings.get(s) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(s);
    if strings.len() < MAX_INTERNED {
        strings.insert(a.clone());
    }
    a
}

/// The sparse deps of the next local transaction: the entries that grew since
/// the previous one (or the whole clock after a restart or snapshot merge).
pub(super) fn current_deps(
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

impl Replica {
    /// The current value of one object (without waiting for anything).
    pub fn value(&self, key: &Key) -> Value {
        match self.objects.get(key) {
            Some(s) => s.value(),
            None => State::bottom(key.ty).value(),
        }
    }

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
    pub(super) fn deps_len(&self) -> usize {
        let entries = if self.deps_full {
            self.clock.len()
        } else {
            self.changed.len()
        };
        2 + 18 * entries
    }

    /// Refuses a transaction of `size` bytes that no frame could carry.
    pub(super) fn check_size(&self, size: usize) -> Result<(), UpdateError> {
        let limit = self.config.max_frame_bytes;
        if size > limit {
            return Err(UpdateError::TooLarge { size, limit });
        }
        Ok(())
    }

    pub(super) fn deliverable(&self, txn: &Txn) -> bool {
        txn.seq - 1 == self.clock.get(txn.origin)
            && txn
                .deps
                .iter()
                .all(|(r, s)| r == txn.origin || self.clock.get(r) >= s)
    }

    /// Creates, applies and records one local transaction.
    pub(super) fn commit_local(
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
        // when the effect's size is bounded by the op (see `unmeasured`).
        if updates.len() == 1 {
            // The common case, with one hash lookup and no effect list.
            let Update { key, op } = updates.pop().expect("one update");
            let deps_len = self.deps_len();
            let limit = self.config.max_frame_bytes;
            let origin = self.id;
            let record = self.config.emit_changes && has_deltas(key.ty);
            let mut rec = Vec::new();
            let room = limit.saturating_sub(TXN_FRAME_OVERHEAD + deps_len + key_bytes(&key));
            let effect = with_state(&mut self.objects, &key, key.ty, |st| {
                if unmeasured(st.tokens(), &[(0, &op)], room) {
                    if record {
                        return st.prepare_apply_recording(&[(0, &op)], origin, dot, &mut rec);
                    }
                    return prepare_apply(st, &[(0, &op)], origin, dot);
                }
                // An effect whose size depends on the state: measure it
                // before applying.
                let effect = prepare(key.ty, Some(st), &[(0, &op)], origin)?;
                let mut w = Writer::new();
                key.encode(&mut w);
                effect.encode(&mut w);
                let size = TXN_FRAME_OVERHEAD + deps_len + w.len();
                if size > limit {
                    return Err(UpdateError::TooLarge { size, limit });
                }
                if record {
                    st.apply_recording(&effect, dot, &mut rec);
                } else {
                    st.apply(&effect, dot);
                }
                Ok(effect)
            })?;
            self.push_delta(&key, rec);
            let deps = current_deps(self.id, &self.clock, &self.changed, self.deps_full);
            let mut w = Writer::from_vec(std::mem::take(&mut self.log_bytes));
            crate::wire::encode_txn(&mut w, self.id, seq, &deps, &[(&key, &effect)]);
            self.log_bytes = w.into_vec();
            if self.config.emit_changes {
                changed_keys.push(key);
            }
        } else {
            // Applied, and logged at `start`.
            let effects = self.prepare_and_apply(&updates, dot, seq)?;
            if self.config.emit_changes {
                changed_keys.extend(effects.into_iter().map(|(k, _)| k));
            }
        }
        let len = self.log_bytes.len() - start;
        self.changed.clear();
        self.deps_full = false;
        self.clock.raise(self.id, seq);
        self.log_push(self.id, seq, start, len, true);
        self.note_local_history(start, len);
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
            if self.config.emit_local_updates {
                let frame = crate::wire::txns_frame(std::iter::once(bytes));
                self.events.push_back(Event::LocalUpdate(frame));
            }
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

    /// Validates nothing (the caller did), folds the updates, grouped by key
    /// in order of first appearance, into one effect per key, applies them
    /// at `dot` and appends the transaction (`seq`) to the log's bytes. All
    /// or nothing: every effect is prepared (any type's prepare may fail)
    /// and the transaction encoded and measured before any is applied.
    pub(super) fn prepare_and_apply(
        &mut self,
        updates: &[Update],
        dot: Dot,
        seq: u64,
    ) -> Result<Vec<(Key, Effect)>, UpdateError> {
        // Group by key without a vector per key: number the keys, then
        // lay the ops out by group (a counting sort keeps each group's
        // order), so a batch over a thousand keys makes four allocations,
        // not a thousand.
        let mut index: KeyedMap<&Key, usize> =
            KeyedMap::with_capacity_and_hasher(updates.len(), Default::default());
        let mut keys: Vec<&Key> = Vec::new();
        let mut group_of: Vec<usize> = Vec::with_capacity(updates.len());
        let mut last: Option<usize> = None;
        for u in updates {
            // Batches often hit one key many times in a row: skip the hash.
            let g = match last.filter(|&g| *keys[g] == u.key) {
                Some(g) => g,
                None => *index.entry(&u.key).or_insert_with(|| {
                    keys.push(&u.key);
                    keys.len() - 1
                }),
            };
            group_of.push(g);
            last = Some(g);
        }
        drop(index);
        let mut bounds = vec![0usize; keys.len() + 1];
        for &g in &group_of {
            bounds[g + 1] += 1;
        }
        for g in 0..keys.len() {
            bounds[g + 1] += bounds[g];
        }
        let mut order = vec![0usize; updates.len()];
        let mut next = bounds.clone();
        for (i, &g) in group_of.iter().enumerate() {
            order[next[g]] = i;
            next[g] += 1;
        }
        let flat: Vec<(usize, &Op)> = order.iter().map(|&i| (i, &updates[i].op)).collect();
        let ops_of = |g: usize| &flat[bounds[g]..bounds[g + 1]];
        let origin = self.id;
        let deps_len = self.deps_len();
        let deps = current_deps(self.id, &self.clock, &self.changed, self.deps_full);
        if let [key] = keys.as_slice() {
            // One object: prepare and apply in one lookup, unless the effect
            // may be large and must be measured first.
            let (key, ops) = (*key, ops_of(0));
            let tokens = self.objects.get(key).map_or(0, State::tokens);
            let room = self
                .config
                .max_frame_bytes
                .saturating_sub(TXN_FRAME_OVERHEAD + deps_len + key_bytes(key));
            if unmeasured(tokens, ops, room) {
                let record = self.config.emit_changes && has_deltas(key.ty);
                let mut rec = Vec::new();
                let effect = with_state(&mut self.objects, key, key.ty, |st| {
                    if record {
                        st.prepare_apply_recording(ops, origin, dot, &mut rec)
                    } else {
                        prepare_apply(st, ops, origin, dot)
                    }
                })?;
                self.push_delta(key, rec);
                let mut w = Writer::from_vec(std::mem::take(&mut self.log_bytes));
                crate::wire::encode_txn(&mut w, origin, seq, &deps, &[(key, &effect)]);
                self.log_bytes = w.into_vec();
                return Ok(vec![(key.clone(), effect)]);
            }
        }
        let mut effects = Vec::with_capacity(keys.len());
        for (g, key) in keys.iter().enumerate() {
            let effect = prepare(key.ty, self.objects.get(*key), ops_of(g), origin)?;
            effects.push(((*key).clone(), effect));
        }
        // Encoded straight into the log, measured there, and taken back if
        // no frame could carry it.
        let refs: Vec<(&Key, &Effect)> = effects.iter().map(|(k, e)| (k, e)).collect();
        let start = self.log_bytes.len();
        let mut w = Writer::from_vec(std::mem::take(&mut self.log_bytes));
        let blob = crate::wire::encode_txn(&mut w, origin, seq, &deps, &refs);
        self.log_bytes = w.into_vec();
        drop(refs);
        // The same measure as before this encoding: overhead, deps, and
        // each key with its effect (the blob less its count).
        let mut count = Writer::new();
        count.varint(effects.len() as u64);
        if let Err(e) = self.check_size(TXN_FRAME_OVERHEAD + deps_len + blob - count.len()) {
            self.log_bytes.truncate(start);
            return Err(e);
        }
        self.apply_effects(&effects, dot);
        Ok(effects)
    }

    pub(super) fn apply_effects(&mut self, effects: &[(Key, Effect)], dot: Dot) {
        for (k, e) in effects {
            if self.config.emit_changes && has_deltas(k.ty) {
                let mut rec = Vec::new();
                let _ = with_state(&mut self.objects, k, e.ty(), |s| {
                    s.apply_recording(e, dot, &mut rec);
                    Ok::<(), std::convert::Infallible>(())
                });
                self.push_delta(k, rec);
            } else {
                apply_at(&mut self.objects, k, e, dot);
            }
        }
    }

    /// Emits the delta of recorded list or text edits (before the
    /// transaction's [`Event::Changed`]).
    pub(super) fn push_delta(&mut self, key: &Key, rec: Vec<SeqEdit>) {
        if !rec.is_empty() {
            self.events.push_back(Event::Delta {
                key: key.clone(),
                delta: compose(&rec),
            });
        }
    }

    /// Applies a remote (or replayed) transaction, advances the clock and
    /// logs its bytes.
    pub(super) fn apply_txn(&mut self, txn: &Txn, bytes: &[u8], local: bool) {
        self.apply_effects(&txn.effects, Dot::new(txn.origin, txn.seq));
        self.clock.raise(txn.origin, txn.seq);
        if txn.origin != self.id && !self.changed.contains(&txn.origin) {
            self.changed.push(txn.origin);
        }
        let start = self.log_bytes.len();
        self.log_bytes.extend_from_slice(bytes);
        self.log_push(txn.origin, txn.seq, start, bytes.len(), local);
    }
}

/// The encoded size of a key, generously.
#[inline]
fn key_bytes(k: &Key) -> usize {
    k.key.len() + k.bucket.len() + 12
}

/// True if the effect of `ops` on an object with `tokens` observed tokens
/// cannot be much larger than the ops
/// themselves (which `update_objects` measured), so it may be applied as
/// it is prepared, without encoding it first: counter ops (a counter's
/// effect has a constant size), or one op on one element or value of an
/// object with few observed tokens. Anything else (several set ops, a
/// reset, a map field) is prepared, measured and only then applied, so a
/// transaction too large for a frame is refused whole.
///
/// List and text ops qualify when even the largest effect they could have
/// fits in `room` (the frame bytes the rest of the transaction leaves):
/// an insert is its content and two ids, and a delete names at most one id
/// range per run the object holds (`tokens`), plus the runs earlier ops of
/// the batch split.
#[inline]
fn unmeasured(tokens: usize, ops: &[(usize, &Op)], room: usize) -> bool {
    if ops
        .iter()
        .all(|(_, op)| matches!(op, Op::Increment(_) | Op::Decrement(_)))
    {
        return true;
    }
    if ops.iter().all(|(_, op)| {
        matches!(
            op,
            Op::Insert(..) | Op::InsertAll(..) | Op::Delete(..) | Op::Splice(..)
        )
    }) {
        const PIECE: usize = 64;
        let runs = tokens.saturating_add(2 * ops.len());
        let bound = ops.iter().fold(0usize, |acc, (_, op)| {
            let del = match op {
                Op::Delete(..) | Op::Splice(..) => runs.saturating_mul(PIECE),
                _ => 0,
            };
            acc.saturating_add(PIECE + op.values_len())
                .saturating_add(del)
        });
        return bound <= room;
    }
    match ops {
        [(_, op)] => {
            matches!(
                op,
                Op::Add(_) | Op::Remove(_) | Op::Assign(_) | Op::Enable | Op::Disable
            ) && tokens < LARGE_OBSERVED
        }
        _ => false,
    }
}
