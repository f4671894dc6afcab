//! The element sets' building blocks: the element map, a hash map (see
//! below), and the token logic the four sets share. Every set keeps, per
//! element, the tokens (dots) of the ops that left one; an op removes the
//! tokens it observed. The sets differ only in which tokens an op leaves
//! and observes, and in how tokens read:
//!
//! | type | add leaves | remove leaves | add observes | present when |
//! |---|---|---|---|---|
//! | `set_aw` | pos | nothing | all | any token |
//! | `set_go` | pos | — | all | any token |
//! | `set_rw` | pos | neg | all | pos and no neg |
//! | `set_2p` | pos | neg | pos only | pos and no neg |
//!
//! A reset leaves nothing and observes all, so a reset set is bottom.
//!
//! The element map is a hash map,
//! because an add or remove is one lookup in it, and sets grow to hundreds
//! of thousands of elements where an ordered tree costs a dozen or more
//! `Value` comparisons per lookup (profiled in BENCHMARKS.md).
//!
//! Everything a user or a peer sees stays ordered: reads
//! ([`ElemMap::sorted_keys`]) and encodings ([`ElemMap::sorted`]) sort, so
//! values and snapshot bytes never depend on the hash order.
//!
//! The hasher is SipHash-1-3 under a secret key ([`crate::hashing`]):
//! elements come from remote peers, and an unkeyed hash would let one of
//! them send elements that all collide.

use std::collections::hash_map::{self, HashMap};
use std::fmt::Debug;

use super::dots::{DotSet, Mark, PosNeg};
use super::op::Op;
use super::{unknown_op, Crdt, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::hashing::SipKey;
use crate::key::CrdtType;
use crate::value::Value;

/// Element → tokens, unordered in memory, ordered whenever observed.
#[derive(Clone, Default)]
pub struct ElemMap<T>(HashMap<Value, T, SipKey>);

impl<T> ElemMap<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tokens of `e`.
    pub fn get(&self, e: &Value) -> Option<&T> {
        self.0.get(e)
    }

    /// The tokens of `e`, to change.
    pub fn get_mut(&mut self, e: &Value) -> Option<&mut T> {
        self.0.get_mut(e)
    }

    /// True if `e` has tokens.
    pub fn contains_key(&self, e: &Value) -> bool {
        self.0.contains_key(e)
    }

    /// The entry of `e`: one lookup to read and then insert or change.
    pub fn entry(&mut self, e: Value) -> hash_map::Entry<'_, Value, T> {
        self.0.entry(e)
    }

    /// Sets the tokens of `e`.
    pub fn insert(&mut self, e: Value, t: T) -> Option<T> {
        self.0.insert(e, t)
    }

    /// Drops `e`.
    pub fn remove(&mut self, e: &Value) -> Option<T> {
        self.0.remove(e)
    }

    /// Keeps the entries `f` accepts.
    pub fn retain(&mut self, f: impl FnMut(&Value, &mut T) -> bool) {
        self.0.retain(f)
    }

    /// Every entry, in no particular order (use [`ElemMap::sorted`] for
    /// anything observable).
    pub fn iter_unordered(&self) -> hash_map::Iter<'_, Value, T> {
        self.0.iter()
    }

    /// Every entry to change, in no particular order.
    pub fn iter_mut_unordered(&mut self) -> hash_map::IterMut<'_, Value, T> {
        self.0.iter_mut()
    }

    /// Every entry, in element order.
    pub fn sorted(&self) -> Vec<(&Value, &T)> {
        let mut v: Vec<(&Value, &T)> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }

    /// The elements `keep` accepts, in element order.
    pub fn sorted_keys(&self, mut keep: impl FnMut(&T) -> bool) -> Vec<Value> {
        let mut v: Vec<&Value> = self
            .0
            .iter()
            .filter(|(_, t)| keep(t))
            .map(|(e, _)| e)
            .collect();
        v.sort_unstable();
        v.into_iter().cloned().collect()
    }
}

impl<T: PartialEq> PartialEq for ElemMap<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<T: Eq> Eq for ElemMap<T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for ElemMap<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.sorted()).finish()
    }
}

