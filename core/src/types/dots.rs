//! Dot stores (Almeida et al., *Delta State Replicated Data Types*, 2018).
//!
//! Every causal type keeps its tokens in a [`DotSet`]. A state `s` lives
//! under a causal context `c` (the replica's vector clock), and the join of
//! `(s1, c1)` and `(s2, c2)` keeps a dot when both sides have it, or when one
//! side has it and the other has never seen it:
//!
//! ```text
//! (s1 ∩ s2) ∪ (s1 \ c2) ∪ (s2 \ c1)
//! ```
//!
//! A remote effect is a delta `(s_d, c_d)` whose context is the dots it
//! removes plus its own dot; [`DotSet::apply`] is that join specialised to
//! causal delivery.

use std::collections::BTreeMap;

use crate::clock::{Dot, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::DecodeError;

/// A set of dots, kept sorted. Most elements and flags hold exactly one
/// token, so one dot is stored inline and only two or more take a heap
/// vector: an add-wins add then allocates nothing and frees nothing.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DotSet(Repr);

/// Canonical: `One` for exactly one dot, `Many` for none or two or more
/// (so the derived equality is set equality).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Repr {
    One(Dot),
    Many(Vec<Dot>),
}

impl Default for DotSet {
    fn default() -> Self {
        Self::new()
    }
}

impl DotSet {
    /// The empty set.
    pub fn new() -> Self {
        Self(Repr::Many(Vec::new()))
    }

    /// A set of one dot.
    pub fn single(d: Dot) -> Self {
        Self(Repr::One(d))
    }

    /// From a strictly sorted vector.
    pub(crate) fn from_sorted(mut v: Vec<Dot>) -> Self {
        match v.len() {
            1 => Self(Repr::One(v.pop().expect("one"))),
            _ => Self(Repr::Many(v)),
        }
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The dots, sorted.
    pub fn as_slice(&self) -> &[Dot] {
        match &self.0 {
            Repr::One(d) => std::slice::from_ref(d),
            Repr::Many(v) => v,
        }
    }

    /// The dots, sorted, as a vector.
    pub fn into_vec(self) -> Vec<Dot> {
        match self.0 {
            Repr::One(d) => vec![d],
            Repr::Many(v) => v,
        }
    }

    /// True if `d` is in the set.
    pub fn contains(&self, d: &Dot) -> bool {
        self.as_slice().binary_search(d).is_ok()
    }

    /// Inserts `d`.
    pub fn insert(&mut self, d: Dot) {
        match &mut self.0 {
            Repr::One(x) if *x == d => {}
            Repr::One(x) => {
                let x = *x;
                self.0 = Repr::Many(if x < d { vec![x, d] } else { vec![d, x] });
            }
            Repr::Many(v) if v.is_empty() => self.0 = Repr::One(d),
            Repr::Many(v) => {
                if let Err(i) = v.binary_search(&d) {
                    v.insert(i, d);
                }
            }
        }
    }

    /// Removes every dot of the sorted slice `removed`.
    pub fn remove_all(&mut self, removed: &[Dot]) {
        if removed.is_empty() {
            return;
        }
        match &mut self.0 {
            Repr::One(x) => {
                if removed.binary_search(x).is_ok() {
                    self.0 = Repr::Many(Vec::new());
                }
            }
            Repr::Many(v) => {
                if v.is_empty() {
                    return;
                }
                v.retain(|d| removed.binary_search(d).is_err());
                if v.len() == 1 {
                    self.0 = Repr::One(v[0]);
                }
            }
        }
    }

    /// Applies a causally delivered delta: drop the observed dots `removed`,
    /// then add `add` if given.
    pub fn apply(&mut self, removed: &[Dot], add: Option<Dot>) {
        self.remove_all(removed);
        if let Some(d) = add {
            self.insert(d);
        }
    }

    /// The causal join of `(self, mine)` with `(other, theirs)`.
    pub fn join(&mut self, mine: &VectorClock, other: &DotSet, theirs: &VectorClock) {
        let mut v: Vec<Dot> = self
            .as_slice()
            .iter()
            .filter(|d| other.contains(d) || !theirs.contains(d))
            .copied()
            .collect();
        for d in other.as_slice() {
            if !mine.contains(d) {
                if let Err(i) = v.binary_search(d) {
                    v.insert(i, *d);
                }
            }
        }
        *self = Self::from_sorted(v);
    }
}

impl Codec for DotSet {
    #[inline]
    fn encode(&self, w: &mut Writer) {
        encode_dots(self.as_slice(), w);
    }

    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_dots(r).map(Self::from_sorted)
    }
}

/// Encodes a sorted dot list: count, then `(replica u64 LE, seq varint)`.
pub(crate) fn encode_dots(dots: &[Dot], w: &mut Writer) {
    w.varint(dots.len() as u64);
    for d in dots {
        d.encode(w);
    }
}

/// Decodes a dot list, refusing one that is not strictly sorted.
pub(crate) fn decode_dots(r: &mut Reader<'_>) -> Result<Vec<Dot>, DecodeError> {
    let n = r.count(9)?;
    let mut v: Vec<Dot> = Vec::with_capacity(n);
    for _ in 0..n {
        let d = Dot::decode(r)?;
        if v.last().is_some_and(|p| *p >= d) {
            return Err(DecodeError::NonCanonical("dots not strictly sorted"));
        }
        v.push(d);
    }
    Ok(v)
}

/// Which token, if any, an op leaves on a two-sided ("wins") token pair.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Mark {
    /// No new token (reset).
    None,
    /// A new positive token (enable / add).
    Pos,
    /// A new negative token (disable / remove).
    Neg,
}

