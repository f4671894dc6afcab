//! `counter_pn_sb`: a state-based PN counter. Each origin publishes its
//! running totals `(P, N)`, joined by max; an effect is the origin's new
//! totals. Totals are checked when written, and so is the value, which
//! must stay an `i64` at the writer; replicas that grew it concurrently may
//! still sum past `i64`, and reads saturate rather than wrap.
//!
//! Reset records the totals it observed per origin as floors (joined by
//! max too); the value counts only what lies above them.

use std::collections::BTreeMap;

use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

type Totals = BTreeMap<ReplicaId, (u64, u64)>;

/// Per-origin totals as encoded: ascending by origin.
type TotalsList = Vec<(ReplicaId, (u64, u64))>;

/// The state: per-origin totals, and the totals resets observed.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct CounterPnSb {
    totals: Totals,
    floors: Totals,
}

/// An effect: the origin's new totals (if it changed the counter), and the
/// totals it reset.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Effect {
    /// The origin's totals of increments and decrements.
    pub totals: Option<(u64, u64)>,
    /// The totals observed by a reset, per origin, sorted.
    pub reset: Vec<(ReplicaId, (u64, u64))>,
}

fn max_in(m: &mut Totals, r: ReplicaId, (p, n): (u64, u64)) {
    let e = m.entry(r).or_insert((0, 0));
    e.0 = e.0.max(p);
    e.1 = e.1.max(n);
}

impl CounterPnSb {
    /// One origin's part of the value: its totals above its floor.
    fn part(&self, r: &ReplicaId, (p, n): (u64, u64)) -> i128 {
        let (fp, fn_) = self.floors.get(r).copied().unwrap_or((0, 0));
        i128::from(p.saturating_sub(fp)) - i128::from(n.saturating_sub(fn_))
    }

    /// The value, exactly (no wrapping).
    fn total(&self) -> i128 {
        self.totals.iter().map(|(r, t)| self.part(r, *t)).sum()
    }
}

impl Crdt for CounterPnSb {
    type Effect = Effect;
    const TYPE: CrdtType = CrdtType::CounterPnSb;
    const OPS: &'static str = "increment, decrement";

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Increment(_) | Op::Decrement(_) => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        let empty = Self::default();
        let s = state.unwrap_or(&empty);
        let (mut p, mut n) = s.totals.get(&origin).copied().unwrap_or((0, 0));
        let mut floor = s.floors.get(&origin).copied().unwrap_or((0, 0));
        let mut others = s.total() - s.part(&origin, (p, n));
        let mut e = Effect::default();
        for (i, op) in ops {
            let d = match op {
                Op::Increment(x) => i128::from(*x),
                Op::Decrement(x) => -i128::from(*x),
                Op::Reset => {
                    // Totals written earlier in this transaction are still
                    // published (and equal their floor), so the origin's
                    // totals never fall behind its floor.
                    e.reset = s.totals.iter().map(|(r, t)| (*r, *t)).collect();
                    if let Some(t) = e.reset.iter_mut().find(|(r, _)| *r == origin) {
                        // Our own writes earlier in this transaction are
                        // reset too.
                        t.1 = (p, n);
                    } else if e.totals.is_some() {
                        e.reset.push((origin, (p, n)));
                        e.reset.sort_by_key(|(r, _)| *r);
                    }
                    floor = (p, n);
                    others = 0;
                    continue;
                }
                _ => continue,
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
            let own = i128::from(p.saturating_sub(floor.0)) - i128::from(n.saturating_sub(floor.1));
            if i64::try_from(others + own).is_err() {
                return Err(overflow);
            }
            // Only a change is published: an increment of 0 leaves no trace
            // (so a field that only counted zeros shows nothing).
            if d != 0 {
                e.totals = Some((p, n));
            }
        }
        Ok(e)
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        for (r, f) in &e.reset {
            max_in(&mut self.floors, *r, *f);
        }
        if let Some(t) = e.totals {
            max_in(&mut self.totals, dot.replica, t);
        }
    }

    fn join(&mut self, _mine: &VectorClock, other: &Self, _theirs: &VectorClock) {
        for (r, t) in &other.totals {
            max_in(&mut self.totals, *r, *t);
        }
        for (r, f) in &other.floors {
            max_in(&mut self.floors, *r, *f);
        }
    }

    fn value(&self) -> Value {
        Value::Int(self.total().clamp(i64::MIN.into(), i64::MAX.into()) as i64)
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.totals.is_empty() && self.floors.is_empty()
    }

