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