impl<T> FromIterator<(Value, T)> for ElemMap<T> {
    fn from_iter<I: IntoIterator<Item = (Value, T)>>(iter: I) -> Self {
        ElemMap(iter.into_iter().collect())
    }
}

/// The tokens of one element.
pub trait Tokens: Codec + Default + Clone + PartialEq + Eq + Debug {
    /// True if this token kind can hold remove tokens.
    const NEG: bool;
    /// Applies a causally delivered delta: drop `removed`, leave `mark`.
    fn apply(&mut self, removed: &[Dot], mark: Mark, dot: Dot);
    /// The causal join.
    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock);
    /// True if no tokens remain.
    fn is_empty(&self) -> bool;
    /// Every token, sorted.
    fn all(&self) -> DotSet;
    /// The positive tokens.
    fn pos(&self) -> &DotSet;
}

impl Tokens for DotSet {
    const NEG: bool = false;
    #[inline]
    fn apply(&mut self, removed: &[Dot], mark: Mark, dot: Dot) {
        DotSet::apply(self, removed, (mark == Mark::Pos).then_some(dot));
    }
    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        DotSet::join(self, mine, other, theirs)
    }
    fn is_empty(&self) -> bool {
        DotSet::is_empty(self)
    }
    fn all(&self) -> DotSet {
        self.clone()
    }
    fn pos(&self) -> &DotSet {
        self
    }
}

impl Tokens for PosNeg {
    const NEG: bool = true;
    #[inline]
    fn apply(&mut self, removed: &[Dot], mark: Mark, dot: Dot) {
        PosNeg::apply(self, removed, mark, dot)
    }
    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        PosNeg::join(self, mine, other, theirs)
    }
    fn is_empty(&self) -> bool {
        PosNeg::is_empty(self)
    }
    fn all(&self) -> DotSet {
        DotSet::from_sorted(self.observed())
    }
    fn pos(&self) -> &DotSet {
        &self.pos
    }
}

/// Per-element part of a set effect: the tokens observed (and so removed)
/// and the token the transaction leaves.
#[derive(Clone, PartialEq, Debug)]
pub struct ElemEffect {
    /// The element.
    pub elem: Value,
    /// Observed dots, removed at every replica (usually one, held inline).
    pub removed: DotSet,
    /// The new token, if any.
    pub mark: Mark,
}

/// How a set's ops mark and observe (the table above).
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// What a remove leaves.
    pub remove: Mark,
    /// True if an add observes only positive tokens (`set_2p`: a remove
    /// is for good).
    pub add_keeps_neg: bool,
}

/// Folds one transaction's set ops into per-element effects, sorted by
/// element, the last op per element winning. Every touched element removes
/// the tokens it observed in `state`. (A stable sort of a sorted or nearly
/// sorted batch is linear, unlike a map insert per op.)
pub(crate) fn prepare<T: Tokens>(
    state: Option<&ElemMap<T>>,
    ops: &[(usize, &Op)],
    rules: Rules,
) -> Vec<ElemEffect> {
    let mut touched: Vec<(&Value, Mark)> = Vec::with_capacity(ops.len());
    for (_, op) in ops {
        match op {
            Op::Add(e) => touched.push((e, Mark::Pos)),
            Op::AddAll(l) => touched.extend(l.iter().map(|e| (e, Mark::Pos))),
            Op::Remove(e) => touched.push((e, rules.remove)),
            Op::RemoveAll(l) => touched.extend(l.iter().map(|e| (e, rules.remove))),
            Op::Reset => {
                touched.iter_mut().for_each(|(_, m)| *m = Mark::None);
                if let Some(m) = state {
                    touched.extend(m.iter_unordered().map(|(e, _)| (e, Mark::None)));
                }
            }
            _ => {}
        }
    }
    if !touched.is_sorted_by(|a, b| a.0 < b.0) {
        touched.sort_by(|a, b| a.0.cmp(b.0));
    }
    // Per element: the mark left, and whether an op of this transaction
    // observes all its tokens (any but an add of `set_2p`, which keeps the
    // remove tokens).
    let mut marks: Vec<(&Value, Mark, bool)> = Vec::with_capacity(touched.len());
    for (e, m) in touched {
        let all = m != Mark::Pos || !rules.add_keeps_neg;
        match marks.last_mut() {
            Some(last) if last.0 == e => {
                last.2 |= all;
                // In a two-phase set a remove is for good, also within one
                // transaction: a later add does not undo it.
                if !(rules.add_keeps_neg && last.1 == Mark::Neg && m == Mark::Pos) {
                    last.1 = m;
                }
            }
            _ => marks.push((e, m, all)),
        }
    }
    let mut out = Vec::with_capacity(marks.len());
    for (e, mark, all) in marks {
        let removed = match state.and_then(|m| m.get(e)) {
            Some(t) if !all => t.pos().clone(),
            Some(t) => t.all(),
            None => DotSet::new(),
        };
        if removed.is_empty() && mark == Mark::None {
            continue; // removing an absent element has no effect
        }
        out.push(ElemEffect {
            elem: e.clone(),
            removed,
            mark,
        });
    }
    out
}

