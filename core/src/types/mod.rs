//! The object types. Each type is one module that implements [`Crdt`]; the
//! table in `registry.rs` lists them, and the macro below turns that table
//! into the enum dispatch of [`State`] and [`Effect`]. Nothing outside this
//! folder matches on a type.
//!
//! * [`prepare`] turns the ops one transaction makes on one object into a
//!   single effect, reading the current state for what the ops observe.
//!   Several ops on one object apply left to right and fold into one effect.
//!   It may fail for any type; the replica prepares every effect of a
//!   transaction before it applies any.
//! * [`State::apply`] applies an effect delivered in causal order.
//! * [`State::join`] merges two full states under their causal contexts
//!   (Almeida et al., *Delta State Replicated Data Types*, 2018).
//!
//! Every type also accepts [`Op::Reset`] inside a transaction, meaning
//! "undo what this replica has observed of the object", even when its users
//! cannot call `reset` on it directly: that is how a remove-resets map
//! removes a field of any type.
//!
//! Building blocks shared by several types: dot stores (`dots`), element
//! maps and element sets (`elems`), and the object store (`store`).

use std::fmt::Debug;

use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::registry::for_each_type;
use crate::value::Value;

pub(crate) mod dots;
pub(crate) mod elems;
mod op;
pub(crate) mod seq;
pub(crate) mod store;

pub use op::{Op, Update};
pub use seq::{compose, diff, Assoc, DeltaOp, ElemId, Pos, SeqEdit};

/// True for the types whose changes subscribers get as deltas.
#[inline]
pub(crate) fn has_deltas(ty: CrdtType) -> bool {
    matches!(ty, CrdtType::List | CrdtType::Text)
}

impl State {
    /// Where a cursor at `p` sticks in a list or text (`None` for other
    /// types; `Ok(None)` for an empty object).
    pub(crate) fn cursor_at(&self, p: Pos) -> Option<Result<Option<(ElemId, Assoc)>, UpdateError>> {
        match self {
            State::List(s) => Some(s.seq().cursor_at(p)),
            State::Text(s) => Some(s.seq().cursor_at(p)),
            _ => None,
        }
    }

    /// A list's or text's runs, skeleton elements, visible elements and
    /// visible UTF-16 units (`None` for other types).
    pub(crate) fn seq_shape(&self) -> Option<(u64, u64, u64, u64)> {
        let (runs, elems, vis, utf16) = match self {
            State::List(s) => {
                let (r, e, v, _) = s.seq().stats();
                (r, e, v, s.seq().len().1)
            }
            State::Text(s) => {
                let (r, e, v, _) = s.seq().stats();
                (r, e, v, s.seq().len().1)
            }
            _ => return None,
        };
        Some((runs, elems, vis, utf16))
    }

    /// The index (code points, UTF-16 units) of a cursor's element now, if
    /// this list or text has it.
    pub(crate) fn resolve(&self, id: ElemId, assoc: Assoc) -> Option<(u64, u64)> {
        match self {
            State::List(s) => s.seq().resolve(id, assoc),
            State::Text(s) => s.seq().resolve(id, assoc),
            _ => None,
        }
    }

    /// [`State::apply`], recording list and text edits into `rec`.
    pub(crate) fn apply_recording(&mut self, e: &Effect, dot: Dot, rec: &mut Vec<SeqEdit>) {
        match (self, e) {
            (State::List(s), Effect::List(e)) => s.apply_recording(e, dot, rec),
            (State::Text(s), Effect::Text(e)) => s.apply_recording(e, dot, rec),
            (s, e) => s.apply(e, dot),
        }
    }

    /// [`prepare_apply`], recording list and text edits into `rec`.
    pub(crate) fn prepare_apply_recording(
        &mut self,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
        dot: Dot,
        rec: &mut Vec<SeqEdit>,
    ) -> Result<Effect, UpdateError> {
        match self {
            State::List(s) => Ok(Effect::List(
                s.prepare_apply_recording(ops, origin, dot, rec)?,
            )),
            State::Text(s) => Ok(Effect::Text(
                s.prepare_apply_recording(ops, origin, dot, rec)?,
            )),
            s => prepare_apply(s, ops, origin, dot),
        }
    }
}

