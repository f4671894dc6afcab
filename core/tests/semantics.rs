//! Behaviour of every type through the replica API, following
//! antidote_crdt's documented semantics. Concurrency is made by updating
//! replicas that have not synced, then syncing.

mod common;

use common::*;
use minidote_core::{
    CrdtType::*, Event, Key, Op, ReadOutcome, Update, UpdateError, UpdateOutcome, Value,
};

fn s(x: &str) -> Value {
    Value::from(x)
}

// ---------- counters ----------

#[test]
fn counter_pn_sums_increments_and_decrements_from_all_replicas() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("likes", CounterPn);
    op(&mut a, &k, Op::Increment(5));
    op(&mut b, &k, Op::Decrement(2));
    op(&mut b, &k, Op::Increment(-1));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Int(2));
    assert_eq!(read(&mut b, &k), Value::Int(2));
}

#[test]
fn counter_pn_wraps_at_i64() {
    let mut a = replica(1);
    let k = key("c", CounterPn);
    op(&mut a, &k, Op::Increment(i64::MAX));
    op(&mut a, &k, Op::Increment(1));
    assert_eq!(read(&mut a, &k), Value::Int(i64::MIN));
}

#[test]
fn counter_ops_default_to_one() {
    let mut a = replica(1);
    let k = key("c", CounterPn);
    let u = Update::parse(k.clone(), "increment", None).unwrap();
    a.update_objects(vec![u], None).unwrap();
    assert_eq!(read(&mut a, &k), Value::Int(1));
}

#[test]
fn counter_pn_sb_converges_and_joins_by_max() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("c", CounterPnSb);
    op(&mut a, &k, Op::Increment(3));
    op(&mut a, &k, Op::Decrement(1));
    op(&mut b, &k, Op::Increment(10));
    // Snapshots join by max, so merging twice changes nothing.
    let snap_a = a.state_snapshot();
    b.merge_snapshot(&snap_a);
    b.merge_snapshot(&snap_a);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Int(12));
    assert_eq!(read(&mut b, &k), Value::Int(12));
}

#[test]
fn counter_pn_sb_overflow_is_refused_and_applies_nothing() {
    let mut a = replica(1);
    let k = key("c", CounterPnSb);
    let other = key("other", CounterPn);
    // P reaches 2^64 - 2 while the value stays in i64 (a decrement between).
    op(&mut a, &k, Op::Increment(i64::MAX));
    op(&mut a, &k, Op::Decrement(i64::MAX));
    op(&mut a, &k, Op::Increment(i64::MAX));
    let before = a.clock().clone();
    let err = a
        .update_objects(
            vec![
                Update::new(other.clone(), Op::Increment(1)),
                Update::new(k.clone(), Op::Increment(2)),
            ],
            None,
        )
        .unwrap_err();
    assert_eq!(err, UpdateError::Overflow { index: 1 });
    assert_eq!(a.clock(), &before);
    assert_eq!(read(&mut a, &other), Value::Int(0));
}

// ---------- sets ----------

#[test]
fn set_aw_concurrent_add_and_remove_keeps_the_element() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetAw);
    op(&mut a, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    op(&mut a, &k, Op::Remove(s("x")));
    op(&mut b, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["x"]));
    assert_eq!(read(&mut b, &k), strs(&["x"]));
}

#[test]
fn set_aw_remove_after_add_removes() {
    let mut a = replica(1);
    let k = key("s", SetAw);
    op(&mut a, &k, Op::AddAll(vec![s("b"), s("a"), s("c")]));
    op(&mut a, &k, Op::RemoveAll(vec![s("a"), s("zzz")]));
    assert_eq!(read(&mut a, &k), strs(&["b", "c"]));
}

#[test]
fn set_aw_reset_removes_only_what_it_observed() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetAw);
    op(&mut a, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    op(&mut a, &k, Op::Reset);
    op(&mut b, &k, Op::Add(s("y")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["y"]));
    assert_eq!(read(&mut b, &k), strs(&["y"]));
}

#[test]
fn set_aw_removing_an_absent_element_is_accepted_and_does_nothing() {
    let mut a = replica(1);
    let k = key("s", SetAw);
    let c = op(&mut a, &k, Op::Remove(s("ghost")));
    assert_eq!(c.get(a.id()), 1, "the transaction still happened");
    op(&mut a, &k, Op::Add(s("ghost")));
    assert_eq!(read(&mut a, &k), strs(&["ghost"]));
}

