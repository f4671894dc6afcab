//! Object keys, and the fields of maps: how objects are addressed.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
pub use crate::registry::CrdtType;

impl CrdtType {
    pub(crate) fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        Self::with_tag(tag).ok_or(DecodeError::InvalidTag {
            what: "crdt type",
            tag,
        })
    }
}

impl FromStr for CrdtType {
    type Err = UpdateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.name() == s)
            .ok_or_else(|| UpdateError::UnknownType(s.to_owned()))
    }
}

/// An object's address: `(key, type, bucket)`. The type is part of the
/// identity, so one name can hold objects of different types. The strings
/// are shared, so cloning a key never allocates.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// The key name.
    pub key: Arc<str>,
    /// The object's type.
    pub ty: CrdtType,
    /// The bucket (namespace).
    pub bucket: Arc<str>,
}

/// Hashes the type and the name only: equal keys have equal types and
/// names, so this agrees with `Eq`, and leaving the bucket out (apps use
/// one or a few) makes the object map's lookup, on every transaction,
/// cheaper.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // Every part of the identity, so keys that share a name (in many
        // buckets, or with many types) never share a hash.
        h.write_u8(self.ty as u8);
        h.write(self.key.as_bytes());
        h.write_u8(0xff);
        h.write(self.bucket.as_bytes());
    }
}

impl Key {
    /// A key.
    pub fn new(key: impl Into<Arc<str>>, ty: CrdtType, bucket: impl Into<Arc<str>>) -> Self {
        Self {
            key: key.into(),
            ty,
            bucket: bucket.into(),
        }
    }

    /// A key from the API's three strings; fails on an unknown type name.
    pub fn parse(key: &str, ty: &str, bucket: &str) -> Result<Self, UpdateError> {
        Ok(Self::new(key, ty.parse()?, bucket))
    }

    /// Decodes a key, making its strings with `intern` (so a replica can
    /// share the strings of keys it already holds instead of allocating).
    pub(crate) fn decode_with(
        r: &mut Reader<'_>,
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) -> Result<Self, DecodeError> {
        let ty = CrdtType::from_tag(r.u8()?)?;
        let key = intern(r.str()?);
        let bucket = intern(r.str()?);
        Ok(Self { key, ty, bucket })
    }
}

impl Codec for Key {
    /// Appends the encoding: type tag, key, bucket.
    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.u8(self.ty as u8);
        w.str(&self.key);
        w.str(&self.bucket);
    }

    /// Decodes a key.
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_with(r, &mut |s| Arc::from(s))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:?}, {}, {:?})", self.key, self.ty, self.bucket)
    }
}

/// A field of a map: `[name, type]`. Fields order by name, then by type
/// tag (the order API.md gives for names used with several types).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Field {
    /// The field name.
    pub name: Arc<str>,
    /// The field's type.
    pub ty: CrdtType,
}

impl Field {
    /// A field.
    pub fn new(name: impl Into<Arc<str>>, ty: CrdtType) -> Self {
        Self {
            name: name.into(),
            ty,
        }
    }
}

impl Codec for Field {
    /// Appends the encoding: name, then type tag.
    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.str(&self.name);
        w.u8(self.ty as u8);
    }

    /// Decodes a field.
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let name = Arc::from(r.str()?);
        let ty = CrdtType::from_tag(r.u8()?)?;
        Ok(Self { name, ty })
    }
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:?}, {}]", self.name, self.ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip_and_unknown_names_are_typed_errors() {
        for t in CrdtType::ALL {
            assert_eq!(t.name().parse::<CrdtType>().unwrap(), t);
            assert_eq!(CrdtType::from_tag(t as u8).unwrap(), t);
        }
        assert_eq!(
            "counter".parse::<CrdtType>(),
            Err(UpdateError::UnknownType("counter".into()))
        );
        assert!(CrdtType::from_tag(CrdtType::ALL.len() as u8).is_err());
    }
}
