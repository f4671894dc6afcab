//! The IO around one core replica: a SQLite writer thread doing group
//! commits, and a tokio runtime running TCP links, listeners and timers.
//!
//! All of them share one `Mutex<Inner>`. Whoever changes the replica drains
//! its outputs right away (`Inner::drain`): records go to the writer, frames
//! to the links, completed tickets wake waiting Python threads through the
//! condvar. Python threads wait with the GIL released.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use minidote_core::wire::{error_code, Frame, HelloHead};
use minidote_core::{
    Config, DeltaOp, Event, Key, LinkId, LinkPolicy, ProtocolError, Record, Replica, Stats, Ticket,
    UpdateError, Value, VectorClock,
};
use minidote_framing::{FrameCodec, LenError, MaxLen};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc as tmpsc;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::store::Store;

/// Largest frame accepted from a peer (snapshots can be large).
pub const MAX_INCOMING_FRAME: usize = 64 << 20;

/// Largest frame accepted before the peer's `Hello` was accepted. A Hello
/// carries a clock naming every writer of the room, so this is the relay's
/// `--max-hello-bytes` default: a room with 10,000 writers needs ~100 KB.
/// Frames are read as their bytes arrive, so a peer that declares a large
/// frame and sends nothing costs little.
pub const MAX_FRAME_BEFORE_HELLO: usize = 1 << 20;

/// A frame's buffer grows by at most this much per read.
const READ_GROW: usize = 64 << 10;

/// A link up this long counts as healthy: the reconnect backoff restarts.
const STABLE_LINK: Duration = Duration::from_secs(10);

/// The longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long an accepted peer has to send its `Hello`.
const HELLO_WAIT: Duration = Duration::from_secs(30);

/// Most simultaneous links accepted by the listeners of one replica.
pub const MAX_ACCEPTED_LINKS: usize = 1024;

/// Where `connect` dials: a TCP peer or relay port, or a relay's
/// WebSocket endpoint.
#[derive(Clone)]
pub enum Target {
    Tcp(String),
    Ws {
        url: String,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
}

/// TLS settings for `wss://`: the system's roots, or only the
/// certificates in `ca_file` (PEM).
pub fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {} holds no certificate", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("no system root certificates found: pass ca_file=".into());
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A completed request.
pub enum Done {
    Committed(VectorClock),
    Read(Vec<Value>, VectorClock),
    Failed(UpdateError),
}

/// Why a wait ended without a result.
pub enum WaitError {
    Timeout,
    Storage(String),
    Closed,
}

struct LinkEntry {
    tx: tmpsc::Sender<Vec<u8>>,
    addr: String,
    outgoing: bool,
    /// Cancelled when the link must end (protocol error, slow consumer,
    /// disconnect, close); stops its reader even if the peer is silent.
    cancel: CancellationToken,
}

impl Drop for LinkEntry {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Frames queued for one peer before it counts as a slow consumer and is
/// disconnected (rather than letting its queue grow without bound).
const LINK_QUEUE_FRAMES: usize = 4096;

struct Outgoing {
    stop: CancellationToken,
    link: Option<LinkId>,
}

pub struct Inner {
    pub replica: Replica,
    done: HashMap<Ticket, Done>,
    links: HashMap<LinkId, LinkEntry>,
    outgoing: HashMap<String, Outgoing>,
    next_link: u64,
    writer: Option<mpsc::Sender<Job>>,
    last_record_lsn: u64,
    durable_lsn: u64,
    pub storage_error: Option<String>,
    pub closed: bool,
    pub protocol_errors: u64,
    pub last_protocol_error: Option<String>,
    pub recovery_corrupt: Option<String>,
    /// SQLite transactions committed by the writer (group commits).
    pub storage_commits: u64,
    /// Records must be stored: with the writer gone (closed), nothing may be
    /// reported persisted.
    persistent: bool,
    logs: Vec<String>,
    /// Where changes and local updates go once an app subscribed
    /// (`Replica.subscribe`, `Replica.on_local_update`).
    pub subscribers: Option<Notices>,
    /// Threads waiting in `flush`: every drain wakes them.
    pub flushing: usize,
    /// Deltas of the transaction whose `Changed` event comes next.
    deltas: Vec<(Key, Vec<DeltaOp>)>,
}

/// One transaction's changes, for subscribers: the keys, and the deltas of
/// the lists and texts among them.
pub type Change = (Vec<Key>, Vec<(Key, Vec<DeltaOp>)>);

/// What the subscribers' thread hands to Python callbacks, in order.
pub enum Notice {
    /// One transaction's changes.
    Change(Change),
    /// A `Txns` frame of local writes that became durable.
    Local(Vec<u8>),
    /// A catch-up moved.
    Progress(minidote_core::SyncProgress),
}

impl Notice {
    /// About the memory it holds while queued.
    pub fn size(&self) -> usize {
        match self {
            Notice::Change((keys, deltas)) => {
                64 * (1 + keys.len()) + deltas.iter().map(|(_, d)| 64 + 32 * d.len()).sum::<usize>()
            }
            Notice::Local(frame) => 64 + frame.len(),
            Notice::Progress(_) => 64,
        }
    }
}

/// Notices queued for the subscribers' thread, at most
/// [`MAX_QUEUED_BYTES`] of them: a callback that blocks or lags must not
/// let every peer's writes pile up in memory. Past the bound, notices are
/// dropped and counted, with a warning.
pub struct Notices {
    pub tx: mpsc::Sender<Notice>,
    /// Bytes queued; the subscribers' thread takes off what it handled.
    pub queued: Arc<AtomicUsize>,
    pub dropped: u64,
}

/// The bound on [`Notices`] (64 MiB).
pub const MAX_QUEUED_BYTES: usize = 64 << 20;

pub struct Shared {
    pub inner: Mutex<Inner>,
    pub cond: Condvar,
    start: Instant,
    stop: CancellationToken,
}

impl Shared {
    pub fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Emits queued log lines, outside the lock.
    /// Logs that are waiting, if the lock is free right now (else the IO
    /// thread flushes them later). Called with the GIL held, so it must not
    /// wait for the lock.
    pub fn try_take_logs(&self) -> Vec<String> {
        match self.inner.try_lock() {
            Ok(mut g) if !g.logs.is_empty() => std::mem::take(&mut g.logs),
            _ => Vec::new(),
        }
    }

