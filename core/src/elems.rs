//! The element map of the two token sets (`set_aw`, `set_rw`): a hash map,
//! because an add or remove is one lookup in it, and sets grow to hundreds
//! of thousands of elements where an ordered tree costs a dozen or more
//! `Value` comparisons per lookup (profiled in BENCHMARKS.md).
//!
//! Everything a user or a peer sees stays ordered: reads
//! ([`ElemMap::sorted_keys`]) and encodings ([`ElemMap::sorted`]) sort, so
//! values and snapshot bytes never depend on the hash order.
//!
//! The hasher is SipHash-1-3 under a secret key: elements come from remote
//! peers, and an unkeyed hash would let one of them send elements that all
//! collide. Core has no randomness, so the binding supplies the key once at
//! start-up with [`set_hash_key`]; until then a fixed key is used (fine for
//! tests and benchmarks, not for a replica that accepts hostile peers).

use std::collections::hash_map::{self, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::value::Value;

static KEY: [AtomicU64; 2] = [
    AtomicU64::new(0x0706_0504_0302_0100),
    AtomicU64::new(0x0f0e_0d0c_0b0a_0908),
];

/// Sets the secret key of every element map created from now on. Bindings
/// call it once with 16 random bytes before they make a replica. Maps that
/// already exist keep the key they were made with.
pub fn set_hash_key(key: [u8; 16]) {
    let (a, b) = key.split_at(8);
    KEY[0].store(
        u64::from_le_bytes(a.try_into().expect("8")),
        Ordering::Relaxed,
    );
    KEY[1].store(
        u64::from_le_bytes(b.try_into().expect("8")),
        Ordering::Relaxed,
    );
}

/// The keyed SipHash-1-3 builder (one key per map).
#[derive(Clone, Copy, Debug)]
pub struct SipKey(u64, u64);

impl Default for SipKey {
    fn default() -> Self {
        SipKey(
            KEY[0].load(Ordering::Relaxed),
            KEY[1].load(Ordering::Relaxed),
        )
    }
}

impl BuildHasher for SipKey {
    type Hasher = Sip13;
    fn build_hasher(&self) -> Sip13 {
        Sip13::new(self.0, self.1)
    }
}

/// SipHash-1-3 (Aumasson and Bernstein, 2012): one compression round per
/// word, three finalisation rounds; std's `DefaultHasher` is the same
/// function, which the tests check against.
#[derive(Clone, Debug)]
pub struct Sip13 {
    v: [u64; 4],
    tail: u64,
    ntail: usize,
    len: usize,
}

impl Sip13 {
    /// A hasher under the key `(k0, k1)`.
    pub fn new(k0: u64, k1: u64) -> Self {
        Sip13 {
            v: [
                k0 ^ 0x736f_6d65_7073_6575,
                k1 ^ 0x646f_7261_6e64_6f6d,
                k0 ^ 0x6c79_6765_6e65_7261,
                k1 ^ 0x7465_6462_7974_6573,
            ],
            tail: 0,
            ntail: 0,
            len: 0,
        }
    }

    #[inline]
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }

    #[inline]
    fn word(&mut self, m: u64) {
        self.v[3] ^= m;
        Self::round(&mut self.v);
        self.v[0] ^= m;
    }
}

impl Hasher for Sip13 {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        if self.ntail > 0 {
            let take = (8 - self.ntail).min(bytes.len());
            for (i, &b) in bytes[..take].iter().enumerate() {
                self.tail |= u64::from(b) << (8 * (self.ntail + i));
            }
            self.ntail += take;
            bytes = &bytes[take..];
            if self.ntail < 8 {
                return;
            }
            let m = self.tail;
            self.word(m);
            self.tail = 0;
            self.ntail = 0;
        }
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for (i, &b) in chunks.remainder().iter().enumerate() {
            self.tail |= u64::from(b) << (8 * i);
        }
        self.ntail = chunks.remainder().len();
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut v = self.v;
        let b = ((self.len as u64 & 0xff) << 56) | self.tail;
        v[3] ^= b;
        Self::round(&mut v);
        v[0] ^= b;
        v[2] ^= 0xff;
        for _ in 0..3 {
            Self::round(&mut v);
        }
        v[0] ^ v[1] ^ v[2] ^ v[3]
    }
}

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
    use std::hash::Hash;

    /// std's `DefaultHasher::new()` is SipHash-1-3 under the zero key.
    #[test]
    fn sip13_matches_std_default_hasher() {
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![b"a"],
            vec![b"abcdefg", b"h"],
            vec![b"abc", b"defghijklmnopqrstuvwxyz0123456789"],
            vec![&[0xff; 8], &[1; 7], &[2; 9], &[], &[3; 1]],
        ];
        for parts in cases {
            let mut ours = Sip13::new(0, 0);
            let mut std = std::collections::hash_map::DefaultHasher::new();
            for p in &parts {
                ours.write(p);
                std.write(p);
            }
            assert_eq!(ours.finish(), std.finish(), "{parts:?}");
        }
        for v in [Value::Int(-5), Value::Str("élément".into()), Value::Null] {
            let mut ours = Sip13::new(0, 0);
            let mut std = std::collections::hash_map::DefaultHasher::new();
            v.hash(&mut ours);
            v.hash(&mut std);
            assert_eq!(ours.finish(), std.finish(), "{v:?}");
        }
    }

    #[test]
    fn the_key_changes_the_hash_and_equal_maps_stay_equal() {
        let a = SipKey(1, 2).hash_one(Value::Int(7));
        let b = SipKey(3, 4).hash_one(Value::Int(7));
        assert_ne!(a, b);
        let mut m1: ElemMap<u8> = ElemMap(HashMap::with_hasher(SipKey(1, 2)));
        let mut m2: ElemMap<u8> = ElemMap(HashMap::with_hasher(SipKey(3, 4)));
        for i in 0..100 {
            m1.insert(Value::Int(i), 1);
            m2.insert(Value::Int(99 - i), 1);
        }
        assert_eq!(m1, m2);
        assert_eq!(m1.sorted(), m2.sorted());
    }
}
