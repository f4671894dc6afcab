//! Links and anti-entropy: the link protocol, receiving and delivering
//! transactions in causal order, forwarding, and timers.

use super::*;

/// What a link's peer may send (DESIGN.md §2.7). A link always speaks for
/// the replica id of its peer's `Hello`; only a trusted link may also carry
/// other replicas' transactions and whole-state snapshots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct LinkPolicy {
    /// May send transactions at all (false for a read-only peer).
    pub write: bool,
    /// May carry transactions of other origins than the peer's own id (a
    /// relay, a mesh node that forwards, a server this replica dialed).
    pub forward: bool,
    /// May send `Snapshot` frames. A snapshot speaks for every origin its
    /// clock covers, and merging one can remove what it claims to have
    /// seen, so only a link trusted with the whole room may send one.
    pub snapshots: bool,
}

impl LinkPolicy {
    /// A peer trusted with the room: it may forward and send snapshots.
    /// Links this replica dials (to a relay or a peer it chose) use this.
    pub const TRUSTED: LinkPolicy = LinkPolicy {
        write: true,
        forward: true,
        snapshots: true,
    };
    /// A peer that may only speak for itself: its own transactions, no
    /// snapshots (an accepted peer whose token has the write scope only).
    pub const OWN: LinkPolicy = LinkPolicy {
        write: true,
        forward: false,
        snapshots: false,
    };
    /// A peer that may only read (a read-scope token).
    pub const READ: LinkPolicy = LinkPolicy {
        write: false,
        forward: false,
        snapshots: false,
    };
}

/// A link to a peer, numbered by the binding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct LinkId(pub u64);

/// Bytes to send on a link.
#[derive(Clone, PartialEq, Debug)]
pub struct Transmit {
    /// The link.
    pub link: LinkId,
    /// One encoded frame.
    pub frame: Vec<u8>,
}

/// What [`Replica::handle_txns`] did with a batch (compare Loro's
/// `ImportStatus`).
#[derive(Clone, Default, PartialEq, Debug)]
pub struct ImportStatus {
    /// Transactions delivered (including ones released from the buffer).
    pub delivered: usize,
    /// Transactions already seen.
    pub duplicates: usize,
    /// Transactions now waiting in the buffer.
    pub buffered: usize,
    /// Transactions dropped because the buffer was full.
    pub dropped: usize,
    /// What this replica must fetch for the buffer to drain.
    pub missing: Vec<MissingRange>,
}

/// The origin of an encoded transaction (its first 8 bytes).
pub(super) fn origin_of(txn: &[u8]) -> Option<ReplicaId> {
    let b: [u8; 8] = txn.get(..8)?.try_into().ok()?;
    Some(ReplicaId(u64::from_le_bytes(b)))
}

/// Raises `into` by the entries of `theirs` whose origin `ours` knows: a
/// peer's view is kept only for origins this replica has seen, so a peer
/// that announces a bloated clock costs no memory here (an origin learnt
/// later is forwarded to the peer once, and dropped there as a duplicate).
pub(super) fn merge_known(into: &mut VectorClock, theirs: &VectorClock, ours: &VectorClock) {
    if theirs.iter().all(|(r, _)| ours.get(r) > 0) {
        into.merge(theirs);
        return;
    }
    let known: VectorClock = theirs.iter().filter(|(r, _)| ours.get(*r) > 0).collect();
    into.merge(&known);
}

/// Queues a delivered transaction on every established link, except its
/// source, whose peer does not have it yet. The shared bytes are made at most
/// once, and only if some link needs them.
pub(super) fn forward(
    links: &mut BTreeMap<LinkId, Link>,
    own: ReplicaId,
    origin: ReplicaId,
    seq: u64,
    from: Option<LinkId>,
    bytes: &[u8],
    shared: &mut Option<TxnBytes>,
) {
    for (id, l) in links.iter_mut() {
        if Some(*id) == from || l.peer.is_none() || l.peer_clock.get(origin) >= seq {
            continue;
        }
        if origin == own {
            // Held until the peer's copies of our earlier seqs are compared.
            if l.hold > 0 {
                continue;
            }
            l.sent_own = l.sent_own.max(seq);
        }
        l.out
            .push(shared.get_or_insert_with(|| Arc::from(bytes)).clone());
        l.peer_clock.raise(origin, seq);
    }
}

