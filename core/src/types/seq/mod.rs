//! The sequence CRDT that `list` and `text` share: FugueMax ordering
//! (Weidner & Kleppmann, *The Art of the Fugue*, 2023), computed with the
//! "YjsMod" integration scan that diamond-types showed gives the same order,
//! over an order-statistic tree of runs (`tree.rs`) with an id index
//! (`index.rs`). The design, and what was learned from diamond-types, loro
//! and yrs, is in `docs/design-list-text.md`.
//!
//! * An element's id is its transaction's dot plus its offset among the
//!   elements that transaction inserted into the object (`run.rs`).
//! * An insert names its left origin (the visible element before the
//!   index) and its right origin (the element right after that one,
//!   deleted or not). Causal delivery means both are present when it
//!   arrives (`observed` names their dots), so an insert never waits.
//! * A delete names id ranges and drops their content: only the ordering
//!   skeleton of deleted elements stays.
//! * The state is a join-semilattice: the skeleton is a grow-only set with
//!   one order everywhere, and deletes are a grow-only set of ids, so
//!   `join` is "integrate what I lack, then delete what they deleted".
//!   No causal context is needed beyond the skeleton itself.

mod chunk;
mod crdt;
mod delta;
mod index;
mod run;
mod tree;

use std::collections::BTreeMap;

pub use chunk::{Chunk, ListChunk, TextChunk};
pub use crdt::{SeqKind, SeqType};
pub use delta::{compose, diff, DeltaOp, SeqEdit};
pub use run::ElemId;
use run::{id_at, Run};
use tree::{Cursor, Metric, Tree};

use super::Rename;
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};

/// A reference to an element from an effect: one inserted earlier by the
/// same transaction (by offset; its dot is the transaction's), or any other.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ref {
    /// The transaction's own element at this offset.
    Own(u32),
    /// Another transaction's element.
    Id(ElemId),
}

impl Ref {
    #[inline]
    fn resolve(self, dot: Dot) -> ElemId {
        match self {
            Ref::Own(off) => ElemId::new(dot, off),
            Ref::Id(id) => id,
        }
    }

    #[inline]
    fn of(id: ElemId, own: Option<Dot>) -> Ref {
        if Some(id.dot) == own {
            Ref::Own(id.off)
        } else {
            Ref::Id(id)
        }
    }
}

/// One step of an effect, in op order.
#[derive(Clone, PartialEq, Debug)]
pub enum Piece<C> {
    /// Inserts `content` between its origins; its ids are the effect's dot
    /// with the next offsets.
    Ins {
        /// Left origin (`None`: the start).
        left: Option<Ref>,
        /// Right origin (`None`: the end).
        right: Option<Ref>,
        /// The elements.
        content: C,
    },
    /// Deletes `len` ids from `first` (one per seq if `per_txn`).
    Del {
        /// The first id.
        first: Ref,
        /// How many.
        len: u32,
        /// Ids go one per seq.
        per_txn: bool,
    },
}

/// What one transaction did to one sequence.
pub type Effect<C> = Vec<Piece<C>>;

/// A position in the host's index unit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Pos {
    /// The index.
    pub at: u64,
    /// Counted in UTF-16 units (JavaScript) rather than code points.
    pub utf16: bool,
}

/// An op on a sequence, as the type modules hand it over.
#[derive(Debug)]
pub enum SeqOp<C> {
    /// Insert content at an index.
    Ins(Pos, C),
    /// Delete `n` units from an index.
    Del(Pos, u64),
    /// Delete `n` units, then insert content, at an index.
    Splice(Pos, u64, C),
    /// Delete everything visible (a reset).
    Clear,
}

/// Whether a cursor sticks to the element after its index or before it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Assoc {
    /// Before the element (the index of the element).
    Before,
    /// After the element (one past it, if it is visible).
    After,
}

/// A sequence's state.
#[derive(Clone, Default)]
pub struct Seq<C: Chunk> {
    tree: Tree<C>,
}

impl<C: Chunk> std::fmt::Debug for Seq<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.coalesced()).finish()
    }
}

impl<C: Chunk> PartialEq for Seq<C> {
    fn eq(&self, other: &Self) -> bool {
        let t1 = self.tree.total();
        let t2 = other.tree.total();
        t1.elems == t2.elems && t1.vis == t2.vis && self.coalesced().eq(other.coalesced())
    }
}

impl<C: Chunk> Eq for Seq<C> {}

/// Where an insert lands.
enum Spot {
    /// Before the element at the cursor (splitting its run if inside).
    At(Cursor),
    /// At the end of the document.
    End,
}

impl<C: Chunk> Seq<C> {
    /// True if no element was ever inserted.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// True if some element is visible.
    #[inline]
    pub fn any_visible(&self) -> bool {
        self.tree.total().vis > 0
    }

    /// Runs in memory (an upper bound on the tokens a reset names).
    #[inline]
    pub fn runs(&self) -> usize {
        self.tree.total().runs as usize
    }

    /// Memory figures: (runs, skeleton elements, visible elements, index ranges).
    pub fn stats(&self) -> (u64, u64, u64, usize) {
        let t = self.tree.total();
        (t.runs, t.elems, t.vis, self.tree.index_ranges())
    }

    /// Visible length in elements (code points) and UTF-16 units.
    #[inline]
    pub fn len(&self) -> (u64, u64) {
        let t = self.tree.total();
        (t.vis, t.utf16)
    }

    /// The visible content, in order.
    pub fn value(&self) -> crate::value::Value {
        let mut out = C::Out::default();
        for r in self.tree.iter() {
            if let Some(c) = &r.content {
                c.push_value(&mut out);
            }
        }
        C::value(out)
    }