impl Mark {
    pub(crate) fn tag(self) -> u8 {
        match self {
            Mark::None => 0,
            Mark::Pos => 1,
            Mark::Neg => 2,
        }
    }

    pub(crate) fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        match tag {
            0 => Ok(Mark::None),
            1 => Ok(Mark::Pos),
            2 => Ok(Mark::Neg),
            tag => Err(DecodeError::InvalidTag { what: "mark", tag }),
        }
    }
}

/// Positive and negative tokens, as in antidote's `flag_dw` and `set_rw`:
/// every op removes the tokens it observed on both sides and may add one of
/// its own. The "negative wins" reading is `pos ≠ ∅ ∧ neg = ∅`.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct PosNeg {
    /// Enable / add tokens.
    pub pos: DotSet,
    /// Disable / remove tokens.
    pub neg: DotSet,
}

impl Codec for PosNeg {
    #[inline]
    fn encode(&self, w: &mut Writer) {
        self.pos.encode(w);
        self.neg.encode(w);
    }

    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PosNeg {
            pos: DotSet::decode(r)?,
            neg: DotSet::decode(r)?,
        })
    }
}

impl PosNeg {
    /// True if no tokens remain.
    pub fn is_empty(&self) -> bool {
        self.pos.is_empty() && self.neg.is_empty()
    }

    /// Every token on both sides, sorted.
    pub fn observed(&self) -> Vec<Dot> {
        let mut v: Vec<Dot> = self
            .pos
            .as_slice()
            .iter()
            .chain(self.neg.as_slice())
            .copied()
            .collect();
        v.sort_unstable();
        v
    }

    /// Applies a causally delivered delta.
    pub fn apply(&mut self, removed: &[Dot], mark: Mark, dot: Dot) {
        self.pos.remove_all(removed);
        self.neg.remove_all(removed);
        match mark {
            Mark::None => {}
            Mark::Pos => self.pos.insert(dot),
            Mark::Neg => self.neg.insert(dot),
        }
    }

    /// The causal join.
    pub fn join(&mut self, mine: &VectorClock, other: &PosNeg, theirs: &VectorClock) {
        self.pos.join(mine, &other.pos, theirs);
        self.neg.join(mine, &other.neg, theirs);
    }

    /// The remove-wins / disable-wins reading.
    pub fn negative_wins(&self) -> bool {
        !self.pos.is_empty() && self.neg.is_empty()
    }
}

/// The causal join of two dot functions (dot → payload): a write stays
/// when both sides have it, or when one side has it and the other never
/// saw it.
pub(crate) fn join_dot_fun<V: Clone>(
    a: &mut BTreeMap<Dot, V>,
    mine: &VectorClock,
    b: &BTreeMap<Dot, V>,
    theirs: &VectorClock,
) {
    a.retain(|d, _| b.contains_key(d) || !theirs.contains(d));
    for (d, v) in b {
        if !mine.contains(d) {
            a.insert(*d, v.clone());
        }
    }
}

/// Drops the writes of `dot`'s origin older than `dot`. Under causal
/// delivery an origin's write always observed its own earlier ones, so this
/// removes only what an honest effect names anyway; it bounds a register to
/// one entry per origin even when a hostile writer names nothing it
/// overwrote (and so keeps every later honest effect small).
pub(crate) fn drop_older_of<V>(m: &mut BTreeMap<Dot, V>, dot: Dot) {
    let older: Vec<Dot> = m
        .range(Dot::new(dot.replica, 0)..dot)
        .map(|(d, _)| *d)
        .collect();
    for d in older {
        m.remove(&d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;

    fn d(r: u64, s: u64) -> Dot {
        Dot::new(ReplicaId(r), s)
    }

    #[test]
    fn join_keeps_unseen_dots_and_drops_removed_ones() {
        // A saw a:1 and b:1 and removed b:1; B only knows b:1.
        let mut a = DotSet::single(d(1, 1));
        let ca = VectorClock::from_entries([(ReplicaId(1), 1), (ReplicaId(2), 1)]);
        let b = DotSet::single(d(2, 1));
        let cb = VectorClock::from_entries([(ReplicaId(2), 1)]);
        a.join(&ca, &b, &cb);
        assert_eq!(a.as_slice(), &[d(1, 1)]);
    }
}

#[cfg(test)]
mod dotset_tests {
    use super::*;
    use crate::clock::ReplicaId;
    use std::collections::BTreeSet;

    /// Inserts and removals against a `BTreeSet` model: same dots, and
    /// sets with the same dots are equal whatever path built them.
    #[test]
    fn inline_and_heap_forms_behave_as_one_set() {
        let dot = |i: u64| Dot::new(ReplicaId(i % 3 + 1), i / 3 + 1);
        let mut x = 7u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let mut s = DotSet::new();
            let mut m = BTreeSet::new();
            for _ in 0..12 {
                let d = dot(next() % 6);
                if next() % 3 == 0 {
                    let removed: Vec<Dot> = m.iter().copied().filter(|_| next() % 2 == 0).collect();
                    s.remove_all(&removed);
                    removed.iter().for_each(|r| {
                        m.remove(r);
                    });
                } else {
                    s.insert(d);
                    m.insert(d);
                }
                let want: Vec<Dot> = m.iter().copied().collect();
                assert_eq!(s.as_slice(), &want[..]);
                let rebuilt = want.iter().fold(DotSet::new(), |mut a, d| {
                    a.insert(*d);
                    a
                });
                assert_eq!(s, rebuilt);
                let mut w = Writer::new();
                s.encode(&mut w);
                let bytes = w.into_vec();
                assert_eq!(DotSet::decode(&mut Reader::new(&bytes)).unwrap(), s);
            }
        }
    }
}