    pub fn flush_logs(&self) {
        let logs = std::mem::take(&mut self.lock().logs);
        for l in logs {
            crate::log_warning(l);
        }
    }
}

impl Inner {
    /// Carries out everything the replica asked for.
    pub fn drain(&mut self, cond: &Condvar) {
        let mut wake = false;
        while let Some(r) = self.replica.poll_record() {
            self.last_record_lsn = r.lsn();
            match &self.writer {
                Some(w) => {
                    if w.send(Job::Store(r)).is_err() && self.storage_error.is_none() {
                        self.storage_error = Some("the storage writer stopped".into());
                        wake = true;
                    }
                }
                None if self.persistent => {
                    // Closed: the record can never be stored, so it must
                    // never be reported persisted.
                    if self.storage_error.is_none() {
                        self.storage_error =
                            Some("the replica is closed; the update was not stored".into());
                        wake = true;
                    }
                }
                None => {
                    // Memory-only replicas emit no records; keep the model
                    // honest if one appears anyway.
                    let lsn = r.lsn();
                    self.replica.persisted(lsn);
                }
            }
        }
        let mut slow = Vec::new();
        while let Some(t) = self.replica.poll_transmit() {
            if let Some(l) = self.links.get(&t.link) {
                if let Err(tmpsc::error::TrySendError::Full(_)) = l.tx.try_send(t.frame) {
                    slow.push(t.link);
                }
            }
        }
        for link in slow {
            if let Some(l) = self.links.remove(&link) {
                self.replica.link_closed(link);
                self.note_protocol_error(format!(
                    "minidote link {}: peer is not reading ({LINK_QUEUE_FRAMES} frames queued); disconnected as a slow consumer",
                    l.addr
                ));
            }
        }
        while let Some(ev) = self.replica.poll_event() {
            match ev {
                Event::Committed { ticket, clock } => {
                    self.done.insert(ticket, Done::Committed(clock));
                    wake = true;
                }
                Event::ReadReady {
                    ticket,
                    values,
                    clock,
                } => {
                    self.done.insert(ticket, Done::Read(values, clock));
                    wake = true;
                }
                Event::UpdateFailed { ticket, error } => {
                    self.done.insert(ticket, Done::Failed(error));
                    wake = true;
                }
                Event::LinkFailed { link, error } => {
                    let (addr, outgoing) = self
                        .links
                        .get(&link)
                        .map(|l| (l.addr.clone(), l.outgoing))
                        .unwrap_or_default();
                    self.protocol_error(&addr, &error);
                    // A refusal that retrying cannot fix (token, version,
                    // room, shared id) ends the reconnect loop; `connect`
                    // starts it again once the cause is fixed.
                    if outgoing && error.is_permanent() {
                        if let Some(o) = self.outgoing.remove(&addr) {
                            o.stop.cancel();
                            self.note_protocol_error(format!(
                                "minidote link {addr}: refused for good, not reconnecting ({error})"
                            ));
                        }
                    }
                    // Dropping the sender lets the writer task flush the
                    // queued Error frame, then close the socket.
                    self.links.remove(&link);
                }
                Event::RepairNeeded { conflict } => {
                    self.note_protocol_error(format!(
                        "minidote: a peer holds this replica's transaction {conflict:?} with other bytes: it was restored from an older copy of its file; re-issuing its writes from there under a new replica id"
                    ));
                    // The writer rebuilds from the latest snapshot once the
                    // records before this point are stored.
                    if let Some(w) = &self.writer {
                        let _ = w.send(Job::Repair);
                    }
                }
                Event::Delta { key, delta } => {
                    if self.subscribers.is_some() {
                        self.deltas.push((key, delta));
                    }
                }
                Event::Changed(keys) => {
                    let deltas = std::mem::take(&mut self.deltas);
                    self.notify(Notice::Change((keys, deltas)));
                }
                Event::LocalUpdate(frame) => self.notify(Notice::Local(frame)),
                Event::Progress(p) => self.notify(Notice::Progress(p)),
                Event::LinkUp { .. } => {}
            }
        }
        if wake || self.flushing > 0 {
            cond.notify_all();
        }
    }

