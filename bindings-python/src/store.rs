//! SQLite persistence of the core's records.
//!
//! One table holds the log: `(lsn, kind, body, checksum)`, where kind 0 is a
//! transaction and 1 a snapshot. A snapshot row covers every row before it,
//! which is deleted in the same SQLite transaction. The database is opened
//! in WAL mode with `locking_mode=EXCLUSIVE`, so a second process (or a
//! second `Replica` on the same file) fails at once with a clear error
//! instead of writing next to us.

use std::path::Path;

use minidote_core::{Record, ReplicaId};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

const KIND_TXN: i64 = 0;
const KIND_SNAPSHOT: i64 = 1;
/// Follows the protocol: records hold protocol-3 bytes; a file of an older
/// version is refused rather than misread.
const SCHEMA_VERSION: i64 = 5;

/// Everything read back from an existing file.
pub struct Loaded {
    pub id: ReplicaId,
    pub snapshot: Option<Vec<u8>>,
    pub records: Vec<Vec<u8>>,
    pub next_lsn: u64,
    /// Rows dropped from the end of the log because their checksum failed.
    pub corrupt_rows: u64,
}

/// An open store. Owned by the writer thread after `open`.
pub struct Store {
    conn: Connection,
}

#[derive(Debug)]
pub struct StoreError(pub String);

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let msg = match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DatabaseBusy => {
                "database is locked: another process (or another Replica in this process) has this file open"
                    .to_owned()
            }
            _ => e.to_string(),
        };
        StoreError(msg)
    }
}

