//! `set_aw`: the add-wins set. An add leaves a token and removes the
//! element's observed ones; a remove only removes them, so an add
//! concurrent with a remove survives it.

use std::collections::hash_map::Entry;

use super::dots::{DotSet, Mark};
use super::elems::{self, ElemEffect, ElemMap, Rules};
use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

const RULES: Rules = Rules {
    remove: Mark::None,
    add_keeps_neg: false,
};

/// An effect: per element, the tokens observed and the token left.
pub type Effect = Vec<ElemEffect>;

/// The state: element → add tokens.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct SetAw(pub(crate) ElemMap<DotSet>);

impl Crdt for SetAw {
    type Effect = Vec<ElemEffect>;
    const TYPE: CrdtType = CrdtType::SetAw;
    const OPS: &'static str = "add, remove, add_all, remove_all, reset";

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Add(_) | Op::Remove(_) | Op::AddAll(_) | Op::RemoveAll(_) | Op::Reset => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        _origin: ReplicaId,
    ) -> Result<Self::Effect, UpdateError> {
        Ok(elems::prepare(state.map(|s| &s.0), ops, RULES))
    }

    /// The commonest transaction, one add or remove, takes one element
    /// lookup instead of two.
    #[inline]
    fn prepare_apply(
        &mut self,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
        dot: Dot,
    ) -> Result<Self::Effect, UpdateError> {
        match ops {
            // An add removes every token the element has and leaves `dot`.
            [(_, Op::Add(e))] => {
                let removed = match self.0.entry(e.clone()) {
                    Entry::Occupied(mut o) => std::mem::replace(o.get_mut(), DotSet::single(dot)),
                    Entry::Vacant(v) => {
                        v.insert(DotSet::single(dot));
                        DotSet::new()
                    }
                };
                Ok(vec![ElemEffect {
                    elem: e.clone(),
                    removed,
                    mark: Mark::Pos,
                }])
            }
            [(_, Op::Remove(e))] => Ok(match self.0.remove(e) {
                Some(s) => vec![ElemEffect {
                    elem: e.clone(),
                    removed: s,
                    mark: Mark::None,
                }],
                None => Vec::new(),
            }),
            _ => {
                let e = Self::prepare(Some(self), ops, origin)?;
                self.apply(&e, dot);
                Ok(e)
            }
        }
    }

    #[inline]
    fn apply(&mut self, effect: &Self::Effect, dot: Dot) {
        let m = &mut self.0;
        for ee in effect {
            let add = (ee.mark == Mark::Pos).then_some(dot);
            if let Some(d) = add.filter(|_| ee.removed.is_empty()) {
                // One descent for the common case: a pure add.
                match m.entry(ee.elem.clone()) {
                    Entry::Occupied(mut o) => o.get_mut().apply(&[], add),
                    Entry::Vacant(v) => {
                        v.insert(DotSet::single(d));
                    }
                }
            } else if let Some(s) = m.get_mut(&ee.elem) {
                s.apply(ee.removed.as_slice(), add);
                if s.is_empty() {
                    m.remove(&ee.elem);
                }
            } else if let Some(d) = add {
                m.insert(ee.elem.clone(), DotSet::single(d));
            }
        }
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        elems::join(&mut self.0, mine, &other.0, theirs)
    }

    fn value(&self) -> Value {
        Value::List(self.0.sorted_keys(|_| true))
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        elems::encode(&self.0, w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        elems::decode(r).map(Self)
    }

    #[inline]
    fn encode_effect(e: &Self::Effect, w: &mut Writer) {
        elems::encode_effects(e, w)
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Self::Effect, DecodeError> {
        elems::decode_effects(r, false, "set_aw mark")
    }

    #[inline]
    fn is_noop(e: &Self::Effect) -> bool {
        e.is_empty()
    }

    #[inline]
    fn observed(e: &Self::Effect, f: &mut dyn FnMut(Dot)) {
        elems::observed(e, f)
    }

    fn rename(e: &mut Self::Effect, _: Option<&Self>, r: &Rename) {
        elems::rename(e, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ReplicaId;

    #[test]
    fn the_one_lookup_path_equals_prepare_then_apply() {
        let r = ReplicaId(1);
        let mut a = SetAw::default();
        let mut b = SetAw::default();
        let ops = [
            Op::Add(Value::Int(1)),
            Op::Add(Value::Int(1)),
            Op::Remove(Value::Int(1)),
            Op::Remove(Value::Int(2)),
            Op::Add(Value::Int(2)),
        ];
        for (i, op) in ops.iter().enumerate() {
            let dot = Dot::new(r, i as u64 + 1);
            let e1 = a.prepare_apply(&[(0, op)], r, dot).unwrap();
            let e2 = SetAw::prepare(Some(&b), &[(0, op)], r).unwrap();
            b.apply(&e2, dot);
            assert_eq!(e1, e2);
            assert_eq!(a, b);
        }
        assert_eq!(a.value(), Value::List(vec![Value::Int(2)]));
    }
}
