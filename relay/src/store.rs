//! The durable room log, in SQLite (WAL, `synchronous=NORMAL`).
//!
//! Rooms live in memory; every change is also sent to one writer thread,
//! which commits whatever has queued up in one SQLite transaction (group
//! commit), then reports the highest position it committed per room
//! ([`Committed`]). Rooms forward, serve and announce a transaction only
//! after that report (see [`crate::room`]), so what any peer received from
//! the relay is on its disk: a relay killed at any moment loses nothing it
//! forwarded or acknowledged.
//!
//! `synchronous=NORMAL` in WAL mode survives a killed process (the WAL is in
//! the OS page cache); a power loss may lose the last commits. Those were
//! never acknowledged to their writers with a `Stored` frame, so a writer
//! that flushed keeps them and pushes them again.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension as _};

use crate::metrics::Metrics;

/// One change to the room log.
#[derive(Debug)]
pub enum StoreOp {
    /// A transaction appended to a room's log at position `idx`.
    Txn {
        /// The room.
        room: Arc<str>,
        /// Its position; positions grow in delivery order.
        idx: u64,
        /// The encoded transaction.
        bytes: Bytes,
    },
    /// A snapshot frame that became a base of the room.
    Base {
        /// The room.
        room: Arc<str>,
        /// Its position, from the same sequence as transactions.
        idx: u64,
        /// The whole `Snapshot` frame.
        frame: Bytes,
    },
    /// Log entries and bases that a newer base covers.
    Prune {
        /// The room.
        room: Arc<str>,
        /// Positions of transactions to delete.
        txns: Vec<u64>,
        /// Positions of bases to delete.
        bases: Vec<u64>,
    },
    /// Commit everything before this, then answer.
    Flush(mpsc::Sender<()>),
    /// Once everything before this is committed, read one room (a room
    /// that was evicted from memory, or not loaded since the relay
    /// started).
    Load {
        /// The room.
        room: Arc<str>,
        /// Where the room goes.
        reply: tokio::sync::oneshot::Sender<Result<LoadedRoom, String>>,
    },
}

/// A room as loaded from disk.
#[derive(Debug, Default)]
pub struct LoadedRoom {
    /// The room's name.
    pub name: String,
    /// Bases `(idx, frame)` in position order.
    pub bases: Vec<(u64, Bytes)>,
    /// Transactions `(idx, bytes)` in position order.
    pub txns: Vec<(u64, Bytes)>,
}

/// The store's errors. Opening fails loudly; a failing write is logged and
/// counted, and the relay keeps serving from memory.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused.
    #[error("relay store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file is a store of another schema version.
    #[error("relay store: schema version {0} is not supported (expected {SCHEMA_VERSION}); it was written by an older minidote-relay")]
    Schema(i64),
}

/// The store's report after a group commit: per room, the highest position
/// now on disk.
pub type Committed = Box<dyn Fn(Vec<(Arc<str>, u64)>) + Send>;

/// A handle to the writer thread (or nothing, in memory mode).
#[derive(Debug)]
pub struct Store {
    tx: Option<mpsc::Sender<StoreOp>>,
    thread: Option<JoinHandle<()>>,
}

