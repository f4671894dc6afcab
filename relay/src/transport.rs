//! The two transports, WebSocket (one frame per binary message) and TCP
//! (a 4-byte big-endian length, then the frame), behind the same two
//! traits so the session logic is written once.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::{BufMut as _, Bytes};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

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
    session(
        hub,
        TcpSource::new(BufReader::with_capacity(64 << 10, r)),
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

/// Reads length-prefixed frames. Cancel-safe: the session's `select!`
/// may drop a `next()` future at any await (a ping tick, the idle
/// deadline), so progress lives here, not in the future: every completed
/// `read` is recorded before the next await.
///
/// The declared length and the frame's first two bytes (version and tag)
/// are checked against the limits before the body is read, and the body's
/// buffer grows as its bytes arrive: a peer that declares 64 MiB and sends
/// nothing costs 64 KiB, not 64 MiB.
struct TcpSource {
    r: BufReader<OwnedReadHalf>,
    head: [u8; 6],
    head_filled: usize,
    body: Option<(Vec<u8>, usize)>,
}

/// The body buffer grows by at most this much per read.
const GROW: usize = 64 << 10;

impl TcpSource {
    fn new(r: BufReader<OwnedReadHalf>) -> Self {
        TcpSource {
            r,
            head: [0; 6],
            head_filled: 0,
            body: None,
        }
    }
}

impl FrameSource for TcpSource {
    async fn next(&mut self, limits: Limits) -> Result<Option<Bytes>, ReadError> {
        let io = |e: std::io::Error| ReadError::Io(e.to_string());
        if self.body.is_none() {
            // The length, then up to two bytes of the frame.
            loop {
                let want = if self.head_filled < 4 {
                    4
                } else {
                    let len = u32::from_be_bytes(self.head[..4].try_into().expect("4")) as usize;
                    4 + len.min(2)
                };
                if self.head_filled >= want {
                    break;
                }
                let n = self
                    .r
                    .read(&mut self.head[self.head_filled..want])
                    .await
                    .map_err(io)?;
                if n == 0 {
                    return if self.head_filled == 0 {
                        Ok(None)
                    } else {
                        Err(ReadError::Io(
                            "connection closed inside a frame header".into(),
                        ))
                    };
                }
                self.head_filled += n;
            }
            let len = u32::from_be_bytes(self.head[..4].try_into().expect("4")) as usize;
            let got = &self.head[4..self.head_filled];
            limits.check(got, len)?;
            let mut buf = Vec::with_capacity(len.min(GROW));
            buf.extend_from_slice(got);
            self.body = Some((buf, len));
        }
        let (buf, len) = self.body.as_mut().expect("set above");
        while buf.len() < *len {
            let rest = *len - buf.len();
            if buf.capacity() == buf.len() {
                // Geometric (so a large frame is copied O(1) times) but
                // exact and never past the frame's end (a plain reserve
                // may double, and hold twice the frame).
                buf.reserve_exact(buf.len().max(GROW).min(rest));
            }
            let room = (buf.capacity() - buf.len()).min(rest);
            let n = self
                .r
                .read_buf(&mut (&mut *buf).limit(room))
                .await
                .map_err(io)?;
            if n == 0 {
                return Err(ReadError::Io("connection closed inside a frame".into()));
            }
        }
        let (buf, _) = self.body.take().expect("set above");
        self.head_filled = 0;
        Ok(Some(Bytes::from(buf)))
    }
}

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
