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
