//! One peer's connection: handshake, then frames until it leaves. Written
//! once for both transports.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use minidote_core::wire::{error_code, split_txn_headers, Frame, Hello, HelloHead, SNAPSHOT_TAG};
use minidote_core::{ReplicaId, Snapshot, Txn, VectorClock, PROTOCOL_VERSION};

use crate::metrics::Metrics;
use crate::outbox::{outbox, write_loop, FrameSink, Out, Outbox};
use crate::room::{Held, Room};
use crate::token::{self, Scope, TokenError};
use crate::Hub;

/// Why reading a frame failed.
#[derive(Debug)]
pub enum ReadError {
    /// Over the size limit: the size, and the limit for its kind.
    TooLarge(usize, usize),
    /// A frame of a kind not allowed here (before `Hello`, only `Hello`).
    Unexpected(u8),
    /// Not a frame at the transport level.
    Malformed(String),
    /// The connection failed.
    Io(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e.to_string())
    }
}

impl minidote_framing::Check for Limits {
    type Error = ReadError;
    fn check(&self, head: &[u8], len: usize) -> Result<(), ReadError> {
        Limits::check(self, head, len)
    }
    fn most(&self) -> usize {
        Limits::most(self)
    }
}

/// What a transport may read next: checked on the frame's tag and declared
/// size before its body is read, and the body's buffer grows only as its
/// bytes arrive.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// The largest frame of any kind but `Snapshot`.
    pub max: usize,
    /// The largest `Snapshot` frame.
    pub snapshot: usize,
    /// Only this frame tag is allowed (before the handshake: `Hello`).
    pub only: Option<u8>,
}

impl Limits {
    /// The size limit for a frame whose first two bytes are `head`, or why
    /// it may not be read at all.
    pub fn check(&self, head: &[u8], len: usize) -> Result<(), ReadError> {
        let tag = head.get(1).copied();
        if let (Some(only), Some(t)) = (self.only, tag) {
            let known = minidote_core::wire::frame_name(t) != minidote_core::wire::frame_name(0xff);
            if t != only && known && head.first() == Some(&PROTOCOL_VERSION) {
                return Err(ReadError::Unexpected(t));
            }
        }
        let limit = if tag == Some(SNAPSHOT_TAG) && self.only.is_none() {
            self.snapshot
        } else {
            self.max
        };
        if len > limit {
            return Err(ReadError::TooLarge(len, limit));
        }
        Ok(())
    }

    /// The most bytes any frame may take under these limits.
    pub fn most(&self) -> usize {
        if self.only.is_some() {
            self.max
        } else {
            self.max.max(self.snapshot)
        }
    }
}

/// A transport's receiving half.
pub trait FrameSource: Send {
    /// The next frame within `limits`; `None` at a clean end.
    fn next(
        &mut self,
        limits: Limits,
    ) -> impl std::future::Future<Output = Result<Option<Bytes>, ReadError>> + Send;
}

/// Ends the session: `Some((code, message))` is sent as an `Error` frame.
type End = Option<(u16, String)>;

fn lock(room: &Mutex<Room>) -> MutexGuard<'_, Room> {
    room.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) async fn session<R: FrameSource, S: FrameSink + 'static>(
    hub: Arc<Hub>,
    mut source: R,
    sink: S,
    transport: &'static str,
) {
    let cfg = &hub.config;
    let (out, inbox) = outbox(cfg.queue_frames, cfg.queue_bytes);
    let writer = tokio::spawn(write_loop(
        sink,
        inbox,
        cfg.max_frame_bytes,
        hub.metrics.clone(),
        hub.send_budget.clone(),
        cfg.idle_timeout.max(Duration::from_secs(1)),
    ));
    let Some(_guard) = hub.admit() else {
        out.close(
            error_code::OVERLOADED,
            format!(
                "overloaded: the relay already has {} connections",
                cfg.max_connections
            ),
        );
        let _ = writer.await;
        return;
    };
    let conn = hub.next_conn();
    let mut peer = Peer {
        hub: hub.clone(),
        out: out.clone(),
        conn,
        room: None,
        scope: Scope::Write,
        replica: ReplicaId(0),
        expires: None,
        nonce: 0,
        parts: Default::default(),
    };
    let end = tokio::select! {
        end = peer.run(&mut source) => end,
        _ = hub.shutdown.cancelled() => None,
    };
    if let Some(room) = &peer.room {
        let mut r = lock(room);
        r.leave(conn);
        if r.peer_count() == 0 {
            drop(r);
            hub.evict_later(room.clone());
        }
    }
    match end {
        Some((code, message)) => {
            tracing::info!(conn, transport, code, %message, "closing link");
            out.close(code, message);
        }
        None => out.close_quietly(),
    }
    // The writer sends the Error frame, if the socket takes it in time.
    let abort = writer.abort_handle();
    if tokio::time::timeout(Duration::from_secs(6), writer)
        .await
        .is_err()
    {
        abort.abort();
    }
}

