//! Replica identities, dots and vector clocks.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::codec::{Reader, Writer};
use crate::error::DecodeError;

/// A replica's identity: a random 64-bit number chosen by the binding and
/// persisted with the replica. Displayed as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ReplicaId(pub u64);

impl ReplicaId {
    /// Parses 16 hex digits, as printed by `Display`.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok().map(ReplicaId)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One event: the `seq`-th transaction of `replica`. Seqs start at 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dot {
    /// The replica that created the transaction.
    pub replica: ReplicaId,
    /// Its position in that replica's sequence of transactions (from 1).
    pub seq: u64,
}

impl Dot {
    /// A dot.
    pub fn new(replica: ReplicaId, seq: u64) -> Self {
        Self { replica, seq }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.u64_le(self.replica.0);
        w.varint(self.seq);
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let replica = ReplicaId(r.u64_le()?);
        let seq = r.varint()?;
        if seq == 0 {
            return Err(DecodeError::NonCanonical("dot with seq 0"));
        }
        Ok(Dot { replica, seq })
    }
}

impl fmt::Debug for Dot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:{}", self.replica, self.seq)
    }
}

/// A sparse vector clock: for each replica, the highest seq delivered.
///
/// Delivery is causal, so every clock is contiguous: an entry `n` means seqs
/// `1..=n` of that replica are all included. Missing entries are 0. Entries
/// are kept sorted by replica id, which makes comparison and merge a linear
/// walk and the encoding canonical.
///
/// The entries sit behind a shared pointer, so handing a clock to a caller
/// (every transaction returns one) is a reference-count increment; the next
/// change copies only if that caller still holds it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct VectorClock {
    entries: Option<Arc<Vec<(ReplicaId, u64)>>>,
}

impl VectorClock {
    /// The empty clock (bottom).
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a clock from `(replica, seq)` pairs in any order; zero entries
    /// are dropped and duplicates keep the maximum.
    pub fn from_entries(it: impl IntoIterator<Item = (ReplicaId, u64)>) -> Self {
        let mut c = Self::new();
        for (r, s) in it {
            c.raise(r, s);
        }
        c
    }

    #[inline]
    fn slice(&self) -> &[(ReplicaId, u64)] {
        match &self.entries {
            Some(v) => v.as_slice(),
            None => &[],
        }
    }

    #[inline]
    fn vec_mut(&mut self) -> &mut Vec<(ReplicaId, u64)> {
        Arc::make_mut(self.entries.get_or_insert_with(Default::default))
    }

    fn from_vec(v: Vec<(ReplicaId, u64)>) -> Self {
        Self {
            entries: (!v.is_empty()).then(|| Arc::new(v)),
        }
    }

    /// The entry for `replica` (0 if absent).
    #[inline]
    pub fn get(&self, replica: ReplicaId) -> u64 {
        let e = self.slice();
        match e.binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => e[i].1,
            Err(_) => 0,
        }
    }

    /// Raises the entry for `replica` to at least `seq`.
    #[inline]
    pub fn raise(&mut self, replica: ReplicaId, seq: u64) {
        if seq == 0 {
            return;
        }
        match self.slice().binary_search_by_key(&replica, |e| e.0) {
            Ok(i) => {
                if self.slice()[i].1 < seq {
                    self.vec_mut()[i].1 = seq;
                }
            }
            Err(i) => self.vec_mut().insert(i, (replica, seq)),
        }
    }

    /// True if the clock includes `dot`.
    #[inline]
    pub fn contains(&self, dot: &Dot) -> bool {
        self.get(dot.replica) >= dot.seq
    }

    /// Number of non-zero entries.
    pub fn len(&self) -> usize {
        self.slice().len()
    }

    /// True for the empty clock.
    pub fn is_empty(&self) -> bool {
        self.slice().is_empty()
    }

    /// The non-zero entries, sorted by replica id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (ReplicaId, u64)> + '_ {
        self.slice().iter().copied()
    }

    /// `self ≤ other`: every entry of `self` is at most the one in `other`.
    pub fn leq(&self, other: &VectorClock) -> bool {
        let mut j = 0;
        let theirs = other.slice();
        for &(r, s) in self.slice() {
            while j < theirs.len() && theirs[j].0 < r {
                j += 1;
            }
            match theirs.get(j) {
                Some(&(r2, s2)) if r2 == r => {
                    if s > s2 {
                        return false;
                    }
                }
                _ => return false,
            }
        }
        true
    }

    /// `self < other`.
    pub fn lt(&self, other: &VectorClock) -> bool {
        self != other && self.leq(other)
    }

    /// Neither clock is ≤ the other.
    pub fn concurrent(&self, other: &VectorClock) -> bool {
        !self.leq(other) && !other.leq(self)
    }

    /// Pointwise maximum (the least upper bound), in place.
    pub fn merge(&mut self, other: &VectorClock) {
        if other.is_empty() || Self::same(self, other) {
            return;
        }
        if self.is_empty() {
            self.entries.clone_from(&other.entries);
            return;
        }
        if other.leq(self) {
            return;
        }
        let (a, b) = (self.slice(), other.slice());
        let mut out = Vec::with_capacity(a.len().max(b.len()));
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                Ordering::Less => {
                    out.push(a[i]);
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(b[j]);
                    j += 1;
                }
                Ordering::Equal => {
                    out.push((a[i].0, a[i].1.max(b[j].1)));
                    i += 1;
                    j += 1;
                }
            }
        }
        out.extend_from_slice(&a[i..]);
        out.extend_from_slice(&b[j..]);
        *self = Self::from_vec(out);
    }

    fn same(a: &VectorClock, b: &VectorClock) -> bool {
        match (&a.entries, &b.entries) {
            (Some(x), Some(y)) => Arc::ptr_eq(x, y),
            _ => false,
        }
    }

    /// Pointwise maximum, returning a new clock.
    pub fn merged(&self, other: &VectorClock) -> VectorClock {
        let mut c = self.clone();
        c.merge(other);
        c
    }

    /// Appends the canonical encoding: a count, then `(replica u64 LE, seq
    /// varint)` pairs in ascending replica order.
    pub fn encode(&self, w: &mut Writer) {
        w.varint(self.len() as u64);
        for &(r, s) in self.slice() {
            w.u64_le(r.0);
            w.varint(s);
        }
    }

    /// Decodes a clock, refusing unsorted, duplicate or zero entries.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(9)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let id = ReplicaId(r.u64_le()?);
            let seq = r.varint()?;
            if seq == 0 {
                return Err(DecodeError::NonCanonical("clock entry with seq 0"));
            }
            if entries.last().is_some_and(|&(p, _)| p >= id) {
                return Err(DecodeError::NonCanonical(
                    "clock entries not strictly sorted",
                ));
            }
            entries.push((id, seq));
        }
        Ok(Self::from_vec(entries))
    }

    /// The standalone encoding used by the bindings' `Clock.to_bytes()`:
    /// the protocol version byte, then the clock.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1 + 1 + 9 * self.len());
        w.u8(crate::wire::PROTOCOL_VERSION);
        self.encode(&mut w);
        w.into_vec()
    }

    /// Parses bytes made by [`VectorClock::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        crate::wire::check_version(r.u8()?)?;
        let c = Self::decode(&mut r)?;
        r.finish()?;
        Ok(c)
    }
}

