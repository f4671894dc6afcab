//! Test helpers: a relay on 127.0.0.1:0, raw WebSocket and TCP clients,
//! and core replicas driven over those clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use minidote_core::wire::Frame;
use minidote_core::{Config as CoreConfig, Event, LinkId, Replica, ReplicaId};
use minidote_relay::metrics::Metrics;
use minidote_relay::{Config, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub mod relay_proc;

pub struct TestRelay {
    pub http: SocketAddr,
    pub tcp: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

pub fn config() -> Config {
    Config {
        listen: "127.0.0.1:0".into(),
        tcp_listen: Some("127.0.0.1:0".into()),
        data: None,
        ..Config::default()
    }
}

pub async fn start(config: Config) -> TestRelay {
    let relay = Relay::bind(config).await.expect("bind");
    let http = relay.http_addr();
    let tcp = relay.tcp_addr().expect("tcp");
    let metrics = relay.metrics();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        relay
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("relay run");
    });
    TestRelay {
        http,
        tcp,
        metrics,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestRelay {
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap();
    }

    pub fn metric(&self, name: &str) -> u64 {
        metric(&self.metrics.render(), name)
    }
}

/// Reads one sample from Prometheus text.
pub fn metric(text: &str, name: &str) -> u64 {
    let full = format!("minidote_relay_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&full))
        .unwrap_or_else(|| panic!("no metric {name}"))
        .trim()
        .parse()
        .unwrap()
}

/// The counter most tests write.
pub fn counter() -> minidote_core::Key {
    minidote_core::Key::new("likes", minidote_core::CrdtType::CounterPn, "b")
}

/// The set most tests write.
pub fn set() -> minidote_core::Key {
    minidote_core::Key::new("tags", minidote_core::CrdtType::SetAw, "b")
}

/// Runs one update on a peer's replica.
pub fn write(p: &mut Peer, k: &minidote_core::Key, op: minidote_core::Op) {
    p.replica
        .update_objects(vec![minidote_core::Update::new(k.clone(), op)], None)
        .expect("valid update");
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text[9..12].parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

enum Writer {
    Ws(
        futures_util::stream::SplitSink<
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            Message,
        >,
    ),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

/// A raw client: sends frames, and collects what it receives.
pub struct Client {
    writer: Writer,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    reader: tokio::task::JoinHandle<()>,
    paused: tokio::sync::watch::Sender<bool>,
    pub closed: bool,
}

/// Waits while the reader is paused.
async fn gate(rx: &mut tokio::sync::watch::Receiver<bool>) {
    while *rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Drop for Client {
    /// Both halves go, so the socket closes.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    pub async fn ws(relay: SocketAddr) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{relay}/sync"))
            .await
            .expect("ws connect");
        let (w, mut r) = ws.split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (paused, mut gate_rx) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(async move {
            loop {
                gate(&mut gate_rx).await;
                let Some(Ok(m)) = r.next().await else { break };
                match m {
                    Message::Binary(b) if tx.send(b.to_vec()).is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        });
        Client {
            writer: Writer::Ws(w),
            rx,
            reader,
            paused,
            closed: false,
        }
    }

    pub async fn tcp(relay: SocketAddr) -> Client {
        let s = tokio::net::TcpStream::connect(relay)
            .await
            .expect("tcp connect");
        s.set_nodelay(true).unwrap();
        let (mut r, w) = s.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let (paused, mut gate_rx) = tokio::sync::watch::channel(false);
        let reader = tokio::spawn(async move {
            loop {
                gate(&mut gate_rx).await;
                let mut len = [0u8; 4];
                if r.read_exact(&mut len).await.is_err() {
                    break;
                }
                let mut buf = vec![0; u32::from_be_bytes(len) as usize];
                if r.read_exact(&mut buf).await.is_err() {
                    break;
                }
                if tx.send(buf).is_err() {
                    break;
                }
            }
        });
        Client {
            writer: Writer::Tcp(w),
            rx,
            reader,
            paused,
            closed: false,
        }
    }

    /// Stops reading from the socket (so the relay's writes back up).
    pub fn pause_reading(&self) {
        let _ = self.paused.send(true);
    }

    pub fn resume_reading(&self) {
        let _ = self.paused.send(false);
    }

    pub async fn send(&mut self, frame: &[u8]) -> bool {
        match &mut self.writer {
            Writer::Ws(w) => w.send(Message::Binary(frame.to_vec().into())).await.is_ok(),
            Writer::Tcp(w) => {
                let len = (frame.len() as u32).to_be_bytes();
                w.write_all(&len).await.is_ok() && w.write_all(frame).await.is_ok()
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        if let Writer::Ws(w) = &mut self.writer {
            w.send(Message::Text(text.into())).await.unwrap();
        }
    }

    /// Raw bytes on a TCP client (no length prefix).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        if let Writer::Tcp(w) = &mut self.writer {
            let _ = w.write_all(bytes).await;
        }
    }

    /// The next frame within `wait`, or None (also at close).
    pub async fn recv(&mut self, wait: Duration) -> Option<Vec<u8>> {
        match tokio::time::timeout(wait, self.rx.recv()).await {
            Ok(Some(f)) => Some(f),
            Ok(None) => {
                self.closed = true;
                None
            }
            Err(_) => None,
        }
    }

    /// Frames until the connection closes (or `wait` passes).
    pub async fn recv_until_closed(&mut self, wait: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + wait;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            match self.recv(Duration::from_millis(50)).await {
                Some(f) => out.push(Frame::decode(&f).expect("relay frames decode")),
                None if self.closed => break,
                None => {}
            }
        }
        out
    }

    /// Waits for an `Error` frame and returns its code.
    pub async fn expect_error(&mut self) -> (u16, String) {
        let frames = self.recv_until_closed(Duration::from_secs(5)).await;
        assert!(self.closed, "the relay closes the link after an error");
        frames
            .into_iter()
            .find_map(|f| match f {
                Frame::Error { code, message } => Some((code, message)),
                _ => None,
            })
            .expect("an Error frame before the close")
    }
}

pub fn hello(id: u64, room: &str, token: Option<&str>) -> Vec<u8> {
    Frame::Hello(minidote_core::Hello {
        replica: ReplicaId(id),
        room: room.into(),
        clock: Default::default(),
        token: token.map(str::to_owned),
    })
    .encode()
}

/// A core replica linked to the relay through a raw client.
pub struct Peer {
    pub replica: Replica,
    pub client: Option<Client>,
    link: u64,
    start: Instant,
    pub errors: Vec<String>,
    /// The largest frame received.
    pub largest_frame: usize,
}

pub fn core_config(room: &str) -> CoreConfig {
    CoreConfig {
        room: room.into(),
        anti_entropy_ms: 200,
        ..CoreConfig::default()
    }
}

impl Peer {
    pub fn new(id: u64, config: CoreConfig) -> Peer {
        Peer {
            replica: Replica::new(ReplicaId(id), config),
            client: None,
            link: 0,
            start: Instant::now(),
            errors: Vec::new(),
            largest_frame: 0,
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn attach(&mut self, client: Client, token: Option<&str>) {
        self.link += 1;
        self.client = Some(client);
        let now = self.now();
        self.replica
            .link_open(LinkId(self.link), token.map(str::to_owned), now);
    }

    pub fn detach(&mut self) {
        self.client = None;
        self.replica.link_closed(LinkId(self.link));
    }

    /// Sends what the replica queued, handles what arrived, runs timers.
    pub async fn pump(&mut self) {
        let now = self.now();
        self.replica.handle_timeout(now);
        let mut frames = Vec::new();
        while let Some(t) = self.replica.poll_transmit() {
            frames.push(t);
        }
        if let Some(c) = &mut self.client {
            for t in frames {
                if t.link == LinkId(self.link) {
                    c.send(&t.frame).await;
                }
            }
            while let Some(f) = c.recv(Duration::from_millis(1)).await {
                self.largest_frame = self.largest_frame.max(f.len());
                let now = self.start.elapsed().as_millis() as u64;
                if let Err(e) = self.replica.handle_frame(LinkId(self.link), &f, now) {
                    self.errors.push(e.to_string());
                }
            }
        }
        while let Some(e) = self.replica.poll_event() {
            if let Event::LinkFailed { error, .. } = e {
                self.errors.push(error.to_string());
            }
        }
        while self.replica.poll_record().is_some() {}
    }
}

/// Pumps every peer until `done` holds, or panics after `wait`.
pub async fn pump_until(
    peers: &mut [&mut Peer],
    wait: Duration,
    done: impl Fn(&[&mut Peer]) -> bool,
) {
    let deadline = Instant::now() + wait;
    loop {
        for p in peers.iter_mut() {
            p.pump().await;
        }
        if done(peers) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "peers did not converge in {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Whether all peers have equal clocks and values for `keys`.
pub fn converged(peers: &[&mut Peer], keys: &[minidote_core::Key]) -> bool {
    let first = &peers[0].replica;
    peers.iter().all(|p| {
        p.replica.clock() == first.clock()
            && keys.iter().all(|k| p.replica.value(k) == first.value(k))
    })
}