    fn notify(&mut self, n: Notice) {
        let Some(q) = &mut self.subscribers else {
            return;
        };
        let size = n.size();
        if q.queued.load(Ordering::Relaxed) + size > MAX_QUEUED_BYTES {
            q.dropped += 1;
            if q.dropped.is_power_of_two() {
                let msg = format!(
                    "minidote: subscribers are {} MiB behind: {} notices dropped (a callback blocks or is too slow)",
                    MAX_QUEUED_BYTES >> 20,
                    q.dropped
                );
                self.logs.push(msg);
            }
            return;
        }
        q.queued.fetch_add(size, Ordering::Relaxed);
        if q.tx.send(n).is_err() {
            self.subscribers = None;
        }
    }

    /// Whether this replica has links to wait for: a `connect()` target or
    /// an accepted peer.
    fn has_links(&self) -> bool {
        !self.outgoing.is_empty() || !self.links.is_empty()
    }

    /// Whether every linked peer reported every own write stored (true
    /// with no links only when there is nothing to deliver).
    fn delivered(&self) -> bool {
        let own = self.replica.clock().get(self.replica.id());
        if !self.has_links() {
            return own == 0;
        }
        // Every configured target must be up (handshake done) and have
        // reported.
        self.outgoing
            .values()
            .all(|o| o.link.is_some_and(|id| self.replica.link_established(id)))
            && self.replica.stored_everywhere()
    }

    fn protocol_error(&mut self, addr: &str, error: &ProtocolError) {
        self.note_protocol_error(format!("minidote link {addr}: {error}"));
    }

    /// Counts a link-ending error and queues it for Python's logging. Never
    /// call into Python while holding the lock: a Python thread may hold the
    /// GIL while waiting for it.
    pub fn note_protocol_error(&mut self, msg: String) {
        self.protocol_errors += 1;
        self.last_protocol_error = Some(msg.clone());
        self.logs.push(msg);
    }
}

/// One replica's IO: the shared state, the tokio runtime, the writer thread.
pub struct Node {
    pub shared: Arc<Shared>,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Node {
    pub fn new(replica: Replica, store: Option<Store>) -> io::Result<Node> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("minidote-io")
            .enable_all()
            .build()?;
        let (writer_tx, writer_rx) = match store {
            Some(_) => {
                let (tx, rx) = mpsc::channel::<Job>();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let persistent = writer_tx.is_some();
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                replica,
                done: HashMap::new(),
                links: HashMap::new(),
                outgoing: HashMap::new(),
                next_link: 1,
                writer: writer_tx,
                last_record_lsn: 0,
                durable_lsn: 0,
                storage_error: None,
                closed: false,
                protocol_errors: 0,
                last_protocol_error: None,
                recovery_corrupt: None,
                storage_commits: 0,
                persistent,
                logs: Vec::new(),
                subscribers: None,
                flushing: 0,
                deltas: Vec::new(),
            }),
            cond: Condvar::new(),
            start: Instant::now(),
            stop: CancellationToken::new(),
        });
        let writer = match (store, writer_rx) {
            (Some(store), Some(rx)) => {
                let sh = shared.clone();
                Some(
                    std::thread::Builder::new()
                        .name("minidote-writer".into())
                        .spawn(move || writer_loop(store, rx, sh))?,
                )
            }
            _ => None,
        };
        let sh = shared.clone();
        rt.spawn(timer_loop(sh));
        Ok(Node {
            shared,
            handle: rt.handle().clone(),
            rt: Mutex::new(Some(rt)),
            writer: Mutex::new(writer),
        })
    }

