//! Maps (`map_rr`, `map_go`) through the replica: remove-resets against a
//! concurrent update for every embedded type, nesting, atomic transactions
//! over several maps, and typed errors.

mod common;

use std::collections::BTreeMap;

use common::{key, op, read, replica, sync, update};
use minidote_core::{CrdtType, Field, Key, Op, Pos, Replica, Update, UpdateError, Value};

fn up(name: &str, ty: CrdtType, inner: Op) -> Op {
    Op::Update(Field::new(name, ty), Box::new(inner))
}

fn field(name: &str, ty: CrdtType) -> Value {
    Value::List(vec![name.into(), ty.name().into()])
}

fn rm(name: &str, ty: CrdtType) -> Op {
    Op::Remove(field(name, ty))
}

fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
}

/// Two ops per type: what the base state holds, and the update that races
/// the remove.
fn ops_for(ty: CrdtType) -> (Op, Op) {
    use CrdtType::*;
    match ty {
        CounterPn | CounterPnSb => (Op::Increment(7), Op::Increment(5)),
        SetAw | SetRw | SetGo | Set2p => (Op::Add("old".into()), Op::Add("new".into())),
        RegisterMv | RegisterLww => (Op::Assign("old".into()), Op::Assign("new".into())),
        FlagEw | FlagDw => (Op::Enable, Op::Disable),
        MapRr | MapGo => (
            up("x", CounterPn, Op::Increment(7)),
            up("y", SetAw, Op::Add("new".into())),
        ),
        List | Text => (
            Op::Insert(
                Pos {
                    at: 0,
                    utf16: false,
                },
                "old".into(),
            ),
            Op::Insert(
                Pos {
                    at: 0,
                    utf16: false,
                },
                "new".into(),
            ),
        ),
        other => panic!("no ops for {other}"),
    }
}

/// The value a map holding only `inner` on field `f` reads.
fn alone(f: &str, ty: CrdtType, inner: &Op, map_ty: CrdtType) -> Value {
    let mut r = replica(50);
    let k = key("fresh", map_ty);
    op(&mut r, &k, up(f, ty, inner.clone()));
    read(&mut r, &k)
}

#[test]
fn a_remove_concurrent_with_an_update_keeps_only_the_update_for_every_embedded_type() {
    for ty in CrdtType::ALL {
        let (base, racing) = ops_for(ty);
        let k = key("doc", CrdtType::MapRr);
        let mut a = replica(1);
        let mut b = replica(2);
        op(&mut a, &k, up("f", ty, base));
        sync(&a, &mut b);
        // a removes the field; b concurrently updates it.
        op(&mut a, &k, rm("f", ty));
        assert_eq!(read(&mut a, &k), map(&[]), "{ty}: a removed field is gone");
        op(&mut b, &k, up("f", ty, racing.clone()));
        sync(&a, &mut b);
        sync(&b, &mut a);
        let want = alone("f", ty, &racing, CrdtType::MapRr);
        assert_eq!(
            read(&mut a, &k),
            want,
            "{ty}: only the racing update survives"
        );
        assert_eq!(read(&mut b, &k), want, "{ty}");
        assert_eq!(
            a.state_snapshot().objects,
            b.state_snapshot().objects,
            "{ty}"
        );
        // The numbers the issue names, spelled out.
        match ty {
            CrdtType::CounterPn | CrdtType::CounterPnSb => {
                assert_eq!(want, map(&[("f", Value::Int(5))]))
            }
            CrdtType::RegisterLww | CrdtType::Text => {
                assert_eq!(want, map(&[("f", "new".into())]))
            }
            CrdtType::List => assert_eq!(want, map(&[("f", Value::List(vec!["new".into()]))])),
            _ => {}
        }
    }
}

#[test]
fn a_reset_concurrent_with_updates_keeps_only_the_updates() {
    let k = key("doc", CrdtType::MapRr);
    let mut a = replica(1);
    let mut b = replica(2);
    update(
        &mut a,
        vec![
            (k.clone(), up("n", CrdtType::CounterPn, Op::Increment(7))),
            (
                k.clone(),
                up("t", CrdtType::RegisterLww, Op::Assign("old".into())),
            ),
            (k.clone(), up("s", CrdtType::SetAw, Op::Add("old".into()))),
        ],
    );
    sync(&a, &mut b);
    op(&mut a, &k, Op::Reset);
    update(
        &mut b,
        vec![
            (k.clone(), up("n", CrdtType::CounterPn, Op::Increment(2))),
            (
                k.clone(),
                up("t", CrdtType::RegisterLww, Op::Assign("new".into())),
            ),
        ],
    );
    sync(&a, &mut b);
    sync(&b, &mut a);
    let want = map(&[("n", Value::Int(2)), ("t", "new".into())]);
    assert_eq!(read(&mut a, &k), want);
    assert_eq!(read(&mut b, &k), want);
}

