//! The low-level binary codec shared by every frame, record and snapshot.
//!
//! The scheme is the one postcard uses for integers (unsigned LEB128 varints,
//! zig-zag for signed), written by hand so that:
//! * decoding is a pure function over `&[u8]` that never panics and never
//!   allocates more than the input could justify;
//! * the relay can read a transaction header and skip its effects;
//! * nesting depth is bounded, so hostile input cannot overflow the stack.
//!
//! `PROTOCOL.md` at the repository root documents the layout byte by byte.

use crate::error::DecodeError;

/// Deepest nesting of lists and maps accepted in a [`crate::Value`].
pub const MAX_DEPTH: usize = 64;

/// Everything that nests inside frames, records and snapshots (dots,
/// clocks, values, keys, fields, dot sets) encodes and decodes through this
/// one trait. Top-level messages (`Frame`, `Txn`, `Snapshot`) have their
/// own `encode`/`decode` over whole buffers, built on it.
pub trait Codec: Sized {
    /// Appends the encoding.
    fn encode(&self, w: &mut Writer);

    /// Decodes one value; the reader stays after it.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The encoding alone.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.into_vec()
    }

    /// Decodes bytes that hold exactly one value.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

/// The capacity to reserve for `n` decoded items: a peer's count is only
/// checked against the bytes left (see [`Reader::count`]), and an item in
/// memory can be many times its encoding (a map field's effect, nested),
/// so at most 1,024 are reserved up front and the rest grow as they decode.
pub(crate) fn reserve(n: usize) -> usize {
    n.min(1024)
}

/// An append-only byte sink.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    /// An empty writer with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }

    /// Wraps an existing buffer; bytes are appended to it.
    pub fn from_vec(buf: Vec<u8>) -> Self {
        Self { buf }
    }

    /// The bytes written so far.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends one byte.
    #[inline]
    pub fn u8(&mut self, b: u8) {
        self.buf.push(b);
    }

    /// Appends an unsigned LEB128 varint.
    #[inline]
    pub fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Appends a zig-zag encoded signed varint.
    #[inline]
    pub fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    /// Appends a fixed 8-byte little-endian integer.
    #[inline]
    pub fn u64_le(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a length-prefixed byte string.
    #[inline]
    pub fn bytes(&mut self, b: &[u8]) {
        self.varint(b.len() as u64);
        self.buf.extend_from_slice(b);
    }

    /// Appends a length-prefixed UTF-8 string.
    #[inline]
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Appends raw bytes with no prefix.
    #[inline]
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Mutable access for in-place patching (length prefixes).
    pub(crate) fn buf_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

/// A cursor over untrusted bytes. Every method returns `DecodeError` rather
/// than panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Offset of the next byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                count: self.remaining(),
            })
        }
    }

    /// Reads one byte.
    #[inline]
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::UnexpectedEnd)?;
        self.pos += 1;
        Ok(b)
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes, rejecting
    /// overlong and overflowing encodings.
    #[inline]
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        // Most varints (seqs, lengths, small deltas) fit in one byte.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(u64::from(b));
            }
        }
        self.varint_multi()
    }

    fn varint_multi(&mut self) -> Result<u64, DecodeError> {
        let mut out: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            let low = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            out |= low << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError::NonCanonical("overlong varint"));
                }
                return Ok(out);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    /// Reads a zig-zag signed varint.
    #[inline]
    pub fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok(((v >> 1) as i64) ^ -((v & 1) as i64))
    }

    /// Reads a varint that must fit in `usize` and be at most `limit`.
    #[inline]
    pub fn len(&mut self, limit: usize) -> Result<usize, DecodeError> {
        let v = self.varint()?;
        if v > limit as u64 {
            return Err(DecodeError::LengthOutOfRange {
                len: v,
                limit: limit as u64,
            });
        }
        Ok(v as usize)
    }

    /// Reads a count of items that each take at least `min_item_bytes`;
    /// refuses counts the remaining input cannot possibly hold, so a hostile
    /// count never triggers a large allocation.
    #[inline]
    pub fn count(&mut self, min_item_bytes: usize) -> Result<usize, DecodeError> {
        let limit = self.remaining() / min_item_bytes.max(1);
        self.len(limit)
    }

    /// Reads a fixed 8-byte little-endian integer.
    #[inline]
    pub fn u64_le(&mut self) -> Result<u64, DecodeError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_le_bytes(a))
    }

    /// Reads `n` raw bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::UnexpectedEnd);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a length-prefixed byte string.
    #[inline]
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(self.remaining())?;
        self.take(n)
    }

    /// Reads a length-prefixed UTF-8 string.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8)
    }

    /// Runs `f` one nesting level deeper (a state or effect inside a map):
    /// refuses input nested deeper than [`MAX_DEPTH`], so hostile input
    /// cannot overflow the stack.
    pub fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        if self.depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { max: MAX_DEPTH });
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// Reads a boolean byte (0 or 1).
    #[inline]
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(DecodeError::InvalidTag {
                what: "bool",
                tag: b,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut w = Writer::new();
            w.varint(v);
            let bytes = w.into_vec();
            let mut r = Reader::new(&bytes);
            assert_eq!(r.varint().unwrap(), v);
            r.finish().unwrap();
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -64, 64] {
            let mut w = Writer::new();
            w.zigzag(v);
            let bytes = w.into_vec();
            assert_eq!(Reader::new(&bytes).zigzag().unwrap(), v);
        }
    }

    #[test]
    fn malformed_varints_are_errors() {
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(DecodeError::UnexpectedEnd)
        );
        assert_eq!(
            Reader::new(&[0xff; 11]).varint(),
            Err(DecodeError::VarintOverflow)
        );
        assert!(Reader::new(&[0x80, 0x00]).varint().is_err(), "overlong");
        let mut max = vec![0xff; 9];
        max.push(0x02);
        assert_eq!(Reader::new(&max).varint(), Err(DecodeError::VarintOverflow));
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        let mut w = Writer::new();
        w.varint(u64::MAX / 2);
        let bytes = w.into_vec();
        assert!(matches!(
            Reader::new(&bytes).count(1),
            Err(DecodeError::LengthOutOfRange { .. })
        ));
    }
}
