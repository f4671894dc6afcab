//! The ten object types: their ops, effects (deltas), states, joins and
//! values. Everything here is pure; the replica decides when to call it.
//!
//! * [`prepare`] turns the ops one transaction makes on one key into a single
//!   [`Effect`], reading the current state for the dots the ops observe.
//!   Several ops on one key apply left to right and fold into one effect.
//! * [`State::apply`] applies an effect delivered in causal order.
//! * [`State::join`] merges two full states under their causal contexts.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer, MAX_DEPTH};
use crate::dots::{decode_dots, encode_dots, DotSet, Mark, PosNeg};
use crate::elems::ElemMap;
use crate::error::{DecodeError, UpdateError};
use crate::key::{CrdtType, Key};
use crate::value::Value;

/// One operation, with its argument already typed.
#[derive(Clone, PartialEq, Debug)]
pub enum Op {
    /// Counters: add n (may be negative).
    Increment(i64),
    /// Counters: subtract n (may be negative).
    Decrement(i64),
    /// Sets: add one element.
    Add(Value),
    /// Sets: remove one element.
    Remove(Value),
    /// Sets: add several elements.
    AddAll(Vec<Value>),
    /// Sets: remove several elements.
    RemoveAll(Vec<Value>),
    /// Sets, `register_mv` and flags: remove everything observed.
    Reset,
    /// Registers: assign a value.
    Assign(Value),
    /// Flags: enable.
    Enable,
    /// Flags: disable.
    Disable,
}