struct Peer {
    hub: Arc<Hub>,
    out: Outbox,
    conn: u64,
    room: Option<Arc<Mutex<Room>>>,
    scope: Scope,
    /// The replica id of the peer's `Hello`: the only origin it may send
    /// without the forward scope.
    replica: ReplicaId,
    /// When the token expires (Unix seconds), if there is one.
    expires: Option<u64>,
    nonce: u64,
    /// A snapshot arriving in pieces (snapshot scope only).
    parts: minidote_core::wire::SnapshotAssembler,
}

impl Peer {
    async fn run<R: FrameSource>(&mut self, source: &mut R) -> End {
        match self.serve(source).await {
            Ok(()) => None,
            Err(end) => end,
        }
    }

    async fn serve<R: FrameSource>(&mut self, source: &mut R) -> Result<(), End> {
        let idle = self.hub.config.idle_timeout;
        let hello_limits = Limits {
            max: self.hub.config.max_hello_bytes,
            snapshot: self.hub.config.max_hello_bytes,
            only: Some(minidote_core::wire::HELLO_TAG),
        };
        let first = match tokio::time::timeout(idle, source.next(hello_limits)).await {
            Err(_) => return Err(idle_end(idle)),
            Ok(r) => self.frame_or_end(r)?,
        };
        self.handshake(first).await?;
        // Only a peer that may send snapshots gets the larger snapshot
        // limit; for everyone else a big Snapshot is refused on its header.
        let limits = Limits {
            max: self.hub.config.max_frame_bytes,
            snapshot: if self.scope.can_snapshot() {
                self.hub.config.read_limit()
            } else {
                self.hub.config.max_frame_bytes
            },
            only: None,
        };
        let mut ping = tokio::time::interval(idle / 3);
        ping.tick().await;
        let mut deadline = tokio::time::Instant::now() + idle;
        // A token that expires ends the link then, not at the next Hello.
        let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        let expiry = self.expires.map(|exp| {
            let left = exp.saturating_sub(token::now_secs());
            tokio::time::Instant::now()
                .checked_add(Duration::from_secs(left))
                .map_or(far, |t| t.min(far))
        });
        loop {
            tokio::select! {
                _ = self.out.closed() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => return Err(idle_end(idle)),
                _ = tokio::time::sleep_until(expiry.unwrap_or(far)) => {
                    Metrics::add(&self.hub.metrics.tokens_expired_total, 1);
                    return Err(Some((
                        error_code::EXPIRED,
                        "token expired: connect again with a fresh token".into(),
                    )));
                }
                _ = ping.tick() => {
                    self.nonce += 1;
                    self.send(Frame::Ping(self.nonce));
                }
                r = source.next(limits) => {
                    let frame = self.frame_or_end(r)?;
                    self.on_frame(frame).await?;
                    // After the frame: a catch-up it started may take long.
                    deadline = tokio::time::Instant::now() + idle;
                }
            }
        }
    }

    /// A frame, or why the session ends.
    fn frame_or_end(&self, r: Result<Option<Bytes>, ReadError>) -> Result<Bytes, End> {
        match r {
            Ok(Some(f)) => {
                let m = &self.hub.metrics;
                Metrics::add(&m.frames_received_total, 1);
                Metrics::add(&m.bytes_received_total, f.len() as u64);
                if f.first().is_some_and(|v| *v != PROTOCOL_VERSION) {
                    return Err(Some((
                        error_code::VERSION,
                        format!(
                            "unsupported protocol version {} (this relay speaks {PROTOCOL_VERSION})",
                            f[0]
                        ),
                    )));
                }
                Ok(f)
            }
            Ok(None) => Err(None),
            Err(ReadError::TooLarge(n, limit)) => Err(Some((
                error_code::TOO_LARGE,
                format!("frame of {n} bytes is over the limit of {limit} bytes"),
            ))),
            Err(ReadError::Unexpected(t)) => Err(Some((
                error_code::HELLO_EXPECTED,
                format!(
                    "the first frame must be Hello, got {}",
                    minidote_core::wire::frame_name(t)
                ),
            ))),
            Err(ReadError::Malformed(m)) => Err(Some((error_code::MALFORMED, m))),
            Err(ReadError::Io(e)) => {
                tracing::debug!(conn = self.conn, error = %e, "link failed");
                Err(None)
            }
        }
    }

