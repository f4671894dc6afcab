//! IndexedDB persistence of the core's records, through indexed_db_futures.
//!
//! Object store `log`: key = lsn (a number), value = a Uint8Array whose
//! first byte is the kind (0 transaction, 1 snapshot) and the rest its
//! bytes. A snapshot covers every record before it; those are deleted in
//! the same IndexedDB transaction that stores it. Object store `meta`
//! holds `id`, `room` and `schema`. A batch of records is one readwrite
//! transaction, and the core hears `persisted(lsn)` only once it completes.

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use minidote_core::Record;
use wasm_bindgen::{JsCast, JsValue};

const LOG: &str = "log";
const META: &str = "meta";
const KIND_TXN: u8 = 0;
const KIND_SNAPSHOT: u8 = 1;
/// 2: records hold protocol-2 bytes (packed clocks); a version-1 database
/// is refused rather than misread.
const SCHEMA: f64 = 5.0;

/// What an existing database holds.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The replica id, 16 hex digits, if the database was used before.
    pub id: Option<String>,
    /// The room it was used with.
    pub room: Option<String>,
    /// The newest snapshot.
    pub snapshot: Option<Vec<u8>>,
    /// Transactions after it, in lsn order.
    pub records: Vec<Vec<u8>>,
    /// One more than the highest lsn.
    pub next_lsn: u64,
}

/// An open database.
#[derive(Debug)]
pub struct Idb {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> String {
    format!("IndexedDB: {e}")
}

impl Idb {
    /// Opens (creating) the database `name` and reads it whole.
    pub async fn open(name: &str) -> Result<(Idb, Loaded), String> {
        let db = Database::open(name)
            .with_version(1u8)
            .with_on_upgrade_needed(|ev, db| {
                if ev.old_version() < 1.0 {
                    db.create_object_store(LOG).build()?;
                    db.create_object_store(META).build()?;
                }
                Ok(())
            })
            .await
            .map_err(err)?;
        let tx = db
            .transaction([LOG, META].as_slice())
            .build()
            .map_err(err)?;
        let log = tx.object_store(LOG).map_err(err)?;
        let meta = tx.object_store(META).map_err(err)?;
        let keys = log
            .get_all_keys::<f64>()
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?
            .collect::<Result<Vec<f64>, _>>()
            .map_err(err)?;
        let values = log
            .get_all::<JsValue>()
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?
            .collect::<Result<Vec<JsValue>, _>>()
            .map_err(err)?;
        let id: Option<String> = meta
            .get("id")
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?;
        let room: Option<String> = meta
            .get("room")
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?;
        let schema: Option<f64> = meta
            .get("schema")
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?;
        drop(meta);
        drop(log);
        drop(tx);
        if let Some(s) = schema {
            if s != SCHEMA {
                return Err(format!(
                    "IndexedDB database {name:?} has schema version {s}; this build reads {SCHEMA}"
                ));
            }
        }
        let mut loaded = Loaded {
            id,
            room,
            ..Loaded::default()
        };
        for (k, v) in keys.iter().zip(values) {
            let bytes = v
                .dyn_into::<js_sys::Uint8Array>()
                .map_err(|_| format!("IndexedDB: log record {k} is not bytes"))?
                .to_vec();
            loaded.next_lsn = loaded.next_lsn.max(*k as u64 + 1);
            match bytes.split_first() {
                Some((&KIND_SNAPSHOT, body)) => {
                    loaded.snapshot = Some(body.to_vec());
                    loaded.records.clear();
                }
                Some((&KIND_TXN, body)) => loaded.records.push(body.to_vec()),
                _ => return Err(format!("IndexedDB: log record {k} has an unknown kind")),
            }
        }
        Ok((Idb { db }, loaded))
    }

    /// Stores the replica's identity (first open).
    pub async fn put_meta(&self, id: &str, room: &str) -> Result<(), String> {
        let tx = self
            .db
            .transaction(META)
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(err)?;
        let meta = tx.object_store(META).map_err(err)?;
        meta.put(id).with_key("id").primitive().map_err(err)?;
        meta.put(room).with_key("room").primitive().map_err(err)?;
        meta.put(SCHEMA)
            .with_key("schema")
            .primitive()
            .map_err(err)?;
        drop(meta);
        tx.commit().await.map_err(err)
    }

    /// Writes a batch of records in one IndexedDB transaction; resolves once
    /// it has committed.
    pub async fn write(&self, records: &[Record]) -> Result<(), String> {
        // A re-issue also changes the replica id: same transaction.
        let reissue = records.iter().any(|r| matches!(r, Record::Reissue { .. }));
        let stores: &[&str] = if reissue { &[LOG, META] } else { &[LOG] };
        let tx = self
            .db
            .transaction(stores)
            .with_mode(TransactionMode::Readwrite)
            .build()
            .map_err(err)?;
        let log = tx.object_store(LOG).map_err(err)?;
        let put = |kind: u8, body: &[u8], lsn: u64| -> Result<(), String> {
            let lsn = lsn as f64;
            if kind == KIND_SNAPSHOT {
                // Everything before the snapshot is covered by it.
                log.delete::<f64, _>(..lsn).primitive().map_err(err)?;
            }
            let value = js_sys::Uint8Array::new_with_length(body.len() as u32 + 1);
            value.set_index(0, kind);
            value.subarray(1, body.len() as u32 + 1).copy_from(body);
            log.put(JsValue::from(value))
                .with_key(lsn)
                .primitive()
                .map_err(err)?;
            Ok(())
        };
        for r in records {
            match r {
                Record::Txn { bytes, lsn, .. } => put(KIND_TXN, bytes, *lsn)?,
                Record::Snapshot { bytes, lsn } => put(KIND_SNAPSHOT, bytes, *lsn)?,
                Record::Reissue {
                    lsn,
                    id,
                    snapshot,
                    txns,
                } => {
                    let meta = tx.object_store(META).map_err(err)?;
                    meta.put(id.to_string())
                        .with_key("id")
                        .primitive()
                        .map_err(err)?;
                    put(KIND_SNAPSHOT, snapshot, *lsn)?;
                    for (i, t) in txns.iter().enumerate() {
                        put(KIND_TXN, t, *lsn + 1 + i as u64)?;
                    }
                }
            }
        }
        drop(log);
        tx.commit().await.map_err(err)
    }

    /// The newest stored snapshot (what a repair rebuilds from).
    pub async fn latest_snapshot(&self) -> Result<Option<Vec<u8>>, String> {
        let tx = self.db.transaction(LOG).build().map_err(err)?;
        let log = tx.object_store(LOG).map_err(err)?;
        let values = log
            .get_all::<JsValue>()
            .primitive()
            .map_err(err)?
            .await
            .map_err(err)?
            .collect::<Result<Vec<JsValue>, _>>()
            .map_err(err)?;
        let mut snap = None;
        for v in values {
            if let Ok(a) = v.dyn_into::<js_sys::Uint8Array>() {
                let bytes = a.to_vec();
                if bytes.first() == Some(&KIND_SNAPSHOT) {
                    snap = Some(bytes[1..].to_vec());
                }
            }
        }
        Ok(snap)
    }

    /// Closes the connection.
    pub fn close(self) {
        self.db.close();
    }
}