impl Op {
    /// The op's API name.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Increment(_) => "increment",
            Op::Decrement(_) => "decrement",
            Op::Add(_) => "add",
            Op::Remove(_) => "remove",
            Op::AddAll(_) => "add_all",
            Op::RemoveAll(_) => "remove_all",
            Op::Reset => "reset",
            Op::Assign(_) => "assign",
            Op::Enable => "enable",
            Op::Disable => "disable",
        }
    }

    /// Parses an `(op, arg)` pair for an object of type `ty`. `Null` counts
    /// as "no argument" for ops that take none and for counters (default 1).
    pub fn parse(ty: CrdtType, name: &str, arg: Option<Value>) -> Result<Op, UpdateError> {
        let unknown = || UpdateError::UnknownOp {
            index: 0,
            ty,
            op: name.to_owned(),
            supported: ty.ops(),
        };
        let op_name: &'static str = match name {
            "increment" => "increment",
            "decrement" => "decrement",
            "add" => "add",
            "remove" => "remove",
            "add_all" => "add_all",
            "remove_all" => "remove_all",
            "reset" => "reset",
            "assign" => "assign",
            "enable" => "enable",
            "disable" => "disable",
            _ => return Err(unknown()),
        };
        let wrong = |expected: &'static str, got: &Value| UpdateError::WrongArgument {
            index: 0,
            ty,
            op: op_name,
            expected,
            got: got.kind(),
        };
        let missing = |expected: &'static str| UpdateError::MissingArgument {
            index: 0,
            ty,
            op: op_name,
            expected,
        };
        let op = match op_name {
            "increment" | "decrement" => {
                let n = match arg {
                    None | Some(Value::Null) => 1,
                    Some(Value::Int(n)) => n,
                    Some(v) => return Err(wrong("an int", &v)),
                };
                if op_name == "increment" {
                    Op::Increment(n)
                } else {
                    Op::Decrement(n)
                }
            }
            "add" | "remove" | "assign" => {
                let v = arg.ok_or_else(|| missing("a value"))?;
                match op_name {
                    "add" => Op::Add(v),
                    "remove" => Op::Remove(v),
                    _ => Op::Assign(v),
                }
            }
            "add_all" | "remove_all" => match arg {
                Some(Value::List(l)) => {
                    if op_name == "add_all" {
                        Op::AddAll(l)
                    } else {
                        Op::RemoveAll(l)
                    }
                }
                None => return Err(missing("a list of elements")),
                Some(v) => return Err(wrong("a list of elements", &v)),
            },
            _ => {
                if let Some(v) = arg.filter(|v| *v != Value::Null) {
                    return Err(wrong("no argument", &v));
                }
                match op_name {
                    "reset" => Op::Reset,
                    "enable" => Op::Enable,
                    _ => Op::Disable,
                }
            }
        };
        op.check(ty, 0)?;
        Ok(op)
    }

    /// The encoded size of the op's values: a lower bound on the size of
    /// its effect.
    pub fn values_len(&self) -> usize {
        match self {
            Op::Add(v) | Op::Remove(v) | Op::Assign(v) => v.encoded_len(),
            Op::AddAll(l) | Op::RemoveAll(l) => l.iter().map(Value::encoded_len).sum(),
            _ => 0,
        }
    }

    /// True if the op's effect names every token it observed on the whole
    /// object (its size depends on the state, not on the op).
    pub fn observes_all(&self) -> bool {
        matches!(self, Op::Reset | Op::RemoveAll(_))
    }

    /// Checks that `ty` supports this op and that its values can be stored.
    pub fn check(&self, ty: CrdtType, index: usize) -> Result<(), UpdateError> {
        use CrdtType::*;
        let ok = match self {
            Op::Increment(_) | Op::Decrement(_) => matches!(ty, CounterPn | CounterPnSb),
            Op::Add(_) | Op::AddAll(_) => matches!(ty, SetAw | SetRw | SetGo | Set2p),
            Op::Remove(_) | Op::RemoveAll(_) => matches!(ty, SetAw | SetRw | Set2p),
            Op::Reset => matches!(ty, SetAw | SetRw | RegisterMv | FlagEw | FlagDw),
            Op::Assign(_) => matches!(ty, RegisterMv | RegisterLww),
            Op::Enable | Op::Disable => matches!(ty, FlagEw | FlagDw),
        };
        if !ok {
            return Err(UpdateError::UnknownOp {
                index,
                ty,
                op: self.name().to_owned(),
                supported: ty.ops(),
            });
        }
        let too_deep = match self {
            Op::Add(v) | Op::Remove(v) | Op::Assign(v) => v.depth() > MAX_DEPTH,
            Op::AddAll(l) | Op::RemoveAll(l) => l.iter().any(|v| v.depth() > MAX_DEPTH),
            _ => false,
        };
        if too_deep {
            return Err(UpdateError::TooDeep {
                index,
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }
}

/// One update of a transaction: an op on a key.
#[derive(Clone, PartialEq, Debug)]
pub struct Update {
    /// The object.
    pub key: Key,
    /// The operation.
    pub op: Op,
}

impl Update {
    /// An update.
    pub fn new(key: Key, op: Op) -> Self {
        Self { key, op }
    }

    /// Parses the API's `(key, op, arg?)` shape.
    pub fn parse(key: Key, op: &str, arg: Option<Value>) -> Result<Self, UpdateError> {
        let op = Op::parse(key.ty, op, arg)?;
        Ok(Self { key, op })
    }
}

impl UpdateError {
    /// The same error, reported for update number `index` of a batch.
    pub fn at(mut self, i: usize) -> Self {
        match &mut self {
            UpdateError::UnknownOp { index, .. }
            | UpdateError::MissingArgument { index, .. }
            | UpdateError::WrongArgument { index, .. }
            | UpdateError::Overflow { index }
            | UpdateError::TooDeep { index, .. } => *index = i,
            UpdateError::UnknownType(_)
            | UpdateError::SeqExhausted
            | UpdateError::TooLarge { .. } => {}
        }
        self
    }
}

/// Per-element part of a set effect: the dots observed (and so removed) and
/// the token the transaction leaves.
#[derive(Clone, PartialEq, Debug)]
pub struct ElemEffect {
    /// The element.
    pub elem: Value,
    /// Observed dots, removed at every replica (usually one, held inline).
    pub removed: DotSet,
    /// The new token, if any.
    pub mark: Mark,
}

/// What one transaction did to one object: a delta, applied by join.
#[derive(Clone, PartialEq, Debug)]
pub enum Effect {
    /// `counter_pn`: the net change.
    CounterPn(i64),
    /// `counter_pn_sb`: the origin's new totals.
    CounterPnSb {
        /// Total of increments.
        p: u64,
        /// Total of decrements.
        n: u64,
    },
    /// `set_aw`: per element; `Mark::Pos` adds, `Mark::None` only removes.
    SetAw(Vec<ElemEffect>),
    /// `set_rw`: per element; `Mark::Neg` is a remove tombstone.
    SetRw(Vec<ElemEffect>),
    /// `set_go`: added elements.
    SetGo(Vec<Value>),
    /// `set_2p`: added and removed elements.
    Set2p {
        /// Added elements.
        adds: Vec<Value>,
        /// Removed (tombstoned) elements.
        removes: Vec<Value>,
    },
    /// `register_mv`: observed dots, and the assigned value unless reset.
    RegisterMv {
        /// Observed dots.
        removed: Vec<Dot>,
        /// The new value (None for reset).
        value: Option<Value>,
    },
    /// `register_lww`: the Lamport timestamp and value.
    RegisterLww {
        /// Lamport time: one more than the highest the origin had seen on
        /// this object.
        ts: u64,
        /// Observed dots: the writes this one overwrites, whatever their
        /// timestamps (so a write always wins over what it observed).
        removed: Vec<Dot>,
        /// The value.
        value: Value,
    },
    /// `flag_ew`: observed dots, and whether a new enable token is left.
    FlagEw {
        /// Observed dots.
        removed: Vec<Dot>,
        /// True for enable.
        enable: bool,
    },
    /// `flag_dw`: observed dots and the token left.
    FlagDw {
        /// Observed dots.
        removed: Vec<Dot>,
        /// `Pos` = enable, `Neg` = disable, `None` = reset.
        mark: Mark,
    },
}

/// Per-origin totals of an op-based PN counter, tagged with the seq of the
/// last transaction that changed them, so two states join by that seq even
/// though the totals wrap.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PnEntry {
    /// Seq of the origin's last transaction that touched the counter.
    pub seq: u64,
    /// Sum of positive deltas (wrapping).
    pub p: u64,
    /// Sum of negative deltas' magnitudes (wrapping).
    pub n: u64,
}

/// An object's full state.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum State {
    /// `counter_pn`.
    CounterPn(BTreeMap<ReplicaId, PnEntry>),
    /// `counter_pn_sb`: per origin `(P, N)`, joined by max.
    CounterPnSb(BTreeMap<ReplicaId, (u64, u64)>),
    /// `set_aw`: element → add tokens.
    SetAw(ElemMap<DotSet>),
    /// `set_rw`: element → add and remove tokens.
    SetRw(ElemMap<PosNeg>),
    /// `set_go`.
    SetGo(BTreeSet<Value>),
    /// `set_2p`.
    Set2p {
        /// Every element ever added.
        added: BTreeSet<Value>,
        /// Tombstones.
        removed: BTreeSet<Value>,
    },
    /// `register_mv`: a dot function dot → value.
    RegisterMv(BTreeMap<Dot, Value>),
    /// `register_lww`: `(ts, origin, value)` of the winning assign.
    /// `register_lww`: the writes no one has overwritten yet, by dot, with
    /// their Lamport times; the value is the one with the highest
    /// `(time, replica)`. Usually one entry; concurrent writes add more.
    RegisterLww(BTreeMap<Dot, (u64, Value)>),
    /// `flag_ew`: enable tokens.
    FlagEw(DotSet),
    /// `flag_dw`: enable and disable tokens.
    FlagDw(PosNeg),
}

