//! `list` and `text` through the replica: the API's op shapes and their
//! errors (nothing applied), concurrent typing on three replicas, deltas
//! for subscribers and cursors.

mod common;

use common::{key, read, replica, sync};
use minidote_core::{
    Config, CrdtType, CursorError, DeltaOp, Event, Key, Replica, ReplicaId, Update, UpdateError,
    UpdateOutcome, Value,
};

fn v(x: &str) -> Value {
    Value::from(x)
}

fn args(items: Vec<Value>) -> Option<Value> {
    Some(Value::List(items))
}

fn run(r: &mut Replica, k: &Key, op: &str, arg: Option<Value>) -> Result<(), UpdateError> {
    let u = Update::parse(k.clone(), op, arg)?;
    r.update_objects(vec![u], None).map(|_| ())
}

fn int(i: i64) -> Value {
    Value::Int(i)
}

#[test]
fn list_ops_follow_the_api() {
    let mut r = replica(1);
    let k = key("l", CrdtType::List);
    run(&mut r, &k, "insert", args(vec![int(0), v("b")])).unwrap();
    run(&mut r, &k, "insert", args(vec![int(0), v("a")])).unwrap();
    run(
        &mut r,
        &k,
        "insert_all",
        args(vec![int(2), Value::List(vec![int(1), int(2), int(3)])]),
    )
    .unwrap();
    assert_eq!(
        read(&mut r, &k),
        Value::List(vec![v("a"), v("b"), int(1), int(2), int(3)])
    );
    run(&mut r, &k, "delete", args(vec![int(1), int(3)])).unwrap();
    assert_eq!(read(&mut r, &k), Value::List(vec![v("a"), int(3)]));
}

#[test]
fn text_ops_follow_the_api() {
    let mut r = replica(1);
    let k = key("t", CrdtType::Text);
    run(&mut r, &k, "insert", args(vec![int(0), v("hello")])).unwrap();
    run(&mut r, &k, "insert", args(vec![int(5), v(" world")])).unwrap();
    run(
        &mut r,
        &k,
        "splice",
        args(vec![int(0), int(5), v("goodbye")]),
    )
    .unwrap();
    run(&mut r, &k, "delete", args(vec![int(7), int(1)])).unwrap();
    assert_eq!(read(&mut r, &k), v("goodbyeworld"));
}

#[test]
fn bad_indexes_and_arguments_are_refused_and_nothing_is_applied() {
    let mut r = replica(1);
    let t = key("t", CrdtType::Text);
    let l = key("l", CrdtType::List);
    run(&mut r, &t, "insert", args(vec![int(0), v("abc")])).unwrap();
    run(&mut r, &l, "insert", args(vec![int(0), int(7)])).unwrap();
    let before = r.state_snapshot();
    let clock = r.clock().clone();
    let cases: Vec<(&Key, &str, Option<Value>)> = vec![
        (&t, "insert", args(vec![int(4), v("x")])),
        (&t, "insert", args(vec![int(-1), v("x")])),
        (&t, "insert", args(vec![int(0), int(5)])),
        (&t, "insert", args(vec![v("0"), v("x")])),
        (&t, "insert", Some(v("x"))),
        (&t, "insert", None),
        (&t, "delete", args(vec![int(2), int(2)])),
        (&t, "splice", args(vec![int(0), int(1)])),
        (&t, "insert_all", args(vec![int(0), Value::List(vec![])])),
        (&l, "insert", args(vec![int(2), int(1)])),
        (&l, "delete", args(vec![int(0), int(2)])),
        (&l, "splice", args(vec![int(0), int(0), v("x")])),
        (&l, "insert_all", args(vec![int(0), int(1)])),
    ];
    for (k, op, arg) in cases {
        let err = run(&mut r, k, op, arg.clone()).expect_err(&format!("{op} {arg:?}"));
        assert!(
            matches!(
                err,
                UpdateError::IndexOutOfRange { .. }
                    | UpdateError::WrongArgument { .. }
                    | UpdateError::MissingArgument { .. }
                    | UpdateError::UnknownOp { .. }
            ),
            "{op} {arg:?}: {err:?}"
        );
    }
    // A batch whose last update is out of range applies nothing.
    let ups = vec![
        Update::parse(t.clone(), "insert", args(vec![int(0), v("x")])).unwrap(),
        Update::parse(l.clone(), "insert", args(vec![int(0), v("y")])).unwrap(),
        Update::parse(t.clone(), "delete", args(vec![int(0), int(9)])).unwrap(),
    ];
    let err = r.update_objects(ups, None).unwrap_err();
    assert!(
        matches!(
            err,
            UpdateError::IndexOutOfRange {
                index: 2,
                len: 4,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(r.state_snapshot(), before);
    assert_eq!(r.clock(), &clock);
}

#[test]
fn three_replicas_typing_at_one_place_keep_their_words_whole() {
    let k = key("t", CrdtType::Text);
    let mut rs: Vec<Replica> = (1..=3).map(replica).collect();
    run(&mut rs[0], &k, "insert", args(vec![int(0), v("<>")])).unwrap();
    let (a, rest) = rs.split_at_mut(1);
    for r in rest.iter_mut() {
        sync(&a[0], r);
    }
    // Replica 0 types forward, 1 backward, 2 forward, all at index 1, one
    // transaction per character.
    let words = ["alpha", "bravo", "charlie"];
    for (i, w) in words.iter().enumerate() {
        for (n, c) in w.chars().enumerate() {
            let at = if i == 1 { 1 } else { 1 + n as i64 };
            let ch = if i == 1 {
                w.chars().rev().nth(n).unwrap()
            } else {
                c
            };
            run(
                &mut rs[i],
                &k,
                "insert",
                args(vec![int(at), v(&ch.to_string())]),
            )
            .unwrap();
        }
    }
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                let (from, to) = if i < j {
                    let (l, r) = rs.split_at_mut(j);
                    (&l[i], &mut r[0])
                } else {
                    let (l, r) = rs.split_at_mut(i);
                    (&r[0], &mut l[j])
                };
                sync(from, to);
            }
        }
    }
    let got = read(&mut rs[0], &k);
    for r in rs.iter_mut() {
        assert_eq!(read(r, &k), got);
    }
    let Value::Str(s) = got else { panic!() };
    let inner = &s[1..s.len() - 1];
    for w in words {
        assert!(inner.contains(w), "{w} is not whole in {inner}");
    }
    assert_eq!(inner.len(), words.iter().map(|w| w.len()).sum::<usize>());
}

