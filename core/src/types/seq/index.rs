//! Element id → leaf: which tree leaf holds an element, in O(log n).
//!
//! Ids are `(dot, off)`. Elements with `off == 0` (the first element each
//! transaction inserted into the object, which is every element of
//! character-by-character typing) are kept as seq ranges per replica;
//! the rest as offset ranges per dot. Each range maps to one value (a leaf
//! of the tree, or a segment while joining), and ranges never overlap.

use std::collections::BTreeMap;

use super::run::ElemId;

/// Ranges of element ids, each mapped to a `u32`.
#[derive(Clone, Default, Debug)]
pub struct IdIndex {
    /// `(replica, seq0)` → `(seq1, value)`: ids `(replica, s, 0)` for
    /// `seq0 <= s < seq1`.
    firsts: BTreeMap<(u64, u64), (u64, u32)>,
    /// `(replica, seq, off0)` → `(off1, value)`: ids `(replica, seq, o)`
    /// for `off0 <= o < off1`, `off0 >= 1`.
    rest: BTreeMap<(u64, u64, u32), (u32, u32)>,
}

impl IdIndex {
    /// The value of `id`, if it is in a range.
    #[inline]
    pub fn get(&self, id: ElemId) -> Option<u32> {
        let r = id.dot.replica.0;
        let s = id.dot.seq;
        if id.off == 0 {
            let (k, v) = self.firsts.range(..=(r, s)).next_back()?;
            (k.0 == r && s < v.0).then_some(v.1)
        } else {
            let (k, v) = self.rest.range(..=(r, s, id.off)).next_back()?;
            (k.0 == r && k.1 == s && id.off < v.0).then_some(v.1)
        }
    }

    /// Maps the ids of a run (`len` ids from `first`, one per seq if
    /// `per_txn`) to `value`, replacing what they mapped to. With `check`,
    /// returns false (changing nothing) if any of them was mapped already.
    pub fn assign(
        &mut self,
        first: ElemId,
        len: u32,
        per_txn: bool,
        value: u32,
        check: bool,
    ) -> bool {
        self.assign_ids(first, len, per_txn, value, check, false)
    }

    /// [`IdIndex::assign`] of ids never indexed before (new elements).
    #[inline]
    pub fn assign_new(&mut self, first: ElemId, len: u32, per_txn: bool, value: u32) {
        self.assign_ids(first, len, per_txn, value, false, true);
    }

    fn assign_ids(
        &mut self,
        first: ElemId,
        len: u32,
        per_txn: bool,
        value: u32,
        check: bool,
        fresh: bool,
    ) -> bool {
        let r = first.dot.replica.0;
        let s = first.dot.seq;
        // The common case, typing: new ids right after a range of the same
        // value, which just grows (one lookup instead of five).
        if !check
            && (len == 1 || per_txn || first.off > 0)
            && self.extend(first, len, per_txn, value, fresh)
        {
            return true;
        }
        if per_txn && len > 1 {
            let end = s.saturating_add(len as u64);
            if check && self.any_firsts(r, s, end) {
                return false;
            }
            self.assign_firsts(r, s, end, value);
            return true;
        }
        let (mut off, mut n) = (first.off, len);
        if off == 0 {
            if check && self.any_firsts(r, s, s.saturating_add(1)) {
                return false;
            }
            if n > 1 && check && self.any_rest(r, s, 1, n) {
                return false;
            }
            self.assign_firsts(r, s, s.saturating_add(1), value);
            off = 1;
            n -= 1;
            if n == 0 {
                return true;
            }
        } else if check && self.any_rest(r, s, off, off.saturating_add(n)) {
            return false;
        }
        self.assign_rest(r, s, off, off.saturating_add(n), value);
        true
    }

    /// Grows the range that ends right before `first` (same value) to
    /// cover the new ids, if there is one and nothing follows it.
    #[inline]
    fn extend(&mut self, first: ElemId, len: u32, per_txn: bool, value: u32, fresh: bool) -> bool {
        let r = first.dot.replica.0;
        let s = first.dot.seq;
        if first.off == 0 && (per_txn || len == 1) {
            let Some(end) = s.checked_add(if per_txn { len as u64 } else { 1 }) else {
                return false;
            };
            let Some((k, v)) = self.firsts.range_mut(..(r, s)).next_back() else {
                return false;
            };
            if k.0 != r || v.0 != s || v.1 != value {
                return false;
            }
            v.0 = end;
            // Nothing may start inside the grown range (only ids indexed
            // before, being moved to another leaf, could).
            if fresh {
                return true;
            }
            if self.firsts.range((r, s)..(r, end)).next().is_some() {
                // Undo and take the general path.
                if let Some((_, v)) = self.firsts.range_mut(..(r, s)).next_back() {
                    v.0 = s;
                }
                return false;
            }
            return true;
        }
        if first.off == 0 {
            return false;
        }
        let Some(end) = first.off.checked_add(len) else {
            return false;
        };
        let Some((k, v)) = self.rest.range_mut(..(r, s, first.off)).next_back() else {
            return false;
        };
        if k.0 != r || k.1 != s || v.0 != first.off || v.1 != value {
            return false;
        }
        v.0 = end;
        if fresh {
            return true;
        }
        if self
            .rest
            .range((r, s, first.off)..(r, s, end))
            .next()
            .is_some()
        {
            if let Some((_, v)) = self.rest.range_mut(..(r, s, first.off)).next_back() {
                v.0 = first.off;
            }
            return false;
        }
        true
    }

