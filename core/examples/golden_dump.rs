//! Prints the golden byte vectors pinned in `tests/golden.rs` and documented
//! in PROTOCOL.md. Run: `cargo run -p minidote-core --example golden_dump`.
use minidote_core::effect::Mark;
use minidote_core::*;
use std::collections::BTreeMap;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() {
    for (name, bytes) in vectors() {
        println!("{name} ({} bytes): {}", bytes.len(), hex(&bytes));
    }
}

pub fn vectors() -> Vec<(&'static str, Vec<u8>)> {
    let a = ReplicaId(0x0a);
    let b = ReplicaId(0x0b);
    let c = ReplicaId(0x0c);
    let likes = Key::new("likes", CrdtType::CounterPn, "demo");
    let mut out = Vec::new();
    out.push((
        "clock",
        VectorClock::from_entries([(a, 3), (b, 1)]).to_bytes(),
    ));
    out.push((
        "clock_packed",
        VectorClock::from_entries([(a, 3), (b, 1), (ReplicaId(0x1a), 2)]).to_bytes(),
    ));
    let inc = Txn {
        origin: a,
        seq: 1,
        deps: VectorClock::new(),
        effects: vec![(
            likes.clone(),
            Effect::CounterPn(minidote_core::effect::CounterPn::delta(1)),
        )],
    };
    out.push((
        "txns_counter_increment",
        Frame::Txns(vec![inc.encode().into()]).encode(),
    ));
    let inc3 = Txn {
        origin: a,
        seq: 5,
        deps: VectorClock::from_entries([(b, 4), (c, 2)]),
        effects: vec![(
            likes.clone(),
            Effect::CounterPn(minidote_core::effect::CounterPn::delta(1)),
        )],
    };
    out.push((
        "txns_counter_increment_two_deps",
        Frame::Txns(vec![inc3.encode().into()]).encode(),
    ));
    let set = Txn {
        origin: b,
        seq: 2,
        deps: VectorClock::from_entries([(a, 1)]),
        effects: vec![(
            Key::new("list", CrdtType::SetAw, "demo"),
            Effect::SetAw(vec![effect::ElemEffect {
                elem: Value::from("milk"),
                removed: effect::DotSet::single(Dot::new(a, 1)),
                mark: Mark::Pos,
            }]),
        )],
    };
    out.push(("txn_set_aw_add", set.encode()));
    // b overwrites the title a wrote at (a, 1): the observed dot goes in
    // the effect (and so in the decoded deps).
    let title = Txn {
        origin: b,
        seq: 3,
        deps: VectorClock::from_entries([(a, 1)]),
        effects: vec![(
            Key::new("title", CrdtType::RegisterLww, "demo"),
            Effect::RegisterLww(effect::RegisterLww {
                ts: 2,
                removed: vec![Dot::new(a, 1)],
                value: Some(Value::from("hi")),
            }),
        )],
    };
    out.push(("txn_register_lww_assign", title.encode()));
    // a's first transaction adds "x" to the set field "tags" of the map
    // field "meta" of the map "doc": two deep, one effect per level.
    let doc = Key::new("doc", CrdtType::MapRr, "demo");
    let nested = Txn {
        origin: a,
        seq: 1,
        deps: VectorClock::new(),
        effects: vec![(
            doc.clone(),
            Effect::MapRr(effect::MapRr(vec![(
                Field::new("meta", CrdtType::MapRr),
                Effect::MapRr(effect::MapRr(vec![(
                    Field::new("tags", CrdtType::SetAw),
                    Effect::SetAw(vec![effect::ElemEffect {
                        elem: Value::from("x"),
                        removed: effect::DotSet::new(),
                        mark: Mark::Pos,
                    }]),
                )])),
            )])),
        )],
    };
    out.push(("txn_map_rr_update_two_deep", nested.encode()));
    let mut r = Replica::new(b, Config::default());
    r.handle_txns(None, vec![nested.encode().into()])
        .expect("a valid transaction");
    out.push(("snapshot_map_rr", r.state_snapshot().encode()));
    // a's second transaction removes the counter field "n" it had
    // incremented by 7 at seq 1: the effect names the totals it resets.
    let remove = Txn {
        origin: a,
        seq: 2,
        deps: VectorClock::new(),
        effects: vec![(
            doc,
            Effect::MapRr(effect::MapRr(vec![(
                Field::new("n", CrdtType::CounterPn),
                Effect::CounterPn(effect::CounterPn {
                    delta: None,
                    reset: vec![(a, effect::PnEntry { seq: 1, p: 7, n: 0 })],
                }),
            )])),
        )],
    };
    out.push(("txn_map_rr_remove_counter", remove.encode()));
    out.push((
        "stored",
        Frame::Stored(VectorClock::from_entries([(a, 7)])).encode(),
    ));
    out.push((
        "snapshot_part",
        Frame::SnapshotPart {
            id: 0x0102_0304_0506_0708,
            total: 300,
            offset: 200,
            bytes: vec![0xab; 3],
        }
        .encode(),
    ));
    out.push((
        "hello",
        Frame::Hello(Hello {
            replica: a,
            room: "demo".into(),
            clock: VectorClock::from_entries([(a, 1)]),
            token: Some("t".into()),
        })
        .encode(),
    ));
    out.push((
        "need",
        Frame::Need(VectorClock::from_entries([(b, 2)])).encode(),
    ));
    out.push((
        "error",
        Frame::Error {
            code: 3,
            message: "room".into(),
        }
        .encode(),
    ));
    out.push(("ping", Frame::Ping(300).encode()));
    out.push(("pong", Frame::Pong(300).encode()));
    let mut m = BTreeMap::new();
    m.insert("k".to_string(), Value::Bytes(vec![0xff]));
    // One list of one value of each kind.
    let values = Value::List(vec![
        Value::Null,
        Value::Bool(false),
        Value::Bool(true),
        Value::Int(-2),
        Value::Float(1.5),
        Value::from("é"),
        Value::List(vec![Value::Int(1)]),
        Value::Map(m),
    ]);
    out.push(("values", values.to_bytes()));
    let mut r = Replica::new(a, Config::default());
    r.update_objects(
        vec![
            Update::new(likes, Op::Increment(2)),
            Update::new(Key::new("maint", CrdtType::FlagEw, "demo"), Op::Enable),
        ],
        None,
    )
    .unwrap();
    out.push(("snapshot", r.state_snapshot().encode()));
    // Text: replica 0x0a types "hi" (one transaction), then "!" after it,
    // then deletes the "h"; a list gets two values in one transaction.
    let doc = Key::new("doc", CrdtType::Text, "demo");
    let at = |at| Pos { at, utf16: false };
    let mut t = Replica::new(a, Config::default());
    let step = |t: &mut Replica, op: Op| -> Vec<u8> {
        let before = t.clock().clone();
        t.update_objects(vec![Update::new(doc.clone(), op)], None)
            .unwrap();
        match t.catch_up(&before) {
            CatchUp::Txns(mut x) => x.remove(0).to_vec(),
            _ => unreachable!(),
        }
    };
    step(&mut t, Op::Insert(at(0), Value::from("hi")));
    out.push((
        "txn_text_insert",
        step(&mut t, Op::Insert(at(2), Value::from("!"))),
    ));
    out.push(("txn_text_delete", step(&mut t, Op::Delete(at(0), 1))));
    out.push(("snapshot_text", t.state_snapshot().encode()));
    let items = Key::new("items", CrdtType::List, "demo");
    let mut l = Replica::new(b, Config::default());
    l.update_objects(
        vec![Update::new(
            items,
            Op::InsertAll(at(0), vec![Value::Int(1), Value::from("x")]),
        )],
        None,
    )
    .unwrap();
    out.push(("snapshot_list", l.state_snapshot().encode()));
    // A run: two increments by `a` (the second is "next seq, same key"),
    // then one by `b` that depends on them, and a two-key transaction.
    let inc2 = Txn {
        seq: 2,
        ..inc.clone()
    };
    let by_b = Txn {
        origin: b,
        seq: 1,
        deps: VectorClock::from_entries([(a, 2)]),
        ..inc.clone()
    };
    let two_keys = Txn {
        origin: b,
        seq: 2,
        deps: VectorClock::new(),
        effects: vec![
            (
                Key::new("a", CrdtType::CounterPn, "d"),
                Effect::CounterPn(minidote_core::effect::CounterPn::delta(1)),
            ),
            (
                Key::new("b", CrdtType::CounterPn, "d"),
                Effect::CounterPn(minidote_core::effect::CounterPn::delta(-1)),
            ),
        ],
    };
    let txns = [
        inc.encode(),
        inc2.encode(),
        by_b.encode(),
        two_keys.encode(),
    ];
    out.push(("run", minidote_core::wire::run_frame(&txns).unwrap()));
    out
}