fn events(r: &mut Replica) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

#[test]
fn subscribers_get_deltas_for_local_and_remote_changes() {
    let config = Config {
        emit_changes: true,
        ..Config::default()
    };
    let k = key("t", CrdtType::Text);
    let mut a = Replica::new(ReplicaId(1), config.clone());
    let mut b = Replica::new(ReplicaId(2), config);
    run(&mut a, &k, "insert", args(vec![int(0), v("a😀c")])).unwrap();
    let ev = events(&mut a);
    assert!(ev.contains(&Event::Delta {
        key: k.clone(),
        delta: vec![DeltaOp::Insert(v("a😀c"))]
    }));
    sync(&a, &mut b);
    events(&mut b);
    // A splice after the emoji: the retain counts 2 code points, 3 units.
    run(&mut a, &k, "splice", args(vec![int(2), int(1), v("d")])).unwrap();
    let want = Event::Delta {
        key: k.clone(),
        delta: vec![
            DeltaOp::Retain { n: 2, n16: 3 },
            DeltaOp::Delete { n: 1, n16: 1 },
            DeltaOp::Insert(v("d")),
        ],
    };
    assert!(events(&mut a).contains(&want));
    sync(&a, &mut b);
    let ev = events(&mut b);
    let pos = ev.iter().position(|e| *e == want).expect("remote delta");
    assert!(
        matches!(&ev[pos + 1], Event::Changed(keys) if keys == &vec![k.clone()]),
        "the delta comes right before the change: {ev:?}"
    );
}

#[test]
fn cursors_stay_with_their_element() {
    let k = key("t", CrdtType::Text);
    let mut a = replica(1);
    let mut b = replica(2);
    let empty = a.cursor(&k, 0, false).unwrap();
    run(&mut a, &k, "insert", args(vec![int(0), v("hello world")])).unwrap();
    sync(&a, &mut b);
    let at_w = a.cursor(&k, 6, false).unwrap();
    let at_end = a.cursor(&k, 11, false).unwrap();
    assert!(a.cursor(&k, 12, false).is_err());
    // b inserts before the cursor; a deletes the word before it.
    run(&mut b, &k, "insert", args(vec![int(0), v("😀 ")])).unwrap();
    run(&mut a, &k, "delete", args(vec![int(0), int(6)])).unwrap();
    sync(&b, &mut a);
    sync(&a, &mut b);
    assert_eq!(read(&mut a, &k), v("😀 world"));
    for r in [&a, &b] {
        assert_eq!(r.resolve(&at_w).unwrap().1, 2);
        assert_eq!(r.resolve(&at_w).unwrap().2, 3, "UTF-16");
        assert_eq!(r.resolve(&at_end).unwrap().1, 7);
        assert_eq!(r.resolve(&empty).unwrap().1, 0);
    }
    // The element of a cursor itself deleted: the cursor stays where it was.
    run(&mut a, &k, "delete", args(vec![int(2), int(1)])).unwrap();
    assert_eq!(a.resolve(&at_w).unwrap().1, 2);
    // A replica that has not seen the element says so; garbage is refused.
    let c = replica(3);
    assert!(matches!(c.resolve(&at_w), Err(CursorError::Unknown(_))));
    for n in 0..at_w.len() {
        assert!(a.resolve(&at_w[..n]).is_err());
    }
    assert!(matches!(
        a.cursor(&key("s", CrdtType::SetAw), 0, false),
        Err(CursorError::NotASequence(_))
    ));
    let _ = UpdateOutcome::Pending;
}