#[test]
fn set_rw_concurrent_add_and_remove_drops_the_element() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetRw);
    op(&mut a, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    op(&mut a, &k, Op::Remove(s("x")));
    op(&mut b, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&[]));
    assert_eq!(read(&mut b, &k), strs(&[]));
    // A later add that saw the remove brings it back.
    op(&mut b, &k, Op::Add(s("x")));
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["x"]));
}

#[test]
fn set_rw_reset_leaves_no_tombstone_so_a_concurrent_add_survives() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetRw);
    op(&mut a, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    op(&mut a, &k, Op::Reset);
    op(&mut b, &k, Op::Add(s("y")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["y"]));
}

#[test]
fn set_rw_remove_of_an_unseen_element_still_beats_a_concurrent_add() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetRw);
    op(&mut a, &k, Op::Remove(s("x")));
    op(&mut b, &k, Op::Add(s("x")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&[]));
    assert_eq!(read(&mut b, &k), strs(&[]));
}

#[test]
fn set_go_only_grows_and_refuses_remove() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetGo);
    op(&mut a, &k, Op::Add(Value::Int(3)));
    op(&mut b, &k, Op::AddAll(vec![Value::Int(1), Value::Int(3)]));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), ints(&[1, 3]));
    let err = a.update_objects(
        vec![Update::new(k.clone(), Op::Remove(Value::Int(1)))],
        None,
    );
    assert!(matches!(err, Err(UpdateError::UnknownOp { .. })));
    assert!(matches!(
        Update::parse(k, "reset", None),
        Err(UpdateError::UnknownOp { .. })
    ));
}

#[test]
fn set_2p_after_a_remove_an_add_stays_invisible() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("bans", Set2p);
    op(&mut a, &k, Op::Add(s("eve")));
    op(&mut a, &k, Op::Remove(s("eve")));
    op(&mut a, &k, Op::Add(s("eve")));
    assert_eq!(read(&mut a, &k), strs(&[]));
    // Removing a never-added element tombstones it everywhere.
    op(&mut b, &k, Op::Remove(s("mallory")));
    op(&mut a, &k, Op::Add(s("mallory")));
    op(&mut a, &k, Op::Add(s("bob")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["bob"]));
    assert_eq!(read(&mut b, &k), strs(&["bob"]));
}

#[test]
fn sets_return_elements_in_the_documented_total_order() {
    let mut a = replica(1);
    let k = key("s", SetAw);
    op(
        &mut a,
        &k,
        Op::AddAll(vec![
            s("b"),
            Value::Int(2),
            Value::Null,
            Value::Float(0.5),
            Value::Bool(true),
            s("a"),
            Value::Int(-1),
        ]),
    );
    assert_eq!(
        read(&mut a, &k),
        Value::List(vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-1),
            Value::Int(2),
            Value::Float(0.5),
            s("a"),
            s("b")
        ])
    );
}

// ---------- registers ----------

#[test]
fn register_mv_keeps_concurrent_assigns_until_one_assign_sees_both() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("title", RegisterMv);
    op(&mut a, &k, Op::Assign(s("a")));
    op(&mut b, &k, Op::Assign(s("b")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["a", "b"]));
    assert_eq!(read(&mut b, &k), strs(&["a", "b"]));
    op(&mut a, &k, Op::Assign(s("c")));
    sync(&a, &mut b);
    assert_eq!(read(&mut b, &k), strs(&["c"]));
}

#[test]
fn register_mv_shows_equal_concurrent_values_once() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("title", RegisterMv);
    op(&mut a, &k, Op::Assign(s("same")));
    op(&mut b, &k, Op::Assign(s("same")));
    sync(&a, &mut b);
    assert_eq!(read(&mut b, &k), strs(&["same"]));
}

#[test]
fn register_mv_reset_clears_what_it_saw_but_not_a_concurrent_assign() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("title", RegisterMv);
    op(&mut a, &k, Op::Assign(s("old")));
    sync(&a, &mut b);
    op(&mut a, &k, Op::Reset);
    assert_eq!(read(&mut a, &k), strs(&[]));
    op(&mut b, &k, Op::Assign(s("new")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&["new"]));
}

#[test]
fn register_lww_later_assign_wins_and_concurrent_ones_pick_the_same_winner() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("r", RegisterLww);
    assert_eq!(read(&mut a, &k), Value::Null);
    op(&mut a, &k, Op::Assign(s("first")));
    sync(&a, &mut b);
    op(&mut b, &k, Op::Assign(s("second")));
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), s("second"));
    // Concurrent: same Lamport time, so the higher replica id wins.
    op(&mut a, &k, Op::Assign(s("from-a")));
    op(&mut b, &k, Op::Assign(s("from-b")));
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), s("from-b"));
    assert_eq!(read(&mut b, &k), s("from-b"));
}

