//! `map_go`: the grow-only map. As `map_rr` (`map_rr.rs`), without remove
//! and reset: a field, once it shows something, stays (its own type may
//! still take it back to bottom, as removing a set's last element does).
//! Inside a `map_rr`, removing a `map_go` field resets every field of it.

use super::map_rr::{Map, MapRules};
use crate::key::CrdtType;

/// The effect of `map_go`: per field touched, the field's effect.
pub use super::map_rr::Effect;

/// The rules of `map_go`.
#[derive(Clone, PartialEq, Eq, Default, Debug)]
pub struct GrowOnly;

impl MapRules for GrowOnly {
    const TYPE: CrdtType = CrdtType::MapGo;
    const OPS: &'static str = "update";
    const REMOVES: bool = false;
}

/// The state of `map_go`.
pub type MapGo = Map<GrowOnly>;
