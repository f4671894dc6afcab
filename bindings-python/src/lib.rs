//! `minidote._minidote`: the Python binding of minidote-core.
//!
//! The binding holds no CRDT logic: it converts values, stores the core's
//! records in SQLite, carries frames over TCP, and waits (with the GIL
//! released) for the core's tickets to complete.

mod convert;
mod errors;
mod node;
mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use minidote_core::{ReadOutcome, Replica as CoreReplica, ReplicaId, UpdateOutcome, VectorClock};
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use node::{Done, Node, WaitError};

/// Writes a warning to Python's `logging` (logger "minidote").
pub(crate) fn log_warning(msg: String) {
    let _ = Python::try_attach(|py| -> PyResult<()> {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("minidote",))?;
        logger.call_method1("warning", (msg,))?;
        Ok(())
    });
}

/// An immutable vector clock. Its bytes are the same in every binding, so a
/// clock can travel between Python and JS and keep its session guarantee.
#[pyclass(frozen, module = "minidote._minidote", name = "Clock")]
#[derive(Clone)]
struct Clock {
    inner: VectorClock,
}

#[pymethods]
impl Clock {
    #[new]
    fn py_new() -> Self {
        Clock {
            inner: VectorClock::new(),
        }
    }

    /// Parses bytes made by `to_bytes()` (here or in JS).
    #[staticmethod]
    fn from_bytes(py: Python<'_>, b: &[u8]) -> PyResult<Self> {
        VectorClock::from_bytes(b)
            .map(|inner| Clock { inner })
            .map_err(|e| errors::invalid(py, format!("not a minidote clock: {e}")))
    }

    fn to_bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    /// `{replica_id (16 hex digits): seq}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (r, s) in self.inner.iter() {
            d.set_item(r.to_string(), s)?;
        }
        Ok(d)
    }

    fn merge(&self, other: &Clock) -> Clock {
        Clock {
            inner: self.inner.merged(&other.inner),
        }
    }

    fn concurrent(&self, other: &Clock) -> bool {
        self.inner.concurrent(&other.inner)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let Ok(other) = other.extract::<PyRef<'_, Clock>>() else {
            return py.NotImplemented();
        };
        let (a, b) = (&self.inner, &other.inner);
        let r = match op {
            CompareOp::Le => a.leq(b),
            CompareOp::Lt => a.lt(b),
            CompareOp::Ge => b.leq(a),
            CompareOp::Gt => b.lt(a),
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
        };
        r.into_pyobject(py)
            .map(|b| b.to_owned().into_any().unbind())
            .unwrap_or_else(|_| py.None())
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.hash(&mut h);
        h.finish()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __repr__(&self) -> String {
        let parts: Vec<String> = self
            .inner
            .iter()
            .map(|(r, s)| format!("'{r}': {s}"))
            .collect();
        format!("Clock({{{}}})", parts.join(", "))
    }
}

/// A replica: a full copy of the data, durable in SQLite when `path` is set,
/// linked to peers over TCP.
#[pyclass(frozen, module = "minidote._minidote", name = "Replica")]
struct Replica {
    node: std::sync::Mutex<Option<Arc<Node>>>,
    id: String,
    room: String,
    path: Option<PathBuf>,
    subs: Subscribers,
    local_subs: Subscribers,
    progress_subs: Subscribers,
    /// Keys of recent calls, by content.
    keys: convert::KeyCache,
}

/// Subscribed callbacks, by id.
type Subscribers = Arc<std::sync::Mutex<Vec<(u64, Py<PyAny>)>>>;

/// What a callback is subscribed to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `subscribe`: changed keys and deltas.
    Change,
    /// `on_local_update`: frames of own writes.
    Local,
    /// `on_progress`: catch-up progress.
    Progress,
}

/// Calling it ends a subscription (`Replica.subscribe`). Idempotent.
#[pyclass(frozen, module = "minidote._minidote", name = "Unsubscribe")]
struct Unsubscribe {
    subs: Subscribers,
    id: u64,
    kind: Kind,
    node: std::sync::Weak<Node>,
}

#[pymethods]
impl Unsubscribe {
    fn __call__(&self, py: Python<'_>) {
        let empty = {
            let mut g = self.subs.lock().unwrap_or_else(|p| p.into_inner());
            g.retain(|(i, _)| *i != self.id);
            g.is_empty()
        };
        // The last one gone: the replica stops making what no one takes.
        // Progress events cost nothing to make: only the other two kinds
        // are turned off.
        let node = self
            .node
            .upgrade()
            .filter(|_| empty && self.kind != Kind::Progress);
        if let Some(node) = node {
            let (subs, local) = (self.subs.clone(), self.kind == Kind::Local);
            py.detach(move || {
                let mut g = node.shared.lock();
                // Checked again under the replica's lock: a new subscriber
                // turns it back on under the same lock.
                if subs.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                    if local {
                        g.replica.set_emit_local_updates(false);
                    } else {
                        g.replica.set_emit_changes(false);
                    }
                }
            });
        }
    }
}

