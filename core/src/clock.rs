//! Replica identities, dots and vector clocks.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use crate::codec::{Codec, Reader, Writer};
use crate::error::DecodeError;

/// Clocks of at least this many entries are bit-packed on the wire.
pub const PACK_FROM: usize = 3;

/// Most entries a decoded clock may hold. Packed clocks can spend as little
/// as 2 bits per entry on the wire and 16 bytes each in memory, so without a
/// cap a 1 MiB frame could claim 4 million entries (64 MiB). 262,144
/// writers is 30 times the ~8,000 distinct writers at which the protocol-1
/// relay's Hello stopped fitting its pre-Hello limit (SECURITY.md).
pub const MAX_CLOCK_ENTRIES: u64 = 1 << 18;

fn check_entries(n: u64) -> Result<(), DecodeError> {
    if n > MAX_CLOCK_ENTRIES {
        return Err(DecodeError::LengthOutOfRange {
            len: n,
            limit: MAX_CLOCK_ENTRIES,
        });
    }
    Ok(())
}

/// Bits needed to write `x` (at least 1).
fn bit_len(x: u64) -> u32 {
    (64 - x.leading_zeros()).max(1)
}

/// Reads a packed clock's header after its count `n`: the first id, the
/// two widths, and the byte length of the bit stream, refusing widths out
/// of range and streams longer than the input.
fn packed_header(r: &mut Reader<'_>, n: u64) -> Result<(u64, u32, u32, usize), DecodeError> {
    check_entries(n)?;
    let first = r.varint()?;
    let gw = u32::from(r.u8()?);
    let k = u32::from(r.u8()?);
    if !(1..=64).contains(&gw) || !(1..=64).contains(&k) {
        return Err(DecodeError::NonCanonical("clock bit width out of range"));
    }
    let bits = (n - 1)
        .checked_mul(u64::from(gw + k))
        .and_then(|b| b.checked_add(u64::from(k)))
        .ok_or(DecodeError::UnexpectedEnd)?;
    let nbytes = bits.div_ceil(8);
    if nbytes > r.remaining() as u64 {
        return Err(DecodeError::UnexpectedEnd);
    }
    Ok((first, gw, k, nbytes as usize))
}

/// Little-endian bit packing: values go in low bits first.
#[derive(Default)]
struct BitWriter {
    acc: u128,
    n: u32,
    out: Vec<u8>,
}

impl BitWriter {
    fn put(&mut self, v: u64, width: u32) {
        let v = if width == 64 {
            v
        } else {
            v & ((1u64 << width) - 1)
        };
        self.acc |= u128::from(v) << self.n;
        self.n += width;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn finish(mut self, w: &mut Writer) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        w.raw(&self.out);
    }
}

struct BitReader<'a> {
    buf: &'a [u8],
    pos: usize,
    acc: u128,
    n: u32,
}

impl<'a> BitReader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        BitReader {
            buf,
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    /// The next `width` bits (the caller sized the buffer, so missing
    /// bytes read as zero and are never reached).
    fn get(&mut self, width: u32) -> u64 {
        while self.n < width {
            let b = self.buf.get(self.pos).copied().unwrap_or(0);
            self.pos += 1;
            self.acc |= u128::from(b) << self.n;
            self.n += 8;
        }
        let v = if width == 64 {
            self.acc as u64
        } else {
            (self.acc as u64) & ((1u64 << width) - 1)
        };
        self.acc >>= width;
        self.n -= width;
        v
    }

    /// True if the unread padding bits and bytes are all zero.
    fn rest_is_zero(&self) -> bool {
        self.acc == 0
            && self
                .buf
                .get(self.pos..)
                .is_none_or(|r| r.iter().all(|&b| b == 0))
    }
}

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
}

