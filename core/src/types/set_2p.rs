//! `set_2p`: the two-phase set: once removed, an element stays removed.
//! As `set_rw`, except that an add observes only positive tokens, so it
//! never clears a remove's negative one. (A remove-resets map's reset of
//! the field clears both, and the field starts afresh.)

use super::dots::{Mark, PosNeg};
use super::elems::{ElemEffect, ElemSet, Rules, SetRules};
use super::Op;
use crate::key::CrdtType;

/// An effect: per element, the tokens observed and the token left.
pub type Effect = Vec<ElemEffect>;

/// The state: element → add and remove tokens.
pub type Set2p = ElemSet<PosNeg, TwoPhase>;

/// The rules of `set_2p`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct TwoPhase;

impl SetRules<PosNeg> for TwoPhase {
    const TYPE: CrdtType = CrdtType::Set2p;
    const OPS: &'static str = "add, remove, add_all, remove_all";
    const RULES: Rules = Rules {
        remove: Mark::Neg,
        add_keeps_neg: true,
    };
    fn accepts(op: &Op) -> bool {
        matches!(
            op,
            Op::Add(_) | Op::Remove(_) | Op::AddAll(_) | Op::RemoveAll(_)
        )
    }
    fn present(t: &PosNeg) -> bool {
        t.negative_wins()
    }
}
