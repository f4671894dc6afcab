//! The causal buffer: remote transactions that arrived before their
//! dependencies, held until they can be delivered. Generic over what is
//! held, so the relay can buffer bare headers with the same rules.

use std::collections::BTreeMap;

use crate::clock::{ReplicaId, VectorClock};
use crate::wire::{Txn, TxnBytes};

/// A transaction waiting in the buffer: decoded, plus its bytes for the log.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub txn: Txn,
    pub bytes: TxnBytes,
}

/// Something with a transaction's identity and dependencies.
pub trait Causal {
    /// The replica that made the transaction.
    fn origin(&self) -> ReplicaId;
    /// Its seq at that replica (≥ 1).
    fn seq(&self) -> u64;
    /// Its dependencies, sparse as on the wire: `(origin, seq - 1)` is
    /// implied.
    fn deps(&self) -> &VectorClock;
    /// The bytes it holds, counted against the buffer's byte limit.
    fn size(&self) -> usize {
        0
    }
}

impl Causal for Waiting {
    fn origin(&self) -> ReplicaId {
        self.txn.origin
    }
    fn seq(&self) -> u64 {
        self.txn.seq
    }
    fn deps(&self) -> &VectorClock {
        &self.txn.deps
    }
    fn size(&self) -> usize {
        // The bytes, plus about as much again for the decoded effects.
        2 * self.bytes.len()
    }
}

impl Causal for crate::wire::TxnHeader {
    fn origin(&self) -> ReplicaId {
        self.origin
    }
    fn seq(&self) -> u64 {
        self.seq
    }
    fn deps(&self) -> &VectorClock {
        &self.deps
    }
}

/// A range of transactions of one origin that this replica lacks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MissingRange {
    /// The origin replica.
    pub origin: ReplicaId,
    /// First missing seq.
    pub from: u64,
    /// Last missing seq (inclusive).
    pub to: u64,
}

/// Bounded buffer of undeliverable transactions, indexed by origin and seq.
#[derive(Debug)]
pub struct CausalBuffer<T> {
    by_origin: BTreeMap<ReplicaId, BTreeMap<u64, Held<T>>>,
    /// Bytes held per origin (as [`Causal::size`] counts them).
    origin_bytes: BTreeMap<ReplicaId, usize>,
    /// The highest dependency on each replica of any transaction offered
    /// since the buffer was last empty, so [`CausalBuffer::missing`] costs
    /// O(replicas), not O(held transactions): it runs after every batch.
    /// It may still name a dependency of a transaction since evicted, which
    /// only asks a peer for something a little early.
    deps_max: BTreeMap<ReplicaId, u64>,
    len: usize,
    capacity: usize,
    bytes: usize,
    max_bytes: usize,
    /// An origin's share of the count and the bytes: one that holds more
    /// is evicted from first when the buffer is full.
    origin_capacity: usize,
    origin_max_bytes: usize,
    /// The time [`CausalBuffer::offer`] stamps entries with.
    now: u64,
}

/// A held entry with the time it arrived.
#[derive(Debug)]
struct Held<T> {
    item: T,
    since: u64,
}

/// What happened to a transaction offered to the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    /// Now held; `evicted` if a higher seq of the same origin was dropped
    /// to make room.
    Held {
        /// Whether another transaction was evicted.
        evicted: bool,
    },
    /// Already held.
    Duplicate,
    /// The buffer is full; the transaction was dropped and must be fetched
    /// again later.
    Dropped,
}

