//! The errors of the bottom layer: decoding bytes and validating updates.
//! The link protocol's errors live with the replica (`replica/errors.rs`).

use crate::registry::CrdtType;

/// Bytes that could not be decoded. Returned for any malformed, truncated or
/// hostile input; decoding never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended in the middle of a value.
    #[error("input ended unexpectedly; the frame or record is truncated")]
    UnexpectedEnd,
    /// A varint was longer than 10 bytes or overflowed 64 bits.
    #[error("varint overflows 64 bits")]
    VarintOverflow,
    /// A length or count is larger than the input can hold or than allowed.
    #[error("length {len} is out of range (at most {limit} allowed here)")]
    LengthOutOfRange {
        /// The length that was read.
        len: u64,
        /// The largest length accepted at that point.
        limit: u64,
    },
    /// A string was not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A tag byte had no meaning at that position.
    #[error("invalid {what} tag {tag:#04x}")]
    InvalidTag {
        /// What was being decoded.
        what: &'static str,
        /// The byte found.
        tag: u8,
    },
    /// The frame was written by a protocol version this build does not speak.
    #[error("unsupported protocol version {found} (this build speaks version {supported}); upgrade the older side")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
        /// Version this build speaks.
        supported: u8,
    },
    /// Values or keys nested deeper than [`crate::codec::MAX_DEPTH`].
    #[error("value nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{count} trailing bytes after the end of the value")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
    /// The encoding is valid but not in canonical form (e.g. unsorted clock
    /// entries, a zero seq, duplicate map keys).
    #[error("non-canonical encoding: {0}")]
    NonCanonical(&'static str),
    /// The bytes decode, but describe something no honest replica writes
    /// (e.g. a transaction that observes its own future).
    #[error("inconsistent content: {0}")]
    Inconsistent(&'static str),
}

/// Why one update in an `update_objects` batch is invalid. The whole batch is
/// refused: nothing is applied, logged or sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateError {
    /// The type name is not one of the types in DESIGN.md §2.2 and API.md.
    #[error("unknown CRDT type {0:?}; expected one of {names}", names = CrdtType::names())]
    UnknownType(String),
    /// The op name does not exist for that type.
    #[error("update #{index}: type {ty} has no operation {op:?} (it supports: {supported})")]
    UnknownOp {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name given.
        op: String,
        /// The ops that type supports.
        supported: &'static str,
    },
    /// The op needs an argument and none was given.
    #[error("update #{index}: operation {op:?} on {ty} needs an argument ({expected})")]
    MissingArgument {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name.
        op: &'static str,
        /// What kind of argument is expected.
        expected: &'static str,
    },
    /// The argument has the wrong type, or was given to an op that takes none.
    #[error("update #{index}: operation {op:?} on {ty} expects {expected}, got {got}")]
    WrongArgument {
        /// Position of the update in the batch.
        index: usize,
        /// The object's type.
        ty: CrdtType,
        /// The op name.
        op: &'static str,
        /// What kind of argument is expected.
        expected: &'static str,
        /// What was given.
        got: &'static str,
    },
    /// A state-based counter total would leave the u64 range.
    #[error("update #{index}: counter_pn_sb would leave the range of its totals (u64) or of its value (i64); split the object")]
    Overflow {
        /// Position of the update in the batch.
        index: usize,
    },
    /// This replica's seq space is used up (only a hostile peer that sent
    /// our own id with seq `u64::MAX` can cause this).
    #[error("this replica has used every seq; start a new replica with a new id")]
    SeqExhausted,
    /// The transaction could never be delivered: its frame would be over
    /// the frame limit every peer and relay applies.
    #[error("transaction of at least {size} bytes is over the frame limit of {limit} bytes, so no peer or relay could receive it; split it into smaller transactions")]
    TooLarge {
        /// Its size (at least), in bytes.
        size: usize,
        /// The limit ([`crate::Config::max_frame_bytes`]).
        limit: usize,
    },
    /// A list or text index (or the end of a deleted range) is past the
    /// object's length.
    #[error("update #{index}: {op} at index {at} is out of range (the length is {len})")]
    IndexOutOfRange {
        /// Position of the update in the batch.
        index: usize,
        /// The op name.
        op: &'static str,
        /// The index given (or the end of the range).
        at: u64,
        /// The object's length, in the index's unit.
        len: u64,
    },
    /// A UTF-16 index falls between the two halves of a surrogate pair.
    #[error("update #{index}: UTF-16 index {at} falls inside a surrogate pair (one character); use an index on either side of it")]
    InsideSurrogatePair {
        /// Position of the update in the batch.
        index: usize,
        /// The index given.
        at: u64,
    },
    /// A value nests lists or maps too deeply to be stored.
    #[error("update #{index}: value nested deeper than {max} levels")]
    TooDeep {
        /// Position of the update in the batch.
        index: usize,
        /// The limit.
        max: usize,
    },
}

impl UpdateError {
    /// The same error, reported for update number `index` of a batch.
    pub fn at(mut self, i: usize) -> Self {
        match &mut self {
            UpdateError::UnknownOp { index, .. }
            | UpdateError::MissingArgument { index, .. }
            | UpdateError::WrongArgument { index, .. }
            | UpdateError::Overflow { index }
            | UpdateError::IndexOutOfRange { index, .. }
            | UpdateError::InsideSurrogatePair { index, .. }
            | UpdateError::TooDeep { index, .. } => *index = i,
            UpdateError::UnknownType(_)
            | UpdateError::SeqExhausted
            | UpdateError::TooLarge { .. } => {}
        }
        self
    }
}
