//! Runs arbitrary updates, of every type and op name with arbitrary
//! arguments (maps nested as deep as the input says), at two replicas that
//! sync now and then. An update either commits or is refused with nothing
//! changed; the replicas converge; their transactions and snapshots
//! re-decode to themselves, and a snapshot merged into a fresh replica
//! gives the same state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidote_core::{
    CatchUp, Codec, Config, CrdtType, Key, Replica, ReplicaId, Snapshot, Update, Value,
};

const OPS: [&str; 16] = [
    "increment",
    "decrement",
    "add",
    "remove",
    "add_all",
    "remove_all",
    "reset",
    "assign",
    "enable",
    "disable",
    "update",
    "insert",
    "insert_all",
    "delete",
    "splice",
    "nope",
];

fn sync(from: &Replica, to: &mut Replica) {
    match from.catch_up(to.clock()) {
        CatchUp::Txns(t) => {
            to.handle_txns(None, t)
                .expect("an honest replica's transactions");
        }
        CatchUp::Snapshot(s) => to.merge_snapshot(&s),
        CatchUp::UpToDate | CatchUp::Deferred => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config {
        snapshot_every: 0,
        ..Config::default()
    };
    let mut rs = [
        Replica::new(ReplicaId(1), config.clone()),
        Replica::new(ReplicaId(2), config),
    ];
    // The input: `type`, `op`, then (unless the op byte is 0xff, a sync)
    // `len` and `len` bytes of the argument (a Value; `null` = none).
    let mut rest = data;
    let mut keys = Vec::new();
    while let [t, o, tail @ ..] = rest {
        let (t, o) = (*t, *o);
        rest = tail;
        let ty = CrdtType::ALL[usize::from(t >> 1) % CrdtType::ALL.len()];
        let at = usize::from(t & 1);
        if o == 0xff {
            let (a, b) = rs.split_at_mut(1);
            if at == 0 {
                sync(&a[0], &mut b[0])
            } else {
                sync(&b[0], &mut a[0])
            }
            continue;
        }
        let Some((&len, tail)) = rest.split_first() else {
            break;
        };
        let (arg, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let arg = match Value::from_bytes(arg) {
            Ok(Value::Null) => None,
            Ok(v) => Some(v),
            Err(_) => continue,
        };
        let key = Key::new(["k", "j"][usize::from(o >> 7)], ty, "b");
        let Ok(u) = Update::parse(key.clone(), OPS[usize::from(o & 0x7f) % OPS.len()], arg) else {
            continue;
        };
        let before = rs[at].state_snapshot();
        if rs[at].update_objects(vec![u], None).is_err() {
            assert_eq!(
                rs[at].state_snapshot(),
                before,
                "a refused update changes nothing"
            );
        }
        let _ = rs[at].value(&key);
        keys.push(key);
    }
    let (a, b) = rs.split_at_mut(1);
    sync(&a[0], &mut b[0]);
    sync(&b[0], &mut a[0]);
    let sa = rs[0].state_snapshot();
    assert_eq!(
        sa.objects,
        rs[1].state_snapshot().objects,
        "replicas converge"
    );
    for k in &keys {
        assert_eq!(rs[0].value(k), rs[1].value(k));
    }
    let bytes = sa.encode();
    let back = Snapshot::decode(&bytes).expect("a snapshot re-decodes");
    assert_eq!(back.encode(), bytes);
    let mut fresh = Replica::new(ReplicaId(3), Config::default());
    fresh.merge_snapshot(&sa);
    assert_eq!(
        fresh.state_snapshot().objects,
        sa.objects,
        "merge into bottom is the identity"
    );
    if let CatchUp::Txns(t) = rs[0].catch_up(&minidote_core::VectorClock::new()) {
        for txn in t {
            // Decoded deps also hold the observed dots, so compare values.
            let d = minidote_core::Txn::decode(&txn).expect("own transactions decode");
            assert_eq!(minidote_core::Txn::decode(&d.encode()).as_ref(), Ok(&d));
        }
    }
});