    fn any_firsts(&self, r: u64, s0: u64, s1: u64) -> bool {
        if let Some((k, v)) = self.firsts.range(..=(r, s0)).next_back() {
            if k.0 == r && v.0 > s0 {
                return true;
            }
        }
        self.firsts.range((r, s0)..(r, s1)).next().is_some()
    }

    fn any_rest(&self, r: u64, s: u64, o0: u32, o1: u32) -> bool {
        if let Some((k, v)) = self.rest.range(..=(r, s, o0)).next_back() {
            if k.0 == r && k.1 == s && v.0 > o0 {
                return true;
            }
        }
        self.rest.range((r, s, o0)..(r, s, o1)).next().is_some()
    }

    fn split_firsts(&mut self, r: u64, at: u64) {
        if let Some((&k, &v)) = self.firsts.range(..(r, at)).next_back() {
            if k.0 == r && v.0 > at {
                self.firsts.insert(k, (at, v.1));
                self.firsts.insert((r, at), v);
            }
        }
    }

    fn assign_firsts(&mut self, r: u64, s0: u64, s1: u64, value: u32) {
        self.split_firsts(r, s0);
        self.split_firsts(r, s1);
        while let Some(k) = self.firsts.range((r, s0)..(r, s1)).next().map(|(k, _)| *k) {
            self.firsts.remove(&k);
        }
        if let Some((k, v)) = self.firsts.range_mut(..(r, s0)).next_back() {
            if k.0 == r && v.0 == s0 && v.1 == value {
                v.0 = s1;
                return;
            }
        }
        self.firsts.insert((r, s0), (s1, value));
    }

    fn split_rest(&mut self, r: u64, s: u64, at: u32) {
        if let Some((&k, &v)) = self.rest.range(..(r, s, at)).next_back() {
            if k.0 == r && k.1 == s && v.0 > at {
                self.rest.insert(k, (at, v.1));
                self.rest.insert((r, s, at), v);
            }
        }
    }

    fn assign_rest(&mut self, r: u64, s: u64, o0: u32, o1: u32, value: u32) {
        self.split_rest(r, s, o0);
        self.split_rest(r, s, o1);
        while let Some(k) = self
            .rest
            .range((r, s, o0)..(r, s, o1))
            .next()
            .map(|(k, _)| *k)
        {
            self.rest.remove(&k);
        }
        if let Some((k, v)) = self.rest.range_mut(..(r, s, o0)).next_back() {
            if k.0 == r && k.1 == s && v.0 == o0 && v.1 == value {
                v.0 = o1;
                return;
            }
        }
        self.rest.insert((r, s, o0), (o1, value));
    }

    /// The smallest `k` in `from..len` whose id (the `k`-th of a run of
    /// ids from `first`) is in a range, given that the `from`-th is not:
    /// where a stretch of missing ids ends, in two range queries.
    pub fn next_present(&self, first: ElemId, per_txn: bool, from: u32, len: u32) -> Option<u32> {
        let r = first.dot.replica.0;
        let s = first.dot.seq;
        if per_txn && len > 1 {
            let lo = s.saturating_add(from as u64);
            let hi = s.saturating_add(len as u64);
            let (k, _) = self.firsts.range((r, lo)..(r, hi)).next()?;
            return Some((k.1 - s) as u32);
        }
        let lo = first.off.saturating_add(from);
        let hi = first.off.saturating_add(len);
        let mut best: Option<u32> = None;
        if lo == 0 && hi > 0 && self.get(ElemId::new(first.dot, 0)).is_some() {
            best = Some(0);
        }
        if best.is_none() {
            if let Some((k, _)) = self.rest.range((r, s, lo.max(1))..(r, s, hi)).next() {
                best = Some(k.2 - first.off);
            }
        }
        best
    }

    /// How many ranges the index holds (for memory reports).
    pub fn ranges(&self) -> usize {
        self.firsts.len() + self.rest.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Dot, ReplicaId};

    fn id(r: u64, s: u64, o: u32) -> ElemId {
        ElemId {
            dot: Dot::new(ReplicaId(r), s),
            off: o,
        }
    }

    #[test]
    fn ranges_split_extend_and_refuse_overlaps() {
        let mut x = IdIndex::default();
        assert!(x.assign(id(1, 5, 0), 4, true, 7, true));
        assert!(x.assign(id(1, 9, 0), 1, false, 7, true));
        assert_eq!(x.firsts.len(), 1, "extended");
        assert!(!x.assign(id(1, 7, 0), 1, false, 8, true));
        x.assign(id(1, 6, 0), 2, true, 8, false);
        assert_eq!(x.get(id(1, 5, 0)), Some(7));
        assert_eq!(x.get(id(1, 6, 0)), Some(8));
        assert_eq!(x.get(id(1, 7, 0)), Some(8));
        assert_eq!(x.get(id(1, 8, 0)), Some(7));
        assert_eq!(x.get(id(1, 10, 0)), None);
        assert!(x.assign(id(1, 5, 1), 3, false, 9, true));
        assert_eq!(x.get(id(1, 5, 3)), Some(9));
        assert_eq!(x.get(id(1, 5, 4)), None);
        assert!(x.assign(id(2, 1, 0), 3, false, 1, true));
        assert_eq!(x.get(id(2, 1, 0)), Some(1));
        assert_eq!(x.get(id(2, 1, 2)), Some(1));
        assert!(!x.assign(id(2, 1, 2), 1, false, 1, true));
    }
}