    fn send(&self, frame: Frame) {
        // Control frames are small; if even these do not fit, the writer
        // is stuck and the room will close it as a slow consumer.
        let _ = self.out.try_push(Out::Frame(Bytes::from(frame.encode())));
    }

    async fn handshake(&mut self, first: Bytes) -> Result<(), End> {
        let malformed = |e: minidote_core::DecodeError| {
            Some((error_code::MALFORMED, format!("malformed Hello: {e}")))
        };
        // The token is checked before the clock, the one large part of a
        // Hello, is decoded: a peer without a valid token costs nothing.
        let head = HelloHead::parse(&first).map_err(malformed)?;
        if let Some(v) = &self.hub.verifier {
            let checked = match head.token {
                None => Err(TokenError::Missing),
                Some(t) => v.verify(t, head.room, head.replica, token::now_secs()),
            };
            match checked {
                Ok(claims) => {
                    self.scope = claims.scope;
                    self.expires = Some(claims.expires);
                }
                Err(e) => {
                    Metrics::add(&self.hub.metrics.auth_failures_total, 1);
                    return Err(Some((
                        error_code::UNAUTHORIZED,
                        format!("unauthorized for room {:?}: {e}", head.room),
                    )));
                }
            }
        }
        let hello = match Frame::decode(&first) {
            Ok(Frame::Hello(h)) => h,
            Ok(other) => {
                return Err(Some((
                    error_code::HELLO_EXPECTED,
                    format!("the first frame must be Hello, got {}", other.name()),
                )))
            }
            Err(e) => return Err(malformed(e)),
        };
        if hello.replica == self.hub.id {
            return Err(Some((
                error_code::DUPLICATE_ID,
                "your replica id is the relay's own".into(),
            )));
        }
        self.replica = hello.replica;
        let (room, clock) = loop {
            let idle = self.hub.config.idle_timeout;
            let room = match tokio::time::timeout(idle, self.hub.room(&hello.room)).await {
                Ok(r) => r.map_err(|why| Some((error_code::LIMIT, why)))?,
                Err(_) => {
                    return Err(Some((
                        error_code::OVERLOADED,
                        "overloaded: the relay store did not read the room in time".into(),
                    )))
                }
            };
            let mut r = lock(&room);
            // Evicted between the lookup and now: look it up again.
            if r.is_evicted() {
                continue;
            }
            r.join(
                self.conn,
                hello.replica,
                hello.clock.clone(),
                self.out.clone(),
            );
            let clock = r.durable().clone();
            drop(r);
            break (room, clock);
        };
        self.room = Some(room);
        Metrics::add(&self.hub.metrics.peers_joined_total, 1);
        tracing::debug!(conn = self.conn, room = %hello.room, replica = %hello.replica, scope = %self.scope, "peer joined");
        // A returning writer learns at once which of its writes are stored
        // (its `flush` may have nothing new to send).
        let stored = clock.get(hello.replica);
        self.send(Frame::Hello(Hello {
            replica: self.hub.id,
            room: hello.room,
            clock,
            token: None,
        }));
        if stored > 0 {
            let c: VectorClock = [(hello.replica, stored)].into_iter().collect();
            self.send(Frame::Stored(c));
        }
        self.catch_up().await
    }

    fn room(&self) -> &Arc<Mutex<Room>> {
        self.room.as_ref().expect("joined")
    }

    /// Sends the peer what it lacks until it lacks nothing, then it is
    /// live. Waits for room in the outbox, outside the room's lock.
    /// The log's own bytes are queued (shared, not copied: the writer
    /// batches them into frames as it sends), a few MiB per step. A peer
    /// that takes nothing for the idle timeout is closed as a slow
    /// consumer, so a stuck reader cannot hold its slot or its memory.
    async fn catch_up(&mut self) -> Result<(), End> {
        let idle = self.hub.config.idle_timeout;
        loop {
            let Some(c) = lock(self.room()).catch_up(self.conn) else {
                return Ok(());
            };
            let m = &self.hub.metrics;
            Metrics::add(&m.snapshots_sent_total, c.bases.len() as u64);
            Metrics::add(&m.txns_delivered_total, c.txns.len() as u64);
            let items = c
                .bases
                .into_iter()
                .map(Out::Frame)
                .chain(c.txns.into_iter().map(Out::Txn));
            for item in items {
                match tokio::time::timeout(idle, self.out.push(item)).await {
                    Ok(true) => {}
                    Ok(false) => return Err(None),
                    Err(_) => {
                        Metrics::add(&m.catch_up_stalls_total, 1);
                        Metrics::add(&m.slow_consumers_total, 1);
                        return Err(Some((
                            error_code::SLOW_CONSUMER,
                            format!(
                                "slow consumer: nothing was read during catch-up for {} s",
                                idle.as_secs_f64()
                            ),
                        )));
                    }
                }
            }
        }
    }

