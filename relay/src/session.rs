//! One peer's connection: handshake, then frames until it leaves. Written
//! once for both transports.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use minidote_core::wire::{error_code, split_txn_headers, Frame, Hello, SNAPSHOT_TAG};
use minidote_core::{Snapshot, Txn, VectorClock, PROTOCOL_VERSION};

use crate::metrics::Metrics;
use crate::outbox::{outbox, write_loop, FrameSink, Out, Outbox};
use crate::room::{Held, Room};
use crate::token::{self, Scope, TokenError};
use crate::Hub;

/// Frames before a peer's `Hello` may be at most this large.
const PRE_HELLO_LIMIT: usize = 64 << 10;

/// Why reading a frame failed.
#[derive(Debug)]
pub enum ReadError {
    /// Over the size limit (the size, if known).
    TooLarge(usize),
    /// Not a frame at the transport level.
    Malformed(String),
    /// The connection failed.
    Io(String),
}

/// A transport's receiving half.
pub trait FrameSource: Send {
    /// The next frame, at most `limit` bytes; `None` at a clean end.
    fn next(
        &mut self,
        limit: usize,
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
        nonce: 0,
    };
    let end = tokio::select! {
        end = peer.run(&mut source) => end,
        _ = hub.shutdown.cancelled() => None,
    };
    if let Some(room) = &peer.room {
        lock(room).leave(conn);
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
    nonce: u64,
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
        let first = match tokio::time::timeout(idle, source.next(PRE_HELLO_LIMIT)).await {
            Err(_) => return Err(idle_end(idle)),
            Ok(r) => self.frame_or_end(r)?,
        };
        self.handshake(first).await?;
        let mut ping = tokio::time::interval(idle / 3);
        ping.tick().await;
        let mut deadline = tokio::time::Instant::now() + idle;
        loop {
            tokio::select! {
                _ = self.out.closed() => return Ok(()),
                _ = tokio::time::sleep_until(deadline) => return Err(idle_end(idle)),
                _ = ping.tick() => {
                    self.nonce += 1;
                    self.send(Frame::Ping(self.nonce));
                }
                r = source.next(self.hub.config.read_limit()) => {
                    let frame = self.frame_or_end(r)?;
                    // Only a Snapshot may use the larger snapshot limit.
                    let max = self.hub.config.max_frame_bytes;
                    if frame.len() > max && frame.get(1) != Some(&SNAPSHOT_TAG) {
                        return Err(Some((
                            error_code::TOO_LARGE,
                            format!("frame of {} bytes is over the limit of {max} bytes", frame.len()),
                        )));
                    }
                    deadline = tokio::time::Instant::now() + idle;
                    self.on_frame(frame).await?;
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
            Err(ReadError::TooLarge(n)) => Err(Some((
                error_code::TOO_LARGE,
                format!(
                    "frame of {n} bytes is over the limit of {} bytes",
                    if self.room.is_some() {
                        self.hub.config.read_limit()
                    } else {
                        PRE_HELLO_LIMIT
                    }
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
        let hello = match Frame::decode(&first) {
            Ok(Frame::Hello(h)) => h,
            Ok(other) => {
                return Err(Some((
                    error_code::HELLO_EXPECTED,
                    format!("the first frame must be Hello, got {}", other.name()),
                )))
            }
            Err(e) => {
                return Err(Some((
                    error_code::MALFORMED,
                    format!("malformed frame: {e}"),
                )))
            }
        };
        if let Some(secret) = &self.hub.config.auth_secret {
            let checked = match &hello.token {
                None => Err(TokenError::Missing),
                Some(t) => token::verify(secret.as_bytes(), t, &hello.room, token::now_secs()),
            };
            match checked {
                Ok(claims) => self.scope = claims.scope,
                Err(e) => {
                    Metrics::add(&self.hub.metrics.auth_failures_total, 1);
                    return Err(Some((
                        error_code::UNAUTHORIZED,
                        format!("unauthorized for room {:?}: {e}", hello.room),
                    )));
                }
            }
        }
        if hello.replica == self.hub.id {
            return Err(Some((
                error_code::DUPLICATE_ID,
                "your replica id is the relay's own".into(),
            )));
        }
        let room = self.hub.room(&hello.room);
        let clock = {
            let mut r = lock(&room);
            r.join(self.conn, hello.clock.clone(), self.out.clone());
            r.clock().clone()
        };
        self.room = Some(room);
        Metrics::add(&self.hub.metrics.peers_joined_total, 1);
        tracing::debug!(conn = self.conn, room = %hello.room, replica = %hello.replica, scope = %self.scope, "peer joined");
        self.send(Frame::Hello(Hello {
            replica: self.hub.id,
            room: hello.room,
            clock,
            token: None,
        }));
        self.catch_up().await
    }

    fn room(&self) -> &Arc<Mutex<Room>> {
        self.room.as_ref().expect("joined")
    }

    /// Sends the peer what it lacks until it lacks nothing, then it is
    /// live. Waits for room in the outbox, outside the room's lock.
    async fn catch_up(&mut self) -> Result<(), End> {
        let max = self.hub.config.max_frame_bytes;
        loop {
            let Some(c) = lock(self.room()).catch_up(self.conn) else {
                return Ok(());
            };
            let m = &self.hub.metrics;
            Metrics::add(&m.snapshots_sent_total, c.bases.len() as u64);
            Metrics::add(&m.txns_delivered_total, c.txns.len() as u64);
            for b in c.bases {
                if !self.out.push(Out::Frame(b)).await {
                    return Err(None);
                }
            }
            // Pre-batched frames, so a long catch-up is a few large items.
            let mut start = 0;
            while start < c.txns.len() {
                let mut end = start;
                let mut len = 16;
                while end < c.txns.len() && (end == start || len + c.txns[end].len() <= max) {
                    len += c.txns[end].len();
                    end += 1;
                }
                let frame =
                    minidote_core::wire::txns_frame(c.txns[start..end].iter().map(|b| &b[..]));
                if !self.out.push(Out::Frame(Bytes::from(frame))).await {
                    return Err(None);
                }
                start = end;
            }
        }
    }

    async fn on_frame(&mut self, frame: Bytes) -> Result<(), End> {
        if frame.get(1) == Some(&minidote_core::wire::TXNS_TAG) {
            return self.on_txns(frame);
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
            Ok(Frame::Ping(n)) => {
                self.send(Frame::Pong(n));
                Ok(())
            }
            Ok(Frame::Pong(_)) => Ok(()),
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
        if self.scope == Scope::Read {
            self.refuse_read_only(&format!("{} transaction(s)", headers.len()), headers.len());
            return Ok(());
        }
        // Validate every transaction before taking any: a frame is all or
        // nothing, and the log never holds bytes a reader cannot decode.
        let mut txns = Vec::with_capacity(headers.len());
        for (i, (header, range)) in headers.into_iter().enumerate() {
            let bytes = frame.slice(range);
            if let Err(e) = Txn::decode(&bytes) {
                return Err(Some((
                    error_code::MALFORMED,
                    format!("transaction #{i} in the frame does not decode: {e}"),
                )));
            }
            txns.push(Held { header, bytes });
        }
        let hub = &self.hub;
        let room = self.room.as_ref().expect("joined");
        let mut r = lock(room);
        let got = r.receive(self.conn, txns, &mut |op| hub.store(op), &hub.metrics);
        hub.maybe_compact(room, &mut r);
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
        if ahead && self.scope == Scope::Write {
            self.send(Frame::Need(ours));
        }
        Ok(())
    }

    fn on_snapshot(&mut self, frame: Bytes, state: &[u8]) -> Result<(), End> {
        if self.scope == Scope::Read {
            self.refuse_read_only("snapshot", 0);
            return Ok(());
        }
        let snap = Snapshot::decode(state).map_err(|e| {
            Some((
                error_code::MALFORMED,
                format!("snapshot does not decode: {e}"),
            ))
        })?;
        let hub = &self.hub;
        let kept = lock(self.room()).receive_snapshot(
            self.conn,
            frame,
            snap.clock,
            &mut |op| hub.store(op),
            &hub.metrics,
        );
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