// ---------- flags ----------

#[test]
fn flag_ew_concurrent_enable_and_disable_reads_true() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("maint", FlagEw);
    op(&mut a, &k, Op::Enable);
    sync(&a, &mut b);
    op(&mut a, &k, Op::Disable);
    op(&mut b, &k, Op::Enable);
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Bool(true));
    op(&mut a, &k, Op::Disable);
    sync(&a, &mut b);
    assert_eq!(read(&mut b, &k), Value::Bool(false));
}

#[test]
fn flag_dw_concurrent_enable_and_disable_reads_false() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("f", FlagDw);
    op(&mut a, &k, Op::Enable);
    sync(&a, &mut b);
    op(&mut a, &k, Op::Disable);
    op(&mut b, &k, Op::Enable);
    sync(&a, &mut b);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Bool(false));
    op(&mut b, &k, Op::Enable);
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), Value::Bool(true));
}

#[test]
fn flag_reset_disables_what_it_observed() {
    for ty in [FlagEw, FlagDw] {
        let mut a = replica(1);
        let k = key("f", ty);
        op(&mut a, &k, Op::Enable);
        op(&mut a, &k, Op::Reset);
        assert_eq!(read(&mut a, &k), Value::Bool(false), "{ty}");
    }
}

// ---------- transactions ----------

#[test]
fn a_transaction_is_one_dot_and_applies_several_keys_atomically() {
    let (mut a, mut b) = (replica(1), replica(2));
    let (c, s1, f) = (key("c", CounterPn), key("s", SetAw), key("f", FlagEw));
    let clock = update(
        &mut a,
        vec![
            (c.clone(), Op::Increment(1)),
            (s1.clone(), Op::Add(s("x"))),
            (f.clone(), Op::Enable),
        ],
    );
    assert_eq!(clock.get(a.id()), 1);
    sync(&a, &mut b);
    match b.read_objects(vec![c, s1, f], None) {
        ReadOutcome::Ready(v, clock) => {
            assert_eq!(v, vec![Value::Int(1), strs(&["x"]), Value::Bool(true)]);
            assert_eq!(clock.get(a.id()), 1);
        }
        ReadOutcome::Pending(_) => panic!(),
    }
}

#[test]
fn updates_to_one_key_in_one_transaction_apply_left_to_right() {
    let mut a = replica(1);
    let k = key("s", SetAw);
    update(
        &mut a,
        vec![
            (k.clone(), Op::Add(s("x"))),
            (k.clone(), Op::Remove(s("x"))),
            (k.clone(), Op::Add(s("y"))),
        ],
    );
    assert_eq!(read(&mut a, &k), strs(&["y"]));
    let r = key("r", RegisterMv);
    update(
        &mut a,
        vec![
            (r.clone(), Op::Assign(s("1"))),
            (r.clone(), Op::Assign(s("2"))),
        ],
    );
    assert_eq!(read(&mut a, &r), strs(&["2"]));
    let c = key("c", CounterPn);
    update(
        &mut a,
        vec![(c.clone(), Op::Increment(2)), (c.clone(), Op::Decrement(5))],
    );
    assert_eq!(read(&mut a, &c), Value::Int(-3));
    assert_eq!(a.clock().get(a.id()), 3);
}

#[test]
fn an_invalid_update_fails_the_whole_batch_and_changes_nothing() {
    let mut a = replica(1);
    let c = key("c", CounterPn);
    op(&mut a, &c, Op::Increment(1));
    let before = (a.clock().clone(), a.state_snapshot());
    let batch = vec![
        Update::new(c.clone(), Op::Increment(1)),
        Update::new(key("f", FlagEw), Op::Add(s("x"))),
    ];
    let err = a.update_objects(batch, None).unwrap_err();
    assert!(
        matches!(err, UpdateError::UnknownOp { index: 1, .. }),
        "{err}"
    );
    assert_eq!((a.clock().clone(), a.state_snapshot()), before);
    assert!(a.poll_transmit().is_none());
}

