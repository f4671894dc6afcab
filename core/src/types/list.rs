//! `list`: an ordered list of values. Inserts at one place from several
//! replicas never interleave (FugueMax); a delete removes the elements it
//! saw. The sequence CRDT itself is in `seq/`, shared with `text`.

use super::seq::{ListChunk, SeqKind, SeqOp, SeqType};
use super::{unknown_op, Op};
use crate::error::UpdateError;
use crate::key::CrdtType;

/// The effect of `list`.
pub type Effect = super::seq::Effect<ListChunk>;

/// The rules of `list`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct ListKind;

impl SeqKind for ListKind {
    type Chunk = ListChunk;
    const TYPE: CrdtType = CrdtType::List;
    const OPS: &'static str = "insert, insert_all, delete";

    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Insert(..) | Op::InsertAll(..) | Op::Delete(..) | Op::Reset => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    fn seq_op(op: &Op) -> SeqOp<ListChunk> {
        match op {
            Op::Insert(p, v) => SeqOp::Ins(*p, ListChunk(vec![v.clone()])),
            Op::InsertAll(p, v) => SeqOp::Ins(*p, ListChunk(v.clone())),
            Op::Delete(p, n) => SeqOp::Del(*p, *n),
            _ => SeqOp::Clear,
        }
    }
}

/// The state of `list`.
pub type List = SeqType<ListKind>;
