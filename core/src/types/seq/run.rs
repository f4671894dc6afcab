//! Element ids and runs: consecutive elements stored as one.

use std::fmt;

use super::chunk::Chunk;
use crate::clock::Dot;

/// Most elements a visible run holds in memory, so that splitting one
/// (an edit in its middle) stays short.
pub const RUN_MAX: u32 = 256;

/// An element's id: the transaction that inserted it, and its offset among
/// the elements that transaction inserted into the object.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElemId {
    /// The inserting transaction.
    pub dot: Dot,
    /// The element's offset in that transaction's inserts.
    pub off: u32,
}

impl ElemId {
    /// The id.
    pub fn new(dot: Dot, off: u32) -> Self {
        Self { dot, off }
    }
}

impl fmt::Debug for ElemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}+{}", self.dot, self.off)
    }
}

/// The `k`-th id of a run of ids from `first`: one per seq (`per_txn`,
/// consecutive transactions that each inserted one element here) or one
/// per offset of one transaction.
#[inline]
pub fn id_at(first: ElemId, per_txn: bool, k: u32) -> ElemId {
    // Decoders refuse runs and ranges whose ids overflow; saturating keeps
    // anything else from panicking.
    if per_txn {
        ElemId::new(
            Dot::new(first.dot.replica, first.dot.seq.saturating_add(k as u64)),
            0,
        )
    } else {
        ElemId::new(first.dot, first.off.saturating_add(k))
    }
}

/// Consecutive elements: ids from `id` (one shape), each element's left
/// origin the one before it (the first's is `left`), all sharing the right
/// origin `right`, all visible (with `content`) or all deleted.
#[derive(Clone, PartialEq, Eq)]
pub struct Run<C> {
    /// The first element's id.
    pub id: ElemId,
    /// How many elements.
    pub len: u32,
    /// Ids go one per seq (`(seq + k, 0)`) rather than one per offset.
    /// Meaningful only when `len > 1`.
    pub per_txn: bool,
    /// The first element's left origin (`None`: the start).
    pub left: Option<ElemId>,
    /// Every element's right origin (`None`: the end).
    pub right: Option<ElemId>,
    /// The elements' content, or `None` once deleted.
    pub content: Option<C>,
}

impl<C: Chunk> fmt::Debug for Run<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{:?}x{}{} l={:?} r={:?} {:?}]",
            self.id,
            self.len,
            if self.per_txn { "t" } else { "" },
            self.left,
            self.right,
            self.content
        )
    }
}

impl<C: Chunk> Run<C> {
    /// The `k`-th element's id.
    #[inline]
    pub fn id_at(&self, k: u32) -> ElemId {
        id_at(self.id, self.per_txn && self.len > 1, k)
    }

    /// The last element's id.
    #[inline]
    pub fn last(&self) -> ElemId {
        self.id_at(self.len - 1)
    }

    /// The offset of `id` in the run.
    #[inline]
    pub fn offset_of(&self, id: ElemId) -> Option<u32> {
        if id.dot.replica != self.id.dot.replica {
            return None;
        }
        if self.per_txn && self.len > 1 {
            if id.off != 0 || id.dot.seq < self.id.dot.seq {
                return None;
            }
            let k = id.dot.seq - self.id.dot.seq;
            (k < self.len as u64).then_some(k as u32)
        } else {
            if id.dot.seq != self.id.dot.seq || id.off < self.id.off {
                return None;
            }
            let k = id.off - self.id.off;
            (k < self.len).then_some(k)
        }
    }

    /// The `k`-th element's left origin.
    #[inline]
    pub fn left_at(&self, k: u32) -> Option<ElemId> {
        if k == 0 {
            self.left
        } else {
            Some(self.id_at(k - 1))
        }
    }

    /// Visible elements (code points for text).
    #[inline]
    pub fn vis(&self) -> u32 {
        self.content.as_ref().map_or(0, Chunk::len)
    }

    /// Visible UTF-16 units.
    #[inline]
    pub fn utf16(&self) -> u32 {
        self.content.as_ref().map_or(0, Chunk::utf16)
    }

    /// Splits the run before element `k` (`0 < k < len`), keeping the head
    /// and returning the tail.
    pub fn split(&mut self, k: u32) -> Run<C> {
        debug_assert!(0 < k && k < self.len);
        let tail = Run {
            id: self.id_at(k),
            len: self.len - k,
            per_txn: self.per_txn && self.len > 1,
            left: Some(self.id_at(k - 1)),
            right: self.right,
            content: self.content.as_mut().map(|c| c.split_off(k)),
        };
        self.len = k;
        self.per_txn &= k > 1;
        tail
    }

    /// The shape the run takes if `next` (an id) follows its last element:
    /// `Some(per_txn)` if the ids continue one, `None` if not.
    #[inline]
    fn continued_by(&self, next: ElemId) -> Option<bool> {
        let last = self.last();
        if next.dot.replica != last.dot.replica {
            return None;
        }
        let within = next.dot.seq == last.dot.seq && Some(next.off) == last.off.checked_add(1);
        let per =
            next.off == 0 && last.off == 0 && Some(next.dot.seq) == last.dot.seq.checked_add(1);
        if self.len == 1 {
            if within {
                Some(false)
            } else if per {
                Some(true)
            } else {
                None
            }
        } else if self.per_txn {
            per.then_some(true)
        } else {
            within.then_some(false)
        }
    }

    /// If `next` can be merged onto the end of this run, the merged run's
    /// shape. `cap` keeps merged visible content within [`RUN_MAX`].
    #[inline]
    pub fn joins(&self, next: &Run<C>, cap: bool) -> Option<bool> {
        if next.left != Some(self.last()) || next.right != self.right {
            return None;
        }
        let shape = self.continued_by(next.id)?;
        if next.len > 1 && next.per_txn != shape {
            return None;
        }
        match (&self.content, &next.content) {
            (None, None) => Some(shape),
            (Some(a), Some(b)) if !cap || a.len() + b.len() <= RUN_MAX => Some(shape),
            _ => None,
        }
    }

    /// [`Run::joins`] for a one-transaction visible run not built yet.
    #[inline]
    pub fn joins_new(
        &self,
        id: ElemId,
        left: Option<ElemId>,
        right: Option<ElemId>,
        len: u32,
    ) -> Option<bool> {
        if left != Some(self.last()) || right != self.right {
            return None;
        }
        let shape = self.continued_by(id)?;
        if len > 1 && shape {
            return None;
        }
        match &self.content {
            Some(a) if a.len() + len <= RUN_MAX => Some(shape),
            _ => None,
        }
    }

    /// Merges `next` onto the end (after [`Run::joins`] said `Some(shape)`).
    #[inline]
    pub fn absorb(&mut self, next: Run<C>, shape: bool) {
        self.per_txn = shape;
        self.len += next.len;
        if let (Some(a), Some(b)) = (&mut self.content, &next.content) {
            a.append(b);
        }
    }
}