/// FNV-1a over the body; detects torn and bit-flipped rows.
pub fn checksum(b: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

impl Store {
    /// Opens (creating if needed) and locks the file, and loads its content.
    /// `new_id` is used when the file is new.
    pub fn open(
        path: &Path,
        room: &str,
        full: bool,
        new_id: ReplicaId,
    ) -> Result<(Store, Loaded), StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::ZERO)?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError(format!(
                "could not switch {} to WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
        let mut store = Store { conn };
        let loaded = store.init(room, new_id)?;
        Ok((store, loaded))
    }

    fn init(&mut self, room: &str, new_id: ReplicaId) -> Result<Loaded, StoreError> {
        // The first write transaction takes the exclusive lock and keeps it.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS log (
                 lsn INTEGER PRIMARY KEY,
                 kind INTEGER NOT NULL,
                 body BLOB NOT NULL,
                 checksum INTEGER NOT NULL
             );",
        )?;
        let get = |k: &str| -> Result<Option<Vec<u8>>, rusqlite::Error> {
            let mut st = tx.prepare("SELECT value FROM meta WHERE key = ?1")?;
            let mut rows = st.query(params![k])?;
            Ok(match rows.next()? {
                Some(r) => Some(r.get(0)?),
                None => None,
            })
        };
        let version = get("schema")?;
        let id = get("replica_id")?;
        let stored_room = get("room")?;
        let id = match (version, id) {
            (None, None) => {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('replica_id', ?2), ('room', ?3)",
                    params![
                        SCHEMA_VERSION.to_le_bytes().to_vec(),
                        new_id.0.to_le_bytes().to_vec(),
                        room.as_bytes()
                    ],
                )?;
                new_id
            }
            (Some(v), Some(id)) => {
                if v != SCHEMA_VERSION.to_le_bytes() {
                    return Err(StoreError(
                        "the file was written by an incompatible minidote version".into(),
                    ));
                }
                let a: [u8; 8] = id
                    .as_slice()
                    .try_into()
                    .map_err(|_| StoreError("corrupt replica id in meta table".into()))?;
                ReplicaId(u64::from_le_bytes(a))
            }
            _ => {
                return Err(StoreError(
                    "the file is not a minidote database (meta table incomplete)".into(),
                ))
            }
        };
        let stored_room = stored_room.map(|r| String::from_utf8_lossy(&r).into_owned());
        if let Some(r) = &stored_room {
            if r != room {
                return Err(StoreError(format!(
                    "the file belongs to room {r:?}, not {room:?}; open it with room={r:?}"
                )));
            }
        }
        // Latest snapshot, then the transactions after it, in order.
        let snap: Option<(i64, Vec<u8>, i64)> = {
            let mut st = tx.prepare(
                "SELECT lsn, body, checksum FROM log WHERE kind = ?1 ORDER BY lsn DESC LIMIT 1",
            )?;
            let mut rows = st.query(params![KIND_SNAPSHOT])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?, r.get(2)?)),
                None => None,
            }
        };
        let mut corrupt_rows = 0u64;
        let (snap_lsn, snapshot) = match snap {
            Some((lsn, body, sum)) if checksum(&body) == sum => (lsn, Some(body)),
            Some((lsn, _, _)) => {
                return Err(StoreError(format!(
                "the snapshot at lsn {lsn} is corrupt; the file cannot be recovered automatically"
            )))
            }
            None => (0, None),
        };
        let mut records = Vec::new();
        let mut bad_from: Option<i64> = None;
        let mut max_lsn = snap_lsn;
        {
            let mut st =
                tx.prepare("SELECT lsn, body, checksum FROM log WHERE lsn > ?1 ORDER BY lsn")?;
            let mut rows = st.query(params![snap_lsn])?;
            while let Some(r) = rows.next()? {
                let lsn: i64 = r.get(0)?;
                let body: Vec<u8> = r.get(1)?;
                let sum: i64 = r.get(2)?;
                max_lsn = max_lsn.max(lsn);
                if bad_from.is_some() || checksum(&body) != sum {
                    bad_from.get_or_insert(lsn);
                    corrupt_rows += 1;
                    continue;
                }
                records.push(body);
            }
        }
        if let Some(from) = bad_from {
            // Keep the intact prefix; the rest can never be replayed.
            tx.execute("DELETE FROM log WHERE lsn >= ?1", params![from])?;
        }
        tx.commit()?;
        Ok(Loaded {
            id,
            snapshot,
            records,
            next_lsn: max_lsn as u64 + 1,
            corrupt_rows,
        })
    }

    /// Drops the rows the core refused during recovery (a torn tail), so new
    /// records never follow them. `keep` is how many transaction rows after
    /// the snapshot stay.
    pub fn truncate_after(&mut self, keep: usize) -> Result<(), StoreError> {
        let snap_lsn: i64 = self.conn.query_row(
            "SELECT COALESCE(MAX(lsn), 0) FROM log WHERE kind = ?1",
            params![KIND_SNAPSHOT],
            |r| r.get(0),
        )?;
        self.conn.execute(
            "DELETE FROM log WHERE lsn IN (SELECT lsn FROM log WHERE lsn > ?1 ORDER BY lsn LIMIT -1 OFFSET ?2)",
            params![snap_lsn, keep as i64],
        )?;
        Ok(())
    }

    /// The latest stored snapshot (what a repair rebuilds from).
    pub fn latest_snapshot(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT lsn, body, checksum FROM log WHERE kind = ?1 ORDER BY lsn DESC LIMIT 1",
        )?;
        let mut rows = st.query(params![KIND_SNAPSHOT])?;
        match rows.next()? {
            Some(r) => {
                let lsn: i64 = r.get(0)?;
                let body: Vec<u8> = r.get(1)?;
                let sum: i64 = r.get(2)?;
                if checksum(&body) != sum {
                    return Err(StoreError(format!("the snapshot at lsn {lsn} is corrupt")));
                }
                Ok(Some(body))
            }
            None => Ok(None),
        }
    }

    /// Writes a group of records in one SQLite transaction (one fsync).
    pub fn append(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO log (lsn, kind, body, checksum) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for r in records {
                match r {
                    Record::Txn { lsn, bytes, .. } => {
                        ins.execute(params![*lsn as i64, KIND_TXN, &bytes[..], checksum(bytes)])?;
                    }
                    Record::Snapshot { lsn, bytes } => {
                        ins.execute(params![*lsn as i64, KIND_SNAPSHOT, bytes, checksum(bytes)])?;
                    }
                    Record::Reissue {
                        lsn,
                        id,
                        snapshot,
                        txns,
                    } => {
                        // One SQLite transaction: the new id, the rebuilt
                        // snapshot and the re-issued writes, or none of them.
                        tx.execute(
                            "UPDATE meta SET value = ?1 WHERE key = 'replica_id'",
                            params![id.0.to_le_bytes().to_vec()],
                        )?;
                        ins.execute(params![
                            *lsn as i64,
                            KIND_SNAPSHOT,
                            snapshot,
                            checksum(snapshot)
                        ])?;
                        for (i, t) in txns.iter().enumerate() {
                            let l = *lsn + 1 + i as u64;
                            ins.execute(params![l as i64, KIND_TXN, &t[..], checksum(t)])?;
                        }
                    }
                }
            }
        }
        if let Some(lsn) = records.iter().rev().find_map(|r| match r {
            Record::Snapshot { lsn, .. } | Record::Reissue { lsn, .. } => Some(*lsn),
            _ => None,
        }) {
            tx.execute("DELETE FROM log WHERE lsn < ?1", params![lsn as i64])?;
        }
        tx.commit()?;
        Ok(())
    }
}