fn sorted_dots(s: &DotSet) -> Vec<Dot> {
    s.as_slice().to_vec()
}

impl State {
    /// The initial (bottom) state of a type.
    pub fn bottom(ty: CrdtType) -> State {
        match ty {
            CrdtType::CounterPn => State::CounterPn(BTreeMap::new()),
            CrdtType::CounterPnSb => State::CounterPnSb(BTreeMap::new()),
            CrdtType::SetAw => State::SetAw(ElemMap::new()),
            CrdtType::SetRw => State::SetRw(ElemMap::new()),
            CrdtType::SetGo => State::SetGo(BTreeSet::new()),
            CrdtType::Set2p => State::Set2p {
                added: BTreeSet::new(),
                removed: BTreeSet::new(),
            },
            CrdtType::RegisterMv => State::RegisterMv(BTreeMap::new()),
            CrdtType::RegisterLww => State::RegisterLww(BTreeMap::new()),
            CrdtType::FlagEw => State::FlagEw(DotSet::new()),
            CrdtType::FlagDw => State::FlagDw(PosNeg::default()),
        }
    }

    /// The state's type.
    pub fn ty(&self) -> CrdtType {
        match self {
            State::CounterPn(_) => CrdtType::CounterPn,
            State::CounterPnSb(_) => CrdtType::CounterPnSb,
            State::SetAw(_) => CrdtType::SetAw,
            State::SetRw(_) => CrdtType::SetRw,
            State::SetGo(_) => CrdtType::SetGo,
            State::Set2p { .. } => CrdtType::Set2p,
            State::RegisterMv(_) => CrdtType::RegisterMv,
            State::RegisterLww(_) => CrdtType::RegisterLww,
            State::FlagEw(_) => CrdtType::FlagEw,
            State::FlagDw(_) => CrdtType::FlagDw,
        }
    }

    /// How many tokens a whole-object effect (an assign, a flag op) would
    /// name as observed: what makes such an effect large.
    pub fn tokens(&self) -> usize {
        match self {
            State::RegisterMv(m) => m.len(),
            State::RegisterLww(m) => m.len(),
            State::FlagEw(s) => s.len(),
            State::FlagDw(p) => p.pos.len() + p.neg.len(),
            _ => 0,
        }
    }

    /// True for the bottom state; such objects are not stored, so equal
    /// states have equal snapshots.
    pub fn is_bottom(&self) -> bool {
        match self {
            State::CounterPn(m) => m.is_empty(),
            State::CounterPnSb(m) => m.is_empty(),
            State::SetAw(m) => m.is_empty(),
            State::SetRw(m) => m.is_empty(),
            State::SetGo(s) => s.is_empty(),
            State::Set2p { added, removed } => added.is_empty() && removed.is_empty(),
            State::RegisterMv(m) => m.is_empty(),
            State::RegisterLww(m) => m.is_empty(),
            State::FlagEw(s) => s.is_empty(),
            State::FlagDw(p) => p.is_empty(),
        }
    }

    /// The value a read returns.
    pub fn value(&self) -> Value {
        match self {
            State::CounterPn(m) => Value::Int(
                m.values()
                    .fold(0u64, |acc, e| acc.wrapping_add(e.p).wrapping_sub(e.n))
                    as i64,
            ),
            // Totals are checked when written; replicas that grew them
            // concurrently may still sum past i64: the value saturates
            // rather than wrapping to the other sign.
            State::CounterPnSb(m) => {
                Value::Int(pn_sb_total(m).clamp(i64::MIN.into(), i64::MAX.into()) as i64)
            }
            State::SetAw(m) => Value::List(m.sorted_keys(|_| true)),
            State::SetRw(m) => Value::List(m.sorted_keys(PosNeg::negative_wins)),
            State::SetGo(s) => Value::List(s.iter().cloned().collect()),
            State::Set2p { added, removed } => {
                Value::List(added.difference(removed).cloned().collect())
            }
            State::RegisterMv(m) => {
                let set: BTreeSet<&Value> = m.values().collect();
                Value::List(set.into_iter().cloned().collect())
            }
            State::RegisterLww(m) => lww_winner(m).map_or(Value::Null, |(_, (_, v))| v.clone()),
            State::FlagEw(s) => Value::Bool(!s.is_empty()),
            State::FlagDw(p) => Value::Bool(p.negative_wins()),
        }
    }