    /// The runs merged as far as they go (the canonical form, which equal
    /// states share whatever their history split in memory).
    fn coalesced(&self) -> impl Iterator<Item = Run<C>> + '_ {
        let mut it = self.tree.iter().peekable();
        let mut pending: Option<Run<C>> = None;
        std::iter::from_fn(move || {
            let mut cur = pending.take().or_else(|| it.next().cloned())?;
            while let Some(n) = it.peek() {
                if let Some(shape) = cur.joins(n, false) {
                    let n = it.next().expect("peeked").clone();
                    cur.absorb(n, shape);
                    continue;
                }
                // The next run may continue this one for one element, in
                // another shape than its own.
                if n.len > 1 {
                    let mut head = (*n).clone();
                    let tail = head.split(1);
                    if let Some(shape) = cur.joins(&head, false) {
                        it.next();
                        cur.absorb(head, shape);
                        pending = Some(tail);
                    }
                }
                break;
            }
            cur.per_txn &= cur.len > 1;
            Some(cur)
        })
    }

    // ----- positions -----

    /// The code point index of position `p`, checked against the length.
    fn to_elems(&self, p: Pos, index: usize, op: &'static str) -> Result<u64, UpdateError> {
        let (len, len16) = self.len();
        let limit = if p.utf16 { len16 } else { len };
        if p.at > limit {
            return Err(UpdateError::IndexOutOfRange {
                index,
                op,
                at: p.at,
                len: limit,
            });
        }
        if !p.utf16 || len == len16 {
            return Ok(p.at);
        }
        if p.at == len16 {
            return Ok(len);
        }
        let (c, acc) = self
            .tree
            .find(p.at, Metric::Utf16)
            .expect("below the total");
        let run = self.tree.run(c);
        let k = run
            .content
            .as_ref()
            .and_then(|ch| ch.utf16_to_elems(c.off))
            .ok_or(UpdateError::InsideSurrogatePair { index, at: p.at })?;
        Ok(acc.vis + k as u64)
    }

    /// Converts `[p, p + n)` to code points.
    fn range_to_elems(
        &self,
        p: Pos,
        n: u64,
        index: usize,
        op: &'static str,
    ) -> Result<(u64, u64), UpdateError> {
        let end = p.at.checked_add(n).ok_or(UpdateError::IndexOutOfRange {
            index,
            op,
            at: u64::MAX,
            len: self.len().0,
        })?;
        let a = self.to_elems(p, index, op)?;
        let b = self.to_elems(Pos { at: end, ..p }, index, op)?;
        Ok((a, b - a))
    }

    /// The visible element at code point `at`.
    #[inline]
    fn visible(&self, at: u64) -> Option<Cursor> {
        self.tree.find(at, Metric::Vis).map(|(c, _)| c)
    }

    /// The origins of an insert at code point `at`, and where it goes.
    fn origins(&self, at: u64) -> (Option<ElemId>, Option<ElemId>, Cursor) {
        if at == 0 {
            let start = self.tree.start();
            let right = self
                .tree
                .normalize(start)
                .map(|c| self.tree.run(c).id_at(c.off));
            return (None, right, start);
        }
        let c = self.visible(at - 1).expect("checked index");
        let left = self.tree.run(c).id_at(c.off);
        let after = self.tree.after(c);
        let right = self
            .tree
            .normalize(after)
            .map(|c| self.tree.run(c).id_at(c.off));
        (Some(left), right, after)
    }

    // ----- prepare -----

    /// The pieces of one op, read from the current state (`own`: the dot of
    /// the transaction, whose elements are referred to by offset).
    fn pieces(
        &self,
        index: usize,
        op: &SeqOp<C>,
        own: Option<Dot>,
        out: &mut Effect<C>,
    ) -> Result<(), UpdateError> {
        match op {
            SeqOp::Ins(p, c) => {
                let at = self.to_elems(*p, index, "insert")?;
                if c.len() > 0 {
                    let (l, r, _) = self.origins(at);
                    out.push(Piece::Ins {
                        left: l.map(|l| Ref::of(l, own)),
                        right: r.map(|r| Ref::of(r, own)),
                        content: c.clone(),
                    });
                }
            }
            SeqOp::Del(p, n) => {
                let (at, n) = self.range_to_elems(*p, *n, index, "delete")?;
                self.del_pieces(at, n, own, out);
            }
            SeqOp::Splice(p, n, c) => {
                let (at, n) = self.range_to_elems(*p, *n, index, "splice")?;
                self.del_pieces(at, n, own, out);
                if c.len() > 0 {
                    // Deleting keeps the skeleton, so the origins are the
                    // same before and after the delete.
                    let (l, r, _) = self.origins(at);
                    out.push(Piece::Ins {
                        left: l.map(|l| Ref::of(l, own)),
                        right: r.map(|r| Ref::of(r, own)),
                        content: c.clone(),
                    });
                }
            }
            SeqOp::Clear => {
                let n = self.len().0;
                self.del_pieces(0, n, own, out);
            }
        }
        Ok(())
    }

    /// Delete pieces for `n` visible elements from code point `at`.
    fn del_pieces(&self, at: u64, mut n: u64, own: Option<Dot>, out: &mut Effect<C>) {
        if n == 0 {
            return;
        }
        let mut cur = self.visible(at);
        while let Some(c) = cur {
            if n == 0 {
                break;
            }
            let run = self.tree.run(c);
            if run.content.is_some() {
                let k = (run.len - c.off).min(n.min(u32::MAX as u64) as u32);
                let per = run.per_txn && run.len > 1;
                let first = run.id_at(c.off);
                push_del(out, first, k, per, own);
                n -= k as u64;
            }
            cur = self.tree.next_run(c);
        }
    }

    /// Folds ops into one effect without changing the state. More than one
    /// op is worked out on a copy (later ops see earlier ones).
    pub fn prepare(
        state: Option<&Self>,
        ops: &[(usize, SeqOp<C>)],
        origin: ReplicaId,
    ) -> Result<Effect<C>, UpdateError> {
        let empty = Seq::default();
        let s = state.unwrap_or(&empty);
        let mut out = Vec::new();
        if let [(i, op)] = ops {
            s.pieces(*i, op, None, &mut out)?;
            return Ok(out);
        }
        let mut copy = s.clone();
        // The transaction's dot is not known yet: a placeholder stands for
        // it (no element of `origin` has it: the replica's seq would be
        // all but used up first), and its elements are referred to by
        // offset.
        let own = Dot::new(origin, u64::MAX - 1);
        let mut off = 0u32;
        for (i, op) in ops {
            let mut ps = Vec::new();
            copy.pieces(*i, op, Some(own), &mut ps)?;
            off = copy.apply_from(&ps, own, off, None);
            out.extend(ps);
        }
        Ok(out)
    }

    /// Prepares and applies in one pass where that is cheaper: a single
    /// insert goes where its origins were found, with no lookup.
    pub fn prepare_apply(
        &mut self,
        ops: &[(usize, SeqOp<C>)],
        origin: ReplicaId,
        dot: Dot,
        rec: Option<&mut Vec<SeqEdit>>,
    ) -> Result<Effect<C>, UpdateError> {
        if let [(i, SeqOp::Ins(p, c))] = ops {
            let at = self.to_elems(*p, *i, "insert")?;
            if c.len() == 0 {
                return Ok(Vec::new());
            }
            let (left, right, after) = self.origins(at);
            if let Some(rec) = rec {
                let at16 = self.tree.before(after).utf16;
                rec.push(SeqEdit::Ins {
                    at,
                    at16,
                    content: c.to_value(),
                });
            }
            let id = ElemId::new(dot, 0);
            // Typing: the new elements continue the run before them.
            if !self.tree.try_append(after, id, left, right, c) {
                let run = Run {
                    id,
                    len: c.len(),
                    per_txn: false,
                    left,
                    right,
                    content: Some(c.clone()),
                };
                self.put(Spot::At(after), run);
            }
            return Ok(vec![Piece::Ins {
                left: left.map(Ref::Id),
                right: right.map(Ref::Id),
                content: c.clone(),
            }]);
        }
        if ops.len() > 1 && self.lengths_settle(ops)? {
            // Every op's index was checked against the lengths the ops
            // before it leave, so none can fail now: apply each as it is
            // worked out (later ops see earlier ones), with no copy.
            let mut rec = rec;
            let mut out = Vec::new();
            let mut off = 0u32;
            for (i, op) in ops {
                // Each op's pieces apart: a delete may not merge into the
                // previous op's pieces, which are applied already.
                let mut ps = Vec::new();
                self.pieces(*i, op, Some(dot), &mut ps)?;
                off = self.apply_from(&ps, dot, off, rec.as_deref_mut());
                out.extend(ps);
            }
            return Ok(out);
        }
        let e = Self::prepare(Some(self), ops, origin)?;
        self.apply_from(&e, dot, 0, rec);
        Ok(e)
    }

    /// Checks every op's index against the length the ops before it leave
    /// (an error names the first that is out of range). True if that
    /// settles it: indexes count code points, or UTF-16 units of text that
    /// has no character outside the BMP (nor will the inserts add one), so
    /// the units are the same and lengths follow from the ops alone.
    fn lengths_settle(&self, ops: &[(usize, SeqOp<C>)]) -> Result<bool, UpdateError> {
        let (len, len16) = self.len();
        let bmp = len == len16
            && ops.iter().all(|(_, op)| match op {
                SeqOp::Ins(_, c) | SeqOp::Splice(_, _, c) => c.len() == c.utf16(),
                _ => true,
            });
        if !bmp
            && ops
                .iter()
                .any(|(_, op)| op_pos(op).is_some_and(|p| p.utf16))
        {
            return Ok(false);
        }
        let mut len = len;
        let out = |index, op, at, len| UpdateError::IndexOutOfRange { index, op, at, len };
        for (i, op) in ops {
            match op {
                SeqOp::Ins(p, c) => {
                    if p.at > len {
                        return Err(out(*i, "insert", p.at, len));
                    }
                    len += c.len() as u64;
                }
                SeqOp::Del(p, n) | SeqOp::Splice(p, n, _) => {
                    let name = if matches!(op, SeqOp::Del(..)) {
                        "delete"
                    } else {
                        "splice"
                    };
                    let end = p.at.saturating_add(*n);
                    if p.at > len {
                        return Err(out(*i, name, p.at, len));
                    }
                    if end > len {
                        return Err(out(*i, name, end, len));
                    }
                    len -= n;
                    if let SeqOp::Splice(_, _, c) = op {
                        len += c.len() as u64;
                    }
                }
                SeqOp::Clear => len = 0,
            }
        }
        Ok(true)
    }

    // ----- apply -----

    /// Applies an effect of transaction `dot`.
    #[inline]
    pub fn apply(&mut self, e: &Effect<C>, dot: Dot, rec: Option<&mut Vec<SeqEdit>>) {
        self.apply_from(e, dot, 0, rec);
    }

    /// Applies pieces whose first insert has offset `off`; returns the
    /// offset after them.
    fn apply_from(
        &mut self,
        e: &[Piece<C>],
        dot: Dot,
        mut off: u32,
        mut rec: Option<&mut Vec<SeqEdit>>,
    ) -> u32 {
        for p in e {
            match p {
                Piece::Ins {
                    left,
                    right,
                    content,
                } => {
                    let id = ElemId::new(dot, off);
                    off = off.saturating_add(content.len());
                    let left = left.map(|r| r.resolve(dot));
                    let right = right.map(|r| r.resolve(dot));
                    self.integrate(id, left, right, Some(content.clone()), rec.as_deref_mut());
                }
                Piece::Del {
                    first,
                    len,
                    per_txn,
                } => {
                    self.delete_ids(first.resolve(dot), *len, *per_txn, rec.as_deref_mut());
                }
            }
        }
        off
    }

    /// Inserts the run of ids from `id` between `left` and `right`, after
    /// any concurrent inserts there that FugueMax orders first. Dropped
    /// (everywhere alike) if `left` is not an element.
    fn integrate(
        &mut self,
        id: ElemId,
        left: Option<ElemId>,
        right: Option<ElemId>,
        content: Option<C>,
        rec: Option<&mut Vec<SeqEdit>>,
    ) -> bool {
        let len = match &content {
            Some(c) => c.len(),
            None => return false,
        };
        self.integrate_run(
            Run {
                id,
                len,
                per_txn: false,
                left,
                right,
                content,
            },
            rec,
        )
    }

    fn integrate_run(&mut self, run: Run<C>, rec: Option<&mut Vec<SeqEdit>>) -> bool {
        let (id, left, right) = (run.id, run.left, run.right);
        let start = match left {
            None => self.tree.start(),
            Some(l) => match self.tree.locate(l) {
                Some(c) => self.tree.after(c),
                None => return false,
            },
        };
        let first = self.tree.normalize(start);
        let mut cur = first;
        let mut scanning = false;
        let mut scan_at = None;
        // Positions, computed only when concurrent inserts are met: a left
        // origin counts one past its element (0 is the start), a right
        // origin its element (the end is the number of elements).
        let mut my_left: Option<u64> = None;
        let mut my_right: Option<u64> = None;
        while let Some(c) = cur {
            let o = self.tree.run(c);
            let oid = o.id_at(c.off);
            if Some(oid) == right {
                break;
            }
            let (o_left, o_right) = (o.left_at(c.off), o.right);
            if o_left == left {
                if o_right == right {
                    if id < oid {
                        break;
                    }
                    scanning = false;
                } else {
                    let mr = *my_right.get_or_insert_with(|| self.right_pos(right));
                    if self.right_pos(o_right) < mr {
                        if !scanning {
                            scanning = true;
                            scan_at = Some(c);
                        }
                    } else {
                        scanning = false;
                    }
                }
            } else {
                let ml = *my_left.get_or_insert_with(|| self.left_pos(left));
                if self.left_pos(o_left) < ml {
                    break;
                }
            }
            cur = self.tree.next_run(c);
        }
        if scanning {
            cur = scan_at;
        }
        let spot = match cur {
            Some(c) if Some(c) == first => Spot::At(start),
            Some(c) => Spot::At(c),
            None if first.is_none() => Spot::At(start),
            None => Spot::End,
        };
        if let Some(rec) = rec {
            if let Some(content) = &run.content {
                let before = match spot {
                    Spot::At(c) => self.tree.before(c),
                    Spot::End => self.tree.total(),
                };
                rec.push(SeqEdit::Ins {
                    at: before.vis,
                    at16: before.utf16,
                    content: content.to_value(),
                });
            }
        }
        self.put(spot, run);
        true
    }

    #[inline]
    fn left_pos(&self, left: Option<ElemId>) -> u64 {
        match left.and_then(|l| self.tree.locate(l)) {
            Some(c) => self.tree.pos(c) + 1,
            None => 0,
        }
    }

    #[inline]
    fn right_pos(&self, right: Option<ElemId>) -> u64 {
        match right.and_then(|r| self.tree.locate(r)) {
            Some(c) => self.tree.pos(c),
            None => self.tree.total().elems,
        }
    }

    /// Puts a run at a spot, in pieces of at most [`run::RUN_MAX`]
    /// elements if it holds content (a paste), so that an edit inside it
    /// later splits a short piece, not the whole paste.
    fn put(&mut self, spot: Spot, mut run: Run<C>) {
        if run.content.is_some() && run.len > run::RUN_MAX {
            let tail = run.split(run::RUN_MAX);
            let last = run.last();
            self.put_one(spot, run);
            let c = self.tree.locate(last).expect("just put");
            let next = Spot::At(self.tree.after(c));
            return self.put(next, tail);
        }
        self.put_one(spot, run);
    }

    fn put_one(&mut self, spot: Spot, run: Run<C>) {
        match spot {
            Spot::At(c) => {
                let i = self.tree.split_at(c);
                self.tree.insert(c.leaf, i, run);
            }
            Spot::End => {
                let c = self.tree.end();
                self.tree.insert(c.leaf, c.run, run);
            }
        }
    }

    /// Deletes the ids of a range that are present, stopping at the first
    /// that is not (an honest range has them all; a hostile one stops
    /// everywhere at the same place).
    fn delete_ids(
        &mut self,
        first: ElemId,
        len: u32,
        per_txn: bool,
        mut rec: Option<&mut Vec<SeqEdit>>,
    ) {
        let per = per_txn && len > 1;
        let mut k = 0u32;
        while k < len {
            let id = id_at(first, per, k);
            let Some(c) = self.tree.locate(id) else {
                return;
            };
            let run = self.tree.run(c);
            let avail = run.len - c.off;
            let left = len - k;
            let n = if avail > 1 && left > 1 && run.id_at(c.off + 1) == id_at(first, per, k + 1) {
                avail.min(left)
            } else {
                1
            };
            if run.content.is_some() {
                let before = rec.is_some().then(|| self.tree.before(c));
                let removed = self.tree.delete(c, n);
                if let (Some(rec), Some(b), Some(ch)) = (rec.as_deref_mut(), before, removed) {
                    rec.push(SeqEdit::Del {
                        at: b.vis,
                        at16: b.utf16,
                        n: ch.len() as u64,
                        n16: ch.utf16() as u64,
                    });
                }
            }
            k += n;
        }
    }

    // ----- join -----

    /// Joins `other` (whose context is `theirs`) into `self`: integrates
    /// the elements this state lacks (each after its origins), then deletes
    /// what `other` deleted. Elements of `other` whose dot `theirs` does not
    /// hold are left out: no honest state has them, and taking them would
    /// let a snapshot plant an id before its transaction exists. `other`'s
    /// order is never trusted: even into an empty state, every element is
    /// integrated by its origins, so any two replicas order a hostile
    /// state's elements alike.
    pub fn join(&mut self, other: &Self, theirs: &VectorClock) {
        if other.is_empty() {
            return;
        }
        let empty = self.is_empty();
        // Segments of `other` this state lacks, in `other`'s order.
        let mut segs: Vec<Run<C>> = Vec::new();
        for run in other.tree.iter() {
            let len = covered(run, theirs);
            let mut k = 0u32;
            while k < len {
                if !empty {
                    if let Some(c) = self.tree.locate(run.id_at(k)) {
                        let mine = self.tree.run(c);
                        let avail = mine.len - c.off;
                        let n = if avail > 1
                            && len - k > 1
                            && mine.id_at(c.off + 1) == run.id_at(k + 1)
                        {
                            avail.min(len - k)
                        } else {
                            1
                        };
                        k += n;
                        continue;
                    }
                }
                let from = k;
                k = if empty {
                    len
                } else {
                    self.tree
                        .next_present(run.id, run.per_txn, from + 1, len)
                        .unwrap_or(len)
                };
                let mut seg = run.clone();
                if k < seg.len {
                    seg.split(k);
                }
                let seg = if from > 0 { seg.split(from) } else { seg };
                segs.push(seg);
            }
        }
        if !segs.is_empty() {
            self.integrate_all(segs);
        }
        // Deletes.
        for run in other.tree.iter() {
            if run.content.is_none() {
                let len = covered(run, theirs);
                if len > 0 {
                    self.delete_ids_all(run.id, len, run.per_txn);
                }
            }
        }
    }

    /// Like `delete_ids`, but skipping ids that are missing.
    fn delete_ids_all(&mut self, first: ElemId, len: u32, per_txn: bool) {
        let per = per_txn && len > 1;
        let mut k = 0u32;
        while k < len {
            let id = id_at(first, per, k);
            let Some(c) = self.tree.locate(id) else {
                match self.tree.next_present(first, per, k + 1, len) {
                    Some(next) => {
                        k = next;
                        continue;
                    }
                    None => return,
                }
            };
            let run = self.tree.run(c);
            let avail = run.len - c.off;
            let n = if avail > 1 && len - k > 1 && run.id_at(c.off + 1) == id_at(first, per, k + 1)
            {
                avail.min(len - k)
            } else {
                1
            };
            if run.content.is_some() {
                self.tree.delete(c, n);
            }
            k += n;
        }
    }

    /// Integrates segments so that each one's origins are present first (a
    /// depth-first topological order; integration commutes, so any such
    /// order gives the same result). Segments whose origins are missing or
    /// form a cycle (only hostile states have them) are dropped.
    fn integrate_all(&mut self, segs: Vec<Run<C>>) {
        let mut by_id = index::IdIndex::default();
        for (i, s) in segs.iter().enumerate() {
            by_id.assign(s.id, s.len, s.per_txn, i as u32, false);
        }
        // 0 new, 1 on the stack, 2 done, 3 dropped.
        let mut state = vec![0u8; segs.len()];
        let mut segs: Vec<Option<Run<C>>> = segs.into_iter().map(Some).collect();
        for root in 0..segs.len() {
            if state[root] != 0 {
                continue;
            }
            let mut stack = vec![root];
            while let Some(&top) = stack.last() {
                if state[top] >= 2 {
                    stack.pop();
                    continue;
                }
                state[top] = 1;
                let s = segs[top].as_ref().expect("not integrated yet");
                let mut blocked = None;
                let mut dead = false;
                for dep in [s.left, s.right].into_iter().flatten() {
                    if self.tree.locate(dep).is_some() {
                        continue;
                    }
                    match by_id.get(dep).map(|d| d as usize) {
                        Some(d) if d != top && state[d] == 0 => {
                            blocked = Some(d);
                            break;
                        }
                        // Inside itself, on the stack (a cycle), dropped,
                        // or missing everywhere: only hostile states.
                        _ => dead = true,
                    }
                }
                if let Some(d) = blocked {
                    stack.push(d);
                    continue;
                }
                stack.pop();
                let run = segs[top].take().expect("not integrated yet");
                if dead || !self.integrate_run(run, None) {
                    state[top] = 3;
                } else {
                    state[top] = 2;
                }
            }
        }
    }

    // ----- cursors -----

    /// The element a cursor at code point `at` sticks to: the element at
    /// `at`, or (at the end) after the last one; `None` if empty.
    pub fn cursor_at(&self, p: Pos) -> Result<Option<(ElemId, Assoc)>, UpdateError> {
        let at = self.to_elems(p, 0, "cursor")?;
        let len = self.len().0;
        if at < len {
            let c = self.visible(at).expect("below the length");
            return Ok(Some((self.tree.run(c).id_at(c.off), Assoc::Before)));
        }
        if len == 0 {
            return Ok(None);
        }
        let c = self.visible(len - 1).expect("non-empty");
        Ok(Some((self.tree.run(c).id_at(c.off), Assoc::After)))
    }

    /// The index a cursor points at now (code points, UTF-16 units), or
    /// `None` if the element is not known here.
    pub fn resolve(&self, id: ElemId, assoc: Assoc) -> Option<(u64, u64)> {
        let c = self.tree.locate(id)?;
        let b = self.tree.before(c);
        let run = self.tree.run(c);
        match (&run.content, assoc) {
            (Some(ch), Assoc::After) => {
                let w = ch.elems_to_utf16(c.off + 1) - ch.elems_to_utf16(c.off);
                Some((b.vis + 1, b.utf16 + w as u64))
            }
            _ => Some((b.vis, b.utf16)),
        }
    }

    // ----- effects -----

    /// Every dot an effect observed.
    pub fn observed(e: &Effect<C>, f: &mut dyn FnMut(Dot)) {
        for p in e {
            match p {
                Piece::Ins { left, right, .. } => {
                    for r in [left, right].into_iter().flatten() {
                        if let Ref::Id(id) = r {
                            f(id.dot);
                        }
                    }
                }
                Piece::Del {
                    first: Ref::Id(id),
                    len,
                    per_txn,
                } => f(id_at(*id, *per_txn && *len > 1, len.saturating_sub(1)).dot),
                Piece::Del { .. } => {}
            }
        }
    }

    /// Renames the ids an effect of a re-issued transaction names.
    pub fn rename(e: &mut Effect<C>, r: &Rename) {
        let mut out = Vec::with_capacity(e.len());
        for p in e.drain(..) {
            match p {
                Piece::Ins {
                    left,
                    right,
                    content,
                } => {
                    let f = |x: Option<Ref>| match x {
                        Some(Ref::Id(id)) => Some(Ref::Id(ElemId::new(r.dot(id.dot), id.off))),
                        x => x,
                    };
                    out.push(Piece::Ins {
                        left: f(left),
                        right: f(right),
                        content,
                    });
                }
                Piece::Del {
                    first: Ref::Id(id),
                    len,
                    per_txn,
                } if per_txn
                    && len > 1
                    && id.dot.replica == r.old
                    && id.dot.seq < r.from
                    && id.dot.seq.saturating_add(len as u64) > r.from =>
                {
                    let head = (r.from - id.dot.seq) as u32;
                    out.push(Piece::Del {
                        first: Ref::Id(id),
                        len: head,
                        per_txn,
                    });
                    out.push(Piece::Del {
                        first: Ref::Id(ElemId::new(r.dot(Dot::new(r.old, r.from)), 0)),
                        len: len - head,
                        per_txn,
                    });
                }
                Piece::Del {
                    first,
                    len,
                    per_txn,
                } => {
                    let first = match first {
                        Ref::Id(id) => Ref::Id(ElemId::new(r.dot(id.dot), id.off)),
                        own => own,
                    };
                    out.push(Piece::Del {
                        first,
                        len,
                        per_txn,
                    });
                }
            }
        }
        *e = out;
    }

    /// Appends an effect's encoding.
    pub fn encode_effect(e: &Effect<C>, w: &mut Writer) {
        w.varint(e.len() as u64);
        for p in e {
            match p {
                Piece::Ins {
                    left,
                    right,
                    content,
                } => {
                    w.u8(0);
                    encode_ref(*left, w);
                    encode_ref(*right, w);
                    content.encode(w);
                }
                Piece::Del {
                    first,
                    len,
                    per_txn,
                } => {
                    w.u8(if *per_txn && *len > 1 { 2 } else { 1 });
                    encode_ref(Some(*first), w);
                    w.varint(*len as u64);
                }
            }
        }
    }

    /// Decodes an effect.
    pub fn decode_effect(r: &mut Reader<'_>) -> Result<Effect<C>, DecodeError> {
        let n = r.count(3)?;
        let mut out = Vec::with_capacity(crate::codec::reserve(n));
        let mut off = 0u32;
        for _ in 0..n {
            match r.u8()? {
                0 => {
                    let left = decode_ref(r)?;
                    let right = decode_ref(r)?;
                    let content = C::decode(r)?;
                    off = off
                        .checked_add(content.len())
                        .ok_or(DecodeError::Inconsistent("too many inserted elements"))?;
                    out.push(Piece::Ins {
                        left,
                        right,
                        content,
                    });
                }
                t @ (1 | 2) => {
                    let first =
                        decode_ref(r)?.ok_or(DecodeError::Inconsistent("delete of nothing"))?;
                    let len = r.varint()?;
                    if len == 0 || len > u32::MAX as u64 {
                        return Err(DecodeError::LengthOutOfRange {
                            len,
                            limit: u32::MAX as u64,
                        });
                    }
                    let per_txn = t == 2;
                    if per_txn && (len < 2 || !matches!(first, Ref::Id(ElemId { off: 0, .. }))) {
                        return Err(DecodeError::NonCanonical("per-transaction range"));
                    }
                    // The range's last id must exist as a number.
                    let fits = match first {
                        Ref::Id(id) if per_txn => id.dot.seq.checked_add(len - 1).is_some(),
                        Ref::Id(id) => id.off.checked_add(len as u32 - 1).is_some(),
                        Ref::Own(off) => off.checked_add(len as u32 - 1).is_some(),
                    };
                    if !fits {
                        return Err(DecodeError::Inconsistent("delete range overflows"));
                    }
                    out.push(Piece::Del {
                        first,
                        len: len as u32,
                        per_txn,
                    });
                }
                tag => {
                    return Err(DecodeError::InvalidTag {
                        what: "sequence piece",
                        tag,
                    })
                }
            }
        }
        Ok(out)
    }

    // ----- state encoding -----

    /// Appends the state's encoding: a replica table, the runs (coalesced)
    /// as id, length and origins with flags for the common cases, then the
    /// visible content as one column.
    pub fn encode(&self, w: &mut Writer) {
        let runs: Vec<Run<C>> = self.coalesced().collect();
        let mut reps: BTreeMap<u64, u64> = BTreeMap::new();
        for r in &runs {
            for id in [Some(r.id), r.left, r.right].into_iter().flatten() {
                reps.insert(id.dot.replica.0, 0);
            }
        }
        for (i, v) in reps.values_mut().enumerate() {
            *v = i as u64;
        }
        w.varint(reps.len() as u64);
        for r in reps.keys() {
            w.u64_le(*r);
        }
        w.varint(runs.len() as u64);
        let mut prev: Option<&Run<C>> = None;
        for r in &runs {
            let mut flags = 0u8;
            if r.content.is_some() {
                flags |= F_VISIBLE;
            }
            if r.per_txn && r.len > 1 {
                flags |= F_PER_TXN;
            }
            let prev_last = prev.map(|p| p.last());
            match r.left {
                Some(l) if Some(l) == prev_last => flags |= F_LEFT_PREV,
                Some(_) => flags |= F_LEFT,
                None => {}
            }
            match r.right {
                Some(x) if prev.is_some_and(|p| p.right == Some(x)) => flags |= F_RIGHT_PREV,
                Some(_) => flags |= F_RIGHT,
                None => {}
            }
            w.u8(flags);
            let id = |w: &mut Writer, id: ElemId| {
                w.varint(reps[&id.dot.replica.0]);
                w.varint(id.dot.seq);
                w.varint(id.off as u64);
            };
            id(w, r.id);
            w.varint(r.len as u64);
            if flags & F_LEFT != 0 {
                id(w, r.left.expect("left"));
            }
            if flags & F_RIGHT != 0 {
                id(w, r.right.expect("right"));
            }
            prev = Some(r);
        }
        C::encode_all(runs.iter().filter_map(|r| r.content.as_ref()), w);
    }

    /// Decodes a state, refusing duplicate ids and origins it lacks.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let nrep = r.count(8)?;
        let mut reps = Vec::with_capacity(crate::codec::reserve(nrep));
        for _ in 0..nrep {
            let x = r.u64_le()?;
            if reps.last().is_some_and(|p| *p >= x) {
                return Err(DecodeError::NonCanonical("replica table not sorted"));
            }
            reps.push(x);
        }
        let id = |r: &mut Reader<'_>| -> Result<ElemId, DecodeError> {
            let i = r.varint()?;
            let rep = *reps
                .get(i as usize)
                .ok_or(DecodeError::Inconsistent("replica not in the table"))?;
            let seq = r.varint()?;
            if seq == 0 {
                return Err(DecodeError::NonCanonical("dot with seq 0"));
            }
            let off = r.varint()?;
            if off > u32::MAX as u64 {
                return Err(DecodeError::LengthOutOfRange {
                    len: off,
                    limit: u32::MAX as u64,
                });
            }
            Ok(ElemId::new(Dot::new(ReplicaId(rep), seq), off as u32))
        };
        let n = r.count(4)?;
        let mut runs: Vec<Run<C>> = Vec::with_capacity(crate::codec::reserve(n));
        let mut visible_lens = Vec::new();
        for _ in 0..n {
            let flags = r.u8()?;
            if flags & !F_ALL != 0
                || flags & (F_LEFT | F_LEFT_PREV) == F_LEFT | F_LEFT_PREV
                || flags & (F_RIGHT | F_RIGHT_PREV) == F_RIGHT | F_RIGHT_PREV
            {
                return Err(DecodeError::InvalidTag {
                    what: "sequence run flags",
                    tag: flags,
                });
            }
            let first = id(r)?;
            let len = r.varint()?;
            if len == 0 || len > u32::MAX as u64 {
                return Err(DecodeError::LengthOutOfRange {
                    len,
                    limit: u32::MAX as u64,
                });
            }
            let len = len as u32;
            let per_txn = flags & F_PER_TXN != 0;
            if per_txn && (len < 2 || first.off != 0) {
                return Err(DecodeError::NonCanonical("per-transaction run"));
            }
            if first.off.checked_add(len).is_none()
                || first.dot.seq.checked_add(len as u64).is_none()
            {
                return Err(DecodeError::Inconsistent("run ids overflow"));
            }
            let prev = runs.last();
            let left = if flags & F_LEFT_PREV != 0 {
                Some(
                    prev.ok_or(DecodeError::Inconsistent("no previous run"))?
                        .last(),
                )
            } else if flags & F_LEFT != 0 {
                Some(id(r)?)
            } else {
                None
            };
            let right = if flags & F_RIGHT_PREV != 0 {
                Some(
                    prev.and_then(|p| p.right)
                        .ok_or(DecodeError::Inconsistent("no previous right origin"))?,
                )
            } else if flags & F_RIGHT != 0 {
                Some(id(r)?)
            } else {
                None
            };
            if flags & F_VISIBLE != 0 {
                visible_lens.push(len);
            }
            runs.push(Run {
                id: first,
                len,
                per_txn,
                left,
                right,
                // Filled in from the content column below.
                content: (flags & F_VISIBLE != 0).then(C::default),
            });
        }
        let mut chunks = C::decode_all(r, &visible_lens)?.into_iter();
        let mut tree = Tree::default();
        for mut run in runs {
            if run.content.is_some() {
                run.content = chunks.next();
            }
            // Visible runs in memory hold at most RUN_MAX elements.
            while run.content.is_some() && run.len > run::RUN_MAX {
                let tail = run.split(run::RUN_MAX);
                if !tree.push_checked(std::mem::replace(&mut run, tail)) {
                    return Err(DecodeError::Inconsistent("an element id appears twice"));
                }
            }
            if !tree.push_checked(run) {
                return Err(DecodeError::Inconsistent("an element id appears twice"));
            }
        }
        // Every origin is an element.
        for run in tree.iter() {
            for o in [run.left, run.right].into_iter().flatten() {
                if tree.locate(o).is_none() {
                    return Err(DecodeError::Inconsistent("an origin is not an element"));
                }
            }
        }
        Ok(Seq { tree })
    }

    /// Checks the tree's sums and index (tests).
    #[cfg(test)]
    pub fn check(&self) {
        self.tree.check();
    }
}