    async fn on_frame(&mut self, frame: Bytes) -> Result<(), End> {
        if frame.get(1) == Some(&minidote_core::wire::TXNS_TAG) {
            return self.on_txns(frame);
        }
        if minidote_core::wire::is_run(&frame) {
            // Refused before it is expanded.
            if !self.scope.can_write() {
                self.refuse_read_only("a Run of transactions", 1);
                return Ok(());
            }
            // A batch in columns: the same transactions, each rebuilt to
            // its own bytes (bounded by the run's expansion limit), then
            // the path of a Txns frame.
            let txns = minidote_core::wire::split_run(&frame)
                .map_err(|e| Some((error_code::MALFORMED, format!("malformed Run frame: {e}"))))?;
            let f = minidote_core::wire::txns_frame(txns.iter().map(|t| &t[..]));
            return self.on_txns(Bytes::from(f));
        }
        match Frame::decode(&frame) {
            Err(e) => Err(Some((
                error_code::MALFORMED,
                format!("malformed frame: {e}"),
            ))),
            Ok(Frame::Hello(_)) => Err(Some((
                error_code::MALFORMED,
                "a second Hello on one link".into(),
            ))),
            Ok(Frame::Need(clock)) => self.on_need(clock).await,
            Ok(Frame::Snapshot(state)) => self.on_snapshot(frame, &state),
            Ok(Frame::SnapshotPart {
                id,
                total,
                offset,
                bytes,
            }) => {
                match self.may_snapshot() {
                    Ok(()) => {}
                    Err(None) => return Ok(()),
                    Err(e) => return Err(e),
                }
                let limit = self.hub.config.max_snapshot_bytes;
                match self.parts.push(id, total, offset, &bytes, limit) {
                    Err(e) => Err(Some((
                        error_code::MALFORMED,
                        format!("snapshot part refused: {e}"),
                    ))),
                    Ok(None) => Ok(()),
                    Ok(Some(state)) => {
                        let mut f = Vec::with_capacity(state.len() + 2);
                        f.extend_from_slice(&[PROTOCOL_VERSION, SNAPSHOT_TAG]);
                        f.extend_from_slice(&state);
                        drop(state);
                        let frame = Bytes::from(f);
                        let state = frame.slice(2..);
                        self.on_snapshot(frame, &state)
                    }
                }
            }
            Ok(Frame::Ping(n)) => {
                self.send(Frame::Pong(n));
                Ok(())
            }
            Ok(Frame::Pong(_) | Frame::Stored(_)) => Ok(()),
            Ok(Frame::Error { code, message }) => {
                tracing::info!(conn = self.conn, code, %message, "peer reported an error");
                Ok(())
            }
            Ok(Frame::Txns(_)) => unreachable!("Txns frames take the header path"),
        }
    }

    fn refuse_read_only(&self, what: &str, n: usize) {
        Metrics::add(&self.hub.metrics.txns_refused_total, n as u64);
        self.hub.metrics.error_sent(error_code::READ_ONLY);
        self.send(Frame::Error {
            code: error_code::READ_ONLY,
            message: format!("read-only token: {what} refused, not stored or forwarded"),
        });
    }

