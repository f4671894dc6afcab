//! Sync progress: how far a catch-up has come. When a link's handshake
//! shows the peer has transactions this replica lacks, the replica's clock
//! then and the join of it with what the peer announced bound the
//! catch-up; every frame handled afterwards reports how many of those
//! transactions have arrived (snapshots count the transactions they cover)
//! and the bytes received meanwhile, until the clock reaches the target.
//!
//! A peer can claim a clock it never serves, so the tracker believes only
//! what it must and ends on its own (SECURITY.md):
//! * only the Hello that establishes a link counts (a repeated Hello on an
//!   established link adds nothing);
//! * a link that may not forward others' transactions counts only its own
//!   replica's entry, the only one it can serve;
//! * the target tracks at most [`MAX_PROGRESS_ORIGINS`] replicas (beyond
//!   that the numbers cover a part of the catch-up);
//! * it ends, `done`, when no established link is left, or when nothing
//!   arrived for the idle timeout.
//!
//! Nothing is kept per transaction: two bounded clocks and a few numbers.

use super::*;

/// Most replicas one catch-up tracks.
pub const MAX_PROGRESS_ORIGINS: usize = 65_536;

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
    /// expected`), or given up (no link left, or nothing arrived for the
    /// idle timeout).
    pub done: bool,
}

#[derive(Debug)]
pub(super) struct Tracker {
    start: VectorClock,
    target: VectorClock,
    bytes_at_start: u64,
    /// The last `(received, expected)` reported.
    last: Option<(u64, u64)>,
    /// When `received` last moved (or the catch-up started).
    moved_ms: u64,
}

impl Replica {
    /// True while a catch-up is in progress: a linked peer's handshake
    /// showed transactions that have not all arrived yet.
    pub fn catching_up(&self) -> bool {
        self.progress.is_some()
    }

    /// The handshake on `link` completed with the peer announcing
    /// `theirs`: what it has that we lack, and can serve, joins the
    /// catch-up.
    pub(super) fn progress_begin(&mut self, link: LinkId, peer: ReplicaId, theirs: &VectorClock) {
        let forward = self.links.get(&link).is_some_and(|l| l.policy.forward);
        let lacking = |r: ReplicaId, s: u64| s > self.clock.get(r) && (forward || r == peer);
        if !theirs.iter().any(|(r, s)| lacking(r, s)) {
            return;
        }
        let now = self.now_ms;
        let t = self.progress.get_or_insert_with(|| Tracker {
            start: self.clock.clone(),
            target: self.clock.clone(),
            bytes_at_start: self.stats.bytes_received,
            last: None,
            moved_ms: now,
        });
        for (r, s) in theirs.iter() {
            if !(s > self.clock.get(r) && (forward || r == peer)) {
                continue;
            }
            if t.target.get(r) == 0 && t.target.len() >= MAX_PROGRESS_ORIGINS {
                continue;
            }
            t.target.raise(r, s);
        }
        self.progress_tick();
    }

    /// Reports the catch-up's progress if it moved; ends it once complete.
    pub(super) fn progress_tick(&mut self) {
        let now = self.now_ms;
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
        if t.last.is_some_and(|(r, _)| r != received) {
            t.moved_ms = now;
        }
        if t.last == Some((received, expected)) && !done {
            return;
        }
        t.last = Some((received, expected));
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

    /// Ends the catch-up where it stands when no established link is left,
    /// or when nothing arrived for the idle timeout (a peer that announced
    /// what it does not send).
    pub(super) fn progress_check(&mut self) {
        let Some(t) = &self.progress else {
            return;
        };
        let stalled = self.now_ms.saturating_sub(t.moved_ms) > self.config.idle_timeout_ms;
        if !stalled && self.links.values().any(|l| l.peer.is_some()) {
            return;
        }
        let Some(t) = self.progress.take() else {
            return;
        };
        let (received, expected) = t.last.unwrap_or((0, 0));
        self.events.push_back(Event::Progress(SyncProgress {
            received,
            expected,
            bytes: self.stats.bytes_received - t.bytes_at_start,
            done: true,
        }));
    }
}