/// How a repair renames one replica's writes (see `Replica::repair`): the
/// old id's seqs from `from` on become the new id's seqs from 1, and their
/// per-origin totals start again from the base's.
#[derive(Debug)]
pub struct Rename {
    /// The restored replica's old id.
    pub old: ReplicaId,
    /// Its new id.
    pub new: ReplicaId,
    /// The first re-issued seq of the old id.
    pub from: u64,
}

impl Rename {
    /// The dot under its new name.
    pub fn dot(&self, d: Dot) -> Dot {
        if d.replica == self.old && d.seq >= self.from {
            Dot::new(self.new, d.seq - self.from + 1)
        } else {
            d
        }
    }

    /// Renames a sorted dot list, keeping it sorted.
    pub fn dots(&self, v: &mut Vec<Dot>) {
        for d in v.iter_mut() {
            *d = self.dot(*d);
        }
        v.sort_unstable();
        v.dedup();
    }
}

/// One object type: its state, its effects, and how they meet.
///
/// The state lives under the replica's causal context (its vector clock);
/// `apply` is the join with a causally delivered delta, `join` the join of
/// two full states. Both must be idempotent, commutative and associative
/// (the lattice laws `core/tests/laws.rs` checks for every type).
pub trait Crdt: Default + Clone + PartialEq + Eq + Debug {
    /// What one transaction did to one object.
    type Effect: Clone + PartialEq + Debug;

    /// The type in the registry.
    const TYPE: CrdtType;

    /// The ops users may call, for error messages.
    const OPS: &'static str;

    /// Accepts `op` for this type, or says why not (update number `index`).
    /// [`Op::Reset`] is always accepted inside [`prepare`], even where this
    /// refuses it.
    fn check(op: &Op, index: usize) -> Result<(), UpdateError>;

    /// Folds `ops` (in order, with their index in the batch) into one
    /// effect against `state` (`None` if the object was never written).
    /// `origin` is the local replica.
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
    ) -> Result<Self::Effect, UpdateError>;

    /// [`Crdt::prepare`] then [`Crdt::apply`], all or nothing; a type may
    /// do both in one pass.
    #[inline]
    fn prepare_apply(
        &mut self,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
        dot: Dot,
    ) -> Result<Self::Effect, UpdateError> {
        let e = Self::prepare(Some(self), ops, origin)?;
        self.apply(&e, dot);
        Ok(e)
    }

    /// Applies the effect of transaction `dot`, delivered in causal order.
    fn apply(&mut self, effect: &Self::Effect, dot: Dot);

    /// Joins `other` (under context `theirs`) into `self` (under `mine`).
    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock);

    /// The value a read returns.
    fn value(&self) -> Value;

    /// True for the initial state: such objects are not stored, so equal
    /// states have equal snapshots.
    fn is_bottom(&self) -> bool;

    /// True if the state shows anything: a map leaves out fields that do
    /// not. Only a reset state that keeps what it needs for later joins
    /// (a counter's observed totals) is neither bottom nor visible.
    fn is_visible(&self) -> bool {
        !self.is_bottom()
    }

    /// How many tokens an effect that observes the whole object would name:
    /// what makes such an effect large.
    fn tokens(&self) -> usize {
        0
    }

    /// Appends the state's encoding (its type is held by the key).
    fn encode(&self, w: &mut Writer);

    /// Decodes a state.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Appends an effect's encoding.
    fn encode_effect(e: &Self::Effect, w: &mut Writer);

    /// Decodes an effect.
    fn decode_effect(r: &mut Reader<'_>) -> Result<Self::Effect, DecodeError>;

    /// True if only a field of a map can have this effect (a reset of a
    /// type whose users cannot reset it: a counter's floors, a
    /// `register_lww` reset). A transaction that has one on an object is
    /// refused when decoded.
    fn is_field_only(_e: &Self::Effect) -> bool {
        false
    }

    /// True if applying the effect changes nothing (a map leaves such
    /// field effects out).
    fn is_noop(_e: &Self::Effect) -> bool {
        false
    }

    /// Calls `f` with every dot the effect observed at its origin. A
    /// receiver must have delivered each of them before it applies the
    /// effect, whatever the transaction's declared deps say.
    fn observed(e: &Self::Effect, f: &mut dyn FnMut(Dot));

    /// Renames an effect of a re-issued transaction (observed dots, and
    /// per-origin totals, which restart from `base`'s under the new id).
    fn rename(e: &mut Self::Effect, base: Option<&Self>, r: &Rename);
}