#[test]
fn two_deep_nesting_removes_and_updates_race_at_every_level() {
    let doc = key("doc", CrdtType::MapRr);
    let tag = |v: &str| {
        up(
            "meta",
            CrdtType::MapRr,
            up("tags", CrdtType::SetAw, Op::Add(v.into())),
        )
    };
    let mut a = replica(1);
    let mut b = replica(2);
    update(
        &mut a,
        vec![
            (doc.clone(), tag("x")),
            (
                doc.clone(),
                up(
                    "meta",
                    CrdtType::MapRr,
                    up("views", CrdtType::CounterPn, Op::Increment(3)),
                ),
            ),
        ],
    );
    sync(&a, &mut b);
    assert_eq!(
        read(&mut b, &doc),
        map(&[(
            "meta",
            map(&[("tags", Value::List(vec!["x".into()])), ("views", 3.into())])
        )])
    );
    // a drops the whole "meta" map; b adds a tag to it concurrently.
    op(&mut a, &doc, rm("meta", CrdtType::MapRr));
    op(&mut b, &doc, tag("y"));
    sync(&a, &mut b);
    sync(&b, &mut a);
    let want = map(&[("meta", map(&[("tags", Value::List(vec!["y".into()]))]))]);
    assert_eq!(read(&mut a, &doc), want);
    assert_eq!(read(&mut b, &doc), want);
}

#[test]
fn one_transaction_over_several_maps_is_one_dot_and_all_or_nothing() {
    let m1 = key("m1", CrdtType::MapRr);
    let m2 = key("m2", CrdtType::MapGo);
    let mut a = replica(1);
    let clock = update(
        &mut a,
        vec![
            (m1.clone(), up("x", CrdtType::SetAw, Op::Add(1.into()))),
            (m2.clone(), up("y", CrdtType::FlagEw, Op::Enable)),
            (m1.clone(), up("z", CrdtType::CounterPnSb, Op::Increment(1))),
        ],
    );
    assert_eq!(clock.get(a.id()), 1, "one transaction, one dot");
    // A batch whose last update overflows a counter field refuses the
    // whole batch: the first map is untouched.
    let before = a.state_snapshot();
    let err = a
        .update_objects(
            vec![
                Update::new(m2.clone(), up("w", CrdtType::SetAw, Op::Add(2.into()))),
                Update::new(
                    m1.clone(),
                    up("z", CrdtType::CounterPnSb, Op::Increment(i64::MAX)),
                ),
            ],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, UpdateError::Overflow { index: 1 }), "{err}");
    assert_eq!(a.state_snapshot(), before);
    // Replicas that get it see both maps change together.
    let mut b = replica(2);
    sync(&a, &mut b);
    assert_eq!(read(&mut b, &m2), map(&[("y", true.into())]));
}

#[test]
fn a_field_back_at_bottom_disappears_and_map_go_keeps_fields() {
    let k = key("m", CrdtType::MapGo);
    let mut a = replica(1);
    op(&mut a, &k, up("s", CrdtType::SetAw, Op::Add("e".into())));
    op(&mut a, &k, up("f", CrdtType::FlagEw, Op::Enable));
    op(&mut a, &k, up("s", CrdtType::SetAw, Op::Remove("e".into())));
    assert_eq!(read(&mut a, &k), map(&[("f", true.into())]));
    op(&mut a, &k, up("f", CrdtType::FlagEw, Op::Disable));
    assert_eq!(read(&mut a, &k), map(&[]));
    assert!(
        a.state_snapshot().objects.is_empty(),
        "nothing left to store"
    );
}

