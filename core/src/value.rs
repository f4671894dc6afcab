//! The language-neutral value model and its total order.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::codec::{Codec, Reader, Writer, MAX_DEPTH};
use crate::error::DecodeError;

/// A value stored in a set element, register or returned by a read.
///
/// # Total order
/// Values of different kinds order by kind rank:
/// `Null < Bool < Int < Float < Str < Bytes < List < Map`.
/// Within a kind: `false < true`; ints numerically; floats by
/// [`f64::total_cmp`] (so `-0.0 < 0.0` and NaNs are ordered by their bits);
/// strings and bytes lexicographically by bytes; lists lexicographically by
/// element; maps lexicographically by their sorted `(key, value)` entries.
/// Equality agrees with the order, so `NaN == NaN` when the bits match, and
/// `1` (int) differs from `1.0` (float). Python and JS sort the same way
/// because they receive lists already sorted by this order.
#[derive(Clone)]
pub enum Value {
    /// Null / None.
    Null,
    /// A boolean.
    Bool(bool),
    /// A 64-bit signed integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A UTF-8 string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A list of values.
    List(Vec<Value>),
    /// A map with string keys, kept sorted.
    Map(BTreeMap<String, Value>),
}

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_BYTES: u8 = 6;
const T_LIST: u8 = 7;
const T_MAP: u8 = 8;

