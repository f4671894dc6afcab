//! Sync progress: how far a catch-up has come. When a peer's Hello shows it
//! has transactions this replica lacks, the replica's clock then and the
//! join of it with the peer's clock bound the catch-up; every frame
//! handled afterwards reports how many of those transactions have arrived
//! (snapshots count the transactions they cover) and the bytes received
//! meanwhile, until the clock reaches the target or no link is left.
//!
//! A peer can claim a clock it never serves; the catch-up then ends when
//! its link does. Nothing here is kept per transaction: two clocks, bounded
//! like any clock, and three numbers.

use super::*;

/// How far a catch-up has come ([`Event::Progress`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct SyncProgress {
    /// Transactions received (delivered, or covered by a merged snapshot)
    /// of those the catch-up expects.
    pub received: u64,
    /// Transactions the peers had that this replica lacked when the
    /// catch-up started (it grows if another peer announces more).
    pub expected: u64,
    /// Frame bytes received since the catch-up started.
    pub bytes: u64,
    /// The last event of this catch-up: complete (`received ==
    /// expected`), or given up because no link is left.
    pub done: bool,
}

#[derive(Debug)]
pub(super) struct Tracker {
    start: VectorClock,
    target: VectorClock,
    bytes_at_start: u64,
    last: (u64, u64),
}

impl Replica {
    /// True while a catch-up is in progress: a linked peer's handshake
    /// showed transactions that have not all arrived yet.
    pub fn catching_up(&self) -> bool {
        self.progress.is_some()
    }

    /// A peer announced `theirs`: what it has that we lack joins the
    /// catch-up.
    pub(super) fn progress_begin(&mut self, theirs: &VectorClock) {
        if theirs.leq(&self.clock) {
            return;
        }
        let t = self.progress.get_or_insert_with(|| Tracker {
            start: self.clock.clone(),
            target: self.clock.clone(),
            bytes_at_start: self.stats.bytes_received,
            last: (u64::MAX, u64::MAX),
        });
        t.target.merge(theirs);
        self.progress_tick();
    }

    /// Reports the catch-up's progress if it moved; ends it once complete.
    pub(super) fn progress_tick(&mut self) {
        let Some(t) = &mut self.progress else {
            return;
        };
        let (mut received, mut expected) = (0u64, 0u64);
        for (r, target) in t.target.iter() {
            let start = t.start.get(r).min(target);
            expected = expected.saturating_add(target - start);
            received = received.saturating_add(self.clock.get(r).clamp(start, target) - start);
        }
        let done = received >= expected;
        if (received, expected) == t.last && !done {
            return;
        }
        t.last = (received, expected);
        let p = SyncProgress {
            received,
            expected,
            bytes: self.stats.bytes_received - t.bytes_at_start,
            done,
        };
        if done {
            self.progress = None;
        }
        self.events.push_back(Event::Progress(p));
    }

    /// A link went away: with no established link left, the catch-up ends
    /// where it stands.
    pub(super) fn progress_links_changed(&mut self) {
        if self.progress.is_none() || self.links.values().any(|l| l.peer.is_some()) {
            return;
        }
        let Some(t) = self.progress.take() else {
            return;
        };
        let (received, expected) = if t.last.0 == u64::MAX { (0, 0) } else { t.last };
        self.events.push_back(Event::Progress(SyncProgress {
            received,
            expected,
            bytes: self.stats.bytes_received - t.bytes_at_start,
            done: true,
        }));
    }
}