/// `(key, type, bucket)`.
fn key_tuple<'py>(py: Python<'py>, k: &minidote_core::Key) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(py, [&*k.key, k.ty.name(), &*k.bucket])
}

/// A delta as `[{"retain": n}, {"insert": x}, {"delete": n}]`, code points.
fn delta_list<'py>(py: Python<'py>, d: &[minidote_core::DeltaOp]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for op in d {
        let e = PyDict::new(py);
        match op {
            minidote_core::DeltaOp::Retain { n, .. } => e.set_item("retain", n)?,
            minidote_core::DeltaOp::Delete { n, .. } => e.set_item("delete", n)?,
            minidote_core::DeltaOp::Insert(v) => {
                e.set_item("insert", convert::from_value(py, v)?)?
            }
        }
        out.append(e)?;
    }
    Ok(out)
}

/// Calls every subscriber with each change, and every local-update
/// callback with each frame, on this thread, until the replica closes.
fn dispatch(
    rx: std::sync::mpsc::Receiver<node::Notice>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    subs: Subscribers,
    local: Subscribers,
    progress: Subscribers,
) {
    while let Ok(notice) = rx.recv() {
        queued.fetch_sub(notice.size(), std::sync::atomic::Ordering::Relaxed);
        let (keys, deltas) = match notice {
            node::Notice::Change(c) => c,
            node::Notice::Progress(p) => {
                Python::attach(|py| {
                    let cbs: Vec<Py<PyAny>> = {
                        let g = progress.lock().unwrap_or_else(|p| p.into_inner());
                        g.iter().map(|(_, c)| c.clone_ref(py)).collect()
                    };
                    let d = PyDict::new(py);
                    let filled = (|| -> PyResult<()> {
                        d.set_item("received", p.received)?;
                        d.set_item("expected", p.expected)?;
                        d.set_item("bytes", p.bytes)?;
                        d.set_item("done", p.done)
                    })();
                    if let Err(e) = filled {
                        e.write_unraisable(py, None);
                        return;
                    }
                    for cb in cbs {
                        if let Err(e) = cb.call1(py, (d.copy().unwrap_or_else(|_| d.clone()),)) {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    }
                });
                continue;
            }
            node::Notice::Local(frame) => {
                Python::attach(|py| {
                    let cbs: Vec<Py<PyAny>> = {
                        let g = local.lock().unwrap_or_else(|p| p.into_inner());
                        g.iter().map(|(_, c)| c.clone_ref(py)).collect()
                    };
                    let b = PyBytes::new(py, &frame);
                    for cb in cbs {
                        if let Err(e) = cb.call1(py, (b.clone(),)) {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    }
                });
                continue;
            }
        };
        Python::attach(|py| {
            let cbs: Vec<Py<PyAny>> = {
                let g = subs.lock().unwrap_or_else(|p| p.into_inner());
                g.iter().map(|(_, c)| c.clone_ref(py)).collect()
            };
            if cbs.is_empty() {
                return;
            }
            let args = || -> PyResult<(Bound<'_, PyList>, Bound<'_, PyDict>)> {
                let ks = PyList::empty(py);
                for k in &keys {
                    ks.append(key_tuple(py, k)?)?;
                }
                let ds = PyDict::new(py);
                for (k, d) in &deltas {
                    ds.set_item(key_tuple(py, k)?, delta_list(py, d)?)?;
                }
                Ok((ks, ds))
            };
            match args() {
                Ok((ks, ds)) => {
                    for cb in cbs {
                        if let Err(e) = cb.call1(py, (ks.clone(), ds.clone())) {
                            e.write_unraisable(py, Some(cb.bind(py)));
                        }
                    }
                }
                Err(e) => e.write_unraisable(py, None),
            }
        });
    }
}

fn random_id() -> ReplicaId {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: fall back to time and address entropy.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ (&b as *const _ as u64).rotate_left(32)).to_le_bytes();
    }
    ReplicaId(u64::from_le_bytes(b))
}

/// A timeout in seconds as a duration: negative and NaN are 0, infinite
/// and huge ones a billion seconds.
fn seconds(t: f64) -> Duration {
    Duration::from_secs_f64(if t.is_nan() { 0.0 } else { t.clamp(0.0, 1e9) })
}

fn deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)))
}

fn wait_error(py: Python<'_>, e: WaitError, what: &str) -> PyErr {
    match e {
        WaitError::Timeout => errors::timeout(
            py,
            format!("{what}: the replica did not reach the given clock in time"),
        ),
        WaitError::Storage(m) => errors::storage(py, m),
        WaitError::Closed => errors::base(py, "the replica is closed"),
    }
}