/// The store's layout version, which follows the protocol: rows hold
/// protocol-3 bytes (register_lww effects name what they overwrite). A file
/// of an older version is refused rather than misread.
pub const SCHEMA_VERSION: i64 = 5;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txns(
    room TEXT NOT NULL, idx INTEGER NOT NULL, bytes BLOB NOT NULL,
    PRIMARY KEY(room, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bases(
    room TEXT NOT NULL, idx INTEGER NOT NULL, frame BLOB NOT NULL,
    PRIMARY KEY(room, idx)) WITHOUT ROWID;
";

impl Store {
    /// A store that keeps nothing (`--memory`).
    pub fn memory() -> Self {
        Self {
            tx: None,
            thread: None,
        }
    }

    /// Opens (or creates) the SQLite file at `path` and starts the writer
    /// thread; returns how many rooms the file holds. Rooms are read when a
    /// peer first joins them ([`Store::load`]), not here, so what a relay
    /// holds in memory follows its live rooms, not its history. A second
    /// relay on the same file fails here (the file is opened with an
    /// exclusive lock).
    pub fn open(
        path: &Path,
        metrics: Arc<Metrics>,
        committed: Committed,
    ) -> Result<(Self, u64), StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        let version: Option<i64> = conn
            .query_row("SELECT v FROM meta WHERE k = 'schema'", [], |r| r.get(0))
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta(k, v) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(v) => return Err(StoreError::Schema(v)),
        }
        let rooms: i64 = conn.query_row(
            "SELECT count(*) FROM (SELECT room FROM txns UNION SELECT room FROM bases)",
            [],
            |r| r.get(0),
        )?;
        let rooms = rooms as u64;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("minidote-relay-store".into())
            .spawn(move || writer(conn, rx, metrics, committed))
            .expect("spawn the store thread");
        Ok((
            Self {
                tx: Some(tx),
                thread: Some(thread),
            },
            rooms,
        ))
    }

    /// Queues a change. Never blocks.
    pub fn send(&self, op: StoreOp) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(op);
        }
    }

    /// Reads `room` once every change queued before is committed; `None`
    /// in memory mode.
    pub fn load(
        &self,
        room: Arc<str>,
    ) -> Option<tokio::sync::oneshot::Receiver<Result<LoadedRoom, String>>> {
        let tx = self.tx.as_ref()?;
        let (reply, wait) = tokio::sync::oneshot::channel();
        tx.send(StoreOp::Load { room, reply }).ok()?;
        Some(wait)
    }

    /// Whether changes are kept at all.
    pub fn is_durable(&self) -> bool {
        self.tx.is_some()
    }

    /// Commits everything queued so far and waits for it (blocking).
    pub fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = mpsc::channel();
            if tx.send(StoreOp::Flush(done)).is_ok() {
                let _ = wait.recv();
            }
        }
    }

    /// Commits everything and stops the writer thread (blocking).
    pub fn close(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.close();
    }
}

/// Reads one room's bases and transactions, in position order.
fn load_room(conn: &Connection, name: &str) -> Result<LoadedRoom, rusqlite::Error> {
    let rows = |sql: &str| -> Result<Vec<(u64, Bytes)>, rusqlite::Error> {
        let mut q = conn.prepare_cached(sql)?;
        let mut rows = q.query(params![name])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let idx: i64 = row.get(0)?;
            let blob: Vec<u8> = row.get(1)?;
            out.push((idx as u64, Bytes::from(blob)));
        }
        Ok(out)
    };
    Ok(LoadedRoom {
        name: name.to_owned(),
        bases: rows("SELECT idx, frame FROM bases WHERE room = ?1 ORDER BY idx")?,
        txns: rows("SELECT idx, bytes FROM txns WHERE room = ?1 ORDER BY idx")?,
    })
}

/// Upper bound of changes per SQLite transaction.
const MAX_GROUP: usize = 8192;