    fn rt(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Binds a TCP listener and accepts peers on it; returns the port. With
    /// `auth`, every peer's `Hello` must carry a valid token for this room
    /// (bound to the replica it announces, if the token says so), and the
    /// token's scope decides what it may send: read, its own transactions,
    /// or (forward, snapshot) the room's.
    pub fn listen(
        &self,
        addr: &str,
        auth: Option<Arc<minidote_auth::Verifier>>,
    ) -> io::Result<u16> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let _guard = self.rt().enter();
        let listener = TcpListener::from_std(std_listener)?;
        let sh = self.shared.clone();
        self.rt().spawn(async move {
            loop {
                tokio::select! {
                    _ = sh.stop.cancelled() => break,
                    r = listener.accept() => match r {
                        Ok((stream, peer)) => {
                            let incoming = sh.lock().links.values().filter(|l| !l.outgoing).count();
                            if incoming >= MAX_ACCEPTED_LINKS {
                                sh.lock().note_protocol_error(format!(
                                    "minidote listener: refused {peer}: already {MAX_ACCEPTED_LINKS} incoming links"
                                ));
                                sh.flush_logs();
                                drop(stream);
                                continue;
                            }
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(run_link(sh.clone(), stream, peer.to_string(), Side::Accepted(auth.clone())));
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            }
        });
        Ok(port)
    }

    /// Keeps a link to `addr` up, reconnecting with backoff, until
    /// `disconnect(addr)` or `close()`.
    pub fn connect(&self, addr: String, target: Target, token: Option<String>) {
        let stop = {
            let mut g = self.shared.lock();
            if g.outgoing.contains_key(&addr) {
                return;
            }
            let stop = self.shared.stop.child_token();
            g.outgoing.insert(
                addr.clone(),
                Outgoing {
                    stop: stop.clone(),
                    link: None,
                },
            );
            stop
        };
        let sh = self.shared.clone();
        self.rt().spawn(async move {
            let mut backoff = Duration::from_millis(50);
            let mut last_error = String::new();
            while !stop.is_cancelled() {
                let mut began = None;
                let ended = match &target {
                    Target::Tcp(a) => {
                        let attempt = tokio::select! {
                            _ = stop.cancelled() => break,
                            r = TcpStream::connect(a) => r,
                        };
                        match attempt {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                began = Some(Instant::now());
                                tokio::select! {
                                    _ = stop.cancelled() => break,
                                    _ = run_link(sh.clone(), stream, addr.clone(), Side::Dialed(token.clone())) => {}
                                }
                                Ok(())
                            }
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    Target::Ws { url, tls } => {
                        let attempt = tokio::select! {
                            _ = stop.cancelled() => break,
                            r = dial_ws(url, tls.clone()) => r,
                        };
                        match attempt {
                            Ok(ws) => {
                                began = Some(Instant::now());
                                tokio::select! {
                                    _ = stop.cancelled() => break,
                                    _ = run_ws_link(sh.clone(), ws, addr.clone(), token.clone()) => {}
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                };
                // A WebSocket or TLS refusal (bad certificate, no /sync)
                // is logged once, not on every retry.
                if let Err(e) = ended {
                    if matches!(target, Target::Ws { .. }) && e != last_error {
                        sh.lock().note_protocol_error(format!("minidote link {addr}: {e}"));
                        sh.flush_logs();
                    }
                    last_error = e;
                }
                // Only a link that stayed up resets the backoff: a peer
                // that refuses every handshake (a protocol error, a full
                // relay) is retried ever more slowly, not in a loop.
                if began.is_some_and(|b| b.elapsed() >= STABLE_LINK) {
                    backoff = Duration::from_millis(50);
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    /// Drops the link to `addr` and stops reconnecting to it.
    pub fn disconnect(&self, addr: &str) -> bool {
        let mut g = self.shared.lock();
        let Some(o) = g.outgoing.remove(addr) else {
            return false;
        };
        o.stop.cancel();
        let ids: Vec<LinkId> = g
            .links
            .iter()
            .filter(|(_, l)| l.outgoing && l.addr == addr)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            g.links.remove(&id);
            g.replica.link_closed(id);
        }
        g.drain(&self.shared.cond);
        true
    }

    /// One entry per link and per `connect()` target without a live link.
    pub fn peers(&self) -> Vec<(String, Option<String>, bool, VectorClock)> {
        let g = self.shared.lock();
        let stats = g.replica.stats();
        let mut out = Vec::new();
        let mut seen_addrs = Vec::new();
        for p in &stats.peers {
            if let Some(l) = g.links.get(&p.link) {
                seen_addrs.push(l.addr.clone());
                out.push((
                    l.addr.clone(),
                    p.id.map(|i| i.to_string()),
                    p.connected,
                    p.clock.clone(),
                ));
            }
        }
        for (addr, o) in &g.outgoing {
            if o.link.is_none() && !seen_addrs.contains(addr) {
                out.push((addr.clone(), None, false, VectorClock::new()));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    pub fn stats(&self) -> (Stats, u64, Option<String>, Option<String>, u64) {
        let g = self.shared.lock();
        (
            g.replica.stats(),
            g.protocol_errors,
            g.last_protocol_error.clone(),
            g.recovery_corrupt.clone(),
            g.storage_commits,
        )
    }

    /// Takes a snapshot and waits until it is stored.
    pub fn snapshot(&self) -> Result<(), WaitError> {
        let mut g = self.shared.lock();
        g.replica.snapshot();
        g.drain(&self.shared.cond);
        let target = g.last_record_lsn;
        while g.writer.is_some() && g.durable_lsn < target {
            if let Some(e) = &g.storage_error {
                return Err(WaitError::Storage(e.clone()));
            }
            g = self.shared.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }

    /// Waits for a ticket. With a deadline, a request still waiting for its
    /// clock is cancelled when it passes; one that already ran is waited for.
    pub fn wait(
        &self,
        mut g: MutexGuard<'_, Inner>,
        ticket: Ticket,
        deadline: Option<Instant>,
    ) -> Result<Done, WaitError> {
        let mut deadline = deadline;
        loop {
            if let Some(d) = g.done.remove(&ticket) {
                return Ok(d);
            }
            if let Some(e) = &g.storage_error {
                return Err(WaitError::Storage(e.clone()));
            }
            if g.closed {
                return Err(WaitError::Closed);
            }
            match deadline {
                None => g = self.shared.cond.wait(g).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        if g.replica.cancel(ticket) {
                            return Err(WaitError::Timeout);
                        }
                        // It ran already: only its record is being stored.
                        deadline = None;
                        continue;
                    }
                    g = self
                        .shared
                        .cond
                        .wait_timeout(g, d - now)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    /// Waits until every configured link's handshake completed and what
    /// the peers had then has arrived (`Replica::catching_up`), or
    /// `deadline`. False with no link at all.
    pub fn catch_up(&self, deadline: Instant) -> bool {
        self.wait_for(deadline, |g| {
            if !g.has_links() || g.closed {
                return Some(false);
            }
            let linked = g
                .outgoing
                .values()
                .all(|o| o.link.is_some_and(|id| g.replica.link_established(id)));
            (linked && !g.replica.catching_up()).then_some(true)
        })
    }

    /// Waits until every linked relay or peer has reported every write of
    /// this replica stored (`Replica::stored_everywhere`), or `deadline`.
    pub fn flush(&self, deadline: Instant) -> bool {
        self.wait_for(deadline, |g| {
            if g.delivered() {
                return Some(true);
            }
            // No link to wait for, a closed replica, a failed store: it
            // cannot happen.
            if !g.has_links() || g.closed || g.storage_error.is_some() {
                return Some(false);
            }
            None
        })
    }

    /// Waits until `done` says how it ended, or `deadline` (false). Woken by
    /// every drain meanwhile (`flushing`); the 100 ms cap also covers a link
    /// that comes up without a frame we could see.
    fn wait_for(&self, deadline: Instant, mut done: impl FnMut(&Inner) -> Option<bool>) -> bool {
        let mut g = self.shared.lock();
        g.flushing += 1;
        let out = loop {
            if let Some(out) = done(&g) {
                break out;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            let wait = (deadline - now).min(Duration::from_millis(100));
            g = self
                .shared
                .cond
                .wait_timeout(g, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        g.flushing -= 1;
        out
    }

    /// Stops everything: links, listeners, timers; flushes and closes the
    /// store. With links, first waits up to `flush_timeout` for peers to
    /// report this replica's writes stored, and logs it if they did not.
    pub fn close(&self, flush_timeout: Duration) {
        let flush = {
            let g = self.shared.lock();
            !g.closed && g.has_links() && g.replica.clock().get(g.replica.id()) > 0
        };
        if flush && !self.flush(Instant::now() + flush_timeout) {
            let mut g = self.shared.lock();
            let own = g.replica.clock().get(g.replica.id());
            let stored: Vec<String> = g
                .replica
                .stats()
                .peers
                .iter()
                .map(|p| format!("{}", p.stored))
                .collect();
            let fate = if g.persistent {
                "they stay in the database and are sent when it is opened and linked again"
            } else {
                "this memory-only replica loses them"
            };
            let msg = format!(
                "minidote: closing after {:.1} s without every peer confirming this replica's {own} writes (peers confirmed: [{}]); {fate}",
                flush_timeout.as_secs_f64(),
                stored.join(", ")
            );
            g.logs.push(msg);
        }
        self.shared.flush_logs();
        {
            let mut g = self.shared.lock();
            if g.closed {
                return;
            }
            g.closed = true;
            let ids: Vec<LinkId> = g.links.keys().copied().collect();
            for id in ids {
                g.replica.link_closed(id);
            }
            g.links.clear();
            g.outgoing.clear();
            // Ends the subscribers' thread once it delivered what is queued.
            g.subscribers = None;
            // Dropping the sender ends the writer after it stored the rest.
            g.writer = None;
        }
        self.shared.stop.cancel();
        self.shared.cond.notify_all();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.join();
        }
        let rt = self.rt.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rt) = rt {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.close(Duration::ZERO);
    }
}

/// What the writer thread is asked to do, in order.
pub enum Job {
    /// Store a record (records queued together share one commit).
    Store(Record),
    /// Re-issue a restored replica's writes (`Replica::repair`) from the
    /// latest stored snapshot, once every record queued before is stored.
    Repair,
}

fn writer_loop(mut store: Store, rx: mpsc::Receiver<Job>, shared: Arc<Shared>) {
    while let Ok(first) = rx.recv() {
        // Group commit: everything queued while the last fsync ran.
        let mut batch = Vec::new();
        let mut repair = false;
        match first {
            Job::Store(r) => batch.push(r),
            Job::Repair => repair = true,
        }
        while !repair && batch.len() < 50_000 {
            match rx.try_recv() {
                Ok(Job::Store(r)) => batch.push(r),
                Ok(Job::Repair) => repair = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() && !commit(&mut store, &batch, &shared) {
            return;
        }
        if repair {
            run_repair(&mut store, &shared);
        }
    }
}

/// Rebuilds a restored replica from the latest stored snapshot. The
/// re-issue record it emits is queued behind this job and stored next.
fn run_repair(store: &mut Store, shared: &Arc<Shared>) {
    let base = store.latest_snapshot();
    let mut g = shared.lock();
    let base = match base {
        Ok(b) => b,
        Err(e) => {
            g.note_protocol_error(format!("minidote: cannot repair: {}", e.0));
            return;
        }
    };
    match g.replica.repair(base.as_deref()) {
        Ok(done) => {
            g.note_protocol_error(format!(
                "minidote: re-issued {} writes of replica {} (from seq {}) as replica {}",
                done.reissued, done.old_id, done.from_seq, done.new_id
            ));
        }
        // A local write is still on its way to the disk: once it is
        // stored, try again.
        Err(minidote_core::RepairError::NotDurable) => {
            if let Some(w) = &g.writer {
                let _ = w.send(Job::Repair);
            }
        }
        Err(minidote_core::RepairError::NotNeeded) => {}
        Err(e) => g.note_protocol_error(format!("minidote: cannot repair: {e}")),
    }
    g.drain(&shared.cond);
    shared.cond.notify_all();
}

/// Stores one group of records and reports them persisted; false once
/// storage failed (the writer stops).
fn commit(store: &mut Store, batch: &[Record], shared: &Arc<Shared>) -> bool {
    let top = batch.last().map(Record::lsn).unwrap_or(0);
    let result = store.append(batch);
    let mut g = shared.lock();
    match result {
        Ok(()) => {
            g.storage_commits += 1;
            g.durable_lsn = top;
            g.replica.persisted(top);
            g.drain(&shared.cond);
            shared.cond.notify_all();
            true
        }
        Err(e) => {
            g.storage_error = Some(format!("writing to SQLite failed: {}", e.0));
            shared.cond.notify_all();
            false
        }
    }
}

async fn timer_loop(sh: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = sh.stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        let now = sh.now_ms();
        let mut g = sh.lock();
        if g.closed {
            break;
        }
        if g.replica.poll_timeout().is_some_and(|t| t <= now) {
            g.replica.handle_timeout(now);
            g.drain(&sh.cond);
            drop(g);
            sh.flush_logs();
        }
    }
}

/// Runs one connected link until it ends; cleans up after itself.
/// Which side of a link this replica is.
enum Side {
    /// We dialed the peer (a relay, or a replica we chose): it is trusted
    /// with the room; the token, if any, is sent in our Hello.
    Dialed(Option<String>),
    /// The peer dialed our listener; with a verifier, its Hello's token is
    /// checked first and its scope decides what it may send.
    Accepted(Option<Arc<minidote_auth::Verifier>>),
}

async fn run_link(sh: Arc<Shared>, stream: TcpStream, addr: String, side: Side) {
    let (rd, wr) = stream.into_split();
    // One reader for the whole link: it keeps what arrived past a frame.
    let mut rd = FramedRead::with_capacity(
        rd,
        FrameCodec::new(MaxLen(MAX_FRAME_BEFORE_HELLO)),
        READ_GROW,
    );
    let outgoing = matches!(side, Side::Dialed(_));
    let (token, policy, first, expires) = match side {
        Side::Dialed(token) => (token, LinkPolicy::TRUSTED, None, None),
        Side::Accepted(None) => (None, LinkPolicy::TRUSTED, None, None),
        Side::Accepted(Some(v)) => match admit(&sh, &mut rd, &v, &addr).await {
            Ok((policy, hello, expires)) => (None, policy, Some(hello), Some(expires)),
            Err(refusal) => {
                // Best effort: the peer learns why, then the link closes.
                let mut wr = wr;
                if let Some(frame) = refusal {
                    let mut buf = (frame.len() as u32).to_be_bytes().to_vec();
                    buf.extend_from_slice(&frame);
                    let _ = tokio::time::timeout(Duration::from_secs(2), wr.write_all(&buf)).await;
                }
                sh.flush_logs();
                return;
            }
        },
    };
    let Some((link, tx, rx, cancel)) = open_link(&sh, &addr, outgoing, token, policy, first) else {
        return;
    };
    let writer = tokio::spawn(write_loop(wr, rx));
    // A token that expires ends the link then.
    let expiry = async {
        match expires {
            Some(exp) => {
                let left = exp.saturating_sub(minidote_auth::now_secs());
                tokio::time::sleep(Duration::from_secs(left)).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = read_loop(&sh, rd, link, &addr) => {}
        _ = expiry => {
            let f = Frame::Error {
                code: error_code::EXPIRED,
                message: "token expired: connect again with a fresh token".into(),
            };
            let _ = tx.try_send(f.encode());
            sh.lock().note_protocol_error(format!("minidote listener: {addr}: token expired, link closed"));
        }
    }
    drop(tx);
    close_link(&sh, link, &addr);
    let _ = writer.await;
}

/// A registered link: its id, its outgoing queue (both ends) and what
/// ends it.
type OpenLink = (
    LinkId,
    tmpsc::Sender<Vec<u8>>,
    tmpsc::Receiver<Vec<u8>>,
    CancellationToken,
);

/// Registers a connected link with the replica and queues its `Hello`
/// (and handles an accepted peer's, read already). `None` once closed.
fn open_link(
    sh: &Arc<Shared>,
    addr: &str,
    outgoing: bool,
    token: Option<String>,
    policy: LinkPolicy,
    first: Option<Vec<u8>>,
) -> Option<OpenLink> {
    let (tx, rx) = tmpsc::channel(LINK_QUEUE_FRAMES);
    let cancel = sh.stop.child_token();
    let mut g = sh.lock();
    if g.closed {
        return None;
    }
    let id = LinkId(g.next_link);
    g.next_link += 1;
    g.links.insert(
        id,
        LinkEntry {
            tx: tx.clone(),
            addr: addr.to_owned(),
            outgoing,
            cancel: cancel.clone(),
        },
    );
    if outgoing {
        if let Some(o) = g.outgoing.get_mut(addr) {
            o.link = Some(id);
        }
    }
    let now = sh.now_ms();
    g.replica.link_open_with(id, token, policy, now);
    let failed = first
        .as_ref()
        .is_some_and(|hello| g.replica.handle_frame(id, hello, now).is_err());
    g.drain(&sh.cond);
    if failed {
        cancel.cancel();
    }
    Some((id, tx, rx, cancel))
}

/// Forgets a link that ended.
fn close_link(sh: &Arc<Shared>, link: LinkId, addr: &str) {
    sh.flush_logs();
    {
        let mut g = sh.lock();
        if g.links.remove(&link).is_some() {
            g.replica.link_closed(link);
        }
        if let Some(o) = g.outgoing.get_mut(addr) {
            if o.link == Some(link) {
                o.link = None;
            }
        }
        g.drain(&sh.cond);
    }
    sh.flush_logs();
}

/// A WebSocket to a relay's `/sync` (`ws://`, or `wss://` through rustls).
type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url`: frames of at most [`MAX_INCOMING_FRAME`].
async fn dial_ws(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Ws, String> {
    let mut config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    config.max_message_size = Some(MAX_INCOMING_FRAME);
    config.max_frame_size = Some(MAX_INCOMING_FRAME);
    let connector = tls.map(tokio_tungstenite::Connector::Rustls);
    let (ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector)
            .await
            .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// Runs one WebSocket link to a relay until it ends: binary messages are
/// frames, as on the relay's side.
async fn run_ws_link(sh: Arc<Shared>, ws: Ws, addr: String, token: Option<String>) {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let (mut sink, mut stream) = ws.split();
    let Some((link, tx, mut rx, cancel)) =
        open_link(&sh, &addr, true, token, LinkPolicy::TRUSTED, None)
    else {
        return;
    };
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let read = async {
        while let Some(msg) = stream.next().await {
            let bytes = match msg {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(_)) | Err(_) => return,
                Ok(_) => continue,
            };
            let mut g = sh.lock();
            if !g.links.contains_key(&link) {
                return;
            }
            if !g.replica.link_established(link) && bytes.len() > MAX_FRAME_BEFORE_HELLO {
                g.note_protocol_error(format!(
                    "minidote link {addr}: frame of {} bytes before Hello exceeds the {MAX_FRAME_BEFORE_HELLO}-byte limit",
                    bytes.len()
                ));
                return;
            }
            let now = sh.now_ms();
            let failed = g.replica.handle_frame(link, &bytes, now).is_err();
            g.drain(&sh.cond);
            if failed {
                return;
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = read => {}
    }
    drop(tx);
    close_link(&sh, link, &addr);
    let _ = writer.await;
}

/// Reads an accepted peer's first frame and checks its token before
/// anything large in it is decoded. `Ok((policy, hello, expiry))`, or the
/// `Error` frame to send before closing (`None`: just close).
async fn admit(
    sh: &Arc<Shared>,
    rd: &mut Reader,
    v: &minidote_auth::Verifier,
    addr: &str,
) -> Result<(LinkPolicy, Vec<u8>, u64), Option<Vec<u8>>> {
    let refuse = |code: u16, message: String| {
        sh.lock()
            .note_protocol_error(format!("minidote listener: refused {addr}: {message}"));
        Some(Frame::Error { code, message }.encode())
    };
    let hello = match tokio::time::timeout(HELLO_WAIT, read_frame(rd, MAX_FRAME_BEFORE_HELLO)).await {
        Ok(Ok(Some(f))) => f.to_vec(),
        Ok(Err(LenError::TooLarge(n, _))) => {
            return Err(refuse(
                error_code::TOO_LARGE,
                format!("frame of {n} bytes before Hello is over the limit of {MAX_FRAME_BEFORE_HELLO} bytes"),
            ))
        }
        _ => return Err(None),
    };
    let head = match HelloHead::parse(&hello) {
        Ok(h) => h,
        Err(e) => {
            return Err(refuse(
                error_code::MALFORMED,
                format!("the first frame must be a Hello: {e}"),
            ))
        }
    };
    let room = sh.lock().replica.room().to_owned();
    let claims = match head.token {
        None => Err(minidote_auth::TokenError::Missing),
        Some(t) => v.verify(t, &room, head.replica, minidote_auth::now_secs()),
    };
    let claims = match claims {
        Ok(c) => c,
        Err(e) => {
            return Err(refuse(
                error_code::UNAUTHORIZED,
                format!("unauthorized for room {room:?}: {e}"),
            ))
        }
    };
    use minidote_auth::Scope;
    let policy = match claims.scope {
        Scope::Read => LinkPolicy::READ,
        Scope::Write => LinkPolicy::OWN,
        Scope::Forward => LinkPolicy {
            write: true,
            forward: true,
            snapshots: false,
        },
        Scope::Snapshot => LinkPolicy::TRUSTED,
    };
    Ok((policy, hello, claims.expires))
}

/// A link's reading half: tokio-util's `FramedRead` with Minidote's TCP
/// framing (relay/framing), cancel-safe and bounded by a maximum length
/// checked before the body is read; nothing is reserved for a declared
/// length, so it costs what was sent.
type Reader = FramedRead<OwnedReadHalf, FrameCodec<MaxLen>>;

/// Reads one frame of at most `limit` bytes; `Ok(None)` at a clean end.
async fn read_frame(rd: &mut Reader, limit: usize) -> Result<Option<BytesMut>, LenError> {
    rd.decoder_mut().check = MaxLen(limit);
    rd.next().await.transpose()
}

async fn write_loop(mut wr: OwnedWriteHalf, mut rx: tmpsc::Receiver<Vec<u8>>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(frame) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        buf.extend_from_slice(&frame);
        // Coalesce what is already queued into one write.
        while buf.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(f) => {
                    buf.extend_from_slice(&(f.len() as u32).to_be_bytes());
                    buf.extend_from_slice(&f);
                }
                Err(_) => break,
            }
        }
        if wr.write_all(&buf).await.is_err() {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop(sh: &Arc<Shared>, mut rd: Reader, link: LinkId, addr: &str) {
    loop {
        let limit = if sh.lock().replica.link_established(link) {
            MAX_INCOMING_FRAME
        } else {
            MAX_FRAME_BEFORE_HELLO
        };
        let frame = match read_frame(&mut rd, limit).await {
            Ok(Some(f)) => f,
            Ok(None) | Err(LenError::Io(_)) => return,
            Err(LenError::TooLarge(n, _)) => {
                sh.lock().note_protocol_error(format!(
                    "minidote link {addr}: frame of {n} bytes exceeds the {limit}-byte limit (garbage or a non-minidote peer)"
                ));
                return;
            }
        };
        let mut g = sh.lock();
        if !g.links.contains_key(&link) {
            return;
        }
        let now = sh.now_ms();
        let failed = g.replica.handle_frame(link, &frame, now).is_err();
        g.drain(&sh.cond);
        if failed {
            return;
        }
    }
}

/// Builds the core configuration for a binding replica.
pub fn config(room: &str, persistent: bool, snapshot_every: u64) -> Config {
    Config {
        room: room.to_owned(),
        persistent,
        snapshot_every,
        anti_entropy_ms: 1_000,
        idle_timeout_ms: 30_000,
        ..Config::default()
    }
}