impl Replica {
    /// The node, without holding any lock: waits must never hold a lock
    /// another Python thread could need while it holds the GIL.
    fn node(&self, py: Python<'_>) -> PyResult<Arc<Node>> {
        let g = self.node.lock().unwrap_or_else(|p| p.into_inner());
        g.clone()
            .ok_or_else(|| errors::base(py, "the replica is closed"))
    }

    /// Runs `f` on the node with the GIL released.
    fn with_node<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&Node) -> T + Send) -> PyResult<T> {
        let n = self.node(py)?;
        let out = py.detach(|| {
            let out = f(&n);
            n.shared.flush_logs();
            out
        });
        Ok(out)
    }
}

impl Replica {
    fn add_callback(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        kind: Kind,
        what: &str,
    ) -> PyResult<Unsubscribe> {
        if !callback.bind(py).is_callable() {
            return Err(errors::invalid(
                py,
                format!("{what}: the callback must be callable"),
            ));
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let list = match kind {
            Kind::Change => &self.subs,
            Kind::Local => &self.local_subs,
            Kind::Progress => &self.progress_subs,
        };
        list.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, callback));
        let list = list.clone();
        let (subs, local_subs, progress_subs) = (
            self.subs.clone(),
            self.local_subs.clone(),
            self.progress_subs.clone(),
        );
        let started = self.with_node(py, move |n| -> std::io::Result<()> {
            let mut g = n.shared.lock();
            if g.subscribers.is_none() {
                let (tx, rx) = std::sync::mpsc::channel();
                let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let q = queued.clone();
                std::thread::Builder::new()
                    .name("minidote-subscribers".into())
                    .spawn(move || dispatch(rx, q, subs, local_subs, progress_subs))?;
                g.subscribers = Some(node::Notices {
                    tx,
                    queued,
                    dropped: 0,
                });
            }
            match kind {
                Kind::Change => g.replica.set_emit_changes(true),
                Kind::Local => g.replica.set_emit_local_updates(true),
                Kind::Progress => {}
            }
            Ok(())
        })?;
        started.map_err(|e| errors::base(py, format!("{what}: {e}")))?;
        Ok(Unsubscribe {
            subs: list,
            id,
            kind,
            node: Arc::downgrade(&self.node(py)?),
        })
    }
}

/// `loop.run_in_executor(None, self.<method>, items, clock, timeout)` on
/// the running loop. `items` is copied into a list first: the caller may
/// change its own while the call waits.
fn in_executor<'py>(
    slf: &Bound<'py, Replica>,
    method: &str,
    items: &Bound<'py, PyAny>,
    clock: Option<&Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = slf.py();
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let items = PyList::new(py, items.try_iter()?.collect::<PyResult<Vec<_>>>()?)?;
    event_loop.call_method1(
        "run_in_executor",
        (py.None(), slf.getattr(method)?, items, clock, timeout),
    )
}

