//! Bring your own transport (API.md): the frames a replica at some clock
//! lacks, and applying a frame that came over any channel (a message
//! queue, WebRTC, `postMessage`, a file). The frames are the link
//! protocol's, so they mix with relays and TCP peers.

use super::*;
use crate::wire::{snapshot_frames, txns_frames};

impl Replica {
    /// The frames a replica whose clock is `theirs` lacks: transactions in
    /// causal order, or the whole state where the log was pruned. Local
    /// writes not stored yet are left out (they follow once stored).
    pub fn export_since(&self, theirs: &VectorClock) -> Vec<Vec<u8>> {
        let max = self.config.max_frame_bytes;
        match self.catch_up(theirs) {
            CatchUp::UpToDate | CatchUp::Deferred => Vec::new(),
            CatchUp::Txns(t) => txns_frames(&t, max),
            CatchUp::Snapshot(s) => snapshot_frames(&s.encode(), max),
        }
    }

    /// Applies one frame from outside any link: `Txns`, `Snapshot` or a
    /// `SnapshotPart` (the snapshot applies once every part arrived). Any
    /// other frame, or bytes that do not decode, is an error and nothing
    /// is applied.
    pub fn apply_update(&mut self, frame: &[u8]) -> Result<ImportStatus, ProtocolError> {
        let out = self.apply_update_inner(frame);
        // What arrives by another channel counts toward a catch-up too.
        self.progress_tick();
        out
    }

    fn apply_update_inner(&mut self, frame: &[u8]) -> Result<ImportStatus, ProtocolError> {
        // A run is rebuilt once, and its transactions checked as a `Txns`
        // frame's are (headers first, so a bad one applies nothing).
        if frame.first() == Some(&crate::PROTOCOL_VERSION) && crate::wire::is_run(frame) {
            let txns = crate::wire::split_run(frame)?;
            for t in &txns {
                crate::wire::TxnHeader::parse(t)?;
            }
            let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
            return self.handle_txn_slices(None, &slices);
        }
        match Frame::decode(frame)? {
            Frame::Txns(_) => self.import_frame(frame),
            Frame::Snapshot(bytes) => self.apply_loose_snapshot(&bytes),
            Frame::SnapshotPart {
                id,
                total,
                offset,
                bytes,
            } => {
                let limit = self.config.max_snapshot_bytes;
                match self.loose_parts.push(id, total, offset, &bytes, limit)? {
                    Some(whole) => self.apply_loose_snapshot(&whole),
                    None => Ok(ImportStatus::default()),
                }
            }
            other => Err(ProtocolError::NotAnUpdate(other.name())),
        }
    }

    fn apply_loose_snapshot(&mut self, bytes: &[u8]) -> Result<ImportStatus, ProtocolError> {
        let snap = Snapshot::decode(bytes)?;
        // As on a link: nobody may claim more of our own writes than we
        // have stored.
        let claimed = snap.clock.get(self.id);
        if claimed > self.durable_seq {
            self.stats.refused += 1;
            return Err(ProtocolError::ForgedSnapshot {
                claimed,
                durable: self.durable_seq,
            });
        }
        self.confirm(claimed);
        self.merge_snapshot(&snap);
        self.release_holds();
        Ok(ImportStatus {
            missing: self.buffer.missing(&self.clock),
            buffered: self.buffer.len(),
            ..ImportStatus::default()
        })
    }
}