impl Replica {
    /// What this replica must fetch for its causal buffer to drain.
    pub fn missing(&self) -> Vec<MissingRange> {
        self.buffer.missing(&self.clock)
    }

    // ----- commands -----

    /// A link to a peer is open: queues our `Hello`. `token` is sent to a
    /// relay that requires one. The peer is trusted with the room
    /// ([`LinkPolicy::TRUSTED`]): use this for links this replica dials.
    pub fn link_open(&mut self, link: LinkId, token: Option<String>, now_ms: u64) {
        self.link_open_with(link, token, LinkPolicy::TRUSTED, now_ms);
    }

    /// Like [`Replica::link_open`], with what the peer may send: an
    /// accepted peer whose token only lets it write as itself gets
    /// [`LinkPolicy::OWN`].
    pub fn link_open_with(
        &mut self,
        link: LinkId,
        token: Option<String>,
        policy: LinkPolicy,
        now_ms: u64,
    ) {
        self.now_ms = self.now_ms.max(now_ms);
        self.links.insert(
            link,
            Link {
                peer: None,
                policy,
                stored: VectorClock::new(),
                peer_clock: VectorClock::new(),
                out: Vec::new(),
                wants_snapshot: false,
                last_recv_ms: now_ms,
                last_need_ms: 0,
                next_round_ms: now_ms.saturating_add(self.config.anti_entropy_ms),
                ping_nonce: 0,
                hold: 0,
                sent_own: 0,
                stored_told: 0,
                parts: Default::default(),
            },
        );
        // Only a peer trusted with the room can hold our seqs to compare.
        let clock = if policy.forward {
            self.verifying_clock()
        } else {
            self.advertised_clock()
        };
        let hello = Frame::Hello(Hello {
            replica: self.id,
            room: self.config.room.clone(),
            clock,
            token,
        });
        self.send(link, &hello);
    }

    /// True once the peer's `Hello` on `link` was accepted.
    pub fn link_established(&self, link: LinkId) -> bool {
        self.links.get(&link).is_some_and(|l| l.peer.is_some())
    }

    /// The link is gone (closed by either side, or after `LinkFailed`).
    pub fn link_closed(&mut self, link: LinkId) {
        self.links.remove(&link);
        self.transmits.retain(|t| t.link != link);
        self.progress_check();
    }