#[cfg(test)]
mod tests;

/// How many of a run's elements (from its first) have dots `ctx` holds.
fn covered<C: Chunk>(run: &Run<C>, ctx: &VectorClock) -> u32 {
    let have = ctx.get(run.id.dot.replica);
    if run.per_txn && run.len > 1 {
        if have < run.id.dot.seq {
            return 0;
        }
        ((have - run.id.dot.seq).saturating_add(1)).min(run.len as u64) as u32
    } else if have >= run.id.dot.seq {
        run.len
    } else {
        0
    }
}

fn op_pos<C>(op: &SeqOp<C>) -> Option<Pos> {
    match op {
        SeqOp::Ins(p, _) | SeqOp::Del(p, _) | SeqOp::Splice(p, _, _) => Some(*p),
        SeqOp::Clear => None,
    }
}

const F_VISIBLE: u8 = 1;
const F_PER_TXN: u8 = 2;
const F_LEFT: u8 = 4;
const F_LEFT_PREV: u8 = 8;
const F_RIGHT: u8 = 16;
const F_RIGHT_PREV: u8 = 32;
const F_ALL: u8 = 63;

/// Appends a delete of `len` ids from `first`, merged with the previous
/// piece when the ids continue it; the transaction's own ids go apart.
fn push_del<C>(out: &mut Effect<C>, first: ElemId, len: u32, per: bool, own: Option<Dot>) {
    // A per-transaction range may end in this transaction's own element.
    if let Some(d) = own {
        if per && first.dot.replica == d.replica && first.dot.seq < d.seq {
            let last = id_at(first, true, len - 1);
            if last.dot == d {
                push_del(out, first, len - 1, per, None);
                push_del(out, last, 1, false, own);
                return;
            }
        }
    }
    let r = Ref::of(first, own);
    if let Some(Piece::Del {
        first: pf,
        len: pl,
        per_txn: pp,
    }) = out.last_mut()
    {
        let next_within = match (*pf, r) {
            (Ref::Own(a), Ref::Own(b)) => !*pp && a.checked_add(*pl) == Some(b),
            (Ref::Id(a), Ref::Id(b)) => {
                let pshape = *pp && *pl > 1;
                let last = id_at(a, pshape, *pl - 1);
                let within = last.dot == b.dot && last.off.checked_add(1) == Some(b.off);
                let pertx = last.off == 0
                    && b.off == 0
                    && last.dot.replica == b.dot.replica
                    && last.dot.seq.checked_add(1) == Some(b.dot.seq);
                let shape_ok = |s: bool| (*pl == 1 || pshape == s) && (len == 1 || per == s);
                if within && shape_ok(false) {
                    *pp = false;
                    true
                } else if pertx && shape_ok(true) {
                    *pp = true;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if next_within {
            *pl += len;
            return;
        }
    }
    out.push(Piece::Del {
        first: r,
        len,
        per_txn: per && len > 1,
    });
}

fn encode_ref(r: Option<Ref>, w: &mut Writer) {
    match r {
        None => w.u8(0),
        Some(Ref::Own(off)) => {
            w.u8(1);
            w.varint(off as u64);
        }
        Some(Ref::Id(id)) => {
            w.u8(2);
            id.dot.encode(w);
            w.varint(id.off as u64);
        }
    }
}

fn decode_ref(r: &mut Reader<'_>) -> Result<Option<Ref>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(Ref::Own(small(r)?)),
        2 => {
            let dot = Dot::decode(r)?;
            Some(Ref::Id(ElemId::new(dot, small(r)?)))
        }
        tag => {
            return Err(DecodeError::InvalidTag {
                what: "element reference",
                tag,
            })
        }
    })
}

fn small(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let v = r.varint()?;
    u32::try_from(v).map_err(|_| DecodeError::LengthOutOfRange {
        len: v,
        limit: u32::MAX as u64,
    })
}