fn writer(
    mut conn: Connection,
    rx: mpsc::Receiver<StoreOp>,
    metrics: Arc<Metrics>,
    committed: Committed,
) {
    let mut backlog: VecDeque<StoreOp> = VecDeque::new();
    let mut open = true;
    loop {
        if backlog.is_empty() {
            match rx.recv() {
                Ok(op) => backlog.push_back(op),
                Err(_) => break,
            }
        }
        take_queued(&rx, &mut backlog, &mut open);
        let n = backlog.len().min(MAX_GROUP);
        let group: Vec<StoreOp> = backlog.drain(..n).collect();
        let done = commit_until_done(&mut conn, &group, &metrics, |_, attempt| {
            std::thread::sleep(retry_pause(attempt));
            // Keep reading, so shutdown is seen; new changes wait behind
            // the failed group, in order.
            take_queued(&rx, &mut backlog, &mut open);
            open
        });
        if done {
            let mut high: Vec<(Arc<str>, u64)> = Vec::new();
            for op in &group {
                if let StoreOp::Txn { room, idx, .. } | StoreOp::Base { room, idx, .. } = op {
                    match high.iter_mut().find(|(r, _)| r == room) {
                        Some((_, h)) => *h = (*h).max(*idx),
                        None => high.push((room.clone(), *idx)),
                    }
                }
            }
            if !high.is_empty() {
                committed(high);
            }
        }
        for op in group {
            if let StoreOp::Load { room, reply } = op {
                let loaded = if done {
                    load_room(&conn, &room).map_err(|e| format!("relay store: {e}"))
                } else {
                    Err("relay store: the changes before this load are not on disk".into())
                };
                let _ = reply.send(loaded);
            }
        }
        if !open && backlog.is_empty() {
            break;
        }
    }
    if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
        tracing::warn!(error = %e, "relay store: checkpoint on close failed");
    }
}

/// Moves whatever is queued into `backlog`; clears `open` once every sender
/// is gone.
fn take_queued(rx: &mpsc::Receiver<StoreOp>, backlog: &mut VecDeque<StoreOp>, open: &mut bool) {
    loop {
        match rx.try_recv() {
            Ok(op) => backlog.push_back(op),
            Err(mpsc::TryRecvError::Empty) => return,
            Err(mpsc::TryRecvError::Disconnected) => {
                *open = false;
                return;
            }
        }
    }
}

/// 10 ms, doubling, at most 1 s.
fn retry_pause(attempt: u32) -> std::time::Duration {
    std::time::Duration::from_millis((10u64 << attempt.min(7)).min(1000))
}

/// Attempts before a relay that is shutting down gives up on a group.
const ATTEMPTS_AT_SHUTDOWN: u32 = 10;

/// Commits `group`, retrying the same group after a failure (a full disk,
/// an I/O error) until it succeeds: a later group is never written before
/// an earlier one, so a failure can delay the log but never leave a hole in
/// it. `pause(conn, attempt)` runs between attempts and returns whether the
/// relay is still running; once it is not, the group is given up (and
/// logged) after [`ATTEMPTS_AT_SHUTDOWN`] attempts, so shutdown cannot hang
/// on a broken disk. Flush waiters are released either way.
fn commit_until_done(
    conn: &mut Connection,
    group: &[StoreOp],
    metrics: &Metrics,
    mut pause: impl FnMut(&Connection, u32) -> bool,
) -> bool {
    let mut attempt = 0u32;
    let done = loop {
        match commit(conn, group) {
            Ok(records) => {
                Metrics::add(&metrics.storage_commits_total, 1);
                Metrics::add(&metrics.storage_records_total, records);
                break true;
            }
            Err(e) => {
                Metrics::add(&metrics.storage_errors_total, 1);
                attempt += 1;
                tracing::error!(error = %e, attempt, changes = group.len(), "relay store: a commit failed; retrying the same group, nothing later is written first");
                let running = pause(conn, attempt);
                if !running && attempt >= ATTEMPTS_AT_SHUTDOWN {
                    tracing::error!(changes = group.len(), "relay store: giving up at shutdown; these changes are not on disk (their writers still hold them and push them again)");
                    break false;
                }
            }
        }
    };
    for op in group {
        if let StoreOp::Flush(a) = op {
            let _ = a.send(());
        }
    }
    done
}