impl Codec for Dot {
    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.u64_le(self.replica.0);
        w.varint(self.seq);
    }

    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
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

    /// Skips an encoded clock, checking only that its bytes are there (a
    /// router splitting a frame; [`VectorClock::decode`] checks the rest).
    pub(crate) fn skip(r: &mut Reader<'_>) -> Result<(), DecodeError> {
        let n = r.varint()?;
        if n < PACK_FROM as u64 {
            for _ in 0..n {
                r.take(8)?;
                r.varint()?;
            }
            return Ok(());
        }
        let (_, _, _, nbytes) = packed_header(r, n)?;
        r.take(nbytes).map(|_| ())
    }

    /// The standalone encoding used by the bindings' `Clock.to_bytes()`:
    /// the protocol version byte, then the clock.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(1 + 1 + 9 * self.len());
        w.u8(crate::version::PROTOCOL_VERSION);
        self.encode(&mut w);
        w.into_vec()
    }

    /// Parses bytes made by [`VectorClock::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        crate::version::check_stored_version(r.u8()?)?;
        let c = Self::decode(&mut r)?;
        r.finish()?;
        Ok(c)
    }
}

impl Codec for VectorClock {
    /// Appends the canonical encoding (PROTOCOL.md §2). A clock of up to
    /// [`PACK_FROM`]` - 1` entries (sparse deps, mostly) is a count, then
    /// `(replica u64 LE, seq varint)` pairs in ascending replica order. A
    /// larger one is packed: the count, the lowest replica id as a varint,
    /// the bit widths `w` of the largest gap between consecutive ids and `k`
    /// of the largest seq, then one bit stream holding the first seq and,
    /// for each further entry, its id gap and seq, zero-padded to a byte.
    /// Random 64-bit ids and seqs rarely fill their bytes, so packing saves
    /// the unused bits of each.
    #[inline]
    fn encode(&self, w: &mut Writer) {
        let e = self.slice();
        w.varint(e.len() as u64);
        if e.len() < PACK_FROM {
            for &(r, s) in e {
                w.u64_le(r.0);
                w.varint(s);
            }
            return;
        }
        let k = e.iter().map(|&(_, s)| bit_len(s)).max().unwrap_or(1);
        let gw = e
            .windows(2)
            .map(|p| bit_len(p[1].0 .0 - p[0].0 .0))
            .max()
            .unwrap_or(1);
        w.varint(e[0].0 .0);
        w.u8(gw as u8);
        w.u8(k as u8);
        let mut bits = BitWriter::default();
        bits.put(e[0].1, k);
        for p in e.windows(2) {
            bits.put(p[1].0 .0 - p[0].0 .0, gw);
            bits.put(p[1].1, k);
        }
        bits.finish(w);
    }

    /// Decodes a clock, refusing unsorted, duplicate or zero entries and any
    /// encoding but the canonical one.
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.varint()?;
        if n < PACK_FROM as u64 {
            let n = n as usize;
            if r.remaining() < n * 9 {
                return Err(DecodeError::UnexpectedEnd);
            }
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
            return Ok(Self::from_vec(entries));
        }
        let (first, gw, k, nbytes) = packed_header(r, n)?;
        let mut bits = BitReader::new(r.take(nbytes)?);
        let n = n as usize;
        let mut entries = Vec::with_capacity(n);
        let (mut max_gap, mut max_seq) = (0u64, 0u64);
        let mut id = first;
        for i in 0..n {
            if i > 0 {
                let gap = bits.get(gw);
                if gap == 0 {
                    return Err(DecodeError::NonCanonical(
                        "clock entries not strictly sorted",
                    ));
                }
                max_gap = max_gap.max(gap);
                id = id
                    .checked_add(gap)
                    .ok_or(DecodeError::NonCanonical("clock replica id overflows"))?;
            }
            let seq = bits.get(k);
            if seq == 0 {
                return Err(DecodeError::NonCanonical("clock entry with seq 0"));
            }
            max_seq = max_seq.max(seq);
            entries.push((ReplicaId(id), seq));
        }
        if bit_len(max_gap) != gw || bit_len(max_seq) != k || !bits.rest_is_zero() {
            return Err(DecodeError::NonCanonical("clock packing not minimal"));
        }
        Ok(Self::from_vec(entries))
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

