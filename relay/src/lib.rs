//! `minidote-relay`: routes Minidote frames between browser peers
//! (WebSocket at `/sync`) and native peers (raw TCP with a 4-byte length
//! prefix), and keeps each room's transactions in a durable log so a peer
//! that comes back catches up even when the writer is long gone.
//!
//! The relay never understands effects. It reads transaction headers
//! `(origin, seq, deps)` through `minidote_core::wire`, delivers them in
//! causal order into the room's log, drops duplicates by `(origin, seq)`,
//! and answers every `Hello` and `Need` with what that peer lacks. It does
//! validate that every transaction and snapshot decodes (with the core's
//! decoder), so one bad writer cannot poison a room's log for every reader.
//!
//! ```no_run
//! # async fn demo() -> Result<(), minidote_relay::RelayError> {
//! let config = minidote_relay::Config { data: None, ..Default::default() };
//! let relay = minidote_relay::Relay::bind(config).await?;
//! println!("WebSocket on ws://{}/sync", relay.http_addr());
//! relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod compact;
pub mod metrics;
pub mod outbox;
pub mod room;
mod session;
pub mod store;
/// Room tokens (the `minidote-auth` crate, shared with Python listeners).
pub use minidote_auth as token;
mod transport;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use minidote_core::ReplicaId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use crate::room::Room;
use crate::store::Store;

/// The relay's settings. `Default` gives the CLI's defaults, with an
/// in-memory store.
#[derive(Clone, Debug)]
pub struct Config {
    /// HTTP address: WebSocket at `/sync`, `/healthz`, `/metrics`, static
    /// files.
    pub listen: String,
    /// Raw TCP address for native peers; `None` for no TCP listener.
    pub tcp_listen: Option<String>,
    /// SQLite file of the room log; `None` keeps rooms in memory only.
    pub data: Option<PathBuf>,
    /// A folder served at `/`.
    pub static_dir: Option<PathBuf>,
    /// HS256 secret for tokens. With neither this nor `auth_public_key`
    /// the relay is open.
    pub auth_secret: Option<String>,
    /// An Ed25519 public key (SPKI PEM) that checks EdDSA tokens.
    pub auth_public_key: Option<Vec<u8>>,
    /// Largest frame accepted before a peer's `Hello` is accepted (the
    /// Hello itself, whose clock names every writer of the room).
    pub max_hello_bytes: usize,
    /// Most rooms held at once; joins of new rooms beyond it are refused.
    pub max_rooms: usize,
    /// Longest room name, in bytes.
    pub max_room_name_bytes: usize,
    /// Most bytes a room's causal buffer holds (one origin: a quarter).
    pub buffer_bytes: usize,
    /// A transaction held this long for its dependencies is dropped.
    /// `None`: never.
    pub buffer_hold: Option<Duration>,
    /// Browser origins (e.g. `https://app.example`) allowed to open `/sync`;
    /// `None` allows any. Requests without an `Origin` header (native
    /// clients) are always allowed: browsers always send one.
    pub allowed_origins: Option<Vec<String>>,
    /// Largest frame accepted or sent.
    pub max_frame_bytes: usize,
    /// Largest `Snapshot` frame accepted (a pruned peer's whole state, or a
    /// room base); at least `max_frame_bytes`.
    pub max_snapshot_bytes: usize,
    /// Most connections open at once (WebSocket and TCP together).
    pub max_connections: usize,
    /// Most items queued to one peer before it counts as a slow consumer.
    pub queue_frames: usize,
    /// Most bytes queued to one peer before it counts as a slow consumer.
    pub queue_bytes: usize,
    /// A peer silent for this long is disconnected.
    pub idle_timeout: Duration,
    /// Most bytes of frames built for all links together and not yet
    /// written to their sockets (catch-up of many slow readers).
    pub send_budget_bytes: usize,
    /// Most transactions a room holds while their dependencies are missing.
    pub buffer_capacity: usize,
    /// When a room's log holds more transactions than this, the oldest are
    /// folded into one snapshot base (keeping the newest half). 0: never.
    pub compact_after: usize,
    /// With a durable store, a room no peer has joined for this long is
    /// dropped from memory (everything it holds is on disk) and read again
    /// when a peer joins. `None`: rooms stay. Rooms of a memory-only relay
    /// always stay (their memory is all they have).
    pub room_evict_after: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            tcp_listen: Some("127.0.0.1:7070".into()),
            data: None,
            static_dir: None,
            auth_secret: None,
            auth_public_key: None,
            max_hello_bytes: 1 << 20,
            max_rooms: 100_000,
            max_room_name_bytes: 256,
            buffer_bytes: 64 << 20,
            buffer_hold: Some(Duration::from_secs(300)),
            allowed_origins: None,
            max_frame_bytes: 1 << 20,
            max_snapshot_bytes: 64 << 20,
            max_connections: 10_000,
            queue_frames: 16_384,
            queue_bytes: 64 << 20,
            idle_timeout: Duration::from_secs(30),
            send_budget_bytes: 256 << 20,
            buffer_capacity: 100_000,
            compact_after: 100_000,
            room_evict_after: Some(Duration::from_secs(60)),
        }
    }
}

