//! The two transports, WebSocket (one frame per binary message) and TCP
//! (a 4-byte big-endian length, then the frame), behind the same two
//! traits so the session logic is written once.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use minidote_framing::FrameCodec;
use tokio::io::{AsyncWriteExt as _, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use crate::outbox::FrameSink;
use crate::session::{session, FrameSource, Limits, ReadError};
use crate::Hub;

pub(crate) async fn serve_websocket(hub: Arc<Hub>, socket: WebSocket) {
    let (sink, stream) = socket.split();
    session(hub, WsSource(stream), WsSink(sink), "websocket").await;
}

pub(crate) async fn tcp_accept_loop(hub: Arc<Hub>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let h = hub.clone();
                hub.tasks.spawn(serve_tcp(h, stream));
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly.
                tracing::warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_tcp(hub: Arc<Hub>, stream: TcpStream) {
    let (r, w) = stream.into_split();
    let limits = Limits {
        max: 0,
        snapshot: 0,
        only: None,
    };
    session(
        hub,
        TcpSource(FramedRead::with_capacity(
            r,
            FrameCodec::new(limits),
            64 << 10,
        )),
        TcpSink(BufWriter::with_capacity(64 << 10, w)),
        "tcp",
    )
    .await;
}

struct WsSource(SplitStream<WebSocket>);

impl FrameSource for WsSource {
    async fn next(&mut self, limits: Limits) -> Result<Option<Bytes>, ReadError> {
        loop {
            let Some(msg) = self.0.next().await else {
                return Ok(None);
            };
            match msg {
                Ok(Message::Binary(b)) => {
                    let head = &b[..b.len().min(2)];
                    limits.check(head, b.len())?;
                    return Ok(Some(b));
                }
                Ok(Message::Text(_)) => {
                    return Err(ReadError::Malformed(
                        "text message: frames travel as binary WebSocket messages".into(),
                    ))
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => continue,
                Ok(Message::Close(_)) => return Ok(None),
                Err(e) => {
                    let inner = e.into_inner();
                    return match inner.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
                        Some(tokio_tungstenite::tungstenite::Error::Capacity(c)) => {
                            Err(ReadError::TooLarge(match c {
                                tokio_tungstenite::tungstenite::error::CapacityError::MessageTooLong { size, .. } => *size,
                                _ => usize::MAX,
                            }, limits.most()))
                        }
                        Some(tokio_tungstenite::tungstenite::Error::Protocol(p)) => {
                            Err(ReadError::Malformed(format!("websocket protocol: {p}")))
                        }
                        _ => Err(ReadError::Io(inner.to_string())),
                    };
                }
            }
        }
    }
}

struct WsSink(SplitSink<WebSocket, Message>);

fn io_err(e: axum::Error) -> std::io::Error {
    std::io::Error::other(e)
}

impl FrameSink for WsSink {
    async fn feed(&mut self, frame: Bytes) -> std::io::Result<()> {
        self.0.feed(Message::Binary(frame)).await.map_err(io_err)
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await.map_err(io_err)
    }
    async fn close(&mut self) -> std::io::Result<()> {
        self.0.close().await.map_err(io_err)
    }
}

/// Reads length-prefixed frames through tokio-util's `FramedRead` and
/// [`FrameCodec`] (relay/framing): cancel-safe, since the session's
/// `select!` may drop a `next()` future at any await (a ping tick, the idle
/// deadline) and partial frames stay in the `FramedRead`'s buffer. The
/// declared length and the frame's first two bytes (version and tag) are
/// checked against the limits before the body is read, and nothing is
/// reserved for a declared length: a peer that declares 64 MiB and sends
/// nothing costs what it sent.
struct TcpSource(FramedRead<OwnedReadHalf, FrameCodec<Limits>>);

impl FrameSource for TcpSource {
    async fn next(&mut self, limits: Limits) -> Result<Option<Bytes>, ReadError> {
        self.0.decoder_mut().check = limits;
        // A large frame leaves its allocation behind as the read buffer:
        // give it back once the buffer is empty.
        let buf = self.0.read_buffer_mut();
        if buf.is_empty() && buf.capacity() > 1 << 20 {
            *buf = bytes::BytesMut::with_capacity(64 << 10);
        }
        match self.0.next().await {
            None => Ok(None),
            // Copied out: the read buffer's allocation is shared by every
            // frame split from it, so a kept frame (or one transaction of
            // it, in the room log) would pin the whole chunk. An exact copy
            // costs what the frame holds, as before.
            Some(Ok(frame)) => Ok(Some(Bytes::copy_from_slice(&frame))),
            Some(Err(e)) => Err(e),
        }
    }
}

/// Writes length-prefixed frames: the 4-byte length, then the frame's own
/// bytes (a frame larger than the buffer is written from where it lives,
/// the room log, with no copy; a framing codec would copy every frame into
/// its buffer, a megabyte per reader that stopped reading).
struct TcpSink(BufWriter<OwnedWriteHalf>);

impl FrameSink for TcpSink {
    async fn feed(&mut self, frame: Bytes) -> std::io::Result<()> {
        let len = u32::try_from(frame.len()).map_err(std::io::Error::other)?;
        self.0.write_all(&len.to_be_bytes()).await?;
        self.0.write_all(&frame).await
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }
    async fn close(&mut self) -> std::io::Result<()> {
        self.0.flush().await?;
        self.0.shutdown().await
    }
}