        /// Packed clocks with any ids and seqs, including the extremes.
        #[test]
        fn wide_clocks_round_trip_and_every_prefix_is_an_error(
            v in proptest::collection::vec(
                (prop_oneof![any::<u64>(), Just(0u64), Just(u64::MAX), 0u64..1000],
                 prop_oneof![1u64..2000, Just(u64::MAX), any::<u64>()]),
                0..40,
            )
        ) {
            let c: VectorClock = v.into_iter().map(|(r, s)| (ReplicaId(r), s)).collect();
            let b = c.to_bytes();
            prop_assert_eq!(VectorClock::from_bytes(&b).unwrap(), c.clone());
            for cut in 1..b.len() {
                prop_assert!(VectorClock::from_bytes(&b[..cut]).is_err());
            }
            let mut r = Reader::new(&b[1..]);
            VectorClock::skip(&mut r).unwrap();
            prop_assert_eq!(r.remaining(), 0);
        }

        /// Flipping any bit of a packed clock never panics, and what still
        /// decodes re-encodes to the same bytes (one encoding per clock).
        #[test]
        fn corrupt_packed_clocks_are_errors_or_canonical(
            v in proptest::collection::vec((any::<u64>(), 1u64..5000), 3..12),
            bit in any::<proptest::sample::Index>(),
        ) {
            let c: VectorClock = v.into_iter().map(|(r, s)| (ReplicaId(r), s)).collect();
            let mut b = c.to_bytes();
            let i = bit.index(b.len() * 8);
            b[i / 8] ^= 1 << (i % 8);
            if let Ok(d) = VectorClock::from_bytes(&b) {
                prop_assert_eq!(d.to_bytes(), b);
            }
        }
    }

    #[test]
    fn packing_saves_the_unused_bits_of_random_ids() {
        // Three random-looking 64-bit ids at seq 1,000: 31 bytes unpacked.
        let c = VectorClock::from_entries([
            (ReplicaId(0x9e37_79b9_7f4a_7c15), 1000),
            (ReplicaId(0x3c6e_f372_fe94_f82a), 1000),
            (ReplicaId(0xdaa6_6d2c_7ddf_743f), 1000),
        ]);
        assert!(c.to_bytes().len() <= 35, "{}", c.to_bytes().len());
        // 32-bit ids, as Yjs clients have: 6 bytes an entry, not 10.
        let c: VectorClock = (1..=3u64)
            .map(|i| (ReplicaId(0x8000_0000 | (i * 0x2545_f491)), 1000))
            .collect();
        assert_eq!(c.to_bytes().len(), 2 + 5 + 2 + 12);
    }

    #[test]
    fn non_minimal_packing_is_refused() {
        let c: VectorClock = (1..=3u64).map(|i| (ReplicaId(i * 10), i)).collect();
        let good = c.to_bytes();
        // version, count 3, first id 10, gap width 4 (10 = 0b1010), seq width 2
        assert_eq!(&good[..5], &[crate::version::PROTOCOL_VERSION, 3, 10, 4, 2]);
        let mut wide = good.clone();
        wide[3] = 5; // a gap width one bit wider than needed
        assert!(VectorClock::from_bytes(&wide).is_err());
        let mut zero = good.clone();
        zero[3] = 0;
        assert!(VectorClock::from_bytes(&zero).is_err());
        let mut big = good.clone();
        big[4] = 65;
        assert!(VectorClock::from_bytes(&big).is_err());
        let mut padded = good.clone();
        *padded.last_mut().unwrap() |= 0x80; // a padding bit set
        assert!(VectorClock::from_bytes(&padded).is_err());
        let mut longer = good;
        longer.push(0);
        assert!(VectorClock::from_bytes(&longer).is_err());
        // A huge count with a tiny body is refused before any allocation.
        let mut w = Writer::new();
        w.u8(crate::version::PROTOCOL_VERSION);
        w.varint(u64::MAX);
        w.varint(1);
        w.u8(64);
        w.u8(64);
        assert!(VectorClock::from_bytes(&w.into_vec()).is_err());
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
        w.u8(crate::version::PROTOCOL_VERSION);
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
