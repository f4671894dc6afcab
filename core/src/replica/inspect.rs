//! What an inspector shows beside [`Replica::stats`]: the last transactions
//! with their dependencies and the keys they touched, what waits in the
//! causal buffer and for what, and the shape of a list or text. Stats are
//! cheap counters kept always; the history here is opt-in
//! ([`Replica::set_history`]), because it copies every transaction's keys.

use super::*;

/// A delivered transaction, as the inspector shows it.
#[derive(Clone, PartialEq, Debug)]
pub struct TxnSummary {
    /// The replica that made it.
    pub origin: ReplicaId,
    /// Its seq there.
    pub seq: u64,
    /// Its dependencies as delivered (sparse: `(origin, seq - 1)` is
    /// implied; entries for dots its effects observe are included).
    pub deps: VectorClock,
    /// The objects it touched, in the transaction's order.
    pub keys: Vec<Key>,
    /// Made by this replica (not delivered from a peer).
    pub local: bool,
}

/// A transaction held in the causal buffer, and what it waits for.
#[derive(Clone, PartialEq, Debug)]
pub struct BufferedTxn {
    /// Its origin.
    pub origin: ReplicaId,
    /// Its seq.
    pub seq: u64,
    /// The dependencies this replica has not delivered yet: per replica,
    /// the seq that must arrive first.
    pub waits_for: VectorClock,
}

/// The shape of a `list` or `text` in memory.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SeqStats {
    /// Runs (stretches of consecutive elements kept as one).
    pub runs: u64,
    /// Elements in the ordering skeleton, deleted ones included.
    pub elements: u64,
    /// Visible elements (code points or list items).
    pub visible: u64,
    /// Deleted elements still kept for ordering (`elements - visible`).
    pub tombstones: u64,
    /// The visible length in UTF-16 units (a JavaScript string's
    /// `length`; for a list, its elements).
    pub utf16: u64,
}

impl Replica {
    /// Keeps summaries of the last `n` delivered transactions (local and
    /// remote) for [`Replica::history`]; 0 (the default) keeps none.
    pub fn set_history(&mut self, n: usize) {
        self.history_cap = n;
        while self.history.len() > n {
            self.history.pop_front();
        }
    }

    /// The last delivered transactions, oldest first (see
    /// [`Replica::set_history`]).
    pub fn history(&self) -> impl ExactSizeIterator<Item = &TxnSummary> + '_ {
        self.history.iter()
    }

    /// Up to `limit` transactions of the causal buffer, by origin and seq,
    /// each with what it still waits for.
    pub fn buffered(&self, limit: usize) -> Vec<BufferedTxn> {
        self.buffer
            .iter()
            .take(limit)
            .map(|w| {
                let t = &w.txn;
                let mut waits_for = VectorClock::new();
                if self.clock.get(t.origin).saturating_add(1) < t.seq {
                    waits_for.raise(t.origin, t.seq - 1);
                }
                for (r, s) in t.deps.iter() {
                    if r != t.origin && self.clock.get(r) < s {
                        waits_for.raise(r, s);
                    }
                }
                BufferedTxn {
                    origin: t.origin,
                    seq: t.seq,
                    waits_for,
                }
            })
            .collect()
    }

    /// The shape of the `list` or `text` at `key` (all zero if it was never
    /// written); `None` for other types.
    pub fn seq_stats(&self, key: &Key) -> Option<SeqStats> {
        let (runs, elements, visible, utf16) = match self.objects.get(key) {
            None if matches!(key.ty, CrdtType::List | CrdtType::Text) => (0, 0, 0, 0),
            None => return None,
            Some(s) => s.seq_shape()?,
        };
        Some(SeqStats {
            runs,
            elements,
            visible,
            tombstones: elements - visible,
            utf16,
        })
    }

    /// Notes a delivered transaction for the history, if it is kept.
    pub(super) fn note_history(&mut self, txn: &Txn, local: bool) {
        if self.history_cap == 0 {
            return;
        }
        if self.history.len() == self.history_cap {
            self.history.pop_front();
        }
        self.history.push_back(TxnSummary {
            origin: txn.origin,
            seq: txn.seq,
            deps: txn.deps.clone(),
            keys: txn.effects.iter().map(|(k, _)| k.clone()).collect(),
            local,
        });
    }

    /// Notes the local transaction just logged at `start`, if history is
    /// kept (decoded back from the log, so the hot path pays nothing).
    pub(super) fn note_local_history(&mut self, start: usize, len: usize) {
        if self.history_cap == 0 {
            return;
        }
        if let Ok(txn) = Txn::decode(&self.log_bytes[start..start + len]) {
            self.note_history(&txn, true);
        }
    }
}
