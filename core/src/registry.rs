//! The one table of object types.
//!
//! Each line is `tag module Type "description"`: the wire tag, the module
//! under `types/` that implements [`crate::types::Crdt`] for `Type`, and a
//! description. The module's name is the type's API name. Two expansions
//! read this table: [`CrdtType`] here (names, tags), and the enum dispatch
//! of `State` and `Effect` in `types/mod.rs`. Adding a type is one line
//! here and one file under `types/`.
//!
//! The order is the contract's (API.md): the ten types of DESIGN.md §2.2,
//! then the wave-2 types. Tags are never reused.

macro_rules! for_each_type {
    ($then:ident) => {
        $then! {
            0 counter_pn CounterPn "Op-based PN counter.",
            1 counter_pn_sb CounterPnSb "State-based PN counter.",
            2 set_aw SetAw "Add-wins set.",
            3 set_rw SetRw "Remove-wins set.",
            4 set_go SetGo "Grow-only set.",
            5 set_2p Set2p "Two-phase set.",
            6 register_mv RegisterMv "Multi-value register.",
            7 register_lww RegisterLww "Last-writer-wins register.",
            8 flag_ew FlagEw "Enable-wins flag.",
            9 flag_dw FlagDw "Disable-wins flag.",
            10 map_rr MapRr "Map of embedded objects; remove and reset undo what was observed.",
            11 map_go MapGo "Map of embedded objects; fields are never removed.",
            12 list List "Ordered list of values; concurrent inserts do not interleave.",
            13 text Text "Collaborative text; concurrent inserts do not interleave.",
        }
    };
}
pub(crate) use for_each_type;

macro_rules! crdt_type {
    ($($tag:literal $module:ident $ty:ident $doc:literal,)*) => {
        /// The object types. Their names are part of the API and wire
        /// contract; the discriminant is the wire tag. More types come
        /// (the table grows), so matches outside this crate need a
        /// wildcard arm.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(u8)]
        #[non_exhaustive]
        pub enum CrdtType {
            $(#[doc = $doc] $ty = $tag,)*
        }

        const COUNT: usize = [$(stringify!($ty)),*].len();

        impl CrdtType {
            /// All types, in tag order.
            pub const ALL: [CrdtType; COUNT] = [$(CrdtType::$ty),*];

            /// The type's API name, e.g. `"counter_pn"`.
            pub fn name(self) -> &'static str {
                match self {
                    $(CrdtType::$ty => stringify!($module),)*
                }
            }

            /// The type with wire tag `tag`.
            pub fn with_tag(tag: u8) -> Option<CrdtType> {
                Self::ALL.get(tag as usize).copied()
            }

            /// Every type name, comma-separated, for error messages.
            pub fn names() -> &'static str {
                concat!($(stringify!($module), ", ",)*)
                    .trim_end_matches(", ")
            }
        }
    };
}

for_each_type!(crdt_type);

impl std::fmt::Display for CrdtType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_positions_and_names_are_unique() {
        for (i, t) in CrdtType::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
            assert_eq!(CrdtType::with_tag(i as u8), Some(*t));
        }
        let mut names: Vec<_> = CrdtType::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CrdtType::ALL.len());
        assert!(CrdtType::names().starts_with("counter_pn, counter_pn_sb"));
    }
}