/// Applies per-element effects of transaction `dot`.
pub(crate) fn apply<T: Tokens>(m: &mut ElemMap<T>, effects: &[ElemEffect], dot: Dot) {
    for ee in effects {
        if let Some(t) = m.get_mut(&ee.elem) {
            t.apply(ee.removed.as_slice(), ee.mark, dot);
            if t.is_empty() {
                m.remove(&ee.elem);
            }
        } else if ee.mark != Mark::None {
            let mut t = T::default();
            t.apply(&[], ee.mark, dot);
            m.insert(ee.elem.clone(), t);
        }
    }
}

/// The causal join of two element maps.
pub(crate) fn join<T: Tokens>(
    a: &mut ElemMap<T>,
    mine: &VectorClock,
    b: &ElemMap<T>,
    theirs: &VectorClock,
) {
    let empty = T::default();
    // Elements only we have join with the other side's bottom, which drops
    // the dots they have seen (and so removed).
    for (e, t) in a.iter_mut_unordered() {
        let other = b.get(e).unwrap_or(&empty);
        t.join(mine, other, theirs);
    }
    for (e, tb) in b.iter_unordered() {
        if !a.contains_key(e) {
            let mut t = T::default();
            t.join(mine, tb, theirs);
            a.insert(e.clone(), t);
        }
    }
    a.retain(|_, t| !t.is_empty());
}

/// Encodes `count, count × (element, tokens)` in element order.
pub(crate) fn encode<T: Tokens>(m: &ElemMap<T>, w: &mut Writer) {
    w.varint(m.len() as u64);
    for (e, t) in m.sorted() {
        e.encode(w);
        t.encode(w);
    }
}

/// Decodes what [`encode`] writes: strictly ascending elements, none
/// without tokens.
pub(crate) fn decode<T: Tokens>(r: &mut Reader<'_>) -> Result<ElemMap<T>, DecodeError> {
    let n = r.count(if T::NEG { 3 } else { 2 })?;
    let mut entries: Vec<(Value, T)> = Vec::with_capacity(crate::codec::reserve(n));
    for _ in 0..n {
        let e = Value::decode(r)?;
        let t = T::decode(r)?;
        if t.is_empty() || entries.last().is_some_and(|(p, _)| *p >= e) {
            return Err(DecodeError::NonCanonical(
                "set elements unsorted or without tokens",
            ));
        }
        entries.push((e, t));
    }
    Ok(entries.into_iter().collect())
}

/// Encodes per-element effects.
pub(crate) fn encode_effects(es: &[ElemEffect], w: &mut Writer) {
    w.varint(es.len() as u64);
    for e in es {
        e.elem.encode(w);
        e.removed.encode(w);
        w.u8(e.mark.tag());
    }
}

/// Decodes per-element effects; `neg` says whether remove tokens exist.
pub(crate) fn decode_effects(
    r: &mut Reader<'_>,
    neg: bool,
    what: &'static str,
) -> Result<Vec<ElemEffect>, DecodeError> {
    let n = r.count(3)?;
    let mut es: Vec<ElemEffect> = Vec::with_capacity(crate::codec::reserve(n));
    for _ in 0..n {
        let elem = Value::decode(r)?;
        let removed = DotSet::decode(r)?;
        let mark = Mark::from_tag(r.u8()?)?;
        if !neg && mark == Mark::Neg {
            return Err(DecodeError::InvalidTag { what, tag: 2 });
        }
        if es.last().is_some_and(|p| p.elem >= elem) {
            return Err(DecodeError::NonCanonical(
                "set effect elements not strictly sorted",
            ));
        }
        es.push(ElemEffect {
            elem,
            removed,
            mark,
        });
    }
    Ok(es)
}

