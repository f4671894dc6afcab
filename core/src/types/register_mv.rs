//! `register_mv`: the multi-value register. An assign removes the writes
//! it observed and leaves its own; concurrent assigns all stay, and a read
//! returns their distinct values, sorted.

use std::collections::{BTreeMap, BTreeSet};

use super::dots::{decode_dots, encode_dots};
use super::dots::{drop_older_of, join_dot_fun};
use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

/// The state: a dot function, write → value.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct RegisterMv(BTreeMap<Dot, Value>);

/// An effect: the writes observed, and the value assigned (none for a
/// reset).
#[derive(Clone, PartialEq, Debug)]
pub struct Effect {
    /// Observed writes.
    pub removed: Vec<Dot>,
    /// The new value (`None` for reset).
    pub value: Option<Value>,
}

impl Crdt for RegisterMv {
    type Effect = Effect;
    const TYPE: CrdtType = CrdtType::RegisterMv;
    const OPS: &'static str = "assign, reset";

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Assign(_) | Op::Reset => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        _origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        let removed = state.map_or_else(Vec::new, |s| s.0.keys().copied().collect());
        let value = match ops.last() {
            Some((_, Op::Assign(v))) => Some(v.clone()),
            _ => None,
        };
        Ok(Effect { removed, value })
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        for d in &e.removed {
            self.0.remove(d);
        }
        drop_older_of(&mut self.0, dot);
        if let Some(v) = &e.value {
            self.0.insert(dot, v.clone());
        }
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        join_dot_fun(&mut self.0, mine, &other.0, theirs)
    }

    fn value(&self) -> Value {
        let set: BTreeSet<&Value> = self.0.values().collect();
        Value::List(set.into_iter().cloned().collect())
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn tokens(&self) -> usize {
        self.0.len()
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.varint(self.0.len() as u64);
        for (d, v) in &self.0 {
            d.encode(w);
            v.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(10)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let d = Dot::decode(r)?;
            let v = Value::decode(r)?;
            if m.last_key_value().is_some_and(|(p, _)| *p >= d) {
                return Err(DecodeError::NonCanonical(
                    "register dots not strictly sorted",
                ));
            }
            m.insert(d, v);
        }
        Ok(Self(m))
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        encode_dots(&e.removed, w);
        match &e.value {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        let removed = decode_dots(r)?;
        let value = match r.u8()? {
            0 => None,
            1 => Some(Value::decode(r)?),
            tag => {
                return Err(DecodeError::InvalidTag {
                    what: "option",
                    tag,
                })
            }
        };
        Ok(Effect { removed, value })
    }

    #[inline]
    fn is_noop(e: &Effect) -> bool {
        e.value.is_none() && e.removed.is_empty()
    }

    #[inline]
    fn observed(e: &Effect, f: &mut dyn FnMut(Dot)) {
        e.removed.iter().copied().for_each(f)
    }

    fn rename(e: &mut Effect, _: Option<&Self>, r: &Rename) {
        r.dots(&mut e.removed)
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn step(s: &mut RegisterMv, op: &Op, dot: Dot) -> Effect {
        let e = RegisterMv::prepare(Some(s), &[(0, op)], dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn concurrent_assigns_stay_until_one_sees_both_and_reset_clears_only_what_it_saw() {
        let mut a = RegisterMv::default();
        let mut b = RegisterMv::default();
        let ea = step(&mut a, &Op::Assign(1.into()), Dot::new(A, 1));
        let eb = step(&mut b, &Op::Assign(2.into()), Dot::new(B, 1));
        a.apply(&eb, Dot::new(B, 1));
        b.apply(&ea, Dot::new(A, 1));
        assert_eq!(a, b);
        assert_eq!(a.value(), Value::List(vec![1.into(), 2.into()]));
        let r = step(&mut a, &Op::Reset, Dot::new(A, 2));
        assert!(a.is_bottom());
        let mut w = Writer::new();
        RegisterMv::encode_effect(&r, &mut w);
        let bytes = w.into_vec();
        assert_eq!(RegisterMv::decode_effect(&mut Reader::new(&bytes)).unwrap(), r);
    }
}