impl Config {
    /// The most bytes one incoming frame may take (a snapshot's limit).
    pub(crate) fn read_limit(&self) -> usize {
        self.max_frame_bytes.max(self.max_snapshot_bytes)
    }
}

/// Why the relay could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    Config(String),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Hub {
    pub config: Config,
    pub verifier: Option<token::Verifier>,
    pub id: ReplicaId,
    pub metrics: Arc<Metrics>,
    pub store: Mutex<Store>,
    pub send_budget: Arc<outbox::SendBudget>,
    rooms: Mutex<HashMap<Arc<str>, Arc<Mutex<Room>>>>,
    /// Rooms evicted so far: a load that raced with an eviction (its rows
    /// may be older than what the evicted room committed) is done again.
    evictions: AtomicU64,
    active: AtomicUsize,
    next_conn: AtomicU64,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// Counts an open connection until dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard(Arc<Hub>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        self.0
            .metrics
            .connections_active
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// Admits a connection, unless `max_connections` are open.
    pub fn admit(self: &Arc<Self>) -> Option<ConnGuard> {
        Metrics::add(&self.metrics.connections_total, 1);
        let n = self.active.fetch_add(1, Ordering::Relaxed);
        if n >= self.config.max_connections {
            self.active.fetch_sub(1, Ordering::Relaxed);
            Metrics::add(&self.metrics.connections_refused_total, 1);
            return None;
        }
        Metrics::add(&self.metrics.connections_active, 1);
        Some(ConnGuard(self.clone()))
    }

    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// The room named `name`: in memory, else read from the store, else
    /// created empty; `Err` with the reason when the name is too long,
    /// `max_rooms` are held, or the store cannot read it.
    pub async fn room(&self, name: &str) -> Result<Arc<Mutex<Room>>, String> {
        if name.len() > self.config.max_room_name_bytes {
            Metrics::add(&self.metrics.rooms_refused_total, 1);
            return Err(format!(
                "room name of {} bytes is over the limit of {} bytes",
                name.len(),
                self.config.max_room_name_bytes
            ));
        }
        loop {
            if let Some(r) = self.room_once(name).await? {
                return Ok(r);
            }
        }
    }

    /// One attempt of [`Hub::room`]: `None` when an eviction ran while the
    /// room was being read.
    async fn room_once(&self, name: &str) -> Result<Option<Arc<Mutex<Room>>>, String> {
        if let Some(r) = self
            .rooms
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
        {
            return Ok(Some(r.clone()));
        }
        let evictions = self.evictions.load(Ordering::SeqCst);
        // Not in memory: the store has it if anyone wrote to it before.
        // The load runs after every change queued before it is committed,
        // and no change to this room can be queued meanwhile (only its
        // in-memory room makes changes).
        let wait = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .load(name.into());
        let loaded = match wait {
            Some(w) => Some(
                w.await
                    .map_err(|_| "the relay store stopped".to_string())??,
            ),
            None => None,
        };
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = rooms.get(name) {
            // Another peer loaded it meanwhile: the same bytes.
            return Ok(Some(r.clone()));
        }
        if self.evictions.load(Ordering::SeqCst) != evictions {
            // Evicted meanwhile (perhaps after more was committed): read it
            // again.
            return Ok(None);
        }
        if rooms.len() >= self.config.max_rooms {
            Metrics::add(&self.metrics.rooms_refused_total, 1);
            return Err(format!(
                "this relay holds its limit of {} rooms",
                self.config.max_rooms
            ));
        }
        let room = match loaded {
            Some(l) if !l.bases.is_empty() || !l.txns.is_empty() => {
                let (room, skipped) =
                    Room::restore(l, self.config.buffer_capacity, self.config.buffer_bytes);
                if skipped > 0 {
                    tracing::warn!(room = %name, skipped, "relay store: unreadable rows skipped");
                }
                tracing::debug!(room = %name, txns = room.log_len(), bases = room.bases_len(), "room loaded");
                Metrics::add(&self.metrics.rooms_loaded_total, 1);
                room
            }
            _ => Room::new(
                name,
                self.config.buffer_capacity,
                self.config.buffer_bytes,
                self.config.data.is_some(),
            ),
        };
        let mut room = room;
        room.set_buffer_hold(self.config.buffer_hold);
        let r = Arc::new(Mutex::new(room));
        rooms.insert(name.into(), r.clone());
        self.metrics
            .rooms
            .store(rooms.len() as u64, Ordering::Relaxed);
        Ok(Some(r))
    }

    /// The last peer left `room`: unless one joins within
    /// `room_evict_after`, it is dropped from memory once everything it
    /// holds is committed (held transactions waiting for dependencies are
    /// dropped with it; their senders push them again).
    pub fn evict_later(self: &Arc<Self>, room: Arc<Mutex<Room>>) {
        let Some(after) = self.config.room_evict_after else {
            return;
        };
        if self.config.data.is_none() {
            return;
        }
        let hub = self.clone();
        self.tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = hub.shutdown.cancelled() => return,
                }
                let mut rooms = hub.rooms.lock().unwrap_or_else(|p| p.into_inner());
                // Never wait for a busy room while holding the rooms map.
                let mut r = match room.try_lock() {
                    Ok(r) => r,
                    Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => continue,
                };
                if r.is_evicted() || r.peer_count() > 0 {
                    return;
                }
                if !r.evictable() {
                    // A commit or a compaction is still running.
                    continue;
                }
                r.evict();
                hub.evictions.fetch_add(1, Ordering::SeqCst);
                let name = r.name().clone();
                if rooms.get(&name).is_some_and(|x| Arc::ptr_eq(x, &room)) {
                    rooms.remove(&name);
                }
                Metrics::add(&hub.metrics.rooms_evicted_total, 1);
                hub.metrics
                    .rooms
                    .store(rooms.len() as u64, Ordering::Relaxed);
                tracing::debug!(room = %name, "room evicted from memory");
                return;
            }
        });
    }

    /// Reports a group commit to the rooms it touched.
    fn committed(&self, high: Vec<(Arc<str>, u64)>) {
        for (name, idx) in high {
            let room = self
                .rooms
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&name)
                .cloned();
            if let Some(room) = room {
                room.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .committed(idx, &self.metrics);
                Metrics::add(&self.metrics.commits_released_total, 1);
            }
        }
    }

    /// Folds the oldest part of `room`'s log into a base, on a blocking
    /// thread, if the log has grown past `compact_after`.
    pub fn maybe_compact(self: &Arc<Self>, room: &Arc<Mutex<Room>>, r: &mut Room) {
        let Some(input) = r.compaction_input(self.config.compact_after) else {
            return;
        };
        let hub = self.clone();
        let room = room.clone();
        self.tasks.spawn(async move {
            let id = hub.id;
            let folded = tokio::task::spawn_blocking(move || compact::fold(&input, id).map_err(|e| (e, input.room)))
                .await;
            let folded = match folded {
                Ok(Ok(f)) => {
                    Metrics::add(&hub.metrics.compactions_total, 1);
                    Some(f)
                }
                Ok(Err((e, name))) => {
                    tracing::error!(room = %name, error = %e, "compaction failed; the log is kept as it is");
                    None
                }
                Err(_) => None,
            };
            let mut r = room.lock().unwrap_or_else(|p| p.into_inner());
            let folded_ok = folded.is_some();
            r.finish_compaction(folded, &mut |op| hub.store(op));
            // A base that arrived meanwhile is folded in next.
            if folded_ok {
                hub.maybe_compact(&room, &mut r);
            }
        });
    }

    /// Queues a store change.
    pub fn store(&self, op: store::StoreOp) {
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(op);
    }
}