impl Value {
    fn rank(&self) -> u8 {
        match self {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) => 2,
            Value::Float(_) => 3,
            Value::Str(_) => 4,
            Value::Bytes(_) => 5,
            Value::List(_) => 6,
            Value::Map(_) => 7,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// Nesting depth: 0 for scalars, 1 + deepest child for lists and maps.
    pub fn depth(&self) -> usize {
        match self {
            Value::List(l) => 1 + l.iter().map(Value::depth).max().unwrap_or(0),
            Value::Map(m) => 1 + m.values().map(Value::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// The length of the canonical encoding, in bytes, without encoding.
    pub fn encoded_len(&self) -> usize {
        fn vlen(n: usize) -> usize {
            (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize
        }
        match self {
            Value::Null | Value::Bool(_) => 1,
            Value::Int(i) => 1 + vlen((((*i) << 1) ^ ((*i) >> 63)) as u64 as usize),
            Value::Float(_) => 9,
            Value::Str(s) => 1 + vlen(s.len()) + s.len(),
            Value::Bytes(b) => 1 + vlen(b.len()) + b.len(),
            Value::List(l) => 1 + vlen(l.len()) + l.iter().map(Value::encoded_len).sum::<usize>(),
            Value::Map(m) => {
                1 + vlen(m.len())
                    + m.iter()
                        .map(|(k, v)| vlen(k.len()) + k.len() + v.encoded_len())
                        .sum::<usize>()
            }
        }
    }

    fn decode_at(r: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
        let tag = r.u8()?;
        Ok(match tag {
            T_NULL => Value::Null,
            T_FALSE => Value::Bool(false),
            T_TRUE => Value::Bool(true),
            T_INT => Value::Int(r.zigzag()?),
            T_FLOAT => Value::Float(f64::from_bits(r.u64_le()?)),
            T_STR => Value::Str(r.str()?.to_owned()),
            T_BYTES => Value::Bytes(r.bytes()?.to_vec()),
            T_LIST | T_MAP => {
                if depth >= MAX_DEPTH {
                    return Err(DecodeError::TooDeep { max: MAX_DEPTH });
                }
                if tag == T_LIST {
                    let n = r.count(1)?;
                    let mut l = Vec::with_capacity(crate::codec::reserve(n));
                    for _ in 0..n {
                        l.push(Self::decode_at(r, depth + 1)?);
                    }
                    Value::List(l)
                } else {
                    let n = r.count(2)?;
                    let mut m = BTreeMap::new();
                    let mut last: Option<&str> = None;
                    for _ in 0..n {
                        let k = r.str()?;
                        if last.is_some_and(|p| p >= k) {
                            return Err(DecodeError::NonCanonical("map keys not strictly sorted"));
                        }
                        last = Some(k);
                        let v = Self::decode_at(r, depth + 1)?;
                        m.insert(k.to_owned(), v);
                    }
                    Value::Map(m)
                }
            }
            tag => return Err(DecodeError::InvalidTag { what: "value", tag }),
        })
    }
}

impl Codec for Value {
    /// Appends the canonical encoding.
    #[inline]
    fn encode(&self, w: &mut Writer) {
        match self {
            Value::Null => w.u8(T_NULL),
            Value::Bool(false) => w.u8(T_FALSE),
            Value::Bool(true) => w.u8(T_TRUE),
            Value::Int(i) => {
                w.u8(T_INT);
                w.zigzag(*i);
            }
            Value::Float(f) => {
                w.u8(T_FLOAT);
                w.u64_le(f.to_bits());
            }
            Value::Str(s) => {
                w.u8(T_STR);
                w.str(s);
            }
            Value::Bytes(b) => {
                w.u8(T_BYTES);
                w.bytes(b);
            }
            Value::List(l) => {
                w.u8(T_LIST);
                w.varint(l.len() as u64);
                for v in l {
                    v.encode(w);
                }
            }
            Value::Map(m) => {
                w.u8(T_MAP);
                w.varint(m.len() as u64);
                for (k, v) in m {
                    w.str(k);
                    v.encode(w);
                }
            }
        }
    }

    /// Decodes one value, refusing nesting deeper than [`MAX_DEPTH`].
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
        Self::decode_at(r, 0)
    }
}

impl Ord for Value {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
            (Value::List(a), Value::List(b)) => a.cmp(b),
            (Value::Map(a), Value::Map(b)) => a.iter().cmp(b.iter()),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Value {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.rank().hash(state);
        match self {
            Value::Null => {}
            Value::Bool(b) => b.hash(state),
            Value::Int(i) => i.hash(state),
            Value::Float(f) => f.to_bits().hash(state),
            Value::Str(s) => s.hash(state),
            Value::Bytes(b) => b.hash(state),
            Value::List(l) => l.hash(state),
            Value::Map(m) => m.hash(state),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => write!(f, "null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bytes(b) => write!(f, "b{:?}", String::from_utf8_lossy(b)),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Map(m) => f.debug_map().entries(m).finish(),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        let mut w = Writer::new();
        v.encode(&mut w);
        let b = w.into_vec();
        let mut r = Reader::new(&b);
        let out = Value::decode(&mut r).unwrap();
        r.finish().unwrap();
        out
    }

    #[test]
    fn kinds_order_by_rank_then_value() {
        let mut vs = vec![
            Value::Map(BTreeMap::new()),
            Value::List(vec![]),
            Value::Bytes(vec![0]),
            Value::from("a"),
            Value::Float(-1.0),
            Value::Int(5),
            Value::Int(-5),
            Value::Bool(true),
            Value::Bool(false),
            Value::Null,
        ];
        vs.sort();
        let kinds: Vec<_> = vs.iter().map(Value::kind).collect();
        assert_eq!(
            kinds,
            ["null", "bool", "bool", "int", "int", "float", "string", "bytes", "list", "map"]
        );
        assert_eq!(vs[3], Value::Int(-5));
    }

    #[test]
    fn floats_use_total_order() {
        assert!(Value::Float(-0.0) < Value::Float(0.0));
        assert_eq!(Value::Float(f64::NAN), Value::Float(f64::NAN));
        assert!(Value::Float(f64::INFINITY) < Value::Float(f64::NAN));
        assert_ne!(Value::Int(1), Value::Float(1.0));
    }

    #[test]
    fn values_round_trip() {
        let mut m = BTreeMap::new();
        m.insert("b".to_owned(), Value::Bytes(vec![1, 2]));
        m.insert(
            "a".to_owned(),
            Value::List(vec![Value::Null, Value::Float(f64::NAN)]),
        );
        for v in [
            Value::Null,
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::from("héllo"),
            Value::Map(m),
        ] {
            assert_eq!(round_trip(&v), v);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut bytes = [T_LIST, 1].repeat(100_000);
        bytes.push(T_NULL);
        assert_eq!(
            Value::decode(&mut Reader::new(&bytes)),
            Err(DecodeError::TooDeep { max: MAX_DEPTH })
        );
    }

    #[test]
    fn unsorted_map_keys_are_refused() {
        let bytes = [T_MAP, 2, 1, b'b', T_NULL, 1, b'a', T_NULL];
        assert!(matches!(
            Value::decode(&mut Reader::new(&bytes)),
            Err(DecodeError::NonCanonical(_))
        ));
    }
}
