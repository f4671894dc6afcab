//! The real editing traces of `benchmarks/traces/` ("editing-traces by
//! Joseph Gentle and contributors", CC BY 4.0), replayed through the replica API:
//! every sequential trace one transaction per trace transaction (its
//! patches as ops) must end at `endContent`, at the writer and at a replica
//! that receives the whole history; the concurrent trace, one replica per
//! agent forking and merging as its `parents` say, must end at `endContent`
//! on every replica.

mod common;

use std::io::Read;
use std::path::PathBuf;

use common::key;
use minidote_core::{
    CatchUp, Config, CrdtType, Key, Op, Pos, Replica, ReplicaId, TxnBytes, Update, UpdateOutcome,
    Value, VectorClock,
};
use serde_json::Value as Json;

/// The traces, copied into the repository (`benchmarks/traces/`).
fn traces_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/traces")
}

fn load(name: &str) -> Json {
    let f = std::fs::File::open(traces_dir().join(name)).expect("trace file");
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .expect("gzip");
    serde_json::from_str(&s).expect("json")
}

/// The ops of one trace transaction: each patch `[pos, del, ins]` is a
/// delete then an insert at `pos` (code points).
fn ops(patches: &Json) -> Vec<Op> {
    let mut out = Vec::new();
    for p in patches.as_array().expect("patches") {
        let at = p[0].as_u64().expect("pos");
        let del = p[1].as_u64().expect("del");
        let ins = p[2].as_str().expect("ins");
        let pos = Pos { at, utf16: false };
        if del > 0 {
            out.push(Op::Delete(pos, del));
        }
        if !ins.is_empty() {
            out.push(Op::Insert(pos, Value::Str(ins.to_owned())));
        }
    }
    out
}

fn commit(r: &mut Replica, k: &Key, ops: Vec<Op>) {
    if ops.is_empty() {
        return;
    }
    let ups = ops
        .into_iter()
        .map(|op| Update::new(k.clone(), op))
        .collect();
    match r.update_objects(ups, None).expect("valid trace op") {
        UpdateOutcome::Committed(_) => {}
        UpdateOutcome::Pending(_) => panic!("memory replica"),
    }
}

fn text(r: &Replica, k: &Key) -> String {
    match r.value(k) {
        Value::Str(s) => s,
        v => panic!("{v:?}"),
    }
}

fn config() -> Config {
    Config {
        snapshot_every: 0,
        ..Config::default()
    }
}

fn replay_sequential(name: &str) {
    let t = load(name);
    let k = key("doc", CrdtType::Text);
    let mut w = Replica::new(ReplicaId(1), config());
    let start = t["startContent"].as_str().unwrap_or("");
    if !start.is_empty() {
        commit(
            &mut w,
            &k,
            vec![Op::Insert(
                Pos {
                    at: 0,
                    utf16: false,
                },
                Value::from(start),
            )],
        );
    }
    for txn in t["txns"].as_array().expect("txns") {
        commit(&mut w, &k, ops(&txn["patches"]));
    }
    let end = t["endContent"].as_str().expect("endContent");
    assert_eq!(text(&w, &k), end, "{name}: the writer");
    // A fresh replica that receives the whole history.
    let mut r = Replica::new(ReplicaId(2), config());
    match w.catch_up(&VectorClock::new()) {
        CatchUp::Txns(txns) => {
            r.handle_txns(None, txns).expect("valid history");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(text(&r, &k), end, "{name}: a receiver");
    // And one restored from the writer's snapshot.
    let snap = w.state_snapshot().encode();
    let (s, _) = Replica::restore(ReplicaId(3), config(), Some(&snap), [], 1).expect("snapshot");
    assert_eq!(text(&s, &k), end, "{name}: a snapshot");
}

#[test]
fn automerge_paper_replays_exactly() {
    replay_sequential("automerge-paper.json.gz");
}

#[test]
fn seph_blog1_replays_exactly() {
    replay_sequential("seph-blog1.json.gz");
}

#[test]
fn rustcode_replays_exactly() {
    replay_sequential("rustcode.json.gz");
}

#[test]
fn sveltecomponent_replays_exactly() {
    replay_sequential("sveltecomponent.json.gz");
}

#[test]
fn friendsforever_flat_replays_exactly() {
    replay_sequential("friendsforever_flat.json.gz");
}

#[test]
fn friendsforever_concurrent_converges_on_every_replica() {
    let t = load("friendsforever.concurrent.json.gz");
    let k = key("doc", CrdtType::Text);
    let agents = t["numAgents"].as_u64().expect("numAgents") as usize;
    let mut reps: Vec<Replica> = (0..agents)
        .map(|a| Replica::new(ReplicaId(a as u64 + 1), config()))
        .collect();
    // Per agent, its transactions in seq order; per trace txn, its version.
    let mut by_agent: Vec<Vec<TxnBytes>> = vec![Vec::new(); agents];
    let mut versions: Vec<VectorClock> = Vec::new();
    for txn in t["txns"].as_array().expect("txns") {
        let a = txn["agent"].as_u64().expect("agent") as usize;
        let mut want = VectorClock::new();
        for p in txn["parents"].as_array().expect("parents") {
            want.merge(&versions[p.as_u64().expect("parent") as usize]);
        }
        // Bring the agent's replica to exactly the parents' version.
        let r = &mut reps[a];
        for (b, txns) in by_agent.iter().enumerate() {
            if b == a {
                continue;
            }
            let id = ReplicaId(b as u64 + 1);
            let (have, need) = (r.clock().get(id), want.get(id));
            if need > have {
                let batch = txns[have as usize..need as usize].to_vec();
                r.handle_txns(None, batch).expect("valid txns");
            }
        }
        assert_eq!(r.stats().buffered, 0);
        assert_eq!(
            r.clock(),
            &want.merged(&VectorClock::from_entries([(
                r.id(),
                r.clock().get(r.id())
            )])),
            "the agent is at its parents' version"
        );
        let before = r.clock().clone();
        commit(r, &k, ops(&txn["patches"]));
        match r.catch_up(&before) {
            CatchUp::Txns(mut new) => {
                assert_eq!(new.len(), 1);
                by_agent[a].push(new.remove(0));
            }
            other => panic!("{other:?}"),
        }
        versions.push(r.clock().clone());
    }
    // Everyone gets everything.
    for (a, r) in reps.iter_mut().enumerate() {
        for (b, txns) in by_agent.iter().enumerate() {
            if a != b {
                let have = r.clock().get(ReplicaId(b as u64 + 1)) as usize;
                r.handle_txns(None, txns[have..].to_vec())
                    .expect("valid txns");
            }
        }
    }
    let end = t["endContent"].as_str().expect("endContent");
    for r in &reps {
        assert_eq!(r.stats().buffered, 0);
        assert_eq!(text(r, &k), end, "replica {:?}", r.id());
    }
}
