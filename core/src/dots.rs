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

use crate::clock::{Dot, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::DecodeError;

/// A set of dots, kept sorted.
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct DotSet(Vec<Dot>);

impl DotSet {
    /// The empty set.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// A set of one dot.
    pub fn single(d: Dot) -> Self {
        Self(vec![d])
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of dots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The dots, sorted.
    pub fn as_slice(&self) -> &[Dot] {
        &self.0
    }

    /// True if `d` is in the set.
    pub fn contains(&self, d: &Dot) -> bool {
        self.0.binary_search(d).is_ok()
    }

    /// Inserts `d`.
    pub fn insert(&mut self, d: Dot) {
        if let Err(i) = self.0.binary_search(&d) {
            self.0.insert(i, d);
        }
    }

    /// Removes every dot of the sorted slice `removed`.
    pub fn remove_all(&mut self, removed: &[Dot]) {
        if removed.is_empty() || self.0.is_empty() {
            return;
        }
        self.0.retain(|d| removed.binary_search(d).is_err());
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
        self.0.retain(|d| other.contains(d) || !theirs.contains(d));
        for d in &other.0 {
            if !mine.contains(d) {
                self.insert(*d);
            }
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        encode_dots(&self.0, w);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode_dots(r).map(Self)
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