    /// Applies an effect of the transaction `dot`, delivered in causal order
    /// (the dot is new to this replica and its dependencies were applied).
    /// An effect of another type is ignored: keys carry their type, so the
    /// replica never pairs them, and a hostile peer cannot corrupt state.
    pub fn apply(&mut self, effect: &Effect, dot: Dot) {
        match (self, effect) {
            (State::CounterPn(m), Effect::CounterPn(delta)) => {
                let e = m
                    .entry(dot.replica)
                    .or_insert(PnEntry { seq: 0, p: 0, n: 0 });
                e.seq = e.seq.max(dot.seq);
                if *delta >= 0 {
                    e.p = e.p.wrapping_add(*delta as u64);
                } else {
                    e.n = e.n.wrapping_add(delta.unsigned_abs());
                }
            }
            (State::CounterPnSb(m), Effect::CounterPnSb { p, n }) => {
                let e = m.entry(dot.replica).or_insert((0, 0));
                e.0 = e.0.max(*p);
                e.1 = e.1.max(*n);
            }
            (State::SetAw(m), Effect::SetAw(elems)) => {
                for ee in elems {
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
            (State::SetRw(m), Effect::SetRw(elems)) => {
                for ee in elems {
                    let t = m.entry(ee.elem.clone()).or_default();
                    t.apply(ee.removed.as_slice(), ee.mark, dot);
                    if t.is_empty() {
                        m.remove(&ee.elem);
                    }
                }
            }
            (State::SetGo(s), Effect::SetGo(adds)) => s.extend(adds.iter().cloned()),
            (State::Set2p { added, removed }, Effect::Set2p { adds, removes }) => {
                added.extend(adds.iter().cloned());
                removed.extend(removes.iter().cloned());
            }
            (State::RegisterMv(m), Effect::RegisterMv { removed, value }) => {
                for d in removed {
                    m.remove(d);
                }
                drop_older_of(m, dot);
                if let Some(v) = value {
                    m.insert(dot, v.clone());
                }
            }
            (State::RegisterLww(m), Effect::RegisterLww { ts, removed, value }) => {
                for d in removed {
                    m.remove(d);
                }
                drop_older_of(m, dot);
                m.insert(dot, (*ts, value.clone()));
            }
            (State::FlagEw(s), Effect::FlagEw { removed, enable }) => {
                s.apply(removed, enable.then_some(dot));
            }
            (State::FlagDw(p), Effect::FlagDw { removed, mark }) => p.apply(removed, *mark, dot),
            _ => {}
        }
    }

    /// Joins `other` (under context `theirs`) into `self` (under `mine`).
    /// States of different types are left alone.
    pub fn join(&mut self, mine: &VectorClock, other: &State, theirs: &VectorClock) {
        match (self, other) {
            (State::CounterPn(a), State::CounterPn(b)) => {
                for (r, eb) in b {
                    let ea = a.entry(*r).or_insert(*eb);
                    if eb.seq > ea.seq {
                        *ea = *eb;
                    }
                }
            }
            (State::CounterPnSb(a), State::CounterPnSb(b)) => {
                for (r, (p, n)) in b {
                    let e = a.entry(*r).or_insert((0, 0));
                    e.0 = e.0.max(*p);
                    e.1 = e.1.max(*n);
                }
            }
            (State::SetAw(a), State::SetAw(b)) => {
                join_map(a, mine, b, theirs, DotSet::join, DotSet::is_empty)
            }
            (State::SetRw(a), State::SetRw(b)) => {
                join_map(a, mine, b, theirs, PosNeg::join, PosNeg::is_empty)
            }
            (State::SetGo(a), State::SetGo(b)) => a.extend(b.iter().cloned()),
            (
                State::Set2p { added, removed },
                State::Set2p {
                    added: b_added,
                    removed: b_removed,
                },
            ) => {
                added.extend(b_added.iter().cloned());
                removed.extend(b_removed.iter().cloned());
            }
            (State::RegisterMv(a), State::RegisterMv(b)) => {
                a.retain(|d, _| b.contains_key(d) || !theirs.contains(d));
                for (d, v) in b {
                    if !mine.contains(d) {
                        a.insert(*d, v.clone());
                    }
                }
            }
            (State::RegisterLww(a), State::RegisterLww(b)) => {
                a.retain(|d, _| b.contains_key(d) || !theirs.contains(d));
                for (d, v) in b {
                    if !mine.contains(d) {
                        a.insert(*d, v.clone());
                    }
                }
            }
            (State::FlagEw(a), State::FlagEw(b)) => a.join(mine, b, theirs),
            (State::FlagDw(a), State::FlagDw(b)) => a.join(mine, b, theirs),
            _ => {}
        }
    }

    /// Appends the state's encoding (without its type, which the key holds).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            State::CounterPn(m) => {
                w.varint(m.len() as u64);
                for (r, e) in m {
                    w.u64_le(r.0);
                    w.varint(e.seq);
                    w.varint(e.p);
                    w.varint(e.n);
                }
            }
            State::CounterPnSb(m) => {
                w.varint(m.len() as u64);
                for (r, (p, n)) in m {
                    w.u64_le(r.0);
                    w.varint(*p);
                    w.varint(*n);
                }
            }
            State::SetAw(m) => {
                w.varint(m.len() as u64);
                for (e, s) in m.sorted() {
                    e.encode(w);
                    s.encode(w);
                }
            }
            State::SetRw(m) => {
                w.varint(m.len() as u64);
                for (e, t) in m.sorted() {
                    e.encode(w);
                    t.pos.encode(w);
                    t.neg.encode(w);
                }
            }
            State::SetGo(s) => encode_values(s.iter(), s.len(), w),
            State::Set2p { added, removed } => {
                encode_values(added.iter(), added.len(), w);
                encode_values(removed.iter(), removed.len(), w);
            }
            State::RegisterMv(m) => {
                w.varint(m.len() as u64);
                for (d, v) in m {
                    d.encode(w);
                    v.encode(w);
                }
            }
            State::RegisterLww(m) => {
                w.varint(m.len() as u64);
                for (d, (ts, v)) in m {
                    d.encode(w);
                    w.varint(*ts);
                    v.encode(w);
                }
            }
            State::FlagEw(s) => s.encode(w),
            State::FlagDw(p) => {
                p.pos.encode(w);
                p.neg.encode(w);
            }
        }
    }

    /// Decodes a state of type `ty`.
    pub fn decode(ty: CrdtType, r: &mut Reader<'_>) -> Result<State, DecodeError> {
        Ok(match ty {
            CrdtType::CounterPn => {
                let n = r.count(11)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let rid = ReplicaId(r.u64_le()?);
                    let e = PnEntry {
                        seq: r.varint()?,
                        p: r.varint()?,
                        n: r.varint()?,
                    };
                    if m.last_key_value().is_some_and(|(p, _)| *p >= rid) {
                        return Err(DecodeError::NonCanonical(
                            "counter origins not strictly sorted",
                        ));
                    }
                    m.insert(rid, e);
                }
                State::CounterPn(m)
            }
            CrdtType::CounterPnSb => {
                let n = r.count(10)?;
                let mut m = BTreeMap::new();
                for _ in 0..n {
                    let rid = ReplicaId(r.u64_le()?);
                    let pn = (r.varint()?, r.varint()?);
                    if m.last_key_value().is_some_and(|(p, _)| *p >= rid) {
                        return Err(DecodeError::NonCanonical(
                            "counter origins not strictly sorted",
                        ));
                    }
                    m.insert(rid, pn);
                }
                State::CounterPnSb(m)
            }
            CrdtType::SetAw => State::SetAw(decode_elems(r, 2, |r| {
                let s = DotSet::decode(r)?;
                Ok((!s.is_empty()).then_some(s))
            })?),
            CrdtType::SetRw => State::SetRw(decode_elems(r, 3, |r| {
                let t = PosNeg {
                    pos: DotSet::decode(r)?,
                    neg: DotSet::decode(r)?,
                };
                Ok((!t.is_empty()).then_some(t))
            })?),
            CrdtType::SetGo => State::SetGo(decode_value_set(r)?),
            CrdtType::Set2p => State::Set2p {
                added: decode_value_set(r)?,
                removed: decode_value_set(r)?,
            },
            CrdtType::RegisterMv => {
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
                State::RegisterMv(m)
            }
            CrdtType::RegisterLww => {
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
                State::RegisterLww(m)
            }
            CrdtType::FlagEw => State::FlagEw(DotSet::decode(r)?),
            CrdtType::FlagDw => State::FlagDw(PosNeg {
                pos: DotSet::decode(r)?,
                neg: DotSet::decode(r)?,
            }),
        })
    }
}