    /// Handles one frame received on `link`. On a protocol error the link is
    /// forgotten, an `Error` frame is queued for it, and the error is
    /// returned (and also emitted as [`Event::LinkFailed`]); send the queued
    /// frame, then close the link. The replica itself is unaffected.
    pub fn handle_frame(
        &mut self,
        link: LinkId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        self.now_ms = self.now_ms.max(now_ms);
        self.buffer.set_now(self.now_ms);
        self.stats.bytes_received += bytes.len() as u64;
        let out = match self.handle_frame_inner(link, bytes, now_ms) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.fail_link(link, e.clone());
                Err(e)
            }
        };
        self.progress_tick();
        self.progress_check();
        out
    }

    pub(super) fn fail_link(&mut self, link: LinkId, e: ProtocolError) {
        let code = match &e {
            ProtocolError::Decode(DecodeError::UnsupportedVersion { .. }) => {
                Some(error_code::VERSION)
            }
            ProtocolError::Decode(_) => Some(error_code::MALFORMED),
            ProtocolError::HelloExpected(_) => Some(error_code::HELLO_EXPECTED),
            ProtocolError::RoomMismatch { .. } => Some(error_code::ROOM_MISMATCH),
            ProtocolError::SameReplicaId(_) => Some(error_code::DUPLICATE_ID),
            ProtocolError::PeerChanged { .. } | ProtocolError::NotAnUpdate(_) => {
                Some(error_code::MALFORMED)
            }
            ProtocolError::IdleTimeout(_) => Some(error_code::IDLE),
            ProtocolError::ForeignOrigin { .. } | ProtocolError::SnapshotForbidden(_) => {
                Some(error_code::FORBIDDEN)
            }
            ProtocolError::ReadOnlyLink(_) => Some(error_code::READ_ONLY),
            ProtocolError::IntegrityConflict(_)
            | ProtocolError::ForgedSnapshot { .. }
            | ProtocolError::RestoredBackup(_) => Some(error_code::INTEGRITY),
            ProtocolError::Remote { .. } | ProtocolError::UnknownLink => None,
        };
        if let (Some(code), true) = (code, self.links.contains_key(&link)) {
            let f = Frame::Error {
                code,
                message: e.to_string(),
            };
            self.send(link, &f);
        }
        self.links.remove(&link);
        self.events.push_back(Event::LinkFailed { link, error: e });
    }

    pub(super) fn handle_frame_inner(
        &mut self,
        link: LinkId,
        bytes: &[u8],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        let Some(l) = self.links.get_mut(&link) else {
            return Err(ProtocolError::UnknownLink);
        };
        l.last_recv_ms = now_ms;
        let established = l.peer.is_some();
        // Transaction batches, the bulk of the traffic, are applied straight
        // from the frame's bytes.
        if bytes.len() >= 2
            && bytes[0] == crate::PROTOCOL_VERSION
            && (bytes[1] == crate::wire::TXNS_TAG || crate::wire::is_run(bytes))
        {
            if !established {
                return Err(ProtocolError::HelloExpected("Txns"));
            }
            if crate::wire::is_run(bytes) {
                let owned = crate::wire::split_run(bytes)?;
                let slices: Vec<&[u8]> = owned.iter().map(|t| &t[..]).collect();
                return self.on_txns(link, &slices, now_ms);
            }
            let slices = crate::wire::split_txns(bytes)?;
            return self.on_txns(link, &slices, now_ms);
        }
        let frame = Frame::decode(bytes)?;
        match frame {
            Frame::Hello(h) => {
                if h.room != self.config.room {
                    return Err(ProtocolError::RoomMismatch {
                        ours: self.config.room.clone(),
                        theirs: h.room,
                    });
                }
                if h.replica == self.id {
                    return Err(ProtocolError::SameReplicaId(h.replica));
                }
                if let Some(seq) = self.repair_from {
                    return Err(ProtocolError::RestoredBackup(Dot::new(self.id, seq)));
                }
                // The peer has own seqs we have not compared with our copies:
                // it echoes them (our Hello announced only `confirmed`), and
                // our later ones wait until they match (a restored backup
                // must not build on another lineage's seqs).
                let theirs_own = h.clock.get(self.id);
                let trusted = self.links.get(&link).is_some_and(|l| l.policy.forward);
                let hold = if self.config.persistent
                    && trusted
                    && theirs_own > self.confirmed
                    && self.clock.get(self.id) > self.confirmed
                {
                    theirs_own.min(self.clock.get(self.id))
                } else {
                    0
                };
                let l = self.links.get_mut(&link).expect("checked above");
                l.hold = hold;
                if let Some(was) = l.peer.filter(|p| *p != h.replica) {
                    return Err(ProtocolError::PeerChanged {
                        was,
                        now: h.replica,
                    });
                }
                let establishing = l.peer.is_none();
                l.peer = Some(h.replica);
                merge_known(&mut l.peer_clock, &h.clock, &self.clock);
                // Tell a returning writer what of its writes is stored here.
                self.stored_dirty |= self.stored_here.get(h.replica) > 0;
                self.events.push_back(Event::LinkUp {
                    link,
                    peer: h.replica,
                });
                self.serve(link, &h.clock);
                if establishing {
                    self.progress_begin(link, h.replica, &h.clock);
                }
                Ok(())
            }
            Frame::Error { code, message } => Err(ProtocolError::Remote { code, message }),
            f if !established => Err(ProtocolError::HelloExpected(f.name())),
            // Unreachable in practice (the fast path above takes every
            // Txns frame), but correct if it ever is reached.
            Frame::Txns(txns) => {
                let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
                self.on_txns(link, &slices, now_ms)
            }
            Frame::Need(clock) => {
                if let Some(l) = self.links.get_mut(&link) {
                    merge_known(&mut l.peer_clock, &clock, &self.clock);
                }
                self.serve(link, &clock);
                if !clock.leq(&self.clock) {
                    self.request(link, now_ms);
                }
                Ok(())
            }
            Frame::Snapshot(bytes) => self.on_snapshot(link, &bytes),
            Frame::SnapshotPart {
                id,
                total,
                offset,
                bytes,
            } => {
                let limit = self.config.max_snapshot_bytes;
                let l = self.links.get_mut(&link).expect("checked above");
                if !l.policy.snapshots {
                    self.stats.refused += 1;
                    return Err(ProtocolError::SnapshotForbidden(l.peer.unwrap_or_default()));
                }
                match l.parts.push(id, total, offset, &bytes, limit)? {
                    Some(whole) => self.on_snapshot(link, &whole),
                    None => Ok(()),
                }
            }
            Frame::Stored(clock) => {
                let mut trusted = false;
                if let Some(l) = self.links.get_mut(&link) {
                    merge_known(&mut l.stored, &clock, &self.clock);
                    trusted = l.policy.forward;
                }
                // Only a peer trusted with the room confirms our seqs (a
                // restored backup is found by comparing with its copies);
                // any peer's report counts for `flush`.
                if trusted {
                    self.confirm_sent(link, clock.get(self.id));
                }
                Ok(())
            }
            Frame::Ping(n) => {
                self.send(link, &Frame::Pong(n));
                Ok(())
            }
            Frame::Pong(_) => Ok(()),
        }
    }

    /// A whole snapshot from `link` (in one frame or put together from
    /// pieces).
    pub(super) fn on_snapshot(&mut self, link: LinkId, bytes: &[u8]) -> Result<(), ProtocolError> {
        let Some(l) = self.links.get(&link) else {
            return Err(ProtocolError::UnknownLink);
        };
        if !l.policy.snapshots {
            self.stats.refused += 1;
            return Err(ProtocolError::SnapshotForbidden(l.peer.unwrap_or_default()));
        }
        let snap = Snapshot::decode(bytes)?;
        let claimed = snap.clock.get(self.id);
        if claimed > self.durable_seq {
            self.stats.refused += 1;
            return Err(ProtocolError::ForgedSnapshot {
                claimed,
                durable: self.durable_seq,
            });
        }
        if let Some(l) = self.links.get_mut(&link) {
            merge_known(&mut l.peer_clock, &snap.clock, &snap.clock);
        }
        // The peer folded our seqs up to `claimed` into its state: they can
        // no longer be compared with its copies (SECURITY.md, restored
        // backups), so they count as confirmed.
        self.confirm(claimed);
        self.merge_snapshot(&snap);
        self.release_holds();
        Ok(())
    }

    /// Applies a batch received on `link`, asking for what it still lacks.
    pub(super) fn on_txns(
        &mut self,
        link: LinkId,
        slices: &[&[u8]],
        now_ms: u64,
    ) -> Result<(), ProtocolError> {
        let own: Vec<&[u8]>;
        let mut slices = slices;
        if let Some(l) = self.links.get(&link) {
            if !l.policy.write {
                self.stats.refused += slices.len() as u64;
                return Err(ProtocolError::ReadOnlyLink(l.peer.unwrap_or_default()));
            }
            if !l.policy.forward {
                // A link speaks for its own id only: other origins' transactions
                // are dropped (counted, never applied, stored or forwarded).
                // They are not an error: an honest peer with other links
                // forwards what it has, and closing its link for that would
                // only make it flap.
                let peer = l.peer.unwrap_or_default();
                if slices.iter().any(|t| origin_of(t) != Some(peer)) {
                    own = slices
                        .iter()
                        .copied()
                        .filter(|t| origin_of(t) == Some(peer))
                        .collect();
                    self.stats.refused += (slices.len() - own.len()) as u64;
                    slices = &own;
                }
            }
        }
        let status = self.handle_txn_slices(Some(link), slices)?;
        if !status.missing.is_empty() {
            self.request(link, now_ms);
        }
        Ok(())
    }

    /// Sends `Need` on `link` unless one went out very recently (a cheap
    /// guard against request storms while a gap cannot be filled).
    pub(super) fn request(&mut self, link: LinkId, now_ms: u64) {
        let min_gap = (self.config.anti_entropy_ms / 20).max(1);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if now_ms < l.last_need_ms.saturating_add(min_gap) && l.last_need_ms != 0 {
            return;
        }
        l.last_need_ms = now_ms.max(1);
        let f = Frame::Need(self.need_clock(link));
        self.send(link, &f);
    }

    /// Queues on `link` what a peer with clock `theirs` lacks.
    pub(super) fn serve(&mut self, link: LinkId, theirs: &VectorClock) {
        let entries: Vec<(ReplicaId, u64, TxnBytes)> = match self.lacking(theirs) {
            Lacking::Entries(e) => e
                .into_iter()
                .map(|e| (e.origin, e.seq, self.log_txn(e)))
                .collect(),
            Lacking::Snapshot => {
                // A snapshot holds every own write, compared or not. It is
                // not held back for the link's comparison: two peers that
                // both pruned would each wait for the other's (SECURITY.md).
                if self.all_local_durable() {
                    self.send_snapshot(link);
                } else if let Some(l) = self.links.get_mut(&link) {
                    l.wants_snapshot = true;
                }
                return;
            }
        };
        let (own, confirmed) = (self.id, self.confirmed);
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        for (origin, seq, bytes) in entries {
            if origin == own {
                if l.hold > 0 && seq > confirmed {
                    continue;
                }
                l.sent_own = l.sent_own.max(seq);
            }
            l.peer_clock.raise(origin, seq);
            l.out.push(bytes);
        }
    }

    pub(super) fn send_snapshot(&mut self, link: LinkId) {
        let snap = self.state_snapshot();
        let bytes = snap.encode();
        if let Some(l) = self.links.get_mut(&link) {
            l.wants_snapshot = false;
            l.peer_clock.merge(&snap.clock);
            // Transactions queued before the snapshot are covered by it.
            l.out.clear();
        }
        // A snapshot larger than a frame goes in pieces.
        for frame in crate::wire::snapshot_frames(&bytes, self.config.max_frame_bytes) {
            self.transmits.push_back(Transmit { link, frame });
        }
    }

    /// Handles a batch of encoded remote transactions (from a link, or from
    /// any other source when `from` is None), in order. Each transaction is
    /// applied whole or not at all. A malformed transaction stops the batch
    /// with an error; the ones before it stay applied (each was complete and
    /// causally ready, so that is safe), the ones after it are not looked at.
    ///
    /// A transaction that arrives again with other bytes than the logged
    /// copy stops the batch with [`ProtocolError::IntegrityConflict`]: the
    /// first copy is kept, the conflict counted in
    /// [`Stats::integrity_conflicts`].
    pub fn handle_txns(
        &mut self,
        from: Option<LinkId>,
        txns: Vec<TxnBytes>,
    ) -> Result<ImportStatus, ProtocolError> {
        let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
        self.handle_txn_slices(from, &slices)
    }

    /// Applies a whole `Txns` or `Run` frame (as a link carries it, or as
    /// saved from [`crate::wire::txns_frames`]) that arrived outside any
    /// link: from a file, a relay log or another process. Like
    /// [`Replica::handle_txns`], but a `Txns` frame's transactions are read
    /// in place from its bytes.
    pub fn import_frame(&mut self, frame: &[u8]) -> Result<ImportStatus, ProtocolError> {
        let txns = crate::wire::frame_txns(frame)?;
        let slices: Vec<&[u8]> = txns.iter().map(|t| &t[..]).collect();
        self.handle_txn_slices(None, &slices)
    }

    pub(super) fn handle_txn_slices(
        &mut self,
        from: Option<LinkId>,
        txns: &[&[u8]],
    ) -> Result<ImportStatus, ProtocolError> {
        // Each transaction is decoded and handled in turn (it is hot in the
        // cache when applied). A malformed one stops the batch: the valid
        // transactions before it were each applied whole and in causal
        // order, which is safe; the error ends the link.
        let mut strings = std::mem::take(&mut self.strings);
        // A batch names few keys and usually one bucket over and over: the
        // last few strings are compared before the set is hashed.
        let mut recent: [Option<Arc<str>>; 4] = Default::default();
        let mut next = 0;
        let mut intern = |s: &str| -> Arc<str> {
            if let Some(a) = recent.iter().flatten().find(|a| &***a == s) {
                return a.clone();
            }
            let a = intern_in(&mut strings, s);
            recent[next] = Some(a.clone());
            next = (next + 1) % recent.len();
            a
        };
        let mut status = ImportStatus::default();
        let mut failed = None;
        for &bytes in txns {
            let txn = match Txn::decode_with(bytes, &mut intern) {
                Ok(t) => t,
                Err(e) => {
                    failed = Some(ProtocolError::Decode(e));
                    break;
                }
            };
            let (origin, seq) = (txn.origin, txn.seq);
            if let Some(l) = from.and_then(|f| self.links.get_mut(&f)) {
                l.peer_clock.raise(origin, seq);
            }
            if self.clock.get(origin) >= seq {
                match self.logged(origin, seq) {
                    Some(b) if b != bytes => {
                        let trusted = from
                            .is_none_or(|f| self.links.get(&f).is_some_and(|l| l.policy.forward));
                        if origin == self.id && self.config.persistent && trusted {
                            // Our own seq with other bytes, from a peer trusted
                            // with the room: we were restored from an older copy.
                            self.begin_repair(seq, from);
                            failed = Some(ProtocolError::RestoredBackup(Dot::new(origin, seq)));
                        } else {
                            self.stats.integrity_conflicts += 1;
                            failed = Some(ProtocolError::IntegrityConflict(Dot::new(origin, seq)));
                        }
                        break;
                    }
                    Some(_) if origin == self.id && seq == self.confirmed + 1 => {
                        self.confirm(seq);
                    }
                    _ => {}
                }
                status.duplicates += 1;
                self.stats.duplicates += 1;
                continue;
            }
            if origin == self.id
                && self.config.persistent
                && self.clock.get(origin) > self.confirmed
            {
                // A later seq of ours from a peer while our own writes above
                // `confirmed` are not compared yet: it may build on another
                // lineage of our seqs (a restored backup). The peer offers it
                // again once they are compared.
                status.duplicates += 1;
                continue;
            }
            if self
                .buffer
                .get(origin, seq)
                .is_some_and(|w| &w.bytes[..] != bytes)
            {
                self.stats.integrity_conflicts += 1;
                failed = Some(ProtocolError::IntegrityConflict(Dot::new(origin, seq)));
                break;
            }
            if self.deliverable(&txn) {
                self.deliver(&txn, bytes, None, from);
                status.delivered += 1;
                status.delivered += self.drain_buffer();
            } else {
                let w = Waiting {
                    txn,
                    bytes: Arc::from(bytes),
                };
                match self.buffer.offer(w) {
                    Offer::Held { evicted } => {
                        status.buffered += 1;
                        if evicted {
                            status.dropped += 1;
                            self.stats.buffer_dropped += 1;
                        }
                    }
                    Offer::Duplicate => {
                        status.duplicates += 1;
                        self.stats.duplicates += 1;
                    }
                    Offer::Dropped => {
                        status.dropped += 1;
                        self.stats.buffer_dropped += 1;
                    }
                }
            }
        }
        self.strings = strings;
        self.release_holds();
        status.buffered = status.buffered.min(self.buffer.len());
        if !self.buffer.is_empty() {
            status.missing = self.buffer.missing(&self.clock);
        }
        if status.delivered > 0 {
            self.run_pending();
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(status),
        }
    }

    // ----- time -----

    /// Advances time: starts anti-entropy rounds and pings, and reports links
    /// that stayed silent past the idle timeout.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.buffer.set_now(self.now_ms);
        let hold = self.config.buffer_hold_ms;
        if hold > 0 && !self.buffer.is_empty() {
            let dropped = self.buffer.expire(self.now_ms.saturating_sub(hold));
            self.stats.buffer_dropped += dropped as u64;
        }
        let ids: Vec<LinkId> = self.links.keys().copied().collect();
        for id in ids {
            let Some(l) = self.links.get_mut(&id) else {
                continue;
            };
            if now_ms.saturating_sub(l.last_recv_ms) > self.config.idle_timeout_ms {
                let e = ProtocolError::IdleTimeout(self.config.idle_timeout_ms);
                self.fail_link(id, e);
                continue;
            }
            if now_ms >= l.next_round_ms {
                l.next_round_ms = now_ms.saturating_add(self.config.anti_entropy_ms);
                l.ping_nonce += 1;
                let nonce = l.ping_nonce;
                let established = l.peer.is_some();
                if established {
                    l.last_need_ms = now_ms.max(1);
                    let f = Frame::Need(self.need_clock(id));
                    self.send(id, &f);
                }
                self.send(id, &Frame::Ping(nonce));
            }
        }
        // Buffered transactions released meanwhile, a stalled catch-up.
        self.progress_tick();
        self.progress_check();
    }

    /// When to call [`Replica::handle_timeout`] next, if any link is open.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.links
            .values()
            .map(|l| {
                l.next_round_ms.min(
                    l.last_recv_ms
                        .saturating_add(self.config.idle_timeout_ms)
                        .saturating_add(1),
                )
            })
            .min()
    }

    // ----- outputs -----

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if self.transmits.is_empty() {
            self.flush_links();
        }
        let t = self.transmits.pop_front()?;
        self.stats.bytes_sent += t.frame.len() as u64;
        Some(t)
    }

    /// The clock a `Need` on `link` announces: while the link holds our
    /// writes, the verifying one.
    pub(super) fn need_clock(&self, link: LinkId) -> VectorClock {
        match self.links.get(&link) {
            Some(l) if l.hold > 0 => self.verifying_clock(),
            _ => self.advertised_clock(),
        }
    }

    /// Delivers a remote transaction: apply, record, forward. `shared` is
    /// the transaction's bytes as shared storage, if the caller has them.
    pub(super) fn deliver(
        &mut self,
        txn: &Txn,
        bytes: &[u8],
        mut shared: Option<TxnBytes>,
        from: Option<LinkId>,
    ) {
        self.apply_txn(txn, bytes, false);
        if txn.origin == self.id {
            // Our own transaction, coming back (e.g. after restoring an old
            // copy): it is durable somewhere, so never reuse its seq.
            self.durable_seq = self.durable_seq.max(txn.seq);
            if txn.seq == self.confirmed + 1 {
                self.confirm(txn.seq);
            }
        }
        self.stats.txns_remote += 1;
        self.note_history(txn, false);
        if self.config.emit_changes {
            self.events.push_back(Event::Changed(
                txn.effects.iter().map(|(k, _)| k.clone()).collect(),
            ));
        }
        if self.config.persistent {
            let lsn = self.lsn();
            let b = shared.get_or_insert_with(|| Arc::from(bytes)).clone();
            self.records.push_back(Record::Txn {
                lsn,
                local: false,
                bytes: b,
            });
            self.unstored.push_back((lsn, txn.origin, txn.seq));
        } else {
            self.stored_here.raise(txn.origin, txn.seq);
            self.stored_dirty = true;
        }
        forward(
            &mut self.links,
            self.id,
            txn.origin,
            txn.seq,
            from,
            bytes,
            &mut shared,
        );
        self.after_record();
    }

    pub(super) fn drain_buffer(&mut self) -> usize {
        let mut n = 0;
        // Released transactions go to every link that lacks them (the
        // peer-clock check prevents echoes), including the one whose
        // transaction unblocked them.
        while let Some(w) = self.buffer.pop_ready(&self.clock) {
            let Waiting { txn, bytes } = w;
            let shared = bytes.clone();
            self.deliver(&txn, &bytes, Some(shared), None);
            n += 1;
        }
        n
    }

    /// Turns links' queued transactions into `Txns` frames no larger than
    /// the frame limit (a single oversized transaction gets a frame alone).
    pub(super) fn flush_links(&mut self) {
        let max = self.config.max_frame_bytes;
        if self.stored_dirty {
            self.stored_dirty = false;
            self.tell_stored();
        }
        for (id, l) in self.links.iter_mut() {
            if l.out.is_empty() {
                continue;
            }
            for frame in crate::wire::txns_frames(&l.out, max) {
                self.transmits.push_back(Transmit { link: *id, frame });
            }
            l.out.clear();
        }
    }

    pub(super) fn send(&mut self, link: LinkId, frame: &Frame) {
        // Transactions queued earlier must go out before this frame.
        if let Some(l) = self.links.get(&link) {
            if !l.out.is_empty() {
                self.flush_links();
            }
        }
        self.transmits.push_back(Transmit {
            link,
            frame: frame.encode(),
        });
    }
}
