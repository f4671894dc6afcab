//! `counter_pn`: an op-based PN counter. An effect carries the net change;
//! the state keeps per-origin totals tagged with the seq of the origin's
//! last change, so two states join by that seq even though totals wrap.
//!
//! Reset (a remove-resets map removing the field) records the totals it
//! observed per origin as a floor; the value counts only what lies above
//! the floors, so an increment concurrent with the reset survives it, and
//! joins stay a max per origin. Floors exist only inside maps.

use std::collections::BTreeMap;

use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

/// One origin's totals as of its seq `seq`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PnEntry {
    /// Seq of the origin's last transaction that touched the counter.
    pub seq: u64,
    /// Sum of positive deltas (wrapping).
    pub p: u64,
    /// Sum of negative deltas' magnitudes (wrapping).
    pub n: u64,
}

/// The state: per-origin totals, and the totals a reset observed.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct CounterPn {
    totals: BTreeMap<ReplicaId, PnEntry>,
    floors: BTreeMap<ReplicaId, PnEntry>,
}

/// An effect: the net change (if the transaction changed the counter) and
/// the totals it reset.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Effect {
    /// The net change, `None` for a transaction that only reset.
    pub delta: Option<i64>,
    /// The totals observed by a reset, per origin, sorted.
    pub reset: Vec<(ReplicaId, PnEntry)>,
}

impl Effect {
    /// The effect of adding `d`.
    pub fn delta(d: i64) -> Self {
        Self {
            delta: Some(d),
            reset: Vec::new(),
        }
    }
}

/// Keeps the later of two entries (by seq).
fn max_in(m: &mut BTreeMap<ReplicaId, PnEntry>, r: ReplicaId, e: PnEntry) {
    let cur = m.entry(r).or_insert(e);
    if e.seq > cur.seq {
        *cur = e;
    }
}

impl CounterPn {
    fn above_floor(&self) -> impl Iterator<Item = (ReplicaId, PnEntry, Option<&PnEntry>)> + '_ {
        self.totals
            .iter()
            .map(|(r, e)| (*r, *e, self.floors.get(r)))
            .filter(|(_, e, f)| f.is_none_or(|f| f.seq < e.seq))
    }
}

impl Crdt for CounterPn {
    type Effect = Effect;
    const TYPE: CrdtType = CrdtType::CounterPn;
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
        _origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        let mut e = Effect::default();
        for (_, op) in ops {
            match op {
                Op::Increment(n) => e.delta = Some(e.delta.unwrap_or(0).wrapping_add(*n)),
                Op::Decrement(n) => e.delta = Some(e.delta.unwrap_or(0).wrapping_sub(*n)),
                Op::Reset => {
                    e.delta = None;
                    if let Some(s) = state {
                        e.reset = s.above_floor().map(|(r, t, _)| (r, t)).collect();
                    }
                }
                _ => {}
            }
        }
        Ok(e)
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        for (r, f) in &e.reset {
            max_in(&mut self.floors, *r, *f);
        }
        if let Some(delta) = e.delta {
            let t = self.totals.entry(dot.replica).or_insert(PnEntry {
                seq: 0,
                p: 0,
                n: 0,
            });
            t.seq = t.seq.max(dot.seq);
            if delta >= 0 {
                t.p = t.p.wrapping_add(delta as u64);
            } else {
                t.n = t.n.wrapping_add(delta.unsigned_abs());
            }
        }
    }

    fn join(&mut self, _mine: &VectorClock, other: &Self, _theirs: &VectorClock) {
        for (r, e) in &other.totals {
            max_in(&mut self.totals, *r, *e);
        }
        for (r, f) in &other.floors {
            max_in(&mut self.floors, *r, *f);
        }
    }

    fn value(&self) -> Value {
        let v = self.above_floor().fold(0u64, |acc, (_, e, f)| {
            let (fp, fn_) = f.map_or((0, 0), |f| (f.p, f.n));
            acc.wrapping_add(e.p.wrapping_sub(fp))
                .wrapping_sub(e.n.wrapping_sub(fn_))
        });
        Value::Int(v as i64)
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.totals.is_empty() && self.floors.is_empty()
    }

    /// Visible once an op touched it after its last reset (an increment of
    /// 0 included).
    #[inline]
    fn is_visible(&self) -> bool {
        self.above_floor().next().is_some()
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        encode_entries(&self.totals, w);
        encode_entries(&self.floors, w);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            totals: decode_entries(r)?.into_iter().collect(),
            floors: decode_entries(r)?.into_iter().collect(),
        })
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        // One varint says both whether there is a delta and how many
        // floors follow: `2 × floors + has_delta`.
        w.varint(((e.reset.len() as u64) << 1) | u64::from(e.delta.is_some()));
        if let Some(d) = e.delta {
            w.zigzag(d);
        }
        for (r, f) in &e.reset {
            encode_entry(*r, f, w);
        }
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        let head = r.varint()?;
        let delta = if head & 1 == 1 {
            Some(r.zigzag()?)
        } else {
            None
        };
        let n = usize::try_from(head >> 1).unwrap_or(usize::MAX);
        if n > r.remaining() / 11 {
            return Err(DecodeError::LengthOutOfRange {
                len: head >> 1,
                limit: (r.remaining() / 11) as u64,
            });
        }
        let reset = decode_n_entries(r, n)?;
        if reset.iter().any(|(_, f)| f.seq == 0) {
            return Err(DecodeError::Inconsistent("a counter floor at seq 0"));
        }
        Ok(Effect { delta, reset })
    }

    #[inline]
    fn is_field_only(e: &Effect) -> bool {
        !e.reset.is_empty()
    }

    #[inline]
    fn is_noop(e: &Effect) -> bool {
        e.delta.is_none() && e.reset.is_empty()
    }

    #[inline]
    fn observed(e: &Effect, f: &mut dyn FnMut(Dot)) {
        for (r, t) in &e.reset {
            f(Dot::new(*r, t.seq));
        }
    }

    fn rename(e: &mut Effect, base: Option<&Self>, rn: &Rename) {
        // A floor of the old id above the re-issue point covers writes that
        // are now the new id's: split it at the base's totals.
        let mut out = Vec::with_capacity(e.reset.len() + 1);
        for (r, f) in std::mem::take(&mut e.reset) {
            if r == rn.old && f.seq >= rn.from {
                let b = base
                    .and_then(|s| s.totals.get(&rn.old))
                    .copied()
                    .unwrap_or(PnEntry { seq: 0, p: 0, n: 0 });
                if b.seq > 0 {
                    out.push((rn.old, b));
                }
                out.push((
                    rn.new,
                    PnEntry {
                        seq: f.seq - rn.from + 1,
                        p: f.p.wrapping_sub(b.p),
                        n: f.n.wrapping_sub(b.n),
                    },
                ));
            } else {
                out.push((r, f));
            }
        }
        out.sort_by_key(|(r, _)| *r);
        out.dedup_by_key(|(r, _)| *r);
        e.reset = out;
    }
}

