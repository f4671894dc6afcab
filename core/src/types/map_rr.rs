//! `map_rr`: the remove-resets map, and the map both map types share.
//!
//! A map holds fields addressed by `[name, type]`, each an object of any
//! type, maps included. An `update [field, op, arg?]` is an op of the
//! field's type on the field; one transaction's ops on one field fold into
//! one field effect, so a transaction stays one dot however many fields and
//! maps it touches. All fields live under the replica's causal context, so
//! a map's join is the field-wise join of its fields (Almeida et al.'s
//! `ORMap` of embedded causal types).
//!
//! `remove field` and `reset` give each affected field [`Op::Reset`]: the
//! field undoes what this replica observed of it. Every type can do that
//! (counters keep the totals they reset, see `counter_pn`), so an update
//! concurrent with the remove survives it, for every embedded type, and a
//! removed field comes back with only that update's effect. A field that
//! shows nothing (`Crdt::is_visible`) is left out of the value, and a field
//! back at bottom is dropped.
//!
//! `map_go` (`map_go.rs`) is the same map without remove and reset.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use super::{prepare as prepare_field, unknown_op, Crdt, Effect as AnyEffect, Op, Rename, State};
use super::op::FieldError;
use super::store::apply_at;
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::{CrdtType, Field};
use crate::value::Value;

/// What distinguishes the map types.
pub trait MapRules: Clone + PartialEq + Eq + Default + std::fmt::Debug {
    /// The type in the registry.
    const TYPE: CrdtType;
    /// The ops users may call.
    const OPS: &'static str;
    /// True if users may remove fields and reset the map.
    const REMOVES: bool;
}

/// The rules of `map_rr`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct RemoveResets;

impl MapRules for RemoveResets {
    const TYPE: CrdtType = CrdtType::MapRr;
    const OPS: &'static str = "update, remove, reset";
    const REMOVES: bool = true;
}

/// The state of `map_rr`.
pub type MapRr = Map<RemoveResets>;

/// A map's state: field → state, none at bottom.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Map<R>(BTreeMap<Field, State>, PhantomData<R>);

/// A map's effect: per field touched, the field's effect, sorted by field.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct Effect(pub Vec<(Field, AnyEffect)>);

static RESET: Op = Op::Reset;

fn field_of(v: &Value, ty: CrdtType, index: usize) -> Result<Field, UpdateError> {
    Field::from_value(v).map_err(|e| match e {
        FieldError::Shape(got) => UpdateError::WrongArgument {
            index,
            ty,
            op: "remove",
            expected: "a field [name, type]",
            got: got.kind(),
        },
        FieldError::Type(e) => e,
    })
}