#[test]
fn bad_map_ops_are_typed_errors_and_change_nothing() {
    let rr = Key::new("m", CrdtType::MapRr, "b");
    let go = Key::new("g", CrdtType::MapGo, "b");
    let parse = |k: &Key, name: &str, arg: Option<Value>| Update::parse(k.clone(), name, arg);
    // An unknown field type.
    let bad_type = Value::List(vec![field("x", CrdtType::SetAw), "add".into(), 1.into()]);
    let Value::List(mut l) = bad_type else {
        unreachable!()
    };
    l[0] = Value::List(vec!["x".into(), "sett".into()]);
    assert!(matches!(
        parse(&rr, "update", Some(Value::List(l))),
        Err(UpdateError::UnknownType(t)) if t == "sett"
    ));
    // A field that is not `[name, type]`.
    assert!(matches!(
        parse(
            &rr,
            "update",
            Some(Value::List(vec!["x".into(), "add".into()]))
        ),
        Err(UpdateError::WrongArgument { op: "update", .. })
    ));
    assert!(matches!(
        parse(&rr, "remove", Some("x".into())),
        Err(UpdateError::WrongArgument { op: "remove", .. })
    ));
    // The inner op must be one of the field's type.
    assert!(matches!(
        parse(
            &rr,
            "update",
            Some(Value::List(vec![
                field("n", CrdtType::CounterPn),
                "add".into(),
                1.into()
            ]))
        ),
        Err(UpdateError::UnknownOp {
            ty: CrdtType::CounterPn,
            ..
        })
    ));
    // map_go has no remove or reset.
    assert!(matches!(
        parse(&go, "remove", Some(field("n", CrdtType::CounterPn))),
        Err(UpdateError::UnknownOp {
            ty: CrdtType::MapGo,
            ..
        })
    ));
    assert!(matches!(
        parse(&go, "reset", None),
        Err(UpdateError::UnknownOp { .. })
    ));
    // Nesting past the limit.
    let mut arg = Value::List(vec![field("c", CrdtType::CounterPn), "increment".into()]);
    for _ in 0..70 {
        arg = Value::List(vec![field("m", CrdtType::MapRr), "update".into(), arg]);
    }
    assert!(matches!(
        parse(&rr, "update", Some(arg)),
        Err(UpdateError::TooDeep { .. })
    ));
    // The API's own examples parse.
    let todo = parse(
        &rr,
        "update",
        Some(Value::List(vec![
            field("done", CrdtType::FlagEw),
            "enable".into(),
        ])),
    )
    .unwrap();
    let two_deep = parse(
        &rr,
        "update",
        Some(Value::List(vec![
            field("meta", CrdtType::MapRr),
            "update".into(),
            Value::List(vec![
                field("tags", CrdtType::SetAw),
                "add".into(),
                "x".into(),
            ]),
        ])),
    )
    .unwrap();
    let mut a: Replica = replica(1);
    a.update_objects(vec![todo, two_deep], None).unwrap();
    assert_eq!(
        read(&mut a, &rr),
        map(&[
            ("done", true.into()),
            ("meta", map(&[("tags", Value::List(vec!["x".into()]))]))
        ])
    );
}

#[test]
fn the_deepest_nesting_a_peer_can_decode_is_the_deepest_accepted() {
    // 63 updates deep is accepted and reaches another replica; 64 is refused.
    let nest = |levels: usize| {
        let mut op = Op::Increment(1);
        op = up("c", CrdtType::CounterPn, op);
        for _ in 1..levels {
            op = up("m", CrdtType::MapRr, op);
        }
        op
    };
    let k = key("deep", CrdtType::MapRr);
    let mut a = replica(1);
    op(&mut a, &k, nest(63));
    let mut b = replica(2);
    sync(&a, &mut b);
    assert_eq!(read(&mut b, &k), read(&mut a, &k));
    let snap = a.state_snapshot().encode();
    assert!(
        minidote_core::Snapshot::decode(&snap).is_ok(),
        "its snapshot decodes"
    );
    let err = a
        .update_objects(vec![Update::new(k.clone(), nest(64))], None)
        .unwrap_err();
    assert!(matches!(err, UpdateError::TooDeep { .. }), "{err}");
}

#[test]
fn a_reset_only_a_map_field_can_have_is_refused_on_a_top_level_object() {
    use minidote_core::{effect, Effect, ReplicaId, Txn, VectorClock};
    // A counter_pn effect with a floor, on a top-level counter: no honest
    // replica makes one (a top-level counter cannot be reset).
    let t = Txn {
        origin: ReplicaId(9),
        seq: 1,
        deps: VectorClock::new(),
        effects: vec![(
            key("likes", CrdtType::CounterPn),
            Effect::CounterPn(effect::CounterPn {
                delta: None,
                reset: vec![(ReplicaId(1), effect::PnEntry { seq: 3, p: 7, n: 0 })],
            }),
        )],
    };
    assert!(Txn::decode(&t.encode()).is_err());
    // The same inside a map field is a remove, and decodes.
    let m = Txn {
        effects: vec![(
            key("doc", CrdtType::MapRr),
            Effect::MapRr(effect::MapRr(vec![(
                Field::new("n", CrdtType::CounterPn),
                t.effects[0].1.clone(),
            )])),
        )],
        ..t.clone()
    };
    assert!(Txn::decode(&m.encode()).is_ok());
}

#[test]
fn removed_counters_leave_no_effects_in_later_resets() {
    let k = key("dict", CrdtType::MapRr);
    let mut a = replica(1);
    for i in 0..50 {
        let name = format!("c{i}");
        op(&mut a, &k, up(&name, CrdtType::CounterPn, Op::Increment(1)));
        op(&mut a, &k, rm(&name, CrdtType::CounterPn));
    }
    assert_eq!(read(&mut a, &k), map(&[]));
    let before = a.catch_up(&Default::default());
    op(&mut a, &k, Op::Reset);
    let minidote_core::CatchUp::Txns(all) = a.catch_up(&Default::default()) else {
        panic!("{before:?}")
    };
    let last = all.last().unwrap();
    assert!(
        last.len() < 64,
        "the reset names none of the 50 tombstones: {} bytes",
        last.len()
    );
}