/// A bound relay, ready to [`Relay::run`].
#[derive(Debug)]
pub struct Relay {
    hub: Arc<Hub>,
    http: TcpListener,
    tcp: Option<TcpListener>,
    commits: tokio::sync::mpsc::UnboundedReceiver<Vec<(Arc<str>, u64)>>,
}

impl Relay {
    /// Opens the store (loading every room) and binds the listeners. Use
    /// port 0 to let the OS choose; see [`Relay::http_addr`].
    pub async fn bind(config: Config) -> Result<Relay, RelayError> {
        if config.max_frame_bytes < 1024 {
            return Err(RelayError::Config(
                "max-frame-bytes must be at least 1024".into(),
            ));
        }
        if config.max_connections == 0 {
            return Err(RelayError::Config(
                "max-connections must be at least 1".into(),
            ));
        }
        let verifier = token::Verifier::new(
            config.auth_secret.as_deref().map(str::as_bytes),
            config.auth_public_key.as_deref(),
        )
        .map_err(RelayError::Config)?;
        let metrics = Arc::new(Metrics::default());
        let rooms = HashMap::new();
        // Group commits are reported on a channel, read by a task that
        // releases the rooms' forwarding (see `Relay::run`).
        let (commit_tx, commit_rx) = tokio::sync::mpsc::unbounded_channel();
        let store = match &config.data {
            Some(path) => {
                let (store, loaded) = Store::open(
                    path,
                    metrics.clone(),
                    Box::new(move |high| {
                        let _ = commit_tx.send(high);
                    }),
                )?;
                // Rooms are read when a peer joins them.
                tracing::info!(rooms = loaded, "relay store opened");
                store
            }
            None => Store::memory(),
        };
        metrics.rooms.store(rooms.len() as u64, Ordering::Relaxed);
        let bind = |addr: String| async move {
            TcpListener::bind(&addr)
                .await
                .map_err(|source| RelayError::Bind { addr, source })
        };
        let http = bind(config.listen.clone()).await?;
        let tcp = match &config.tcp_listen {
            Some(a) => Some(bind(a.clone()).await?),
            None => None,
        };
        let id = ReplicaId(getrandom::u64().unwrap_or(0x6d69_6e69_646f_7465));
        // Compaction folds peers' sets through core: key its element hashing.
        let mut key = [0u8; 16];
        if getrandom::fill(&mut key).is_ok() {
            minidote_core::set_hash_key(key);
        }
        let send_budget = Arc::new(outbox::SendBudget::new(
            config.send_budget_bytes.max(config.max_frame_bytes + 1024),
        ));
        let hub = Arc::new(Hub {
            config,
            verifier,
            id,
            metrics,
            store: Mutex::new(store),
            send_budget,
            rooms: Mutex::new(rooms),
            evictions: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            next_conn: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Ok(Relay {
            hub,
            http,
            tcp,
            commits: commit_rx,
        })
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound TCP address, if any.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// The relay's metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.hub.metrics.clone()
    }

    /// Serves until `shutdown` resolves, then closes every link, commits
    /// the store and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RelayError> {
        let Relay {
            hub,
            http,
            tcp,
            mut commits,
        } = self;
        let h = hub.clone();
        tokio::spawn(async move {
            while let Some(high) = commits.recv().await {
                h.committed(high);
            }
        });
        if hub.verifier.is_none() {
            tracing::warn!("no --auth-secret or --auth-public-key: this relay is open, anyone who can reach it can read and write every room (each link still speaks only for its own replica id)");
        }
        if hub.config.data.is_none() {
            tracing::warn!("--memory: room logs are lost when the relay stops");
        }
        tracing::info!(
            http = %http.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tcp = %tcp.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
            relay_id = %hub.id,
            "minidote-relay listening"
        );
        let app = router(hub.clone());
        let stop = hub.shutdown.clone();
        let http_task = tokio::spawn(async move {
            use axum::serve::ListenerExt as _;
            // Small frames must not wait for Nagle's algorithm.
            let http = http.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(http, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        let tcp_task = tcp.map(|l| tokio::spawn(transport::tcp_accept_loop(hub.clone(), l)));
        let stop = hub.shutdown.clone();
        tokio::select! {
            _ = shutdown => {}
            _ = stop.cancelled() => {}
        }
        tracing::info!("shutting down: closing links and flushing the store");
        hub.shutdown.cancel();
        if let Some(t) = tcp_task {
            let _ = t.await;
        }
        hub.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), hub.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some links did not close within 5 s");
        }
        let served = match tokio::time::timeout(Duration::from_secs(5), http_task).await {
            Ok(Ok(r)) => r.map_err(RelayError::Serve),
            _ => Ok(()),
        };
        let h = hub.clone();
        let _ = tokio::task::spawn_blocking(move || {
            h.store.lock().unwrap_or_else(|p| p.into_inner()).close();
        })
        .await;
        tracing::info!("stopped");
        served
    }
}

/// Binds with `config` and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    Relay::bind(config).await?.run(shutdown).await
}

fn router(hub: Arc<Hub>) -> Router {
    let static_dir = hub.config.static_dir.clone();
    let r = Router::new()
        .route("/sync", get(ws_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_handler))
        .with_state(hub);
    match static_dir {
        Some(dir) => r.fallback_service(tower_http::services::ServeDir::new(dir)),
        None => r,
    }
}

async fn metrics_handler(State(hub): State<Arc<Hub>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        hub.metrics.render(),
    )
        .into_response()
}

async fn ws_handler(
    ws: WebSocketUpgrade,
    headers: axum::http::HeaderMap,
    State(hub): State<Arc<Hub>>,
) -> Response {
    if let (Some(allowed), Some(origin)) =
        (&hub.config.allowed_origins, headers.get(header::ORIGIN))
    {
        let origin = origin.to_str().unwrap_or("");
        if !allowed.iter().any(|a| a == origin) {
            Metrics::add(&hub.metrics.origins_refused_total, 1);
            tracing::info!(%origin, "refused /sync from an origin not in --allowed-origins");
            return (
                axum::http::StatusCode::FORBIDDEN,
                format!("origin {origin:?} is not allowed to open /sync\n"),
            )
                .into_response();
        }
    }
    let max = hub.config.read_limit();
    // Leave headroom over the frame limit so an oversize frame gets a
    // clear `Error{too large}` from the session rather than a bare close.
    ws.max_message_size(max + (64 << 10))
        .max_frame_size(max + (64 << 10))
        .on_upgrade(move |socket| {
            let tasks = hub.tasks.clone();
            tasks.track_future(transport::serve_websocket(hub, socket))
        })
}