#[test]
fn op_parsing_gives_typed_errors() {
    let k = key("c", CounterPn);
    assert!(matches!(
        Update::parse(k.clone(), "increment", Some(Value::Float(1.5))),
        Err(UpdateError::WrongArgument {
            expected: "an int",
            got: "float",
            ..
        })
    ));
    assert!(matches!(
        Update::parse(k.clone(), "frobnicate", None),
        Err(UpdateError::UnknownOp { .. })
    ));
    assert!(matches!(
        Update::parse(key("s", SetAw), "add_all", Some(Value::Int(1))),
        Err(UpdateError::WrongArgument { .. })
    ));
    assert!(matches!(
        Update::parse(key("s", SetAw), "add", None),
        Err(UpdateError::MissingArgument { .. })
    ));
    assert!(matches!(
        Update::parse(key("f", FlagEw), "enable", Some(Value::Int(1))),
        Err(UpdateError::WrongArgument { .. })
    ));
    assert!(matches!(
        Key::parse("x", "counter", "b"),
        Err(UpdateError::UnknownType(_))
    ));
    let mut deep = Value::Null;
    for _ in 0..100 {
        deep = Value::List(vec![deep]);
    }
    assert!(matches!(
        Update::parse(key("s", SetAw), "add", Some(deep)),
        Err(UpdateError::TooDeep { .. })
    ));
}

#[test]
fn the_type_is_part_of_the_key() {
    let mut a = replica(1);
    let c = Key::new("x", CounterPn, "b");
    let st = Key::new("x", SetAw, "b");
    update(
        &mut a,
        vec![
            (c.clone(), Op::Increment(4)),
            (st.clone(), Op::Add(Value::Int(4))),
        ],
    );
    assert_eq!(read(&mut a, &c), Value::Int(4));
    assert_eq!(read(&mut a, &st), ints(&[4]));
}

#[test]
fn reading_no_keys_returns_the_clock() {
    let mut a = replica(1);
    op(&mut a, &key("c", CounterPn), Op::Increment(1));
    match a.read_objects(vec![], None) {
        ReadOutcome::Ready(v, c) => {
            assert!(v.is_empty());
            assert_eq!(&c, a.clock());
        }
        ReadOutcome::Pending(_) => panic!(),
    }
}

// ---------- sessions ----------

#[test]
fn a_read_with_an_unseen_client_clock_waits_until_delivery() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("c", CounterPn);
    let clock = op(&mut a, &k, Op::Increment(7));
    let ticket = match b.read_objects(vec![k.clone()], Some(&clock)) {
        ReadOutcome::Pending(t) => t,
        ReadOutcome::Ready(..) => panic!("b has not seen a's write"),
    };
    assert_eq!(b.stats().pending_requests, 1);
    sync(&a, &mut b);
    match b.poll_event() {
        Some(Event::ReadReady {
            ticket: t,
            values,
            clock: c,
        }) => {
            assert_eq!(t, ticket);
            assert_eq!(values, vec![Value::Int(7)]);
            assert!(clock.leq(&c));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(b.stats().pending_requests, 0);
}

#[test]
fn an_update_with_an_unseen_client_clock_waits_then_commits_after_it() {
    let (mut a, mut b) = (replica(1), replica(2));
    let k = key("s", SetAw);
    let clock = op(&mut a, &k, Op::Add(s("x")));
    let t = match b
        .update_objects(
            vec![Update::new(k.clone(), Op::Remove(s("x")))],
            Some(&clock),
        )
        .unwrap()
    {
        UpdateOutcome::Pending(t) => t,
        UpdateOutcome::Committed(_) => panic!(),
    };
    assert_eq!(b.clock().get(b.id()), 0, "nothing applied yet");
    sync(&a, &mut b);
    match b.poll_event() {
        Some(Event::Committed { ticket, clock: c }) => {
            assert_eq!(ticket, t);
            assert!(clock.leq(&c));
            assert_eq!(c.get(b.id()), 1);
        }
        other => panic!("{other:?}"),
    }
    // The remove saw the add, so it removes it everywhere.
    sync(&b, &mut a);
    assert_eq!(read(&mut a, &k), strs(&[]));
}

#[test]
fn cancelled_requests_never_complete() {
    let (a, mut b) = (replica(1), replica(2));
    let mut a = a;
    let k = key("c", CounterPn);
    let clock = op(&mut a, &k, Op::Increment(1));
    let ReadOutcome::Pending(t) = b.read_objects(vec![k], Some(&clock)) else {
        panic!()
    };
    assert!(b.cancel(t));
    sync(&a, &mut b);
    assert_eq!(b.poll_event(), None);
}