    fn on_txns(&mut self, frame: Bytes) -> Result<(), End> {
        let headers = split_txn_headers(&frame)
            .map_err(|e| Some((error_code::MALFORMED, format!("malformed Txns frame: {e}"))))?;
        if !self.scope.can_write() {
            self.refuse_read_only(&format!("{} transaction(s)", headers.len()), headers.len());
            return Ok(());
        }
        // A link speaks for its own replica id only, unless its token has
        // the forward scope: other origins' transactions are dropped and
        // counted, never stored or forwarded. Not an error: an honest
        // replica with other links forwards what it has, and closing its
        // link would only make it flap.
        let mut headers = headers;
        if !self.scope.can_forward() {
            let before = headers.len();
            headers.retain(|(h, _)| h.origin == self.replica);
            let dropped = before - headers.len();
            if dropped > 0 {
                Metrics::add(&self.hub.metrics.txns_forbidden_total, dropped as u64);
                tracing::debug!(conn = self.conn, replica = %self.replica, dropped, "dropped transactions of other origins");
            }
        }
        // Validate every transaction before taking any: a frame is all or
        // nothing, and the log never holds bytes a reader cannot decode.
        // The decoded deps include every dot the effects observe, so the
        // room delivers a remove only after what it removes.
        let mut txns = Vec::with_capacity(headers.len());
        for (i, (mut header, range)) in headers.into_iter().enumerate() {
            // A slice keeps its whole frame alive: copy a transaction that
            // is much smaller than its frame, so what the log and the
            // causal buffer count is what they hold.
            let bytes = if range.len() * 2 < frame.len() {
                Bytes::copy_from_slice(&frame[range])
            } else {
                frame.slice(range)
            };
            match Txn::decode(&bytes) {
                Ok(t) => header.deps = t.deps,
                Err(e) => {
                    return Err(Some((
                        error_code::MALFORMED,
                        format!("transaction #{i} in the frame does not decode: {e}"),
                    )))
                }
            }
            txns.push(Held { header, bytes });
        }
        let hub = &self.hub;
        let room = self.room.as_ref().expect("joined");
        let mut r = lock(room);
        let got = r.receive(self.conn, txns, &mut |op| hub.store(op), &hub.metrics);
        hub.maybe_compact(room, &mut r);
        if let Some((origin, seq)) = got.conflict {
            drop(r);
            tracing::warn!(conn = self.conn, replica = %self.replica, %origin, seq, "integrity conflict: a second copy of a transaction with other bytes; the first is kept");
            return Err(Some((
                error_code::INTEGRITY,
                format!("integrity conflict: transaction ({origin}, {seq}) arrived again with other bytes (the relay keeps the first copy)"),
            )));
        }
        if got.gap {
            let clock = r.clock().clone();
            drop(r);
            self.send(Frame::Need(clock));
        }
        Ok(())
    }

    async fn on_need(&mut self, clock: VectorClock) -> Result<(), End> {
        let (ahead, ours) = {
            let mut r = lock(self.room());
            let ahead = r.need(self.conn, clock);
            (ahead, r.clock().clone())
        };
        self.catch_up().await?;
        if ahead && self.scope.can_write() {
            self.send(Frame::Need(ours));
        }
        Ok(())
    }

    /// Whether this link may send snapshots (whole or in pieces).
    fn may_snapshot(&self) -> Result<(), End> {
        if !self.scope.can_write() {
            self.refuse_read_only("snapshot", 0);
            return Err(None);
        }
        // A snapshot speaks for every origin its clock covers, and merging
        // it removes what it claims to have seen: only a token with the
        // snapshot scope may send one. Nothing is stored or forwarded.
        if !self.scope.can_snapshot() {
            Metrics::add(&self.hub.metrics.snapshots_refused_total, 1);
            return Err(Some((
                error_code::FORBIDDEN,
                "snapshot refused: sending snapshots needs a token with the snapshot scope".into(),
            )));
        }
        Ok(())
    }

    fn on_snapshot(&mut self, frame: Bytes, state: &[u8]) -> Result<(), End> {
        match self.may_snapshot() {
            Ok(()) => {}
            // A read-only link's snapshot is refused with an Error and the
            // link stays (as for its transactions).
            Err(None) => return Ok(()),
            Err(e) => return Err(e),
        }
        let snap = Snapshot::decode(state).map_err(|e| {
            Some((
                error_code::MALFORMED,
                format!("snapshot does not decode: {e}"),
            ))
        })?;
        let hub = &self.hub;
        let room = self.room.as_ref().expect("joined");
        let mut r = lock(room);
        if let Err(why) = r.check_base(&snap.clock) {
            drop(r);
            Metrics::add(&hub.metrics.snapshots_refused_total, 1);
            Metrics::add(&hub.metrics.integrity_conflicts_total, 1);
            return Err(Some((
                error_code::INTEGRITY,
                format!("snapshot refused: {why}"),
            )));
        }
        let kept = r.receive_snapshot(
            self.conn,
            frame,
            snap.clock,
            &mut |op| hub.store(op),
            &hub.metrics,
        );
        // Incomparable bases are folded into one.
        hub.maybe_compact(room, &mut r);
        drop(r);
        tracing::debug!(conn = self.conn, kept, "snapshot received");
        Ok(())
    }
}

fn idle_end(idle: Duration) -> End {
    Some((
        error_code::IDLE,
        format!("idle: no frame for {} s", idle.as_secs_f64()),
    ))
}
