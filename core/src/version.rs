//! The protocol version byte and the error codes of `Error` frames: the
//! lowest layer of the wire format, below everything that encodes.

use crate::error::DecodeError;

/// The protocol version this build speaks. Every frame, record, snapshot
/// and standalone clock starts with it. 6 added `Run` frames.
pub const PROTOCOL_VERSION: u8 = 6;

/// The oldest version whose snapshots and standalone clocks this build
/// still reads: their encoding has not changed since (a database or a
/// session clock written by version 5 stays readable). Frames must be
/// [`PROTOCOL_VERSION`].
pub const OLDEST_STORED_VERSION: u8 = 5;

/// Refuses a snapshot or standalone clock of a version this build cannot
/// read.
pub fn check_stored_version(v: u8) -> Result<(), DecodeError> {
    if (OLDEST_STORED_VERSION..=PROTOCOL_VERSION).contains(&v) {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            found: v,
            supported: PROTOCOL_VERSION,
        })
    }
}

/// Refuses any version but [`PROTOCOL_VERSION`] (frames).
pub fn check_version(v: u8) -> Result<(), DecodeError> {
    if v == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion {
            found: v,
            supported: PROTOCOL_VERSION,
        })
    }
}

/// Error codes carried by `Error` frames (`crate::Frame::Error`).
pub mod error_code {
    /// The frame did not decode.
    pub const MALFORMED: u16 = 1;
    /// Unsupported protocol version.
    pub const VERSION: u16 = 2;
    /// The peer is in another room.
    pub const ROOM_MISMATCH: u16 = 3;
    /// Missing, invalid, expired or wrong-room token.
    pub const UNAUTHORIZED: u16 = 4;
    /// A read-scope peer tried to write; the transactions were refused.
    pub const READ_ONLY: u16 = 5;
    /// A frame exceeded the size limit.
    pub const TOO_LARGE: u16 = 6;
    /// The peer could not keep up and is disconnected.
    pub const SLOW_CONSUMER: u16 = 7;
    /// The first frame was not `Hello`.
    pub const HELLO_EXPECTED: u16 = 8;
    /// Too many connections.
    pub const OVERLOADED: u16 = 9;
    /// The peer uses this replica's own id.
    pub const DUPLICATE_ID: u16 = 10;
    /// No frame within the idle timeout.
    pub const IDLE: u16 = 11;
    /// The link sent something it may not: a transaction of another origin
    /// than its own `Hello` id without the forward scope, or a snapshot
    /// without the snapshot scope.
    pub const FORBIDDEN: u16 = 12;
    /// A second copy of `(origin, seq)` with other bytes, or a snapshot that
    /// claims history its holder never wrote: refused and reported.
    pub const INTEGRITY: u16 = 13;
    /// The token expired while the link was open.
    pub const EXPIRED: u16 = 14;
    /// A limit of the receiver (a buffer, a clock, a room) was reached.
    pub const LIMIT: u16 = 15;
}
