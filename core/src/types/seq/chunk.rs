//! What a run of visible elements holds: a piece of text or some values.
//! `list` and `text` differ only here (and in their op checks).

use std::fmt::Debug;

use crate::codec::{Codec, Reader, Writer};
use crate::error::DecodeError;
use crate::value::Value;

/// The content of a run of visible elements.
pub trait Chunk: Clone + PartialEq + Eq + Debug + Default {
    /// Elements: code points for text, values for lists.
    fn len(&self) -> u32;
    /// UTF-16 units (the elements, for lists).
    fn utf16(&self) -> u32;
    /// Splits off the elements from `at` on.
    fn split_off(&mut self, at: u32) -> Self;
    /// Appends `other`.
    fn append(&mut self, other: &Self);
    /// The element index of UTF-16 unit `u` (`u <= utf16()`), or `None`
    /// if `u` falls inside a surrogate pair.
    fn utf16_to_elems(&self, u: u32) -> Option<u32>;
    /// The UTF-16 units of the first `k` elements.
    fn elems_to_utf16(&self, k: u32) -> u32;
    /// Appends the content, as read back by [`Chunk::value`].
    fn push_value(&self, out: &mut Self::Out);
    /// What the object's value is built in.
    type Out: Default;
    /// The object's value from everything pushed.
    fn value(out: Self::Out) -> Value;
    /// Encodes many chunks as one (the state's content column).
    fn encode_all<'a>(chunks: impl Iterator<Item = &'a Self>, w: &mut Writer)
    where
        Self: 'a;
    /// Decodes the content column back into one chunk per run of `lens`.
    fn decode_all(r: &mut Reader<'_>, lens: &[u32]) -> Result<Vec<Self>, DecodeError>;
    /// Encodes one chunk (an effect's inserted content).
    fn encode(&self, w: &mut Writer);
    /// Decodes one chunk; empty chunks are refused.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// The encoded size, roughly (for frame measurements).
    fn bytes(&self) -> usize;
    /// The content as a value (a string, or a list of values).
    fn to_value(&self) -> Value;
}

/// A piece of text, with its lengths in both index units.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct TextChunk {
    s: String,
    chars: u32,
    utf16: u32,
}

impl TextChunk {
    /// A chunk holding `s`.
    pub fn new(s: String) -> Self {
        let (chars, utf16) = counts(&s);
        Self { s, chars, utf16 }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.s
    }

    #[inline]
    fn byte_at(&self, k: u32) -> usize {
        if self.s.len() == self.chars as usize {
            k as usize
        } else {
            self.s
                .char_indices()
                .nth(k as usize)
                .map_or(self.s.len(), |(b, _)| b)
        }
    }
}

/// Code points and UTF-16 units of `s`.
#[inline]
pub(crate) fn counts(s: &str) -> (u32, u32) {
    if s.is_ascii() {
        return (s.len() as u32, s.len() as u32);
    }
    let mut chars = 0u32;
    let mut utf16 = 0u32;
    for c in s.chars() {
        chars += 1;
        utf16 += c.len_utf16() as u32;
    }
    (chars, utf16)
}

impl Chunk for TextChunk {
    type Out = String;

    #[inline]
    fn len(&self) -> u32 {
        self.chars
    }

    #[inline]
    fn utf16(&self) -> u32 {
        self.utf16
    }

    fn split_off(&mut self, at: u32) -> Self {
        let b = self.byte_at(at);
        let tail = self.s.split_off(b);
        let t = if self.utf16 == self.chars {
            let n = self.chars - at;
            TextChunk {
                s: tail,
                chars: n,
                utf16: n,
            }
        } else {
            TextChunk::new(tail)
        };
        self.chars -= t.chars;
        self.utf16 -= t.utf16;
        t
    }

    #[inline]
    fn append(&mut self, other: &Self) {
        self.s.push_str(&other.s);
        self.chars += other.chars;
        self.utf16 += other.utf16;
    }

    fn utf16_to_elems(&self, u: u32) -> Option<u32> {
        if self.utf16 == self.chars {
            return Some(u);
        }
        let mut units = 0u32;
        for (k, c) in self.s.chars().enumerate() {
            if units == u {
                return Some(k as u32);
            }
            units += c.len_utf16() as u32;
            if units > u {
                return None;
            }
        }
        (units == u).then_some(self.chars)
    }

    fn elems_to_utf16(&self, k: u32) -> u32 {
        if self.utf16 == self.chars {
            return k;
        }
        self.s
            .chars()
            .take(k as usize)
            .map(|c| c.len_utf16() as u32)
            .sum()
    }

    fn push_value(&self, out: &mut String) {
        out.push_str(&self.s);
    }

