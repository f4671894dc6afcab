//! `register_lww`: the last-writer-wins register. An assign carries a
//! Lamport time one above the highest its origin had seen on the object,
//! and names the writes it overwrites, so a write always wins over what it
//! observed; among concurrent writes the highest `(time, replica)` wins.
//! The state keeps the writes no one has overwritten yet (usually one).

use std::collections::BTreeMap;

use super::dots::{decode_dots, encode_dots};
use super::dots::{drop_older_of, join_dot_fun};
use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

/// The state: write → (Lamport time, value).
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct RegisterLww(BTreeMap<Dot, (u64, Value)>);

/// An effect: the time, the writes observed, and the value (none for a
/// reset inside a map, encoded as time 0, which no assign has).
#[derive(Clone, PartialEq, Debug)]
pub struct Effect {
    /// Lamport time: one more than the highest the origin had seen on this
    /// object.
    pub ts: u64,
    /// Observed writes: the ones this one overwrites, whatever their
    /// timestamps.
    pub removed: Vec<Dot>,
    /// The value (`None` for a reset).
    pub value: Option<Value>,
}

impl RegisterLww {
    /// The winning write: the highest `(time, replica)` among the writes
    /// not yet overwritten.
    fn winner(&self) -> Option<&(u64, Value)> {
        self.0
            .iter()
            .max_by_key(|(d, (ts, _))| (*ts, d.replica, d.seq))
            .map(|(_, w)| w)
    }
}

impl Crdt for RegisterLww {
    type Effect = Effect;
    const TYPE: CrdtType = CrdtType::RegisterLww;
    const OPS: &'static str = "assign";

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Assign(_) => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        _origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        let (ts, removed) = match state {
            Some(s) => (
                s.0.values()
                    .map(|(ts, _)| *ts)
                    .max()
                    .unwrap_or(0)
                    .saturating_add(1),
                s.0.keys().copied().collect(),
            ),
            None => (1, Vec::new()),
        };
        Ok(match ops.last() {
            Some((_, Op::Assign(v))) => Effect {
                ts,
                removed,
                value: Some(v.clone()),
            },
            _ => Effect {
                ts: 0,
                removed,
                value: None,
            },
        })
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        for d in &e.removed {
            self.0.remove(d);
        }
        drop_older_of(&mut self.0, dot);
        if let Some(v) = &e.value {
            self.0.insert(dot, (e.ts, v.clone()));
        }
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        join_dot_fun(&mut self.0, mine, &other.0, theirs)
    }

    fn value(&self) -> Value {
        self.winner().map_or(Value::Null, |(_, v)| v.clone())
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
        for (d, (ts, v)) in &self.0 {
            d.encode(w);
            w.varint(*ts);
            v.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(11)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let d = Dot::decode(r)?;
            let ts = r.varint()?;
            let v = Value::decode(r)?;
            if m.last_key_value().is_some_and(|(p, _)| *p >= d) {
                return Err(DecodeError::NonCanonical(
                    "register dots not strictly sorted",
                ));
            }
            m.insert(d, (ts, v));
        }
        Ok(Self(m))
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        encode_dots(&e.removed, w);
        match &e.value {
            Some(v) => {
                w.varint(e.ts.max(1));
                v.encode(w);
            }
            None => w.varint(0),
        }
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        let removed = decode_dots(r)?;
        let ts = r.varint()?;
        let value = if ts == 0 {
            None
        } else {
            Some(Value::decode(r)?)
        };
        Ok(Effect { ts, removed, value })
    }

    #[inline]
    fn is_field_only(e: &Effect) -> bool {
        e.value.is_none()
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

    fn step(s: &mut RegisterLww, ops: &[Op], dot: Dot) -> Effect {
        let ops: Vec<(usize, &Op)> = ops.iter().enumerate().collect();
        let e = RegisterLww::prepare(Some(s), &ops, dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn a_write_wins_over_what_it_saw_and_a_reset_encodes_without_a_value() {
        let mut a = RegisterLww::default();
        let first = step(&mut a, &[Op::Assign("x".into())], Dot::new(A, 1));
        let mut b = RegisterLww::default();
        b.apply(&first, Dot::new(A, 1));
        // b overwrites what it saw, even against a huge timestamp.
        let mut big = first.clone();
        big.ts = u64::MAX;
        let mut c = RegisterLww::default();
        c.apply(&big, Dot::new(A, 1));
        let over = step(&mut c, &[Op::Assign("y".into())], Dot::new(B, 1));
        assert_eq!(over.ts, u64::MAX, "saturates");
        assert_eq!(c.value(), Value::from("y"));
        // A reset (inside a map) leaves the register at bottom.
        let r = step(&mut b, &[Op::Assign("z".into()), Op::Reset], Dot::new(B, 1));
        assert_eq!(r.value, None);
        assert!(b.is_bottom());
        assert!(RegisterLww::is_field_only(&r));
        let mut w = Writer::new();
        RegisterLww::encode_effect(&r, &mut w);
        let bytes = w.into_vec();
        assert_eq!(RegisterLww::decode_effect(&mut Reader::new(&bytes)).unwrap(), r);
    }
}