/// Every dot the effects observed.
pub(crate) fn observed(es: &[ElemEffect], f: &mut dyn FnMut(Dot)) {
    for e in es {
        e.removed.as_slice().iter().copied().for_each(&mut *f);
    }
}

/// Renames the observed dots of re-issued effects.
pub(crate) fn rename(es: &mut [ElemEffect], r: &Rename) {
    for e in es {
        let mut v = std::mem::take(&mut e.removed).into_vec();
        r.dots(&mut v);
        e.removed = DotSet::from_sorted(v);
    }
}

/// What distinguishes one element set from another (the table above).
pub trait SetRules<T: Tokens>: Clone + PartialEq + Eq + Default + Debug {
    /// The type in the registry.
    const TYPE: CrdtType;
    /// The ops users may call.
    const OPS: &'static str;
    /// How ops mark and observe.
    const RULES: Rules;
    /// True if users may call `op`.
    fn accepts(op: &Op) -> bool;
    /// True if an element with tokens `t` is in the set.
    fn present(t: &T) -> bool;
}

/// An element set under rules `R`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct ElemSet<T, R>(pub(crate) ElemMap<T>, std::marker::PhantomData<R>);

impl<T: Tokens, R: SetRules<T>> Crdt for ElemSet<T, R> {
    type Effect = Vec<ElemEffect>;
    const TYPE: CrdtType = R::TYPE;
    const OPS: &'static str = R::OPS;

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        if R::accepts(op) {
            Ok(())
        } else {
            Err(unknown_op(Self::TYPE, op, index))
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        _origin: ReplicaId,
    ) -> Result<Self::Effect, UpdateError> {
        Ok(prepare(state.map(|s| &s.0), ops, R::RULES))
    }

    #[inline]
    fn apply(&mut self, effect: &Self::Effect, dot: Dot) {
        apply(&mut self.0, effect, dot)
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        join(&mut self.0, mine, &other.0, theirs)
    }

    fn value(&self) -> Value {
        Value::List(self.0.sorted_keys(R::present))
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        encode(&self.0, w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        decode(r).map(|m| Self(m, Default::default()))
    }

    #[inline]
    fn encode_effect(e: &Self::Effect, w: &mut Writer) {
        encode_effects(e, w)
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Self::Effect, DecodeError> {
        decode_effects(r, T::NEG, R::TYPE.name())
    }

    /// A reset (an element left with no token) in a set whose users
    /// cannot reset it.
    #[inline]
    fn is_field_only(e: &Self::Effect) -> bool {
        !R::accepts(&Op::Reset) && e.iter().any(|ee| ee.mark == Mark::None)
    }

    #[inline]
    fn is_noop(e: &Self::Effect) -> bool {
        e.is_empty()
    }

    #[inline]
    fn observed(e: &Self::Effect, f: &mut dyn FnMut(Dot)) {
        observed(e, f)
    }

    fn rename(e: &mut Self::Effect, _: Option<&Self>, r: &Rename) {
        rename(e, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn the_key_changes_the_hash_and_equal_maps_stay_equal() {
        let a = SipKey::with_keys(1, 2).hash_one(Value::Int(7));
        let b = SipKey::with_keys(3, 4).hash_one(Value::Int(7));
        assert_ne!(a, b);
        let mut m1: ElemMap<u8> = ElemMap(HashMap::with_hasher(SipKey::with_keys(1, 2)));
        let mut m2: ElemMap<u8> = ElemMap(HashMap::with_hasher(SipKey::with_keys(3, 4)));
        for i in 0..100 {
            m1.insert(Value::Int(i), 1);
            m2.insert(Value::Int(99 - i), 1);
        }
        assert_eq!(m1, m2);
        assert_eq!(m1.sorted(), m2.sorted());
    }
}
