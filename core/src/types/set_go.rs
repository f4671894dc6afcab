//! `set_go`: the grow-only set. An add leaves a token and removes the
//! element's observed ones, as in `set_aw`; there is no remove, so an
//! element once added stays (until a remove-resets map resets the field).

use super::dots::{DotSet, Mark};
use super::elems::{ElemEffect, ElemSet, Rules, SetRules};
use super::Op;
use crate::key::CrdtType;

/// An effect: per element, the tokens observed and the token left.
pub type Effect = Vec<ElemEffect>;

/// The state: element → add tokens.
pub type SetGo = ElemSet<DotSet, Go>;

/// The rules of `set_go`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct Go;

impl SetRules<DotSet> for Go {
    const TYPE: CrdtType = CrdtType::SetGo;
    const OPS: &'static str = "add, add_all";
    const RULES: Rules = Rules {
        remove: Mark::None,
        add_keeps_neg: false,
    };
    fn accepts(op: &Op) -> bool {
        matches!(op, Op::Add(_) | Op::AddAll(_))
    }
    fn present(_: &DotSet) -> bool {
        true
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

    fn step(s: &mut SetGo, op: &Op, dot: Dot) -> Vec<super::super::elems::ElemEffect> {
        let e = SetGo::prepare(Some(s), &[(0, op)], dot.replica).unwrap();
        s.apply(&e, dot);
        e
    }

    #[test]
    fn a_race_resolves_by_the_type_rules_and_reset_starts_afresh() {
        let mut a = SetGo::default();
        let mut b = SetGo::default();
        let ea = step(&mut a, &Op::Add(1.into()), Dot::new(A, 1));
        let eb = step(&mut b, &Op::Add(1.into()), Dot::new(B, 1));
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
        assert_eq!(a.value(), Value::List(vec![1.into()]));
        // A reset (a map removing the field) clears every token; the
        // element can then be added again.
        step(&mut a, &Op::Reset, Dot::new(A, 2));
        assert!(a.is_bottom());
        step(&mut a, &Op::Add(1.into()), Dot::new(A, 3));
        assert_eq!(a.value(), Value::List(vec![1.into()]));
        let mut w = Writer::new();
        a.encode(&mut w);
        let bytes = w.into_vec();
        assert_eq!(SetGo::decode(&mut Reader::new(&bytes)).unwrap(), a);
    }
}
