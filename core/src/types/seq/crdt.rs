//! The [`Crdt`] impl that `list` and `text` share: each says which ops it
//! takes and how an op becomes a sequence op ([`SeqKind`]).

use std::marker::PhantomData;

use super::{Chunk, Effect, Seq, SeqEdit, SeqOp};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::types::{Crdt, Op, Rename};
use crate::value::Value;

/// What distinguishes `list` from `text`.
pub trait SeqKind: Clone + PartialEq + Eq + Default + std::fmt::Debug {
    /// The content of a run.
    type Chunk: Chunk;
    /// The type in the registry.
    const TYPE: CrdtType;
    /// The ops users may call.
    const OPS: &'static str;
    /// Accepts `op`, or says why not.
    fn check(op: &Op, index: usize) -> Result<(), UpdateError>;
    /// The sequence op of a checked op ([`Op::Reset`] included).
    fn seq_op(op: &Op) -> SeqOp<Self::Chunk>;
}

/// A `list` or `text` object.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct SeqType<K: SeqKind>(pub(crate) Seq<K::Chunk>, PhantomData<K>);

impl<K: SeqKind> SeqType<K> {
    /// The sequence.
    pub fn seq(&self) -> &Seq<K::Chunk> {
        &self.0
    }
}

impl<K: SeqKind> SeqType<K> {
    /// [`Crdt::apply`], recording the edits (for subscribers' deltas).
    pub(crate) fn apply_recording(
        &mut self,
        e: &Effect<K::Chunk>,
        dot: Dot,
        rec: &mut Vec<SeqEdit>,
    ) {
        self.0.apply(e, dot, Some(rec))
    }

    /// [`Crdt::prepare_apply`], recording the edits.
    pub(crate) fn prepare_apply_recording(
        &mut self,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
        dot: Dot,
        rec: &mut Vec<SeqEdit>,
    ) -> Result<Effect<K::Chunk>, UpdateError> {
        self.0
            .prepare_apply(&seq_ops::<K>(ops), origin, dot, Some(rec))
    }
}

fn seq_ops<K: SeqKind>(ops: &[(usize, &Op)]) -> SeqOps<K::Chunk> {
    match ops {
        [(i, op)] => SeqOps::One([(*i, K::seq_op(op))]),
        _ => SeqOps::Many(ops.iter().map(|(i, op)| (*i, K::seq_op(op))).collect()),
    }
}

/// Sequence ops, without a heap allocation for the usual single op.
enum SeqOps<C> {
    One([(usize, SeqOp<C>); 1]),
    Many(Vec<(usize, SeqOp<C>)>),
}

impl<C> std::ops::Deref for SeqOps<C> {
    type Target = [(usize, SeqOp<C>)];
    fn deref(&self) -> &Self::Target {
        match self {
            SeqOps::One(a) => a,
            SeqOps::Many(v) => v,
        }
    }
}

impl<K: SeqKind> Crdt for SeqType<K> {
    type Effect = Effect<K::Chunk>;
    const TYPE: CrdtType = K::TYPE;
    const OPS: &'static str = K::OPS;

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        K::check(op, index)
    }

    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
    ) -> Result<Self::Effect, UpdateError> {
        Seq::prepare(state.map(|s| &s.0), &seq_ops::<K>(ops), origin)
    }

    #[inline]
    fn prepare_apply(
        &mut self,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
        dot: Dot,
    ) -> Result<Self::Effect, UpdateError> {
        self.0.prepare_apply(&seq_ops::<K>(ops), origin, dot, None)
    }

    #[inline]
    fn apply(&mut self, effect: &Self::Effect, dot: Dot) {
        self.0.apply(effect, dot, None)
    }

    fn join(&mut self, _mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        self.0.join(&other.0, theirs)
    }

    fn value(&self) -> Value {
        self.0.value()
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn is_visible(&self) -> bool {
        self.0.any_visible()
    }

    #[inline]
    fn tokens(&self) -> usize {
        self.0.runs()
    }

    fn encode(&self, w: &mut Writer) {
        self.0.encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SeqType(Seq::decode(r)?, PhantomData))
    }

    fn encode_effect(e: &Self::Effect, w: &mut Writer) {
        Seq::<K::Chunk>::encode_effect(e, w)
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Self::Effect, DecodeError> {
        Seq::<K::Chunk>::decode_effect(r)
    }

    #[inline]
    fn is_noop(e: &Self::Effect) -> bool {
        e.is_empty()
    }

    fn observed(e: &Self::Effect, f: &mut dyn FnMut(Dot)) {
        Seq::<K::Chunk>::observed(e, f)
    }

    fn rename(e: &mut Self::Effect, _base: Option<&Self>, r: &Rename) {
        Seq::<K::Chunk>::rename(e, r)
    }
}