impl<R: MapRules> Crdt for Map<R> {
    type Effect = Effect;
    const TYPE: CrdtType = R::TYPE;
    const OPS: &'static str = R::OPS;

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Update(f, inner) => f.ty.check_op(inner, index),
            Op::Remove(v) if R::REMOVES => field_of(v, R::TYPE, index).map(|_| ()),
            Op::Reset if R::REMOVES => Ok(()),
            _ => Err(unknown_op(R::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        // Each touched field's ops, in order; a remove or reset is the
        // field's own reset, where the field has anything to reset.
        let mut fields: BTreeMap<Field, Vec<(usize, &Op)>> = BTreeMap::new();
        let has = |f: &Field| state.is_some_and(|s| s.0.contains_key(f));
        for (i, op) in ops {
            match op {
                Op::Update(f, inner) => fields.entry(f.clone()).or_default().push((*i, inner)),
                Op::Remove(v) => {
                    let f = field_of(v, R::TYPE, *i)?;
                    if has(&f) || fields.contains_key(&f) {
                        fields.entry(f).or_default().push((*i, &RESET));
                    }
                }
                Op::Reset => {
                    for ops in fields.values_mut() {
                        ops.push((*i, &RESET));
                    }
                    if let Some(s) = state {
                        for f in s.0.keys() {
                            fields.entry(f.clone()).or_insert_with(|| vec![(*i, &RESET)]);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::with_capacity(fields.len());
        for (f, ops) in fields {
            let current = state.and_then(|s| s.0.get(&f));
            let e = prepare_field(f.ty, current, &ops, origin)?;
            // A reset of a field with nothing left to reset (a removed
            // counter's floors) changes nothing: leave it out.
            if !e.is_noop() {
                out.push((f, e));
            }
        }
        Ok(Effect(out))
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        for (f, fe) in &e.0 {
            apply_at(&mut self.0, f, fe, dot);
        }
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        // Fields only one side has join with the other side's bottom, which
        // drops what the other side has seen (and so reset).
        for (f, s) in self.0.iter_mut() {
            match other.0.get(f) {
                Some(o) => s.join(mine, o, theirs),
                None => s.join(mine, &State::bottom(f.ty), theirs),
            }
        }
        for (f, o) in &other.0 {
            if !self.0.contains_key(f) {
                let mut s = State::bottom(f.ty);
                s.join(mine, o, theirs);
                self.0.insert(f.clone(), s);
            }
        }
        self.0.retain(|_, s| !s.is_bottom());
    }

    fn value(&self) -> Value {
        let mut m = BTreeMap::new();
        // Fields sort by name, then type tag: the first visible type of a
        // name is the one a read shows (API.md).
        for (f, s) in &self.0 {
            if s.is_visible() && !m.contains_key(&*f.name) {
                m.insert(f.name.to_string(), s.value());
            }
        }
        Value::Map(m)
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn is_visible(&self) -> bool {
        self.0.values().any(State::is_visible)
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        w.varint(self.0.len() as u64);
        for (f, s) in &self.0 {
            f.encode(w);
            s.encode(w);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(3)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let f = Field::decode(r)?;
            let s = State::decode(f.ty, r)?;
            if s.is_bottom() || m.last_key_value().is_some_and(|(p, _)| *p >= f) {
                return Err(DecodeError::NonCanonical(
                    "map fields unsorted or at bottom",
                ));
            }
            m.insert(f, s);
        }
        Ok(Self(m, PhantomData))
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        w.varint(e.0.len() as u64);
        for (f, fe) in &e.0 {
            f.encode(w);
            fe.encode(w);
        }
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        let n = r.count(3)?;
        let mut v: Vec<(Field, AnyEffect)> = Vec::with_capacity(crate::codec::reserve(n));
        for _ in 0..n {
            let f = Field::decode(r)?;
            let fe = AnyEffect::decode(f.ty, r)?;
            if v.last().is_some_and(|(p, _)| *p >= f) {
                return Err(DecodeError::NonCanonical(
                    "map effect fields not strictly sorted",
                ));
            }
            v.push((f, fe));
        }
        Ok(Effect(v))
    }

    #[inline]
    fn is_noop(e: &Effect) -> bool {
        e.0.is_empty()
    }

    #[inline]
    fn observed(e: &Effect, f: &mut dyn FnMut(Dot)) {
        for (_, fe) in &e.0 {
            fe.for_each_observed(&mut *f);
        }
    }

    fn rename(e: &mut Effect, base: Option<&Self>, r: &Rename) {
        for (f, fe) in &mut e.0 {
            fe.rename(base.and_then(|b| b.0.get(f)), r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn f(name: &str, ty: CrdtType) -> Field {
        Field::new(name, ty)
    }

    fn up(name: &str, ty: CrdtType, op: Op) -> Op {
        Op::Update(f(name, ty), Box::new(op))
    }

    fn rm(name: &str, ty: CrdtType) -> Op {
        Op::Remove(Value::List(vec![name.into(), ty.name().into()]))
    }

    fn step(s: &mut MapRr, ops: &[Op], dot: Dot) -> Effect {
        let ops: Vec<(usize, &Op)> = ops.iter().enumerate().collect();
        for (i, op) in &ops {
            MapRr::check(op, *i).unwrap();
        }
        let e = MapRr::prepare(Some(s), &ops, dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    fn get(s: &MapRr, name: &str) -> Option<Value> {
        match s.value() {
            Value::Map(m) => m.get(name).cloned(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn fields_of_two_types_under_one_name_read_in_table_order() {
        let mut s = MapRr::default();
        step(
            &mut s,
            &[
                up("x", CrdtType::FlagEw, Op::Enable),
                up("x", CrdtType::CounterPn, Op::Increment(2)),
            ],
            Dot::new(A, 1),
        );
        assert_eq!(get(&s, "x"), Some(Value::Int(2)));
        step(&mut s, &[rm("x", CrdtType::CounterPn)], Dot::new(A, 2));
        assert_eq!(get(&s, "x"), Some(Value::Bool(true)));
    }

    #[test]
    fn a_remove_concurrent_with_an_update_keeps_only_the_update() {
        let mut base = MapRr::default();
        step(
            &mut base,
            &[up("c", CrdtType::CounterPn, Op::Increment(7))],
            Dot::new(A, 1),
        );
        let mut a = base.clone();
        let inc = step(
            &mut a,
            &[up("c", CrdtType::CounterPn, Op::Increment(5))],
            Dot::new(A, 2),
        );
        let mut b = base;
        let remove = step(&mut b, &[rm("c", CrdtType::CounterPn)], Dot::new(B, 1));
        assert_eq!(get(&b, "c"), None, "a removed field disappears");
        a.apply(&remove, Dot::new(B, 1));
        b.apply(&inc, Dot::new(A, 2));
        assert_eq!(a, b);
        assert_eq!(get(&a, "c"), Some(Value::Int(5)));
    }

    #[test]
    fn remove_then_update_in_one_transaction_starts_the_field_afresh() {
        let mut s = MapRr::default();
        step(
            &mut s,
            &[up("t", CrdtType::SetAw, Op::Add("a".into()))],
            Dot::new(A, 1),
        );
        let e = step(
            &mut s,
            &[
                rm("t", CrdtType::SetAw),
                up("t", CrdtType::SetAw, Op::Add("b".into())),
            ],
            Dot::new(A, 2),
        );
        assert_eq!(e.0.len(), 1, "one field effect");
        assert_eq!(get(&s, "t"), Some(Value::List(vec!["b".into()])));
        // A reset of the whole map, then nothing: bottom again.
        step(&mut s, &[Op::Reset], Dot::new(A, 3));
        assert!(s.is_bottom());
        assert_eq!(s.value(), Value::Map(BTreeMap::new()));
    }

    #[test]
    fn encodings_round_trip_and_refuse_unsorted_fields() {
        let mut s = MapRr::default();
        step(
            &mut s,
            &[
                up("b", CrdtType::RegisterLww, Op::Assign(1.into())),
                up(
                    "a",
                    CrdtType::MapRr,
                    up("deep", CrdtType::SetGo, Op::Add(2.into())),
                ),
            ],
            Dot::new(A, 1),
        );
        let mut w = Writer::new();
        s.encode(&mut w);
        let bytes = w.into_vec();
        assert_eq!(MapRr::decode(&mut Reader::new(&bytes)).unwrap(), s);
        // Swap the two fields' order: refused.
        let mut w = Writer::new();
        w.varint(2);
        for (f, st) in s.0.iter().rev() {
            f.encode(&mut w);
            st.encode(&mut w);
        }
        let bad = w.into_vec();
        assert!(MapRr::decode(&mut Reader::new(&bad)).is_err());
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused_when_decoding() {
        // count 1, field "" of type map_rr, and so on, 100 deep.
        let mut bytes = Vec::new();
        for _ in 0..100 {
            bytes.extend([1, 0, CrdtType::MapRr as u8]);
        }
        bytes.push(0);
        let r = State::decode(CrdtType::MapRr, &mut Reader::new(&bytes));
        assert!(matches!(r, Err(DecodeError::TooDeep { .. })), "{r:?}");
    }
}