fn commit(conn: &mut Connection, ops: &[StoreOp]) -> Result<u64, rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut records = 0;
    {
        let mut put_txn =
            tx.prepare_cached("INSERT OR REPLACE INTO txns(room, idx, bytes) VALUES (?1, ?2, ?3)")?;
        let mut put_base = tx
            .prepare_cached("INSERT OR REPLACE INTO bases(room, idx, frame) VALUES (?1, ?2, ?3)")?;
        let mut del_txn = tx.prepare_cached("DELETE FROM txns WHERE room = ?1 AND idx = ?2")?;
        let mut del_base = tx.prepare_cached("DELETE FROM bases WHERE room = ?1 AND idx = ?2")?;
        for op in ops {
            match op {
                StoreOp::Txn { room, idx, bytes } => {
                    put_txn.execute(params![&**room, *idx as i64, &bytes[..]])?;
                    records += 1;
                }
                StoreOp::Base { room, idx, frame } => {
                    put_base.execute(params![&**room, *idx as i64, &frame[..]])?;
                    records += 1;
                }
                StoreOp::Prune { room, txns, bases } => {
                    for i in txns {
                        del_txn.execute(params![&**room, *i as i64])?;
                    }
                    for i in bases {
                        del_base.execute(params![&**room, *i as i64])?;
                    }
                }
                StoreOp::Flush(_) | StoreOp::Load { .. } => {}
            }
        }
    }
    tx.commit()?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    /// A database whose inserts fail while `ctl.fail` is 1.
    fn failing_db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "CREATE TABLE ctl(fail INTEGER); INSERT INTO ctl VALUES (1);
             CREATE TRIGGER injected BEFORE INSERT ON txns
             WHEN (SELECT fail FROM ctl) = 1
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
        conn
    }

    fn group(n: u64) -> (Vec<StoreOp>, mpsc::Receiver<()>) {
        let (done, wait) = mpsc::channel();
        let mut ops: Vec<StoreOp> = (1..=n)
            .map(|idx| StoreOp::Txn {
                room: Arc::from("r"),
                idx,
                bytes: Bytes::from(vec![idx as u8; 4]),
            })
            .collect();
        ops.push(StoreOp::Flush(done));
        (ops, wait)
    }

    fn rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM txns", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_failed_commit_is_retried_whole_and_nothing_is_lost() {
        let mut conn = failing_db();
        let metrics = Metrics::default();
        let (ops, wait) = group(5);
        let mut pauses = 0;
        let done = commit_until_done(&mut conn, &ops, &metrics, |conn, attempt| {
            pauses += 1;
            assert_eq!(rows(conn), 0, "a failed group leaves nothing behind");
            if attempt == 3 {
                conn.execute("UPDATE ctl SET fail = 0", []).unwrap();
            }
            true
        });
        assert!(done);
        assert_eq!(pauses, 3);
        assert_eq!(rows(&conn), 5, "the whole group is written once it can be");
        assert_eq!(metrics.storage_errors_total.load(Relaxed), 3);
        assert_eq!(metrics.storage_records_total.load(Relaxed), 5);
        wait.try_recv().expect("the flush waiter is released");
    }

    #[test]
    fn at_shutdown_a_broken_disk_is_given_up_after_bounded_attempts() {
        let mut conn = failing_db();
        let metrics = Metrics::default();
        let (ops, wait) = group(2);
        let done = commit_until_done(&mut conn, &ops, &metrics, |_, _| false);
        assert!(!done);
        assert_eq!(
            metrics.storage_errors_total.load(Relaxed),
            u64::from(ATTEMPTS_AT_SHUTDOWN)
        );
        assert_eq!(rows(&conn), 0);
        wait.try_recv().expect("the flush waiter is released");
    }

    #[test]
    fn a_store_of_an_older_schema_is_refused_not_misread() {
        let path = std::env::temp_dir().join(format!(
            "minidote-relay-schema-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.execute("INSERT INTO meta(k, v) VALUES ('schema', 1)", [])
                .unwrap();
        }
        let err = Store::open(&path, Arc::new(Metrics::default()), Box::new(|_| {})).unwrap_err();
        assert!(matches!(err, StoreError::Schema(1)), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("expected {SCHEMA_VERSION}")),
            "{err}"
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn retry_pauses_grow_and_are_capped() {
        assert_eq!(retry_pause(1).as_millis(), 20);
        assert!(retry_pause(2) > retry_pause(1));
        assert_eq!(retry_pause(30).as_millis(), 1000);
    }
}