    /// Visible once it counted something after its last reset: an origin
    /// with totals and no floor, or totals past it.
    #[inline]
    fn is_visible(&self) -> bool {
        self.totals.iter().any(|(r, (p, n))| match self.floors.get(r) {
            None => true,
            Some((fp, fn_)) => p > fp || n > fn_,
        })
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        encode_totals(self.totals.iter().map(|(r, t)| (*r, *t)), self.totals.len(), w);
        encode_totals(self.floors.iter().map(|(r, t)| (*r, *t)), self.floors.len(), w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.count(10)?;
        let totals = decode_totals(r, n)?.into_iter().collect();
        let n = r.count(10)?;
        let floors = decode_totals(r, n)?.into_iter().collect();
        Ok(Self { totals, floors })
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        // `2 × floors + has_totals`, then the totals, then the floors.
        w.varint(((e.reset.len() as u64) << 1) | u64::from(e.totals.is_some()));
        if let Some((p, n)) = e.totals {
            w.varint(p);
            w.varint(n);
        }
        for (r, (p, n)) in &e.reset {
            w.u64_le(r.0);
            w.varint(*p);
            w.varint(*n);
        }
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        let head = r.varint()?;
        let totals = if head & 1 == 1 {
            Some((r.varint()?, r.varint()?))
        } else {
            None
        };
        let n = usize::try_from(head >> 1).unwrap_or(usize::MAX);
        if n > r.remaining() / 10 {
            return Err(DecodeError::LengthOutOfRange {
                len: head >> 1,
                limit: (r.remaining() / 10) as u64,
            });
        }
        Ok(Effect {
            totals,
            reset: decode_totals(r, n)?,
        })
    }

    #[inline]
    fn is_field_only(e: &Effect) -> bool {
        !e.reset.is_empty()
    }

    #[inline]
    fn is_noop(e: &Effect) -> bool {
        e.totals.is_none() && e.reset.is_empty()
    }

    #[inline]
    fn observed(_: &Effect, _: &mut dyn FnMut(Dot)) {}

    fn rename(e: &mut Effect, base: Option<&Self>, rn: &Rename) {
        // Totals are per origin: the new id's start from the base's.
        let b = base
            .and_then(|s| s.totals.get(&rn.old))
            .copied()
            .unwrap_or((0, 0));
        if let Some((p, n)) = &mut e.totals {
            *p = p.saturating_sub(b.0);
            *n = n.saturating_sub(b.1);
        }
        let mut out = Vec::with_capacity(e.reset.len() + 1);
        for (r, (p, n)) in std::mem::take(&mut e.reset) {
            if r == rn.old {
                out.push((rn.old, (p.min(b.0), n.min(b.1))));
                let rest = (p.saturating_sub(b.0), n.saturating_sub(b.1));
                if rest != (0, 0) {
                    out.push((rn.new, rest));
                }
            } else {
                out.push((r, (p, n)));
            }
        }
        out.sort_by_key(|(r, _)| *r);
        e.reset = out;
    }
}

fn encode_totals(it: impl Iterator<Item = (ReplicaId, (u64, u64))>, len: usize, w: &mut Writer) {
    w.varint(len as u64);
    for (r, (p, n)) in it {
        w.u64_le(r.0);
        w.varint(p);
        w.varint(n);
    }
}

fn decode_totals(r: &mut Reader<'_>, n: usize) -> Result<TotalsList, DecodeError> {
    let mut v: Vec<(ReplicaId, (u64, u64))> = Vec::with_capacity(n);
    for _ in 0..n {
        let rid = ReplicaId(r.u64_le()?);
        let pn = (r.varint()?, r.varint()?);
        if v.last().is_some_and(|(p, _)| *p >= rid) {
            return Err(DecodeError::NonCanonical(
                "counter origins not strictly sorted",
            ));
        }
        v.push((rid, pn));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn step(s: &mut CounterPnSb, ops: &[Op], dot: Dot) -> Result<Effect, UpdateError> {
        let ops: Vec<(usize, &Op)> = ops.iter().enumerate().collect();
        let e = CounterPnSb::prepare(Some(s), &ops, dot.replica)?;
        s.apply(&e, dot);
        Ok(e)
    }

    #[test]
    fn a_reset_keeps_the_concurrent_increment_and_overflow_is_refused() {
        let mut base = CounterPnSb::default();
        step(&mut base, &[Op::Increment(7)], Dot::new(A, 1)).unwrap();
        let mut a = base.clone();
        let inc = step(&mut a, &[Op::Increment(5)], Dot::new(A, 2)).unwrap();
        let mut b = base;
        let reset = step(&mut b, &[Op::Reset], Dot::new(B, 1)).unwrap();
        a.apply(&reset, Dot::new(B, 1));
        b.apply(&inc, Dot::new(A, 2));
        assert_eq!(a, b);
        assert_eq!(a.value(), Value::Int(5));
        // After a reset the writer may use the whole i64 range again.
        let mut s = CounterPnSb::default();
        step(&mut s, &[Op::Increment(i64::MAX)], Dot::new(A, 1)).unwrap();
        assert!(step(&mut s, &[Op::Increment(1)], Dot::new(A, 2)).is_err());
        step(&mut s, &[Op::Reset, Op::Increment(i64::MAX)], Dot::new(A, 2)).unwrap();
        assert_eq!(s.value(), Value::Int(i64::MAX));
        assert!(step(&mut s, &[Op::Increment(1)], Dot::new(A, 3)).is_err());
    }
}