    fn value(out: String) -> Value {
        Value::Str(out)
    }

    fn encode_all<'a>(chunks: impl Iterator<Item = &'a Self>, w: &mut Writer) {
        let mut s = String::new();
        for c in chunks {
            s.push_str(&c.s);
        }
        w.str(&s);
    }

    fn decode_all(r: &mut Reader<'_>, lens: &[u32]) -> Result<Vec<Self>, DecodeError> {
        let s = r.str()?;
        let mut out = Vec::with_capacity(crate::codec::reserve(lens.len()));
        let mut it = s.char_indices();
        let mut start = 0usize;
        for &n in lens {
            let end = match it.nth(n as usize - 1) {
                Some((b, c)) => b + c.len_utf8(),
                None => return Err(DecodeError::Inconsistent("text shorter than its runs")),
            };
            out.push(TextChunk::new(s[start..end].to_owned()));
            start = end;
        }
        if start != s.len() {
            return Err(DecodeError::Inconsistent("text longer than its runs"));
        }
        Ok(out)
    }

    fn encode(&self, w: &mut Writer) {
        w.str(&self.s);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let s = r.str()?;
        if s.is_empty() {
            return Err(DecodeError::NonCanonical("empty insert"));
        }
        if s.len() > u32::MAX as usize / 4 {
            return Err(DecodeError::LengthOutOfRange {
                len: s.len() as u64,
                limit: u32::MAX as u64 / 4,
            });
        }
        Ok(TextChunk::new(s.to_owned()))
    }

    fn bytes(&self) -> usize {
        self.s.len() + 5
    }

    fn to_value(&self) -> Value {
        Value::Str(self.s.clone())
    }
}

/// Some list elements.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct ListChunk(pub Vec<Value>);

impl Chunk for ListChunk {
    type Out = Vec<Value>;

    #[inline]
    fn len(&self) -> u32 {
        self.0.len() as u32
    }

    #[inline]
    fn utf16(&self) -> u32 {
        self.0.len() as u32
    }

    fn split_off(&mut self, at: u32) -> Self {
        ListChunk(self.0.split_off(at as usize))
    }

    fn append(&mut self, other: &Self) {
        self.0.extend_from_slice(&other.0);
    }

    fn utf16_to_elems(&self, u: u32) -> Option<u32> {
        Some(u)
    }

    fn elems_to_utf16(&self, k: u32) -> u32 {
        k
    }

    fn push_value(&self, out: &mut Vec<Value>) {
        out.extend_from_slice(&self.0);
    }

    fn value(out: Vec<Value>) -> Value {
        Value::List(out)
    }

    fn encode_all<'a>(chunks: impl Iterator<Item = &'a Self>, w: &mut Writer) {
        for c in chunks {
            for v in &c.0 {
                v.encode(w);
            }
        }
    }

    fn decode_all(r: &mut Reader<'_>, lens: &[u32]) -> Result<Vec<Self>, DecodeError> {
        let mut out = Vec::with_capacity(crate::codec::reserve(lens.len()));
        for &n in lens {
            let mut v = Vec::with_capacity(crate::codec::reserve(n as usize));
            for _ in 0..n {
                v.push(r.nested(Value::decode)?);
            }
            out.push(ListChunk(v));
        }
        Ok(out)
    }

    fn encode(&self, w: &mut Writer) {
        w.varint(self.0.len() as u64);
        for v in &self.0 {
            v.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(1)?;
        if n == 0 {
            return Err(DecodeError::NonCanonical("empty insert"));
        }
        let mut v = Vec::with_capacity(crate::codec::reserve(n));
        for _ in 0..n {
            v.push(r.nested(Value::decode)?);
        }
        Ok(ListChunk(v))
    }

    fn bytes(&self) -> usize {
        self.0.iter().map(Value::encoded_len).sum::<usize>() + 5
    }

    fn to_value(&self) -> Value {
        Value::List(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_chunks_split_and_convert_units() {
        let mut c = TextChunk::new("a😀b".to_owned());
        assert_eq!((c.len(), c.utf16()), (3, 4));
        assert_eq!(c.utf16_to_elems(0), Some(0));
        assert_eq!(c.utf16_to_elems(1), Some(1));
        assert_eq!(c.utf16_to_elems(2), None);
        assert_eq!(c.utf16_to_elems(3), Some(2));
        assert_eq!(c.utf16_to_elems(4), Some(3));
        assert_eq!(c.elems_to_utf16(2), 3);
        let t = c.split_off(1);
        assert_eq!((c.as_str(), t.as_str()), ("a", "😀b"));
        assert_eq!((t.len(), t.utf16()), (2, 3));
    }
}
