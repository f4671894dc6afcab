//! `text`: collaborative text. Indexes count code points (Python) or
//! UTF-16 units (JavaScript); concurrent typing at one place never
//! interleaves (FugueMax). The sequence CRDT itself is in `seq/`, shared
//! with `list`.

use super::seq::{SeqKind, SeqOp, SeqType, TextChunk};
use super::{unknown_op, Op};
use crate::error::UpdateError;
use crate::key::CrdtType;
use crate::value::Value;

/// The effect of `text`.
pub type Effect = super::seq::Effect<TextChunk>;

/// The rules of `text`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct TextKind;

impl SeqKind for TextKind {
    type Chunk = TextChunk;
    const TYPE: CrdtType = CrdtType::Text;
    const OPS: &'static str = "insert, delete, splice";

    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Insert(_, Value::Str(_)) | Op::Delete(..) | Op::Splice(..) | Op::Reset => Ok(()),
            Op::Insert(_, v) => Err(UpdateError::WrongArgument {
                index,
                ty: Self::TYPE,
                op: "insert",
                expected: "[index, string]",
                got: v.kind(),
            }),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    fn seq_op(op: &Op) -> SeqOp<TextChunk> {
        match op {
            Op::Insert(p, Value::Str(s)) => SeqOp::Ins(*p, TextChunk::new(s.clone())),
            Op::Delete(p, n) => SeqOp::Del(*p, *n),
            Op::Splice(p, n, s) => SeqOp::Splice(*p, *n, TextChunk::new(s.clone())),
            _ => SeqOp::Clear,
        }
    }
}

/// The state of `text`.
pub type Text = SeqType<TextKind>;