#[pymethods]
impl Replica {
    #[new]
    #[pyo3(
        signature = (path=None, *, room="default".to_owned(), snapshot_every=10_000, durability="full".to_owned()),
        text_signature = "(path=None, *, room='default', snapshot_every=10000, durability='full')"
    )]
    fn py_new(
        py: Python<'_>,
        path: Option<PathBuf>,
        room: String,
        snapshot_every: u64,
        durability: String,
    ) -> PyResult<Self> {
        let full = match durability.as_str() {
            "full" => true,
            "normal" => false,
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "durability must be \"full\" or \"normal\", got {other:?}"
                )))
            }
        };
        let opened = py.detach(|| -> Result<(Arc<Node>, String), String> {
            let cfg = node::config(&room, path.is_some(), snapshot_every);
            match &path {
                None => {
                    let r = CoreReplica::new(random_id(), cfg);
                    let id = r.id().to_string();
                    Ok((Arc::new(Node::new(r, None).map_err(|e| e.to_string())?), id))
                }
                Some(p) => {
                    let started = Instant::now();
                    let (mut st, loaded) = store::Store::open(p, &room, full, random_id()).map_err(|e| e.0)?;
                    let (mut r, report) = CoreReplica::restore(
                        loaded.id,
                        cfg,
                        loaded.snapshot.as_deref(),
                        loaded.records.iter().map(|r| r.as_slice()),
                        loaded.next_lsn,
                    )
                    .map_err(|e| format!("cannot recover {}: {e}", p.display()))?;
                    let mut corrupt = None;
                    if loaded.corrupt_rows > 0 {
                        corrupt = Some(format!("{} log rows failed their checksum and were dropped", loaded.corrupt_rows));
                    }
                    if let Some((idx, why)) = &report.corrupt {
                        st.truncate_after(*idx).map_err(|e| e.0)?;
                        corrupt = Some(format!(
                            "log record {idx} after the snapshot could not be replayed ({why}); it and later records were dropped"
                        ));
                    }
                    r.set_recovery_ms(started.elapsed().as_millis() as u64);
                    let id = r.id().to_string();
                    let node = Arc::new(Node::new(r, Some(st)).map_err(|e| e.to_string())?);
                    if let Some(c) = corrupt {
                        crate::log_warning(format!("minidote: recovered {} with a damaged tail: {c}", p.display()));
                        node.shared.lock().recovery_corrupt = Some(c);
                    }
                    Ok((node, id))
                }
            }
        });
        let (node, id) = opened.map_err(|e| errors::storage(py, e))?;
        Ok(Replica {
            node: std::sync::Mutex::new(Some(node)),
            id,
            room,
            path,
            subs: Default::default(),
            local_subs: Default::default(),
            progress_subs: Default::default(),
            keys: convert::KeyCache::new(py),
        })
    }

    /// The replica id: 16 hex digits, stable across reopening the same path
    /// (it changes only when the replica finds it was restored from an
    /// older copy of its file and re-issues its writes under a new id).
    #[getter]
    fn id(&self) -> String {
        let g = self.node.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            Some(n) => n.shared.lock().replica.id().to_string(),
            None => self.id.clone(),
        }
    }

    #[getter]
    fn room(&self) -> &str {
        &self.room
    }

    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.path.clone()
    }

    /// Runs one atomic transaction; returns the clock that includes it.
    #[pyo3(
        signature = (updates, clock=None, timeout=Some(10.0)),
        text_signature = "($self, updates, clock=None, timeout=10.0)"
    )]
    fn update_objects(
        &self,
        py: Python<'_>,
        updates: &Bound<'_, PyAny>,
        clock: Option<PyRef<'_, Clock>>,
        timeout: Option<f64>,
    ) -> PyResult<Clock> {
        let mut ups = Vec::new();
        let mut conv = self.keys.converter(py);
        for (i, u) in updates.try_iter()?.enumerate() {
            ups.push(conv.update(&u?, i)?);
        }
        drop(conv);
        let client = clock.map(|c| c.inner.clone());
        let node = self.node(py)?;
        type Outcome = Result<VectorClock, Result<WaitError, minidote_core::UpdateError>>;
        let finish = |node: &Node, t: minidote_core::Ticket, d: Option<Instant>| -> Outcome {
            let inner = node.shared.lock();
            match node.wait(inner, t, d).map_err(Ok)? {
                Done::Committed(c) => Ok(c),
                Done::Failed(e) => Err(Err(e)),
                Done::Read(..) => unreachable!("an update ticket completes as an update"),
            }
        };
        // The fast path: with the lock free and no clock to wait for, the
        // transaction runs with the GIL held, since releasing and taking it
        // back costs more than a memory replica's transaction. `try_lock`
        // never blocks, so this cannot deadlock against a thread that holds
        // the lock and wants the GIL; that case takes the path below.
        let mut ups = Some(ups);
        let fast = match node.shared.inner.try_lock() {
            Ok(mut inner)
                if !inner.closed
                    && inner.storage_error.is_none()
                    && client.as_ref().is_none_or(|c| c.leq(inner.replica.clock())) =>
            {
                let ups = ups.take().expect("not taken yet");
                let out = inner.replica.update_objects(ups, client.as_ref());
                inner.drain(&node.shared.cond);
                Some(out)
            }
            _ => None,
        };
        let result: Outcome = match fast {
            Some(Ok(UpdateOutcome::Committed(c))) => Ok(c),
            Some(Ok(UpdateOutcome::Pending(t))) => py.detach(|| finish(&node, t, None)),
            Some(Err(e)) => Err(Err(e)),
            None => {
                let ups = ups.take().expect("not taken yet");
                py.detach(|| -> Outcome {
                    let mut inner = node.shared.lock();
                    if inner.closed {
                        return Err(Ok(WaitError::Closed));
                    }
                    if let Some(e) = &inner.storage_error {
                        return Err(Ok(WaitError::Storage(e.clone())));
                    }
                    let waits_for_clock = client
                        .as_ref()
                        .is_some_and(|c| !c.leq(inner.replica.clock()));
                    let out = inner
                        .replica
                        .update_objects(ups, client.as_ref())
                        .map_err(Err)?;
                    inner.drain(&node.shared.cond);
                    match out {
                        UpdateOutcome::Committed(c) => Ok(c),
                        UpdateOutcome::Pending(t) => {
                            drop(inner);
                            let d = if waits_for_clock {
                                deadline(timeout)
                            } else {
                                None
                            };
                            finish(&node, t, d)
                        }
                    }
                })
            }
        };
        node.shared
            .try_take_logs()
            .into_iter()
            .for_each(log_warning);
        match result {
            Ok(inner) => Ok(Clock { inner }),
            Err(Ok(w)) => Err(wait_error(py, w, "update_objects")),
            Err(Err(e)) => Err(errors::invalid(py, e.to_string())),
        }
    }

    /// Reads objects; returns `(values, clock)`.
    #[pyo3(
        signature = (keys, clock=None, timeout=Some(10.0)),
        text_signature = "($self, keys, clock=None, timeout=10.0)"
    )]
    fn read_objects<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
        clock: Option<PyRef<'py, Clock>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let mut ks = Vec::new();
        let mut conv = self.keys.converter(py);
        for k in keys.try_iter()? {
            ks.push(conv.key(&k?)?);
        }
        drop(conv);
        let client = clock.map(|c| c.inner.clone());
        let node = self.node(py)?;
        // As for updates: a read with nothing to wait for runs with the GIL
        // held when the lock is free.
        let mut ks = Some(ks);
        let fast = match node.shared.inner.try_lock() {
            Ok(mut inner)
                if !inner.closed
                    && client.as_ref().is_none_or(|c| c.leq(inner.replica.clock())) =>
            {
                let ks = ks.take().expect("not taken yet");
                let out = inner.replica.read_objects(ks, client.as_ref());
                inner.drain(&node.shared.cond);
                Some(out)
            }
            _ => None,
        };
        let result = match fast {
            Some(ReadOutcome::Ready(v, c)) => Ok((v, c)),
            // Own writes still being stored: wait for them, GIL released.
            Some(ReadOutcome::Pending(t)) => py.detach(|| {
                let inner = node.shared.lock();
                match node.wait(inner, t, deadline(timeout))? {
                    Done::Read(v, c) => Ok((v, c)),
                    _ => unreachable!("a read ticket completes as a read"),
                }
            }),
            None => py.detach(
                || -> Result<(Vec<minidote_core::Value>, VectorClock), WaitError> {
                    let ks = ks.take().expect("not taken yet");
                    let mut inner = node.shared.lock();
                    if inner.closed {
                        return Err(WaitError::Closed);
                    }
                    let out = inner.replica.read_objects(ks, client.as_ref());
                    inner.drain(&node.shared.cond);
                    match out {
                        ReadOutcome::Ready(v, c) => Ok((v, c)),
                        ReadOutcome::Pending(t) => match node.wait(inner, t, deadline(timeout))? {
                            Done::Read(v, c) => Ok((v, c)),
                            _ => unreachable!("a read ticket completes as a read"),
                        },
                    }
                },
            ),
        };
        node.shared
            .try_take_logs()
            .into_iter()
            .for_each(log_warning);
        let (values, clock) = result.map_err(|e| wait_error(py, e, "read_objects"))?;
        let list = PyList::new(
            py,
            values
                .iter()
                .map(|v| convert::from_value(py, v))
                .collect::<PyResult<Vec<_>>>()?,
        )?;
        PyTuple::new(
            py,
            [
                list.into_any(),
                Bound::new(py, Clock { inner: clock })?.into_any(),
            ],
        )
    }

    /// A cursor at `index` (code points) of the list or text `key`: opaque
    /// bytes that stay with the element there while others edit.
    fn cursor<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        index: i64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let k = convert::Converter::default().key(key)?;
        let index = u64::try_from(index)
            .map_err(|_| errors::invalid(py, format!("cursor: index {index} is out of range")))?;
        let out = self.with_node(py, |n| n.shared.lock().replica.cursor(&k, index, false))?;
        let bytes = out.map_err(|e| errors::invalid(py, format!("cursor: {e}")))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Keeps summaries of the last `n` transactions this replica delivers
    /// (local and remote) for `inspect()`; 0 turns it off.
    fn keep_history(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        self.with_node(py, move |node| node.shared.lock().replica.set_history(n))
    }

    /// What an inspector shows: `{"history": [...], "buffered": [...]}`.
    /// `history` lists the last transactions (see `keep_history`), oldest
    /// first, as dicts with `origin` (16 hex digits), `seq`, `deps` (a
    /// Clock, sparse), `keys` and `local`; `buffered` lists up to
    /// `buffered` transactions of the causal buffer, each with `origin`,
    /// `seq` and `waits_for` (a Clock of the deps not delivered yet).
    #[pyo3(signature = (*, buffered=32))]
    fn inspect<'py>(&self, py: Python<'py>, buffered: usize) -> PyResult<Bound<'py, PyDict>> {
        let (history, held) = self.with_node(py, move |n| {
            let g = n.shared.lock();
            (
                g.replica.history().cloned().collect::<Vec<_>>(),
                g.replica.buffered(buffered),
            )
        })?;
        let hs = PyList::empty(py);
        for t in history {
            let d = PyDict::new(py);
            d.set_item("origin", t.origin.to_string())?;
            d.set_item("seq", t.seq)?;
            d.set_item("deps", Clock { inner: t.deps })?;
            let ks = PyList::empty(py);
            for k in &t.keys {
                ks.append(key_tuple(py, k)?)?;
            }
            d.set_item("keys", ks)?;
            d.set_item("local", t.local)?;
            hs.append(d)?;
        }
        let bs = PyList::empty(py);
        for b in held {
            let d = PyDict::new(py);
            d.set_item("origin", b.origin.to_string())?;
            d.set_item("seq", b.seq)?;
            d.set_item("waits_for", Clock { inner: b.waits_for })?;
            bs.append(d)?;
        }
        let out = PyDict::new(py);
        out.set_item("history", hs)?;
        out.set_item("buffered", bs)?;
        Ok(out)
    }

    /// The shape of a list or text in memory: `{"runs", "elements",
    /// "visible", "tombstones"}` (elements kept for ordering, of which
    /// `tombstones` are deleted). `InvalidOperation` for other types.
    fn seq_stats<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let k = convert::Converter::default().key(key)?;
        let ty = k.ty;
        let st = self
            .with_node(py, move |n| n.shared.lock().replica.seq_stats(&k))?
            .ok_or_else(|| {
                errors::invalid(
                    py,
                    format!("seq_stats: a {} is not a list or text", ty.name()),
                )
            })?;
        let d = PyDict::new(py);
        d.set_item("runs", st.runs)?;
        d.set_item("elements", st.elements)?;
        d.set_item("visible", st.visible)?;
        d.set_item("tombstones", st.tombstones)?;
        Ok(d)
    }

    /// The index (code points) a cursor points at now.
    fn resolve(&self, py: Python<'_>, cursor: &[u8]) -> PyResult<u64> {
        let c = cursor.to_vec();
        let out = self.with_node(py, move |n| n.shared.lock().replica.resolve(&c))?;
        out.map(|(_, n, _)| n)
            .map_err(|e| errors::invalid(py, format!("resolve: {e}")))
    }

    /// Calls `callback(keys, deltas)` after every local and remote change,
    /// on a background thread: `keys` lists the changed `(key, type,
    /// bucket)`s, `deltas` maps each changed list or text to its delta
    /// `[{"retain": n}, {"insert": x}, {"delete": n}]`. Returns a function
    /// that ends the subscription.
    fn subscribe(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Unsubscribe> {
        self.add_callback(py, callback, Kind::Change, "subscribe")
    }

    /// Calls `callback(frame)` with a `Txns` frame (bytes) of this
    /// replica's own writes once they are durable, on a background thread:
    /// carry it over any channel and `apply_update` it at the other end.
    /// Returns a function that ends the subscription.
    fn on_local_update(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Unsubscribe> {
        self.add_callback(py, callback, Kind::Local, "on_local_update")
    }

    /// Calls `callback(progress)` while this replica catches up from its
    /// links, on a background thread: `progress` is a dict with
    /// `received` and `expected` (transactions of the catch-up),
    /// `bytes` (received since it started) and `done` (the last event of
    /// this catch-up). A catch-up starts when a peer's handshake shows
    /// writes this replica lacks. Returns a function that ends the
    /// subscription.
    fn on_progress(&self, py: Python<'_>, callback: Py<PyAny>) -> PyResult<Unsubscribe> {
        self.add_callback(py, callback, Kind::Progress, "on_progress")
    }

    /// Waits until every connected relay or peer has stored this replica's
    /// writes; True if they did within `timeout` seconds. False when a
    /// link is down or a peer did not confirm in time (never hangs).
    #[pyo3(signature = (timeout=10.0))]
    fn flush(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let d = Instant::now() + seconds(timeout);
        self.with_node(py, move |n| n.flush(d))
    }

    /// Waits until every `connect`ed relay or peer has completed its
    /// handshake and everything it had then has arrived here; True if that
    /// happened within `timeout` seconds, False otherwise (no link at all,
    /// a link down). Read after it to see the room as it was when you
    /// joined, e.g. to append to a list.
    #[pyo3(signature = (timeout=10.0))]
    fn catch_up(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let d = Instant::now() + seconds(timeout);
        self.with_node(py, move |n| n.catch_up(d))
    }

    /// `update_objects` for asyncio: the same arguments, awaited on the
    /// loop's executor so the event loop is never blocked.
    #[pyo3(
        signature = (updates, clock=None, timeout=Some(10.0)),
        text_signature = "($self, updates, clock=None, timeout=10.0)"
    )]
    fn aupdate_objects<'py>(
        slf: &Bound<'py, Self>,
        updates: &Bound<'py, PyAny>,
        clock: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_executor(slf, "update_objects", updates, clock, timeout)
    }

    /// `read_objects` for asyncio (see `aupdate_objects`).
    #[pyo3(
        signature = (keys, clock=None, timeout=Some(10.0)),
        text_signature = "($self, keys, clock=None, timeout=10.0)"
    )]
    fn aread_objects<'py>(
        slf: &Bound<'py, Self>,
        keys: &Bound<'py, PyAny>,
        clock: Option<&Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        in_executor(slf, "read_objects", keys, clock, timeout)
    }

    /// The wire frames a replica at `clock` lacks (all of them without a
    /// clock): transactions, or a snapshot where the log was pruned. Carry
    /// them over any channel and `apply_update` them at the other end.
    #[pyo3(signature = (clock=None))]
    fn export_since<'py>(
        &self,
        py: Python<'py>,
        clock: Option<PyRef<'py, Clock>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let theirs = clock.map(|c| c.inner.clone()).unwrap_or_default();
        let frames = self.with_node(py, move |n| n.shared.lock().replica.export_since(&theirs))?;
        PyList::new(py, frames.iter().map(|f| PyBytes::new(py, f)))
    }

    /// Applies a frame from any channel; returns `{"applied": n,
    /// "pending": n, "missing": Clock}` (what the causal buffer waits for).
    /// Bytes that are not an update raise `ProtocolError`; nothing of them
    /// is applied.
    fn apply_update<'py>(&self, py: Python<'py>, frame: &[u8]) -> PyResult<Bound<'py, PyDict>> {
        let f = frame.to_vec();
        let out = self.with_node(py, move |n| {
            let mut g = n.shared.lock();
            let out = g.replica.apply_update(&f);
            g.drain(&n.shared.cond);
            out
        })?;
        let st = out.map_err(|e| errors::protocol(py, format!("apply_update: {e}")))?;
        let missing: VectorClock = st.missing.iter().map(|m| (m.origin, m.to)).collect();
        let d = PyDict::new(py);
        d.set_item("applied", st.delivered)?;
        d.set_item("pending", st.buffered)?;
        d.set_item("missing", Clock { inner: missing })?;
        Ok(d)
    }

    /// Listens for peers on `addr`; returns the bound port. With
    /// `auth_secret` (HS256) or `auth_public_key` (Ed25519 public key, PEM),
    /// every peer must present a token for this room, as at a relay.
    #[pyo3(signature = (addr="127.0.0.1:0", *, auth_secret=None, auth_public_key=None))]
    fn listen(
        &self,
        py: Python<'_>,
        addr: &str,
        auth_secret: Option<&str>,
        auth_public_key: Option<&[u8]>,
    ) -> PyResult<u16> {
        let auth = minidote_auth::Verifier::new(auth_secret.map(str::as_bytes), auth_public_key)
            .map_err(|e| errors::invalid(py, e))?
            .map(Arc::new);
        self.with_node(py, |n| n.listen(addr, auth))?
            .map_err(|e| errors::storage(py, format!("cannot listen on {addr}: {e}")))
    }

    /// Links to a peer replica or a relay: `"host:port"` (TCP) or a relay's
    /// `ws://…/sync` or `wss://…/sync` (TLS with the system's roots, or
    /// only the certificates in `ca_file`). Reconnects with backoff until
    /// `disconnect(addr)` or `close()`.
    #[pyo3(signature = (addr, token=None, *, ca_file=None))]
    fn connect(
        &self,
        py: Python<'_>,
        addr: String,
        token: Option<String>,
        ca_file: Option<PathBuf>,
    ) -> PyResult<()> {
        let lower = addr.to_ascii_lowercase();
        let target = if lower.starts_with("wss://") {
            let tls = node::tls_config(ca_file.as_deref())
                .map_err(|e| errors::invalid(py, format!("connect: {e}")))?;
            node::Target::Ws {
                url: addr.clone(),
                tls: Some(Arc::new(tls)),
            }
        } else if lower.starts_with("ws://") {
            if ca_file.is_some() {
                return Err(errors::invalid(
                    py,
                    "connect: ca_file needs a wss:// address",
                ));
            }
            node::Target::Ws {
                url: addr.clone(),
                tls: None,
            }
        } else if addr.contains("://") {
            return Err(errors::invalid(
                py,
                format!("connect: {addr:?}: use \"host:port\", ws://… or wss://…"),
            ));
        } else {
            if ca_file.is_some() {
                return Err(errors::invalid(
                    py,
                    "connect: ca_file needs a wss:// address",
                ));
            }
            node::Target::Tcp(addr.clone())
        };
        if let node::Target::Ws { url, .. } = &target {
            use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
            if let Err(e) = url.as_str().into_client_request() {
                return Err(errors::invalid(py, format!("connect: {addr:?}: {e}")));
            }
        }
        self.with_node(py, |n| n.connect(addr, target, token))
    }

    /// Drops the link to `addr`. Returns False if there was none.
    fn disconnect(&self, py: Python<'_>, addr: &str) -> PyResult<bool> {
        self.with_node(py, |n| n.disconnect(addr))
    }

    /// `[{"addr", "id", "connected", "clock"}]`.
    fn peers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let peers = self.with_node(py, |n| n.peers())?;
        let out = PyList::empty(py);
        for (addr, id, connected, clock) in peers {
            let d = PyDict::new(py);
            d.set_item("addr", addr)?;
            d.set_item("id", id)?;
            d.set_item("connected", connected)?;
            d.set_item("clock", Clock { inner: clock })?;
            out.append(d)?;
        }
        Ok(out)
    }

    /// Counters for observability (DESIGN.md §2.6).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, protocol_errors, last_protocol_error, recovery_corrupt, storage_commits) =
            self.with_node(py, |n| n.stats())?;
        let d = PyDict::new(py);
        d.set_item("id", s.id.to_string())?;
        d.set_item("room", &self.room)?;
        d.set_item("clock", Clock { inner: s.clock })?;
        d.set_item("buffered", s.buffered)?;
        d.set_item("pending_requests", s.pending_requests)?;
        d.set_item("txns_local", s.txns_local)?;
        d.set_item("txns_remote", s.txns_remote)?;
        d.set_item("duplicates", s.duplicates)?;
        d.set_item("integrity_conflicts", s.integrity_conflicts)?;
        d.set_item("restores", s.restores)?;
        d.set_item("reissued", s.reissued)?;
        d.set_item("repair_pending", s.repair_pending)?;
        d.set_item("refused", s.refused)?;
        d.set_item("buffer_dropped", s.buffer_dropped)?;
        d.set_item("bytes_sent", s.bytes_sent)?;
        d.set_item("bytes_received", s.bytes_received)?;
        d.set_item("log_records", s.log_records)?;
        d.set_item("log_len", s.log_len)?;
        d.set_item("snapshots", s.snapshots)?;
        d.set_item("snapshots_merged", s.snapshots_merged)?;
        d.set_item("recovery_ms", s.last_recovery_ms)?;
        d.set_item("recovery_records", s.last_recovery_records)?;
        d.set_item("recovery_corrupt", recovery_corrupt)?;
        d.set_item("storage_commits", storage_commits)?;
        d.set_item("protocol_errors", protocol_errors)?;
        d.set_item("last_protocol_error", last_protocol_error)?;
        let peers = PyList::empty(py);
        for p in s.peers {
            let pd = PyDict::new(py);
            pd.set_item("id", p.id.map(|i| i.to_string()))?;
            pd.set_item("connected", p.connected)?;
            pd.set_item("clock", Clock { inner: p.clock })?;
            pd.set_item("lag", p.lag)?;
            peers.append(pd)?;
        }
        d.set_item("peers", peers)?;
        Ok(d)
    }

    /// Takes a snapshot now, prunes the log, and waits until it is stored.
    fn snapshot(&self, py: Python<'_>) -> PyResult<()> {
        self.with_node(py, |n| n.snapshot())?
            .map_err(|e| wait_error(py, e, "snapshot"))
    }

    /// Closes links and the store. Idempotent. With links, it first waits
    /// up to `flush_timeout` seconds for peers to report this replica's
    /// writes stored (`flush`), and logs a warning if they did not.
    #[pyo3(signature = (*, flush_timeout=2.0))]
    fn close(&self, py: Python<'_>, flush_timeout: f64) {
        let node = self.node.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(n) = node {
            let t = seconds(flush_timeout);
            py.detach(move || n.close(t));
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.node.lock().map(|g| g.is_none()).unwrap_or(true)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py, 2.0);
        false
    }

    fn __repr__(&self) -> String {
        match &self.path {
            Some(p) => format!(
                "Replica(id='{}', room='{}', path='{}')",
                self.id,
                self.room,
                p.display()
            ),
            None => format!("Replica(id='{}', room='{}', memory)", self.id, self.room),
        }
    }
}

#[pymodule]
fn _minidote(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Core has no randomness: key its element hashing here, once, so a
    // peer cannot pick set elements that all collide.
    let mut key = [0u8; 16];
    if getrandom::fill(&mut key).is_ok() {
        minidote_core::set_hash_key(key);
    }
    m.add_class::<Clock>()?;
    m.add_class::<Replica>()?;
    m.add_class::<Unsubscribe>()?;
    m.add("PROTOCOL_VERSION", minidote_core::PROTOCOL_VERSION)?;
    Ok(())
}