/// Objects whose whole-object effects name at least this many observed
/// tokens are prepared (and measured) before anything is applied.
pub(crate) const LARGE_OBSERVED: usize = 64;

/// The error for an op a type does not have.
pub(crate) fn unknown_op(ty: CrdtType, op: &Op, index: usize) -> UpdateError {
    UpdateError::UnknownOp {
        index,
        ty,
        op: op.name().to_owned(),
        supported: ty.ops(),
    }
}

macro_rules! dispatch {
    ($($tag:literal $module:ident $ty:ident $doc:literal,)*) => {
        $(mod $module;)*

        /// Each type's effect, named by its type, for code that builds or
        /// inspects effects by hand (hostile-peer tests, fuzzers, load
        /// generators), with the parts they are made of.
        pub mod effect {
            $(pub use super::$module::Effect as $ty;)*
            pub use super::counter_pn::PnEntry;
            pub use super::dots::{DotSet, Mark};
            pub use super::elems::ElemEffect;
            pub use super::seq::{ElemId, ListChunk, Piece, Ref, TextChunk};
        }

        /// An object's full state.
        #[derive(Clone, PartialEq, Eq, Debug)]
        pub enum State {
            $(#[doc = $doc] $ty($module::$ty),)*
        }

        /// What one transaction did to one object: a delta, applied by join.
        #[derive(Clone, PartialEq, Debug)]
        pub enum Effect {
            $(#[doc = $doc] $ty(<$module::$ty as Crdt>::Effect),)*
        }

        impl CrdtType {
            /// The op names this type accepts, for error messages.
            #[inline]
            pub fn ops(self) -> &'static str {
                match self {
                    $(CrdtType::$ty => <$module::$ty as Crdt>::OPS,)*
                }
            }

            /// Accepts `op` for this type, or says why not.
            #[inline]
            pub(crate) fn check_op(self, op: &Op, index: usize) -> Result<(), UpdateError> {
                match self {
                    $(CrdtType::$ty => <$module::$ty as Crdt>::check(op, index),)*
                }
            }
        }

        impl State {
            /// The initial (bottom) state of a type.
            #[inline]
            pub fn bottom(ty: CrdtType) -> State {
                match ty {
                    $(CrdtType::$ty => State::$ty(Default::default()),)*
                }
            }

            /// The state's type.
            #[inline]
            pub fn ty(&self) -> CrdtType {
                match self {
                    $(State::$ty(_) => CrdtType::$ty,)*
                }
            }

            /// True for the bottom state; such objects are not stored.
            #[inline]
            pub fn is_bottom(&self) -> bool {
                match self {
                    $(State::$ty(s) => s.is_bottom(),)*
                }
            }

            /// True if the state shows anything (see [`Crdt::is_visible`]).
            #[inline]
            pub fn is_visible(&self) -> bool {
                match self {
                    $(State::$ty(s) => s.is_visible(),)*
                }
            }

            /// The value a read returns.
            #[inline]
            pub fn value(&self) -> Value {
                match self {
                    $(State::$ty(s) => s.value(),)*
                }
            }

            /// How many tokens a whole-object effect (an assign, a flag op)
            /// would name as observed: what makes such an effect large.
            #[inline]
            pub fn tokens(&self) -> usize {
                match self {
                    $(State::$ty(s) => s.tokens(),)*
                }
            }

            /// Applies an effect of the transaction `dot`, delivered in
            /// causal order. An effect of another type is ignored: keys
            /// carry their type, so the replica never pairs them, and a
            /// hostile peer cannot corrupt state.
            #[inline]
            pub fn apply(&mut self, effect: &Effect, dot: Dot) {
                match (self, effect) {
                    $((State::$ty(s), Effect::$ty(e)) => s.apply(e, dot),)*
                    _ => {}
                }
            }

            /// Joins `other` (under context `theirs`) into `self` (under
            /// `mine`). States of different types are left alone.
            #[inline]
            pub fn join(&mut self, mine: &VectorClock, other: &State, theirs: &VectorClock) {
                match (self, other) {
                    $((State::$ty(a), State::$ty(b)) => a.join(mine, b, theirs),)*
                    _ => {}
                }
            }

            /// Appends the state's encoding (without its type, which the
            /// key holds).
            #[inline]
            pub(crate) fn encode(&self, w: &mut Writer) {
                match self {
                    $(State::$ty(s) => s.encode(w),)*
                }
            }

            /// Decodes a state of type `ty`.
            #[inline]
            pub(crate) fn decode(ty: CrdtType, r: &mut Reader<'_>) -> Result<State, DecodeError> {
                r.nested(|r| {
                    Ok(match ty {
                        $(CrdtType::$ty => State::$ty($module::$ty::decode(r)?),)*
                    })
                })
            }
        }

        impl Effect {
            /// The effect's type.
            #[inline]
            pub fn ty(&self) -> CrdtType {
                match self {
                    $(Effect::$ty(_) => CrdtType::$ty,)*
                }
            }

            /// Appends the effect's body (the caller writes the key, with
            /// the type, first).
            #[inline]
            pub(crate) fn encode(&self, w: &mut Writer) {
                match self {
                    $(Effect::$ty(e) => <$module::$ty as Crdt>::encode_effect(e, w),)*
                }
            }

            /// Decodes an effect body for an object of type `ty`.
            #[inline]
            pub(crate) fn decode(ty: CrdtType, r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
                r.nested(|r| {
                    Ok(match ty {
                        $(CrdtType::$ty => Effect::$ty(<$module::$ty as Crdt>::decode_effect(r)?),)*
                    })
                })
            }

            /// True if only a field of a map can have this effect (see
            /// [`Crdt::is_field_only`]).
            #[inline]
            pub(crate) fn is_field_only(&self) -> bool {
                match self {
                    $(Effect::$ty(e) => <$module::$ty as Crdt>::is_field_only(e),)*
                }
            }

            /// True if applying the effect changes nothing.
            #[inline]
            pub(crate) fn is_noop(&self) -> bool {
                match self {
                    $(Effect::$ty(e) => <$module::$ty as Crdt>::is_noop(e),)*
                }
            }

            /// Calls `f` with every dot the effect observed at its origin (the
            /// tokens it removes). A receiver must have delivered each of
            /// them before it applies the effect, whatever the transaction's
            /// declared deps say: a remove of a dot that has not arrived
            /// would otherwise be lost at this replica only.
            #[inline]
            pub fn for_each_observed(&self, mut f: impl FnMut(Dot)) {
                match self {
                    $(Effect::$ty(e) => <$module::$ty as Crdt>::observed(e, &mut f),)*
                }
            }

            /// Renames the effect of a re-issued transaction; `base` is the
            /// object's state in the repair's base.
            #[inline]
            pub(crate) fn rename(&mut self, base: Option<&State>, r: &Rename) {
                match self {
                    $(Effect::$ty(e) => {
                        let base = match base {
                            Some(State::$ty(s)) => Some(s),
                            _ => None,
                        };
                        <$module::$ty as Crdt>::rename(e, base, r)
                    })*
                }
            }
        }

        /// Folds the ops one transaction makes on one object of type `ty`
        /// into a single effect. `state` is the object's current state
        /// (`None` if never written), `origin` the local replica. The ops
        /// were checked ([`CrdtType::check_op`]); a type may still refuse
        /// them against the state (an overflow, an index out of range).
        #[inline]
        pub(crate) fn prepare(
            ty: CrdtType,
            state: Option<&State>,
            ops: &[(usize, &Op)],
            origin: ReplicaId,
        ) -> Result<Effect, UpdateError> {
            Ok(match ty {
                $(CrdtType::$ty => {
                    let s = match state {
                        Some(State::$ty(s)) => Some(s),
                        _ => None,
                    };
                    Effect::$ty($module::$ty::prepare(s, ops, origin)?)
                })*
            })
        }

        /// [`prepare`] then [`State::apply`] on an existing state, all or
        /// nothing, in one pass where the type can.
        #[inline]
        pub(crate) fn prepare_apply(
            state: &mut State,
            ops: &[(usize, &Op)],
            origin: ReplicaId,
            dot: Dot,
        ) -> Result<Effect, UpdateError> {
            Ok(match state {
                $(State::$ty(s) => Effect::$ty(s.prepare_apply(ops, origin, dot)?),)*
            })
        }
    };
}

for_each_type!(dispatch);
