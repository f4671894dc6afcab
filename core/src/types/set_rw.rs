//! `set_rw`: the remove-wins set. Every op removes the element's observed
//! tokens; an add leaves a positive token and a remove a negative one. The
//! element is present while it has a positive token and no negative one,
//! so a remove concurrent with an add wins.

use super::dots::{Mark, PosNeg};
use super::elems::{ElemEffect, ElemSet, Rules, SetRules};
use super::Op;
use crate::key::CrdtType;

/// An effect: per element, the tokens observed and the token left.
pub type Effect = Vec<ElemEffect>;

/// The state: element → add and remove tokens.
pub type SetRw = ElemSet<PosNeg, Rw>;

/// The rules of `set_rw`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Rw;

impl SetRules<PosNeg> for Rw {
    const TYPE: CrdtType = CrdtType::SetRw;
    const OPS: &'static str = "add, remove, add_all, remove_all, reset";
    const RULES: Rules = Rules {
        remove: Mark::Neg,
        add_keeps_neg: false,
    };
    fn accepts(op: &Op) -> bool {
        matches!(
            op,
            Op::Add(_) | Op::Remove(_) | Op::AddAll(_) | Op::RemoveAll(_) | Op::Reset
        )
    }
    fn present(t: &PosNeg) -> bool {
        t.negative_wins()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Dot, ReplicaId, VectorClock};
    use crate::codec::{Reader, Writer};
    use crate::types::Crdt;
    use crate::value::Value;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn step(s: &mut SetRw, op: &Op, dot: Dot) -> Vec<super::super::elems::ElemEffect> {
        let e = SetRw::prepare(Some(s), &[(0, op)], dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn a_race_resolves_by_the_type_rules_and_reset_starts_afresh() {
        let mut a = SetRw::default();
        let mut b = SetRw::default();
        let ea = step(&mut a, &Op::Add(1.into()), Dot::new(A, 1));
        let eb = step(&mut b, &Op::Remove(1.into()), Dot::new(B, 1));
        let (ca, cb) = (
            VectorClock::from_entries([(A, 1)]),
            VectorClock::from_entries([(B, 1)]),
        );
        let mut joined = a.clone();
        joined.join(&ca, &b, &cb);
        a.apply(&eb, Dot::new(B, 1));
        b.apply(&ea, Dot::new(A, 1));
        assert_eq!(a, b);
        assert_eq!(a, joined);
        assert_eq!(a.value(), Value::List(vec![]));
        // A reset (a map removing the field) clears every token; the
        // element can then be added again.
        step(&mut a, &Op::Reset, Dot::new(A, 2));
        assert!(a.is_bottom());
        step(&mut a, &Op::Add(1.into()), Dot::new(A, 3));
        assert_eq!(a.value(), Value::List(vec![1.into()]));
        let mut w = Writer::new();
        a.encode(&mut w);
        let bytes = w.into_vec();
        assert_eq!(SetRw::decode(&mut Reader::new(&bytes)).unwrap(), a);
    }
}
