//! `flag_dw`: the disable-wins flag. Every op removes the observed tokens
//! on both sides; an enable leaves a positive token and a disable a
//! negative one. The flag is on while it has a positive token and no
//! negative one, so a disable concurrent with an enable wins.

use super::dots::{decode_dots, encode_dots, Mark, PosNeg};
use super::{unknown_op, Crdt, Op, Rename};
use crate::clock::{Dot, ReplicaId, VectorClock};
use crate::codec::{Codec, Reader, Writer};
use crate::error::{DecodeError, UpdateError};
use crate::key::CrdtType;
use crate::value::Value;

/// The state: enable and disable tokens.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct FlagDw(PosNeg);

/// An effect: the tokens observed and the token left.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Effect {
    /// Observed tokens.
    pub removed: Vec<Dot>,
    /// `Pos` = enable, `Neg` = disable, `None` = reset.
    pub mark: Mark,
}

impl Crdt for FlagDw {
    type Effect = Effect;
    const TYPE: CrdtType = CrdtType::FlagDw;
    const OPS: &'static str = "enable, disable, reset";

    #[inline]
    fn check(op: &Op, index: usize) -> Result<(), UpdateError> {
        match op {
            Op::Enable | Op::Disable | Op::Reset => Ok(()),
            _ => Err(unknown_op(Self::TYPE, op, index)),
        }
    }

    #[inline]
    fn prepare(
        state: Option<&Self>,
        ops: &[(usize, &Op)],
        _origin: ReplicaId,
    ) -> Result<Effect, UpdateError> {
        Ok(Effect {
            removed: state.map_or_else(Vec::new, |s| s.0.observed()),
            mark: match ops.last() {
                Some((_, Op::Enable)) => Mark::Pos,
                Some((_, Op::Disable)) => Mark::Neg,
                _ => Mark::None,
            },
        })
    }

    #[inline]
    fn apply(&mut self, e: &Effect, dot: Dot) {
        self.0.apply(&e.removed, e.mark, dot)
    }

    fn join(&mut self, mine: &VectorClock, other: &Self, theirs: &VectorClock) {
        self.0.join(mine, &other.0, theirs)
    }

    fn value(&self) -> Value {
        Value::Bool(self.0.negative_wins())
    }

    #[inline]
    fn is_bottom(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    fn tokens(&self) -> usize {
        self.0.pos.len() + self.0.neg.len()
    }

    #[inline]
    fn encode(&self, w: &mut Writer) {
        self.0.encode(w)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        PosNeg::decode(r).map(Self)
    }

    #[inline]
    fn encode_effect(e: &Effect, w: &mut Writer) {
        encode_dots(&e.removed, w);
        w.u8(e.mark.tag());
    }

    fn decode_effect(r: &mut Reader<'_>) -> Result<Effect, DecodeError> {
        Ok(Effect {
            removed: decode_dots(r)?,
            mark: Mark::from_tag(r.u8()?)?,
        })
    }

    #[inline]
    fn is_noop(e: &Effect) -> bool {
        e.mark == Mark::None && e.removed.is_empty()
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

    fn step(s: &mut FlagDw, op: &Op, dot: Dot) -> Effect {
        let e = FlagDw::prepare(Some(s), &[(0, op)], dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn concurrent_enable_and_disable_and_the_state_join_agree() {
        let mut base = FlagDw::default();
        step(&mut base, &Op::Enable, Dot::new(A, 1));
        let mut a = base.clone();
        let mut b = base.clone();
        let en = step(&mut a, &Op::Enable, Dot::new(A, 2));
        let dis = step(&mut b, &Op::Disable, Dot::new(B, 1));
        let (ca, cb) = (
            VectorClock::from_entries([(A, 2)]),
            VectorClock::from_entries([(A, 1), (B, 1)]),
        );
        let mut joined = a.clone();
        joined.join(&ca, &b, &cb);
        a.apply(&dis, Dot::new(B, 1));
        b.apply(&en, Dot::new(A, 2));
        assert_eq!(a, b);
        assert_eq!(a, joined);
        assert_eq!(a.value(), Value::Bool(false));
        let r = step(&mut a, &Op::Reset, Dot::new(A, 3));
        assert!(a.is_bottom());
        let mut w = Writer::new();
        FlagDw::encode_effect(&r, &mut w);
        let bytes = w.into_vec();
        assert_eq!(FlagDw::decode_effect(&mut Reader::new(&bytes)).unwrap(), r);
    }
}
