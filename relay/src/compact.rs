//! Compaction: folding the oldest part of a room's log into one core
//! snapshot, so a long-lived room holds its state plus a recent tail
//! instead of every transaction ever sent. This is the one place the relay
//! applies effects, and it does so only through `minidote-core`, off the
//! routing path (on a blocking thread).

use std::sync::Arc;

use bytes::Bytes;
use minidote_core::wire::Frame;
use minidote_core::{Config, DecodeError, Replica, ReplicaId, Snapshot, VectorClock};

use crate::room::CompactionInput;

/// Why a compaction was given up (the room is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    /// A stored base or transaction does not decode.
    #[error("does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The log holds two different transactions under one dot.
    #[error("{0}")]
    Protocol(#[from] minidote_core::ProtocolError),
    /// The transactions were not in causal order.
    #[error("{0} transactions were not causally ready")]
    NotCausal(usize),
}

/// Joins every base and applies the transactions in log order; returns the
/// resulting state as a `Snapshot` frame, and its clock.
pub fn fold(
    input: &CompactionInput,
    relay: ReplicaId,
) -> Result<(Bytes, VectorClock), CompactionError> {
    let mut r = Replica::new(
        relay,
        Config {
            room: input.room.to_string(),
            snapshot_every: 0,
            buffer_capacity: input.txns.len().max(1),
            buffer_bytes: usize::MAX,
            ..Config::default()
        },
    );
    for b in &input.bases {
        let snap = Snapshot::decode(b.get(2..).unwrap_or_default())?;
        r.merge_snapshot(&snap);
    }
    let txns = input
        .txns
        .iter()
        .map(|t| Arc::<[u8]>::from(&t[..]))
        .collect();
    let status = r.handle_txns(None, txns)?;
    if status.buffered > 0 {
        return Err(CompactionError::NotCausal(status.buffered));
    }
    let snap = r.state_snapshot();
    let frame = Frame::Snapshot(snap.encode()).encode();
    Ok((Bytes::from(frame), snap.clock))
}
