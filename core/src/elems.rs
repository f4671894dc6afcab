//! The element map of the two token sets (`set_aw`, `set_rw`): a hash map,
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

use crate::hashing::SipKey;
use crate::value::Value;

/// Element → tokens, unordered in memory, ordered whenever observed.
#[derive(Clone, Default)]
pub struct ElemMap<T>(HashMap<Value, T, SipKey>);

impl<T> ElemMap<T> {
    /// An empty map.
    pub fn new() -> Self {
        ElemMap(HashMap::default())
    }

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