fn encode_entry(r: ReplicaId, e: &PnEntry, w: &mut Writer) {
    w.u64_le(r.0);
    w.varint(e.seq);
    w.varint(e.p);
    w.varint(e.n);
}

fn encode_entries(m: &BTreeMap<ReplicaId, PnEntry>, w: &mut Writer) {
    w.varint(m.len() as u64);
    for (r, e) in m {
        encode_entry(*r, e, w);
    }
}

fn decode_entries(r: &mut Reader<'_>) -> Result<Vec<(ReplicaId, PnEntry)>, DecodeError> {
    let n = r.count(11)?;
    decode_n_entries(r, n)
}

fn decode_n_entries(
    r: &mut Reader<'_>,
    n: usize,
) -> Result<Vec<(ReplicaId, PnEntry)>, DecodeError> {
    let mut v: Vec<(ReplicaId, PnEntry)> = Vec::with_capacity(n);
    for _ in 0..n {
        let rid = ReplicaId(r.u64_le()?);
        let e = PnEntry {
            seq: r.varint()?,
            p: r.varint()?,
            n: r.varint()?,
        };
        if v.last().is_some_and(|(p, _)| *p >= rid) {
            return Err(DecodeError::NonCanonical(
                "counter origins not strictly sorted",
            ));
        }
        v.push((rid, e));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn step(s: &mut CounterPn, ops: &[Op], dot: Dot) -> Effect {
        let ops: Vec<(usize, &Op)> = ops.iter().enumerate().collect();
        let e = CounterPn::prepare(Some(s), &ops, dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn a_reset_keeps_the_concurrent_increment_in_either_order() {
        let mut base = CounterPn::default();
        step(&mut base, &[Op::Increment(7)], Dot::new(A, 1));
        // B resets what it saw (7); A concurrently adds 5.
        let mut b = base.clone();
        let reset = step(&mut b, &[Op::Reset], Dot::new(B, 1));
        let mut a = base.clone();
        let inc = step(&mut a, &[Op::Increment(5)], Dot::new(A, 2));
        a.apply(&reset, Dot::new(B, 1));
        b.apply(&inc, Dot::new(A, 2));
        assert_eq!(a, b);
        assert_eq!(a.value(), Value::Int(5));
        assert!(a.is_visible());
        // A join of the two sides' full states agrees.
        let mut x = base.clone();
        x.apply(&inc, Dot::new(A, 2));
        let mut y = base;
        y.apply(&reset, Dot::new(B, 1));
        let cx = VectorClock::from_entries([(A, 2)]);
        let cy = VectorClock::from_entries([(A, 1), (B, 1)]);
        let mut xy = x.clone();
        xy.join(&cx, &y, &cy);
        let mut yx = y;
        yx.join(&cy, &x, &cx);
        assert_eq!(xy, a);
        assert_eq!(yx, a);
    }

    #[test]
    fn a_reset_counter_is_invisible_but_not_bottom_and_round_trips() {
        let mut s = CounterPn::default();
        step(&mut s, &[Op::Increment(3), Op::Decrement(1)], Dot::new(A, 1));
        assert_eq!(s.value(), Value::Int(2));
        let e = step(&mut s, &[Op::Increment(1), Op::Reset], Dot::new(B, 1));
        assert_eq!(e.delta, None, "increments before the reset are undone");
        assert_eq!(s.value(), Value::Int(0));
        assert!(!s.is_visible() && !s.is_bottom());
        let mut w = Writer::new();
        s.encode(&mut w);
        let bytes = w.into_vec();
        assert_eq!(CounterPn::decode(&mut Reader::new(&bytes)).unwrap(), s);
        let mut w = Writer::new();
        CounterPn::encode_effect(&e, &mut w);
        let bytes = w.into_vec();
        assert_eq!(
            CounterPn::decode_effect(&mut Reader::new(&bytes)).unwrap(),
            e
        );
        // A hostile floor count is refused before allocating.
        let mut r = Reader::new(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        assert!(CounterPn::decode_effect(&mut r).is_err());
    }
}