/// Decodes `count, count × (Value, T)` with strictly ascending elements
/// and no empty `T` (`body` returns `None` for an empty one).
fn decode_elems<T>(
    r: &mut Reader<'_>,
    min_entry_bytes: usize,
    mut body: impl FnMut(&mut Reader<'_>) -> Result<Option<T>, DecodeError>,
) -> Result<ElemMap<T>, DecodeError> {
    let n = r.count(min_entry_bytes)?;
    let mut entries: Vec<(Value, T)> = Vec::with_capacity(n);
    for _ in 0..n {
        let e = Value::decode(r)?;
        let t = body(r)?;
        match t {
            Some(t) if entries.last().is_none_or(|(p, _)| *p < e) => entries.push((e, t)),
            _ => {
                return Err(DecodeError::NonCanonical(
                    "set elements unsorted or without tokens",
                ))
            }
        }
    }
    Ok(entries.into_iter().collect())
}

fn join_map<T: Default>(
    a: &mut ElemMap<T>,
    mine: &VectorClock,
    b: &ElemMap<T>,
    theirs: &VectorClock,
    join: fn(&mut T, &VectorClock, &T, &VectorClock),
    empty: fn(&T) -> bool,
) {
    let empty_t = T::default();
    // Elements only we have: join with the other side's bottom, which drops
    // the dots they have seen (and so removed).
    for (e, t) in a.iter_mut_unordered() {
        let other = b.get(e).unwrap_or(&empty_t);
        join(t, mine, other, theirs);
    }
    for (e, tb) in b.iter_unordered() {
        if !a.contains_key(e) {
            let mut t = T::default();
            join(&mut t, mine, tb, theirs);
            a.insert(e.clone(), t);
        }
    }
    a.retain(|_, t| !empty(t));
}

fn encode_values<'a>(it: impl Iterator<Item = &'a Value>, n: usize, w: &mut Writer) {
    w.varint(n as u64);
    for v in it {
        v.encode(w);
    }
}

