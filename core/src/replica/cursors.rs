//! Cursors: positions in a `list` or `text` that stay with their element
//! while others edit (API.md, "Cursors"). A cursor names the element at its
//! index (or, at the end, the last element and "after"), so resolving it is
//! an id lookup and a climb of the tree: O(log n).
//!
//! Bytes: version `1`, the key, then `0` and the element id (dot, offset)
//! and `0` (before) or `1` (after); or `1` alone for a cursor made in an
//! empty object, which resolves to the start.

use super::*;
use crate::codec::Reader;
use crate::types::{Assoc, ElemId, Pos};

const CURSOR_VERSION: u8 = 1;

impl Replica {
    /// A cursor at `index` of the list or text `key` (`index` in UTF-16
    /// units if `utf16`, else code points / elements).
    pub fn cursor(&self, key: &Key, index: u64, utf16: bool) -> Result<Vec<u8>, CursorError> {
        let bottom;
        let st = match self.objects.get(key) {
            Some(s) => s,
            None => {
                bottom = State::bottom(key.ty);
                &bottom
            }
        };
        let at = st
            .cursor_at(Pos { at: index, utf16 })
            .ok_or(CursorError::NotASequence(key.ty))??;
        let mut w = Writer::new();
        w.u8(CURSOR_VERSION);
        key.encode(&mut w);
        match at {
            None => w.u8(1),
            Some((id, assoc)) => {
                w.u8(0);
                id.dot.encode(&mut w);
                w.varint(u64::from(id.off));
                w.u8(match assoc {
                    Assoc::Before => 0,
                    Assoc::After => 1,
                });
            }
        }
        Ok(w.into_vec())
    }

    /// The index a cursor points at now (UTF-16 units if `utf16`).
    pub fn resolve(&self, cursor: &[u8]) -> Result<(Key, u64, u64), CursorError> {
        let mut r = Reader::new(cursor);
        let v = r.u8()?;
        if v != CURSOR_VERSION {
            return Err(DecodeError::InvalidTag {
                what: "cursor version",
                tag: v,
            }
            .into());
        }
        let key = Key::decode(&mut r)?;
        let kind = r.u8()?;
        let elem = match kind {
            1 => None,
            0 => {
                let dot = Dot::decode(&mut r)?;
                let off = r.varint()?;
                let off = u32::try_from(off).map_err(|_| DecodeError::LengthOutOfRange {
                    len: off,
                    limit: u64::from(u32::MAX),
                })?;
                let assoc = match r.u8()? {
                    0 => Assoc::Before,
                    1 => Assoc::After,
                    tag => {
                        return Err(DecodeError::InvalidTag {
                            what: "cursor side",
                            tag,
                        }
                        .into())
                    }
                };
                Some((ElemId::new(dot, off), assoc))
            }
            tag => {
                return Err(DecodeError::InvalidTag {
                    what: "cursor kind",
                    tag,
                }
                .into())
            }
        };
        r.finish()?;
        let bottom = State::bottom(key.ty);
        let st = self.objects.get(&key).unwrap_or(&bottom);
        if st
            .cursor_at(Pos {
                at: 0,
                utf16: false,
            })
            .is_none()
        {
            return Err(CursorError::NotASequence(key.ty));
        }
        let Some((id, assoc)) = elem else {
            return Ok((key, 0, 0));
        };
        let (n, n16) = st.resolve(id, assoc).ok_or(CursorError::Unknown(id.dot))?;
        Ok((key, n, n16))
    }
}
