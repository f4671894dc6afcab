//! Keyed hashing for every map keyed by bytes a peer chose (DESIGN.md §2.7,
//! SECURITY.md "HashDoS"): objects (type, key and bucket), interned key
//! strings, and set elements. An unkeyed hash lets a peer send thousands of
//! names that land in one bucket, which makes each lookup linear.
//!
//! Core reads no randomness: the binding supplies a secret key once at
//! start-up with [`set_hash_key`]; until then a fixed key is used (fine for
//! tests and benchmarks, not for a replica that accepts hostile peers).
//! Both hashers come from well-kept crates: SipHash-1-3 (`siphasher`) for
//! set elements, whose values are arbitrary and long-lived, and foldhash
//! under the secret seed for keys and names, the hot lookups of every
//! transaction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static KEY: [AtomicU64; 2] = [
    AtomicU64::new(0x0706_0504_0302_0100),
    AtomicU64::new(0x0f0e_0d0c_0b0a_0908),
];

/// Sets the secret key of every map created from now on. Bindings call it
/// once with 16 random bytes before they make a replica. Maps that already
/// exist keep the key they were made with.
pub fn set_hash_key(key: [u8; 16]) {
    // foldhash's shared seed is set once, by the first key (bindings call
    // this once, at start-up, before any map exists).
    let _ = SHARED.get_or_init(|| {
        let mut s = [0u8; 8];
        for (i, x) in key.iter().enumerate() {
            s[i % 8] ^= x.rotate_left(i as u32);
        }
        foldhash::SharedSeed::from_u64(u64::from_le_bytes(s))
    });
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

fn key() -> (u64, u64) {
    (
        KEY[0].load(Ordering::Relaxed),
        KEY[1].load(Ordering::Relaxed),
    )
}

/// SipHash-1-3 under the secret key (set elements).
#[derive(Clone, Copy, Debug)]
pub struct SipKey(u64, u64);

impl SipKey {
    /// A builder under an explicit key (tests).
    #[cfg(test)]
    pub fn with_keys(k0: u64, k1: u64) -> Self {
        SipKey(k0, k1)
    }
}

impl Default for SipKey {
    fn default() -> Self {
        let (a, b) = key();
        SipKey(a, b)
    }
}

impl std::hash::BuildHasher for SipKey {
    type Hasher = siphasher::sip::SipHasher13;
    fn build_hasher(&self) -> Self::Hasher {
        siphasher::sip::SipHasher13::new_with_keys(self.0, self.1)
    }
}

/// foldhash's shared seed, derived from the first secret key (a fixed one
/// until then): with a secret per-map seed too, this is foldhash's own
/// `RandomState`, except that core draws no randomness itself.
static SHARED: OnceLock<foldhash::SharedSeed> = OnceLock::new();

/// foldhash under the secret seeds (object keys, interned strings).
#[derive(Clone, Copy, Debug)]
pub struct Seeded(foldhash::fast::SeedableRandomState);

impl Default for Seeded {
    fn default() -> Self {
        let (a, b) = key();
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(a ^ b));
        Seeded(foldhash::fast::SeedableRandomState::with_seed(
            a ^ b.rotate_left(32),
            shared,
        ))
    }
}

impl std::hash::BuildHasher for Seeded {
    type Hasher = foldhash::fast::FoldHasher;
    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A hash map under the secret seed.
pub(crate) type KeyedMap<K, V> = std::collections::HashMap<K, V, Seeded>;

/// A hash set under the secret seed.
pub(crate) type KeyedSet<K> = std::collections::HashSet<K, Seeded>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CrdtType, Key};
    use std::hash::BuildHasher;

    /// std's `DefaultHasher::new()` is SipHash-1-3 under the zero key.
    #[test]
    fn sip13_is_std_default_hasher() {
        use std::hash::Hasher;
        let mut ours = SipKey(0, 0).build_hasher();
        let mut std = std::collections::hash_map::DefaultHasher::new();
        for p in [&b"abc"[..], &[0xff; 9], b""] {
            ours.write(p);
            std.write(p);
        }
        assert_eq!(ours.finish(), std.finish());
    }

    #[test]
    fn the_seed_changes_the_hash() {
        let k = Key::new("x", CrdtType::SetAw, "b");
        let shared = SHARED.get_or_init(|| foldhash::SharedSeed::from_u64(7));
        let a = Seeded(foldhash::fast::SeedableRandomState::with_seed(1, shared)).hash_one(&k);
        let b = Seeded(foldhash::fast::SeedableRandomState::with_seed(2, shared)).hash_one(&k);
        assert_ne!(a, b);
    }

    /// The bucket is part of a key's hash: one name in many buckets must
    /// spread (it used to land in one slot, and each lookup was linear).
    #[test]
    fn one_name_in_many_buckets_spreads_over_the_table() {
        let s = Seeded::default();
        let low: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| s.hash_one(Key::new("same", CrdtType::RegisterLww, format!("b{i}"))) & 0x3fff)
            .collect();
        assert!(low.len() > 5_000, "only {} of 16,384 slots used", low.len());
        let low: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| s.hash_one(Key::new(format!("r{i}"), CrdtType::RegisterLww, "b")) & 0x3fff)
            .collect();
        assert!(low.len() > 5_000, "only {} of 16,384 slots used", low.len());
    }
}