fn decode_value_list(r: &mut Reader<'_>) -> Result<Vec<Value>, DecodeError> {
    let n = r.count(1)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(Value::decode(r)?);
    }
    Ok(v)
}

fn decode_value_set(r: &mut Reader<'_>) -> Result<BTreeSet<Value>, DecodeError> {
    let v = decode_value_list(r)?;
    if v.windows(2).any(|w| w[0] >= w[1]) {
        return Err(DecodeError::NonCanonical(
            "set elements not strictly sorted",
        ));
    }
    Ok(v.into_iter().collect())
}

/// Folds the ops one transaction makes on one key into a single effect.
/// `state` is the object's current state (`None` if never written), `origin`
/// the local replica. Fails only for `counter_pn_sb` overflow; every other
/// check happens in [`Op::check`].
pub fn prepare(
    ty: CrdtType,
    state: Option<&State>,
    ops: &[(usize, &Op)],
    origin: ReplicaId,
) -> Result<Effect, UpdateError> {
    match ty {
        CrdtType::CounterPn => {
            let mut delta: i64 = 0;
            for (_, op) in ops {
                match op {
                    Op::Increment(n) => delta = delta.wrapping_add(*n),
                    Op::Decrement(n) => delta = delta.wrapping_sub(*n),
                    _ => {}
                }
            }
            Ok(Effect::CounterPn(delta))
        }
        CrdtType::CounterPnSb => {
            let (mut p, mut n) = match state {
                Some(State::CounterPnSb(m)) => m.get(&origin).copied().unwrap_or((0, 0)),
                _ => (0, 0),
            };
            let others = match state {
                Some(State::CounterPnSb(m)) => pn_sb_total(m) - (i128::from(p) - i128::from(n)),
                _ => 0,
            };
            for (i, op) in ops {
                let d = match op {
                    Op::Increment(x) => i128::from(*x),
                    Op::Decrement(x) => -i128::from(*x),
                    _ => 0,
                };
                let overflow = UpdateError::Overflow { index: *i };
                if d >= 0 {
                    p = p.checked_add(d as u64).ok_or(overflow.clone())?;
                } else {
                    n = n
                        .checked_add(d.unsigned_abs() as u64)
                        .ok_or(overflow.clone())?;
                }
                // The value this replica would read must stay an i64.
                let value = others + i128::from(p) - i128::from(n);
                if i64::try_from(value).is_err() {
                    return Err(overflow);
                }
            }
            Ok(Effect::CounterPnSb { p, n })
        }
        CrdtType::SetAw | CrdtType::SetRw => {
            // Touched elements → final mark, in op order, then sorted with
            // the last op per element winning. Every touched element removes
            // all the tokens it had in `state`. (A stable sort of a sorted or
            // nearly sorted batch is linear, unlike a map insert per op.)
            let mut touched: Vec<(&Value, Mark)> = Vec::with_capacity(ops.len());
            let (add, remove) = if ty == CrdtType::SetAw {
                (Mark::Pos, Mark::None)
            } else {
                (Mark::Pos, Mark::Neg)
            };
            for (_, op) in ops {
                match op {
                    Op::Add(e) => touched.push((e, add)),
                    Op::AddAll(l) => touched.extend(l.iter().map(|e| (e, add))),
                    Op::Remove(e) => touched.push((e, remove)),
                    Op::RemoveAll(l) => touched.extend(l.iter().map(|e| (e, remove))),
                    Op::Reset => {
                        touched.iter_mut().for_each(|(_, m)| *m = Mark::None);
                        match state {
                            Some(State::SetAw(m)) => {
                                touched.extend(m.iter_unordered().map(|(e, _)| (e, Mark::None)))
                            }
                            Some(State::SetRw(m)) => {
                                touched.extend(m.iter_unordered().map(|(e, _)| (e, Mark::None)))
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            if !touched.is_sorted_by(|a, b| a.0 < b.0) {
                touched.sort_by(|a, b| a.0.cmp(b.0));
            }
            let mut marks: Vec<(&Value, Mark)> = Vec::with_capacity(touched.len());
            for (e, m) in touched {
                match marks.last_mut() {
                    Some(last) if last.0 == e => last.1 = m,
                    _ => marks.push((e, m)),
                }
            }
            let mut out = Vec::with_capacity(marks.len());
            for (e, mark) in marks {
                let removed = match state {
                    Some(State::SetAw(m)) => m.get(e).cloned().unwrap_or_default(),
                    Some(State::SetRw(m)) => m
                        .get(e)
                        .map(|t| DotSet::from_sorted(t.observed()))
                        .unwrap_or_default(),
                    _ => DotSet::new(),
                };
                if removed.is_empty() && mark == Mark::None {
                    continue; // removing an absent element has no effect
                }
                out.push(ElemEffect {
                    elem: e.clone(),
                    removed,
                    mark,
                });
            }
            Ok(if ty == CrdtType::SetAw {
                Effect::SetAw(out)
            } else {
                Effect::SetRw(out)
            })
        }
        CrdtType::SetGo => {
            let mut adds = BTreeSet::new();
            for (_, op) in ops {
                match op {
                    Op::Add(e) => {
                        adds.insert(e.clone());
                    }
                    Op::AddAll(l) => adds.extend(l.iter().cloned()),
                    _ => {}
                }
            }
            Ok(Effect::SetGo(adds.into_iter().collect()))
        }
        CrdtType::Set2p => {
            let mut adds = BTreeSet::new();
            let mut removes = BTreeSet::new();
            for (_, op) in ops {
                match op {
                    Op::Add(e) => {
                        adds.insert(e.clone());
                    }
                    Op::AddAll(l) => adds.extend(l.iter().cloned()),
                    Op::Remove(e) => {
                        removes.insert(e.clone());
                    }
                    Op::RemoveAll(l) => removes.extend(l.iter().cloned()),
                    _ => {}
                }
            }
            Ok(Effect::Set2p {
                adds: adds.into_iter().collect(),
                removes: removes.into_iter().collect(),
            })
        }
        CrdtType::RegisterMv => {
            let removed = match state {
                Some(State::RegisterMv(m)) => m.keys().copied().collect(),
                _ => Vec::new(),
            };
            let value = match ops.last() {
                Some((_, Op::Assign(v))) => Some(v.clone()),
                _ => None,
            };
            Ok(Effect::RegisterMv { removed, value })
        }
        CrdtType::RegisterLww => {
            let (ts, removed) = match state {
                Some(State::RegisterLww(m)) => (
                    m.values()
                        .map(|(ts, _)| *ts)
                        .max()
                        .unwrap_or(0)
                        .saturating_add(1),
                    m.keys().copied().collect(),
                ),
                _ => (1, Vec::new()),
            };
            let value = match ops.last() {
                Some((_, Op::Assign(v))) => v.clone(),
                _ => Value::Null,
            };
            Ok(Effect::RegisterLww { ts, removed, value })
        }
        CrdtType::FlagEw => {
            let removed = match state {
                Some(State::FlagEw(s)) => sorted_dots(s),
                _ => Vec::new(),
            };
            let enable = matches!(ops.last(), Some((_, Op::Enable)));
            Ok(Effect::FlagEw { removed, enable })
        }
        CrdtType::FlagDw => {
            let removed = match state {
                Some(State::FlagDw(p)) => p.observed(),
                _ => Vec::new(),
            };
            let mark = match ops.last() {
                Some((_, Op::Enable)) => Mark::Pos,
                Some((_, Op::Disable)) => Mark::Neg,
                _ => Mark::None,
            };
            Ok(Effect::FlagDw { removed, mark })
        }
    }
}

/// [`prepare`] then [`State::apply`] on an existing state, all or nothing.
/// The commonest transaction, one add or remove on an add-wins set, takes
/// one element lookup instead of two.
pub fn prepare_apply(
    ty: CrdtType,
    state: &mut State,
    ops: &[(usize, &Op)],
    origin: ReplicaId,
    dot: Dot,
) -> Result<Effect, UpdateError> {
    if let (State::SetAw(m), [(_, op)]) = (&mut *state, ops) {
        match op {
            // An add removes every token the element has and leaves `dot`.
            Op::Add(e) => {
                let removed = match m.entry(e.clone()) {
                    Entry::Occupied(mut o) => std::mem::replace(o.get_mut(), DotSet::single(dot)),
                    Entry::Vacant(v) => {
                        v.insert(DotSet::single(dot));
                        DotSet::new()
                    }
                };
                return Ok(Effect::SetAw(vec![ElemEffect {
                    elem: e.clone(),
                    removed,
                    mark: Mark::Pos,
                }]));
            }
            Op::Remove(e) => {
                let out = match m.remove(e) {
                    Some(s) => vec![ElemEffect {
                        elem: e.clone(),
                        removed: s,
                        mark: Mark::None,
                    }],
                    None => Vec::new(),
                };
                return Ok(Effect::SetAw(out));
            }
            _ => {}
        }
    }
    let effect = prepare(ty, Some(state), ops, origin)?;
    state.apply(&effect, dot);
    Ok(effect)
}

impl Effect {
    /// Calls `f` with every dot the effect observed at its origin (the
    /// tokens it removes). A receiver must have delivered each of them
    /// before it applies the effect, whatever the transaction's declared
    /// deps say: a remove of a dot that has not arrived would otherwise be
    /// lost, and the element would survive at this replica only.
    pub fn for_each_observed(&self, mut f: impl FnMut(Dot)) {
        match self {
            Effect::SetAw(es) | Effect::SetRw(es) => {
                for e in es {
                    e.removed.as_slice().iter().copied().for_each(&mut f);
                }
            }
            Effect::RegisterMv { removed, .. }
            | Effect::RegisterLww { removed, .. }
            | Effect::FlagEw { removed, .. }
            | Effect::FlagDw { removed, .. } => removed.iter().copied().for_each(f),
            Effect::CounterPn(_)
            | Effect::CounterPnSb { .. }
            | Effect::SetGo(_)
            | Effect::Set2p { .. } => {}
        }
    }

    /// Renames every observed dot through `f`, keeping each list sorted
    /// (re-issuing a transaction under a new replica id, see
    /// [`crate::Replica::repair`]).
    pub fn map_observed(&mut self, mut f: impl FnMut(Dot) -> Dot) {
        let mut map_vec = |v: &mut Vec<Dot>| {
            for d in v.iter_mut() {
                *d = f(*d);
            }
            v.sort_unstable();
            v.dedup();
        };
        match self {
            Effect::SetAw(es) | Effect::SetRw(es) => {
                for e in es {
                    let mut v = std::mem::take(&mut e.removed).into_vec();
                    map_vec(&mut v);
                    e.removed = DotSet::from_sorted(v);
                }
            }
            Effect::RegisterMv { removed, .. }
            | Effect::RegisterLww { removed, .. }
            | Effect::FlagEw { removed, .. }
            | Effect::FlagDw { removed, .. } => map_vec(removed),
            Effect::CounterPn(_)
            | Effect::CounterPnSb { .. }
            | Effect::SetGo(_)
            | Effect::Set2p { .. } => {}
        }
    }

    /// Appends the effect's body (the key, with the type, is written first by
    /// the caller).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Effect::CounterPn(d) => w.zigzag(*d),
            Effect::CounterPnSb { p, n } => {
                w.varint(*p);
                w.varint(*n);
            }
            Effect::SetAw(es) | Effect::SetRw(es) => {
                w.varint(es.len() as u64);
                for e in es {
                    e.elem.encode(w);
                    e.removed.encode(w);
                    w.u8(e.mark.tag());
                }
            }
            Effect::SetGo(adds) => encode_values(adds.iter(), adds.len(), w),
            Effect::Set2p { adds, removes } => {
                encode_values(adds.iter(), adds.len(), w);
                encode_values(removes.iter(), removes.len(), w);
            }
            Effect::RegisterMv { removed, value } => {
                encode_dots(removed, w);
                match value {
                    None => w.u8(0),
                    Some(v) => {
                        w.u8(1);
                        v.encode(w);
                    }
                }
            }
            Effect::RegisterLww { ts, removed, value } => {
                encode_dots(removed, w);
                w.varint(*ts);
                value.encode(w);
            }
            Effect::FlagEw { removed, enable } => {
                encode_dots(removed, w);
                w.u8(u8::from(*enable));
            }
            Effect::FlagDw { removed, mark } => {
                encode_dots(removed, w);
                w.u8(mark.tag());
            }
        }
    }

    /// Decodes an effect body for an object of type `ty`.
    pub fn decode(ty: CrdtType, r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        Ok(match ty {
            CrdtType::CounterPn => Effect::CounterPn(r.zigzag()?),
            CrdtType::CounterPnSb => Effect::CounterPnSb {
                p: r.varint()?,
                n: r.varint()?,
            },
            CrdtType::SetAw | CrdtType::SetRw => {
                let n = r.count(3)?;
                let mut es: Vec<ElemEffect> = Vec::with_capacity(n);
                for _ in 0..n {
                    let elem = Value::decode(r)?;
                    let removed = DotSet::decode(r)?;
                    let mark = Mark::from_tag(r.u8()?)?;
                    if ty == CrdtType::SetAw && mark == Mark::Neg {
                        return Err(DecodeError::InvalidTag {
                            what: "set_aw mark",
                            tag: 2,
                        });
                    }
                    if es.last().is_some_and(|p| p.elem >= elem) {
                        return Err(DecodeError::NonCanonical(
                            "set effect elements not strictly sorted",
                        ));
                    }
                    es.push(ElemEffect {
                        elem,
                        removed,
                        mark,
                    });
                }
                if ty == CrdtType::SetAw {
                    Effect::SetAw(es)
                } else {
                    Effect::SetRw(es)
                }
            }
            CrdtType::SetGo => Effect::SetGo(decode_value_set(r)?.into_iter().collect()),
            CrdtType::Set2p => Effect::Set2p {
                adds: decode_value_set(r)?.into_iter().collect(),
                removes: decode_value_set(r)?.into_iter().collect(),
            },
            CrdtType::RegisterMv => {
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
                Effect::RegisterMv { removed, value }
            }
            CrdtType::RegisterLww => Effect::RegisterLww {
                removed: decode_dots(r)?,
                ts: r.varint()?,
                value: Value::decode(r)?,
            },
            CrdtType::FlagEw => Effect::FlagEw {
                removed: decode_dots(r)?,
                enable: r.bool()?,
            },
            CrdtType::FlagDw => Effect::FlagDw {
                removed: decode_dots(r)?,
                mark: Mark::from_tag(r.u8()?)?,
            },
        })
    }
}

/// The value of a state-based PN counter, exactly (no wrapping).
fn pn_sb_total(m: &BTreeMap<ReplicaId, (u64, u64)>) -> i128 {
    m.values()
        .map(|(p, n)| i128::from(*p) - i128::from(*n))
        .sum()
}

/// The winning write of a `register_lww`: the highest `(time, replica)`
/// among the writes not yet overwritten. Only concurrent writes compete: a
/// write that observed another removed it, whatever the timestamps.
fn lww_winner(m: &BTreeMap<Dot, (u64, Value)>) -> Option<(&Dot, &(u64, Value))> {
    m.iter().max_by_key(|(d, (ts, _))| (*ts, d.replica, d.seq))
}

/// Drops the register writes of `dot`'s origin older than `dot`. Under
/// causal delivery an origin's write always observed its own earlier ones,
/// so this removes only what an honest effect names anyway; it bounds a
/// register to one entry per origin even when a hostile writer names
/// nothing it overwrote (and so keeps every later honest effect small).
fn drop_older_of<V>(m: &mut BTreeMap<Dot, V>, dot: Dot) {
    let older: Vec<Dot> = m
        .range(Dot::new(dot.replica, 0)..dot)
        .map(|(d, _)| *d)
        .collect();
    for d in older {
        m.remove(&d);
    }
}