impl PartialOrd for VectorClock {
    /// The causal partial order: `None` when the clocks are concurrent.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.leq(other), other.leq(self)) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (false, false) => None,
        }
    }
}

impl fmt::Debug for VectorClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.slice().iter().map(|(r, s)| (r, s)))
            .finish()
    }
}

impl FromIterator<(ReplicaId, u64)> for VectorClock {
    fn from_iter<T: IntoIterator<Item = (ReplicaId, u64)>>(iter: T) -> Self {
        Self::from_entries(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec((0u64..5, 0u64..4), 0..5)
            .prop_map(|v| v.into_iter().map(|(r, s)| (ReplicaId(r), s)).collect())
    }

    proptest! {
        #[test]
        fn order_is_a_partial_order(a in clock(), b in clock(), c in clock()) {
            prop_assert!(a.leq(&a));
            if a.leq(&b) && b.leq(&a) { prop_assert_eq!(&a, &b); }
            if a.leq(&b) && b.leq(&c) { prop_assert!(a.leq(&c)); }
            prop_assert_eq!(a.concurrent(&b), a.partial_cmp(&b).is_none());
            prop_assert_eq!(a.lt(&b), a.partial_cmp(&b) == Some(Ordering::Less));
        }

        #[test]
        fn merge_is_the_least_upper_bound(a in clock(), b in clock(), c in clock()) {
            let m = a.merged(&b);
            prop_assert!(a.leq(&m) && b.leq(&m));
            if a.leq(&c) && b.leq(&c) { prop_assert!(m.leq(&c)); }
            prop_assert_eq!(&m, &b.merged(&a));
            prop_assert_eq!(a.merged(&a), a.clone());
            prop_assert_eq!(a.merged(&b).merged(&c), a.merged(&b.merged(&c)));
        }

        #[test]
        fn clocks_round_trip(a in clock()) {
            prop_assert_eq!(VectorClock::from_bytes(&a.to_bytes()).unwrap(), a);
        }
    }

    #[test]
    fn entries_stay_sorted_and_sparse() {
        let c =
            VectorClock::from_entries([(ReplicaId(9), 2), (ReplicaId(1), 0), (ReplicaId(3), 4)]);
        assert_eq!(
            c.iter().collect::<Vec<_>>(),
            [(ReplicaId(3), 4), (ReplicaId(9), 2)]
        );
        assert_eq!(c.get(ReplicaId(1)), 0);
        assert!(c.contains(&Dot::new(ReplicaId(3), 4)));
        assert!(!c.contains(&Dot::new(ReplicaId(3), 5)));
    }

    #[test]
    fn unsorted_clock_bytes_are_refused() {
        let mut w = Writer::new();
        w.u8(crate::wire::PROTOCOL_VERSION);
        w.varint(2);
        w.u64_le(5);
        w.varint(1);
        w.u64_le(4);
        w.varint(1);
        assert!(VectorClock::from_bytes(&w.into_vec()).is_err());
    }

    #[test]
    fn replica_ids_print_as_sixteen_hex_digits() {
        let id = ReplicaId(0xab);
        assert_eq!(id.to_string(), "00000000000000ab");
        assert_eq!(ReplicaId::from_hex("00000000000000ab"), Some(id));
    }
}