impl<T: Causal> CausalBuffer<T> {
    /// An empty buffer that holds at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, usize::MAX)
    }

    /// An empty buffer that holds at most `capacity` transactions and
    /// `max_bytes` bytes (as [`Causal::size`] counts them). When it is
    /// full, an origin holding more than a quarter of either gives up its
    /// newest entries first. One transaction is always accepted, whatever
    /// its size, so a large one can wait.
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            by_origin: BTreeMap::new(),
            origin_bytes: BTreeMap::new(),
            deps_max: BTreeMap::new(),
            len: 0,
            capacity,
            bytes: 0,
            max_bytes,
            origin_capacity: (capacity / 4).max(1),
            origin_max_bytes: max_bytes / 4,
            now: 0,
        }
    }

    /// Sets the time that entries offered from now on are stamped with
    /// (any monotonic unit: the caller's milliseconds).
    pub fn set_now(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    /// Drops entries held since before `cutoff` (their dependencies never
    /// came; they are fetched again when they can be delivered). Returns
    /// how many were dropped.
    pub fn expire(&mut self, cutoff: u64) -> usize {
        self.drop_where(|_, _, h| h.since < cutoff)
    }

    /// The bytes held, as [`Causal::size`] counts them.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// How many transactions are held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Holds `w`. When full, the newest transaction loses: if `w` has a
    /// higher seq than the highest held entry of its origin, or that origin
    /// holds nothing, `w` is dropped; otherwise the origin's highest entry is
    /// evicted to make room, because lower seqs unblock delivery sooner.
    pub fn offer(&mut self, w: T) -> Offer {
        let origin = w.origin();
        let seq = w.seq();
        if self
            .by_origin
            .get(&origin)
            .is_some_and(|m| m.contains_key(&seq))
        {
            return Offer::Duplicate;
        }
        let mut evicted = false;
        let size = w.size();
        // Over a limit, an origin that holds more than its share (a quarter)
        // gives up its newest entry first, so one sender cannot fill the
        // buffer for everyone; otherwise the newest entries of this origin
        // make room, as long as they are newer than `w`, or `w` is dropped.
        while self.len > 0
            && (self.len >= self.capacity || self.bytes.saturating_add(size) > self.max_bytes)
        {
            let victim = match self.hog() {
                Some(h) if h != origin => h,
                _ => origin,
            };
            let Some(m) = self.by_origin.get_mut(&victim) else {
                return Offer::Dropped;
            };
            let Some((&top, _)) = m.iter().next_back() else {
                return Offer::Dropped;
            };
            if victim == origin && top < seq {
                return Offer::Dropped;
            }
            let gone = m.remove(&top).expect("present");
            if m.is_empty() {
                self.by_origin.remove(&victim);
            }
            let s = gone.item.size();
            self.bytes -= s;
            if let Some(b) = self.origin_bytes.get_mut(&victim) {
                *b -= s;
                if !self.by_origin.contains_key(&victim) {
                    self.origin_bytes.remove(&victim);
                }
            }
            self.len -= 1;
            evicted = true;
        }
        for (r, s) in w.deps().iter() {
            if r != origin {
                let e = self.deps_max.entry(r).or_default();
                *e = (*e).max(s);
            }
        }
        let since = self.now;
        self.by_origin
            .entry(origin)
            .or_default()
            .insert(seq, Held { item: w, since });
        *self.origin_bytes.entry(origin).or_default() += size;
        self.len += 1;
        self.bytes += size;
        Offer::Held { evicted }
    }

    /// The origin that holds the most among those past their share of the
    /// count or of the bytes.
    fn hog(&self) -> Option<ReplicaId> {
        self.by_origin
            .iter()
            .map(|(o, m)| (*o, m.len(), self.origin_bytes.get(o).copied().unwrap_or(0)))
            .filter(|(_, n, b)| *n > self.origin_capacity || *b > self.origin_max_bytes)
            .max_by_key(|(_, n, b)| (*n, *b))
            .map(|(o, ..)| o)
    }

    /// Drops every held entry `drop` picks, keeping the counts right;
    /// returns how many went.
    fn drop_where(&mut self, mut drop: impl FnMut(ReplicaId, u64, &Held<T>) -> bool) -> usize {
        let mut dropped = 0;
        let mut freed = 0;
        let origin_bytes = &mut self.origin_bytes;
        self.by_origin.retain(|origin, m| {
            let before = m.len();
            m.retain(|seq, h| {
                let keep = !drop(*origin, *seq, h);
                if !keep {
                    let s = h.item.size();
                    freed += s;
                    if let Some(b) = origin_bytes.get_mut(origin) {
                        *b -= s;
                    }
                }
                keep
            });
            dropped += before - m.len();
            if m.is_empty() {
                origin_bytes.remove(origin);
            }
            !m.is_empty()
        });
        self.bytes -= freed;
        self.len -= dropped;
        if self.len == 0 {
            self.deps_max.clear();
        }
        dropped
    }

    /// Every held transaction, by origin, then seq.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.by_origin
            .values()
            .flat_map(|m| m.values().map(|h| &h.item))
    }

    /// The held transaction `(origin, seq)`, if any.
    pub fn get(&self, origin: ReplicaId, seq: u64) -> Option<&T> {
        self.by_origin.get(&origin)?.get(&seq).map(|h| &h.item)
    }

    /// Removes and returns one transaction deliverable at `clock`, if any:
    /// the next seq of some origin whose dependencies `clock` covers.
    pub fn pop_ready(&mut self, clock: &VectorClock) -> Option<T> {
        let mut found = None;
        for (origin, m) in &self.by_origin {
            let Some(next) = clock.get(*origin).checked_add(1) else {
                continue;
            };
            if let Some(w) = m.get(&next).map(|h| &h.item) {
                if w.deps()
                    .iter()
                    .all(|(r, s)| r == *origin || clock.get(r) >= s)
                {
                    found = Some((*origin, next));
                    break;
                }
            }
        }
        let (origin, seq) = found?;
        let m = self.by_origin.get_mut(&origin)?;
        let w = m.remove(&seq)?.item;
        if m.is_empty() {
            self.by_origin.remove(&origin);
        }
        self.len -= 1;
        let s = w.size();
        self.bytes -= s;
        if let Some(b) = self.origin_bytes.get_mut(&origin) {
            *b -= s;
            if !self.by_origin.contains_key(&origin) {
                self.origin_bytes.remove(&origin);
            }
        }
        if self.len == 0 {
            self.deps_max.clear();
        }
        Some(w)
    }

    /// Drops everything `clock` already covers (after a snapshot merge).
    pub fn drop_covered(&mut self, clock: &VectorClock) -> usize {
        self.drop_where(|origin, seq, _| seq <= clock.get(origin))
    }

    /// The ranges this replica must fetch before the buffer can drain: for
    /// each origin, the gap before its lowest held seq, and for each held
    /// transaction's dependencies, the seqs not yet delivered.
    pub fn missing(&self, clock: &VectorClock) -> Vec<MissingRange> {
        let mut need = self.deps_max.clone();
        for (origin, m) in &self.by_origin {
            if let Some((&lowest, _)) = m.iter().next() {
                let e = need.entry(*origin).or_default();
                *e = (*e).max(lowest - 1);
            }
        }
        need.into_iter()
            .filter_map(|(origin, upto)| {
                let have = clock.get(origin);
                (upto > have).then_some(MissingRange {
                    origin,
                    from: have + 1,
                    to: upto,
                })
            })
            .collect()
    }
}
