//! Helpers shared by the behaviour tests: in-memory replicas and manual
//! delivery, so a test decides exactly what each replica has seen.
#![allow(dead_code)]

use minidote_core::{
    CatchUp, Config, CrdtType, Key, Op, ReadOutcome, Replica, ReplicaId, Update, UpdateOutcome,
    Value, VectorClock,
};

pub fn replica(id: u64) -> Replica {
    Replica::new(ReplicaId(id), Config::default())
}

pub fn key(name: &str, ty: CrdtType) -> Key {
    Key::new(name, ty, "test")
}

/// Runs one transaction on `r`; panics if it is invalid or pending.
pub fn update(r: &mut Replica, updates: Vec<(Key, Op)>) -> VectorClock {
    let ups = updates
        .into_iter()
        .map(|(k, op)| Update::new(k, op))
        .collect();
    match r.update_objects(ups, None).expect("valid update") {
        UpdateOutcome::Committed(c) => c,
        UpdateOutcome::Pending(_) => panic!("memory replica update pending"),
    }
}

pub fn op(r: &mut Replica, k: &Key, op: Op) -> VectorClock {
    update(r, vec![(k.clone(), op)])
}

pub fn read(r: &mut Replica, k: &Key) -> Value {
    match r.read_objects(vec![k.clone()], None) {
        ReadOutcome::Ready(mut v, _) => v.remove(0),
        ReadOutcome::Pending(_) => panic!("read pending"),
    }
}

/// Delivers to `to` everything `from` has that `to` lacks.
pub fn sync(from: &Replica, to: &mut Replica) {
    match from.catch_up(to.clock()) {
        CatchUp::UpToDate => {}
        CatchUp::Txns(t) => {
            let st = to.handle_txns(None, t).expect("valid txns");
            assert_eq!(st.buffered, 0, "log order is causal");
        }
        CatchUp::Snapshot(s) => to.merge_snapshot(&s),
        CatchUp::Deferred => panic!("memory replicas are always durable"),
    }
}

/// Delivers to `rs[to]` everything `rs[from]` has that it lacks.
pub fn sync_pair(rs: &mut [Replica], from: usize, to: usize) {
    assert_ne!(from, to);
    let (a, b) = if from < to {
        let (l, r) = rs.split_at_mut(to);
        (&l[from], &mut r[0])
    } else {
        let (l, r) = rs.split_at_mut(from);
        (&r[0], &mut l[to])
    };
    sync(a, b);
}

pub fn ints(v: &[i64]) -> Value {
    Value::List(v.iter().map(|i| Value::Int(*i)).collect())
}

pub fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|s| Value::from(*s)).collect())
}
