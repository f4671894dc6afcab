//! The object store: states by address, with the one rule every container
//! follows (the replica's objects by key, a map's fields by field): a
//! missing entry is bottom, and an entry that returns to bottom is dropped,
//! so equal states have equal encodings.

use std::collections::BTreeMap;
use std::hash::Hash;

use crate::clock::Dot;
use crate::hashing::KeyedMap;
use crate::key::CrdtType;

use super::{Effect, State};

/// A map from addresses to states.
pub(crate) trait Slots<K> {
    /// The state at `k`, if stored.
    fn slot(&mut self, k: &K) -> Option<&mut State>;
    /// Stores a new (non-bottom) state.
    fn put(&mut self, k: K, s: State);
    /// Drops the state at `k`.
    fn drop_slot(&mut self, k: &K);
}

impl<K: Hash + Eq> Slots<K> for KeyedMap<K, State> {
    #[inline]
    fn slot(&mut self, k: &K) -> Option<&mut State> {
        self.get_mut(k)
    }
    #[inline]
    fn put(&mut self, k: K, s: State) {
        self.insert(k, s);
    }
    #[inline]
    fn drop_slot(&mut self, k: &K) {
        self.remove(k);
    }
}

impl<K: Ord> Slots<K> for BTreeMap<K, State> {
    #[inline]
    fn slot(&mut self, k: &K) -> Option<&mut State> {
        self.get_mut(k)
    }
    #[inline]
    fn put(&mut self, k: K, s: State) {
        self.insert(k, s);
    }
    #[inline]
    fn drop_slot(&mut self, k: &K) {
        self.remove(k);
    }
}

/// Runs `f` on the state at `k` (bottom of `ty` if missing), then stores
/// the result unless it is bottom. On an error the store is unchanged if
/// `f` changed nothing before failing (every caller prepares first).
#[inline]
pub(crate) fn with_state<K: Clone, M: Slots<K>, T, E>(
    slots: &mut M,
    k: &K,
    ty: CrdtType,
    f: impl FnOnce(&mut State) -> Result<T, E>,
) -> Result<T, E> {
    match slots.slot(k) {
        Some(s) => {
            let out = f(s)?;
            if s.is_bottom() {
                slots.drop_slot(k);
            }
            Ok(out)
        }
        None => {
            let mut s = State::bottom(ty);
            let out = f(&mut s)?;
            if !s.is_bottom() {
                slots.put(k.clone(), s);
            }
            Ok(out)
        }
    }
}

/// Applies `e` at `k` as transaction `dot`.
#[inline]
pub(crate) fn apply_at<K: Clone, M: Slots<K>>(slots: &mut M, k: &K, e: &Effect, dot: Dot) {
    let _ = with_state(slots, k, e.ty(), |s| {
        s.apply(e, dot);
        Ok::<(), std::convert::Infallible>(())
    });
}
