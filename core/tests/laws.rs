//! Property tests: lattice laws of every type's state, order-independence of
//! causal delivery, and an oracle that computes each value from the set of
//! visible operations and their happens-before relation, in the manner of
//! antidote_crdt's `crdt_properties`.

mod common;

use std::collections::BTreeSet;

use common::{key, sync_pair};
use minidote_core::{
    CatchUp, Config, CrdtType, Dot, Field, Key, Op, Replica, ReplicaId, Snapshot, Update,
    UpdateOutcome, Value, VectorClock,
};
use proptest::prelude::*;

const REPLICAS: usize = 3;

/// One visible operation, for the oracle.
#[derive(Clone, Debug)]
struct OpRecord {
    key: Key,
    op: Op,
    dot: Dot,
    /// The origin's clock right after the op: its causal past plus itself.
    past: VectorClock,
}

struct Run {
    replicas: Vec<Replica>,
    ops: Vec<OpRecord>,
    keys: Vec<Key>,
}

fn keys() -> Vec<Key> {
    CrdtType::ALL.iter().map(|t| key("k", *t)).collect()
}

fn small_value(x: u8) -> Value {
    match x % 4 {
        0 => Value::Int(i64::from(x % 3)),
        1 => Value::from(["a", "b"][usize::from(x % 2)]),
        2 => Value::Null,
        _ => Value::Int(i64::from(x % 3)),
    }
}

fn make_op(ty: CrdtType, a: u8, b: u8) -> Op {
    use CrdtType::*;
    let v = small_value(b);
    match ty {
        CounterPn | CounterPnSb => {
            let n = i64::from(b % 5) - 1;
            if a % 2 == 0 {
                Op::Increment(n)
            } else {
                Op::Decrement(n)
            }
        }
        SetAw | SetRw => match a % 5 {
            0 | 1 => Op::Add(v),
            2 => Op::Remove(v),
            3 => Op::AddAll(vec![v, small_value(b / 3)]),
            _ => {
                if a % 10 == 4 {
                    Op::Reset
                } else {
                    Op::RemoveAll(vec![v, small_value(b / 5)])
                }
            }
        },
        SetGo => Op::Add(v),
        Set2p => match a % 3 {
            0 | 1 => Op::Add(v),
            _ => Op::Remove(v),
        },
        RegisterMv => {
            if a % 5 == 0 {
                Op::Reset
            } else {
                Op::Assign(v)
            }
        }
        RegisterLww => Op::Assign(v),
        FlagEw | FlagDw => match a % 3 {
            0 => Op::Enable,
            1 => Op::Disable,
            _ => Op::Reset,
        },
        MapRr | MapGo => map_op(ty, a, b, 0),
        // Indexes are raw here; `fit` brings them into range.
        List => match a % 4 {
            0 | 1 => Op::Insert(pos(b), v),
            2 => Op::InsertAll(pos(b), vec![v, small_value(a)]),
            _ => Op::Delete(pos(b), u64::from(a % 3) + 1),
        },
        Text => {
            let s = ["a", "bc", "é", "😀x"][usize::from(a % 4)].to_owned();
            match a % 5 {
                0..=2 => Op::Insert(pos(b), Value::Str(s)),
                3 => Op::Delete(pos(b), u64::from(b % 3) + 1),
                _ => Op::Splice(pos(b), u64::from(b % 2), s),
            }
        }
        other => panic!("no workload for {other}"),
    }
}

fn pos(at: u8) -> minidote_core::Pos {
    minidote_core::Pos {
        at: u64::from(at),
        utf16: false,
    }
}

/// The length of a list or text value (code points).
fn seq_len(v: &Value) -> u64 {
    match v {
        Value::Str(s) => s.chars().count() as u64,
        Value::List(l) => l.len() as u64,
        _ => 0,
    }
}

/// Brings a list or text op's index into range for an object of length
/// `len` (a delete of an empty object becomes an insert); the length after.
fn fit(op: Op, len: u64) -> (Op, u64) {
    let added = |v: &Value| match v {
        Value::Str(s) => s.chars().count() as u64,
        _ => 1,
    };
    match op {
        Op::Insert(p, v) => {
            let n = added(&v);
            (Op::Insert(pos_in(p, len + 1), v), len + n)
        }
        Op::InsertAll(p, l) => {
            let n = l.len() as u64;
            (Op::InsertAll(pos_in(p, len + 1), l), len + n)
        }
        Op::Delete(..) | Op::Splice(..) if len == 0 => (Op::Insert(pos(0), Value::Null), 1),
        Op::Delete(p, n) => {
            let at = pos_in(p, len);
            let n = n.min(len - at.at);
            (Op::Delete(at, n), len - n)
        }
        Op::Splice(p, n, s) => {
            let at = pos_in(p, len);
            let n = n.min(len - at.at);
            let k = s.chars().count() as u64;
            (Op::Splice(at, n, s), len - n + k)
        }
        op => (op, len),
    }
}

fn pos_in(p: minidote_core::Pos, n: u64) -> minidote_core::Pos {
    minidote_core::Pos {
        at: p.at % n.max(1),
        ..p
    }
}

/// `fit` for an op on key `k`, whose current value is `v`.
fn fit_for(k: &Key, op: Op, v: &Value) -> (Op, u64) {
    fit_text(k.ty, fit(op, seq_len(v)))
}

/// What `fit` made of a delete on an empty text must insert a string.
fn fit_text(ty: CrdtType, (op, n): (Op, u64)) -> (Op, u64) {
    match (ty, op) {
        (CrdtType::Text, Op::Insert(p, Value::Null)) => (Op::Insert(p, Value::from("z")), n),
        (_, op) => (op, n),
    }
}

/// The fields the map workload uses: one name with two types, and maps
/// nested two deep (fields of maps at depth 1 are not maps).
fn fields(depth: usize) -> Vec<Field> {
    use CrdtType::*;
    let mut f = vec![
        Field::new("n", CounterPn),
        Field::new("n", FlagEw),
        Field::new("p", CounterPnSb),
        Field::new("s", SetAw),
        Field::new("w", SetRw),
        Field::new("g", SetGo),
        Field::new("t", Set2p),
        Field::new("v", RegisterMv),
        Field::new("r", RegisterLww),
        Field::new("f", FlagDw),
    ];
    if depth == 0 {
        f.push(Field::new("m", MapRr));
        f.push(Field::new("o", MapGo));
    }
    f
}

fn mix(x: u8, y: u8) -> u8 {
    x.wrapping_mul(31).wrapping_add(y).rotate_left(3) ^ 0x5a
}

fn map_op(ty: CrdtType, a: u8, b: u8, depth: usize) -> Op {
    let fs = fields(depth);
    let f = fs[usize::from(mix(a, b)) % fs.len()].clone();
    let field_value = || Value::List(vec![f.name.to_string().into(), f.ty.name().into()]);
    if ty == CrdtType::MapRr {
        match a % 8 {
            0 | 1 => return Op::Remove(field_value()),
            2 if b % 4 == 0 => return Op::Reset,
            _ => {}
        }
    }
    let (a2, b2) = (mix(b, a), mix(a, b.wrapping_add(1)));
    let inner = match f.ty {
        CrdtType::MapRr | CrdtType::MapGo => map_op(f.ty, a2, b2, depth + 1),
        t => make_op(t, a2, b2),
    };
    Op::Update(f, Box::new(inner))
}

/// Interprets a random action list: ops at replicas, and pairwise syncs.
fn execute(actions: &[(u8, u8, u8, u8)], only: Option<CrdtType>) -> Run {
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| {
            let config = Config {
                snapshot_every: 0,
                ..Config::default()
            };
            Replica::new(ReplicaId(i as u64 + 1), config)
        })
        .collect();
    let keys: Vec<Key> = match only {
        Some(t) => vec![key("k", t)],
        None => keys(),
    };
    let mut ops = Vec::new();
    for &(kind, r, a, b) in actions {
        let i = usize::from(r) % REPLICAS;
        if kind % 4 == 0 {
            let j = usize::from(a) % REPLICAS;
            if i != j {
                sync_pair(&mut replicas, i, j);
            }
            continue;
        }
        let k = keys[usize::from(b) % keys.len()].clone();
        let op = make_op(k.ty, a, b.wrapping_mul(7).wrapping_add(kind));
        let rep = &mut replicas[i];
        let op = fit_for(&k, op, &rep.value(&k)).0;
        let out = rep
            .update_objects(vec![Update::new(k.clone(), op.clone())], None)
            .unwrap();
        let UpdateOutcome::Committed(clock) = out else {
            panic!("memory replica")
        };
        let dot = Dot::new(rep.id(), clock.get(rep.id()));
        ops.push(OpRecord {
            key: k,
            op,
            dot,
            past: clock,
        });
    }
    Run {
        replicas,
        ops,
        keys,
    }
}

fn actions() -> impl Strategy<Value = Vec<(u8, u8, u8, u8)>> {
    proptest::collection::vec(any::<(u8, u8, u8, u8)>(), 0..60)
}

// ---------- the oracle ----------

fn elems(op: &Op) -> Vec<&Value> {
    match op {
        Op::Add(v) | Op::Remove(v) => vec![v],
        Op::AddAll(l) | Op::RemoveAll(l) => l.iter().collect(),
        _ => vec![],
    }
}

fn is_add(op: &Op) -> bool {
    matches!(op, Op::Add(_) | Op::AddAll(_))
}

/// The value of `k` given the visible ops, computed from the spec.
fn spec(k: &Key, visible: &[&OpRecord]) -> Value {
    let ops: Vec<Rec<'_>> = visible
        .iter()
        .filter(|o| &o.key == k)
        .map(|o| Rec {
            op: &o.op,
            dot: o.dot,
            past: &o.past,
        })
        .collect();
    spec_of(k.ty, &ops).0
}

/// One op on one object (top-level, or a field inside maps).
#[derive(Clone, Copy)]
struct Rec<'a> {
    op: &'a Op,
    dot: Dot,
    past: &'a VectorClock,
}

impl Rec<'_> {
    fn before(&self, other: &Rec<'_>) -> bool {
        self.dot != other.dot && other.past.contains(&self.dot)
    }
}

/// The value of an object of type `ty` given the ops on it, and whether it
/// shows anything (a map leaves out fields that do not).
fn spec_of(ty: CrdtType, ops: &[Rec<'_>]) -> (Value, bool) {
    use CrdtType::*;
    // Not followed by any op (on this object, or touching element `e`).
    let maximal = |o: &Rec<'_>, touches: &dyn Fn(&Rec<'_>) -> bool| {
        !ops.iter().any(|p| touches(p) && o.before(p))
    };
    match ty {
        CounterPn | CounterPnSb => {
            let v = ops.iter().fold(0i64, |acc, o| match o.op {
                Op::Increment(n) => acc.wrapping_add(*n),
                Op::Decrement(n) => acc.wrapping_sub(*n),
                _ => acc,
            });
            // Visible once an op touched it (`counter_pn_sb`: a change;
            // an increment of 0 publishes nothing).
            let counts = |o: &&Rec<'_>| {
                ty == CounterPn || matches!(o.op, Op::Increment(n) | Op::Decrement(n) if *n != 0)
            };
            (Value::Int(v), ops.iter().any(|o| counts(&o)))
        }
        SetGo => {
            let s: BTreeSet<Value> = ops.iter().flat_map(|o| elems(o.op)).cloned().collect();
            let any = !s.is_empty();
            (Value::List(s.into_iter().collect()), any)
        }
        Set2p => {
            let adds: BTreeSet<&Value> = ops
                .iter()
                .filter(|o| is_add(o.op))
                .flat_map(|o| elems(o.op))
                .collect();
            let rms: BTreeSet<&Value> = ops
                .iter()
                .filter(|o| !is_add(o.op))
                .flat_map(|o| elems(o.op))
                .collect();
            let any = !adds.is_empty() || !rms.is_empty();
            (
                Value::List(adds.difference(&rms).map(|v| (*v).clone()).collect()),
                any,
            )
        }
        SetAw | SetRw => {
            let all: BTreeSet<&Value> = ops.iter().flat_map(|o| elems(o.op)).collect();
            let mut out = Vec::new();
            let mut tokens = false;
            for e in all {
                let touches = |p: &Rec<'_>| matches!(p.op, Op::Reset) || elems(p.op).contains(&e);
                let live_add = ops
                    .iter()
                    .any(|o| is_add(o.op) && elems(o.op).contains(&e) && maximal(o, &touches));
                let live_rm = ops.iter().any(|o| {
                    matches!(o.op, Op::Remove(_) | Op::RemoveAll(_))
                        && elems(o.op).contains(&e)
                        && maximal(o, &touches)
                });
                let present = if ty == SetAw {
                    live_add
                } else {
                    live_add && !live_rm
                };
                tokens |= live_add || (ty == SetRw && live_rm);
                if present {
                    out.push(e.clone());
                }
            }
            (Value::List(out), tokens)
        }
        RegisterMv => {
            let s: BTreeSet<Value> = ops
                .iter()
                .filter(|o| maximal(o, &|_| true))
                .filter_map(|o| match o.op {
                    Op::Assign(v) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            let any = !s.is_empty();
            (Value::List(s.into_iter().collect()), any)
        }
        RegisterLww => {
            // Lamport time of an assign: one more than the highest it saw.
            let mut ts: Vec<u64> = Vec::new();
            let mut sorted: Vec<&Rec<'_>> = ops.iter().collect();
            sorted.sort_by_key(|o| o.past.iter().map(|(_, s)| s).sum::<u64>());
            for (i, o) in sorted.iter().enumerate() {
                let t = 1
                    + (0..i)
                        .filter(|&j| sorted[j].before(o))
                        .map(|j| ts[j])
                        .max()
                        .unwrap_or(0);
                ts.push(t);
            }
            let v = sorted
                .iter()
                .zip(&ts)
                .max_by_key(|(o, t)| (**t, o.dot.replica))
                .and_then(|(o, _)| match o.op {
                    Op::Assign(v) => Some(v.clone()),
                    _ => None,
                })
                .unwrap_or(Value::Null);
            (v, !ops.is_empty())
        }
        FlagEw | FlagDw => {
            let live = |want: &dyn Fn(&Op) -> bool| {
                ops.iter().any(|o| want(o.op) && maximal(o, &|_| true))
            };
            let en = live(&|op| matches!(op, Op::Enable));
            let dis = live(&|op| matches!(op, Op::Disable));
            if ty == FlagEw {
                (Value::Bool(en), en)
            } else {
                (Value::Bool(en && !dis), en || dis)
            }
        }
        MapRr | MapGo => {
            // A field's ops, less those a remove of the field (or a reset
            // of the map) observed.
            let removes = |f: &Field, o: &Rec<'_>| match o.op {
                Op::Reset => true,
                Op::Remove(Value::List(l)) => {
                    l.len() == 2
                        && l[0] == Value::from(&*f.name)
                        && l[1] == Value::from(f.ty.name())
                }
                _ => false,
            };
            let touched: BTreeSet<Field> = ops
                .iter()
                .filter_map(|o| match o.op {
                    Op::Update(f, _) => Some(f.clone()),
                    _ => None,
                })
                .collect();
            let mut m = std::collections::BTreeMap::new();
            let mut any = false;
            for f in touched {
                let live: Vec<Rec<'_>> = ops
                    .iter()
                    .filter_map(|o| match o.op {
                        Op::Update(g, inner) if *g == f => {
                            let observed = ops.iter().any(|r| removes(&f, r) && o.before(r));
                            (!observed).then_some(Rec {
                                op: inner,
                                dot: o.dot,
                                past: o.past,
                            })
                        }
                        _ => None,
                    })
                    .collect();
                let (v, shows) = spec_of(f.ty, &live);
                if shows {
                    any = true;
                    m.entry(f.name.to_string()).or_insert(v);
                }
            }
            (Value::Map(m), any)
        }
        other => panic!("no spec for {other}"),
    }
}

fn snapshot_join(a: &Snapshot, b: &Snapshot) -> Snapshot {
    let bytes = a.encode();
    let (mut r, _) =
        Replica::restore(ReplicaId(99), Config::default(), Some(&bytes), [], 1).unwrap();
    r.merge_snapshot(b);
    r.state_snapshot()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// A batch of updates in one transaction leaves the same values as the
    /// same updates one transaction each, on a replica that already holds
    /// concurrent state. (Batches fold ops per key before applying them.)
    #[test]
    fn one_batch_equals_the_same_updates_one_by_one(
        history in actions(),
        batch in proptest::collection::vec(any::<(u8, u8, u8)>(), 1..40),
    ) {
        let mut batched = execute(&history, None).replicas.swap_remove(0);
        let mut single = execute(&history, None).replicas.swap_remove(0);
        let keys = keys();
        let mut lens: std::collections::HashMap<Key, u64> = keys
            .iter()
            .map(|k| (k.clone(), seq_len(&batched.value(k))))
            .collect();
        let updates: Vec<Update> = batch
            .iter()
            .map(|&(a, b, k)| {
                let k = keys[usize::from(k) % keys.len()].clone();
                let op = make_op(k.ty, a, b);
                let (op, n) = fit_text(k.ty, fit(op, lens[&k]));
                lens.insert(k.clone(), n);
                Update::new(k, op)
            })
            .collect();
        batched.update_objects(updates.clone(), None).unwrap();
        for u in updates {
            single.update_objects(vec![u], None).unwrap();
        }
        for k in &keys {
            prop_assert_eq!(batched.value(k), single.value(k), "key {:?}", k);
        }
    }

    /// The value of every object at every replica equals the spec applied
    /// to the operations that replica has seen.
    #[test]
    fn values_match_the_spec_of_the_visible_operations(acts in actions()) {
        let mut run = execute(&acts, None);
        for r in &mut run.replicas {
            let clock = r.clock().clone();
            let visible: Vec<&OpRecord> = run.ops.iter().filter(|o| clock.contains(&o.dot)).collect();
            for k in &run.keys {
                // Lists and text are checked against a reference
                // implementation in core's unit tests (types/seq/tests.rs):
                // index-based ops alone do not say which element a delete
                // removed.
                if matches!(k.ty, CrdtType::List | CrdtType::Text) {
                    continue;
                }
                prop_assert_eq!(r.value(k), spec(k, &visible), "key {:?} at {:?}", k, r.id());
            }
        }
    }

    /// Snapshot join is commutative, associative and idempotent, for every
    /// type, on states reached by real executions.
    #[test]
    fn joins_are_commutative_associative_and_idempotent(acts in actions(), t in 0usize..CrdtType::ALL.len()) {
        let run = execute(&acts, Some(CrdtType::ALL[t]));
        let s: Vec<Snapshot> = run.replicas.iter().map(Replica::state_snapshot).collect();
        let (a, b, c) = (&s[0], &s[1], &s[2]);
        prop_assert_eq!(snapshot_join(a, b), snapshot_join(b, a));
        prop_assert_eq!(snapshot_join(&snapshot_join(a, b), c), snapshot_join(a, &snapshot_join(b, c)));
        prop_assert_eq!(&snapshot_join(a, a), a);
    }

    /// Joining full states gives the same state as delivering the missing
    /// transactions one by one.
    #[test]
    fn snapshot_merge_agrees_with_transaction_delivery(acts in actions()) {
        let run = execute(&acts, None);
        let (a, b) = (&run.replicas[0], &run.replicas[1]);
        let joined = snapshot_join(&a.state_snapshot(), &b.state_snapshot());
        let bytes = a.state_snapshot().encode();
        let (mut a2, _) = Replica::restore(a.id(), Config::default(), Some(&bytes), [], 1).unwrap();
        match b.catch_up(a2.clock()) {
            CatchUp::Txns(t) => { a2.handle_txns(None, t).unwrap(); }
            CatchUp::UpToDate => {}
            other => panic!("{other:?}"),
        }
        prop_assert_eq!(a2.state_snapshot(), joined);
    }

    /// Applying the same transactions in any causal order, with duplicates,
    /// gives the same state.
    #[test]
    fn any_causal_delivery_order_gives_the_same_state(acts in actions(), shuffle in any::<u64>()) {
        let mut run = execute(&acts, None);
        // Gather everything at replica 0 to get every transaction.
        for j in 1..REPLICAS {
            sync_pair(&mut run.replicas, j, 0);
        }
        let all = match run.replicas[0].catch_up(&VectorClock::new()) {
            CatchUp::Txns(t) => t,
            CatchUp::UpToDate => vec![],
            other => panic!("{other:?}"),
        };
        // Feed them in a scrambled order, each twice; the buffer reorders.
        let mut order: Vec<usize> = (0..all.len()).chain(0..all.len()).collect();
        let mut x = shuffle | 1;
        for i in (1..order.len()).rev() {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        let mut fresh = Replica::new(ReplicaId(77), Config::default());
        for i in order {
            fresh.handle_txns(None, vec![all[i].clone()]).unwrap();
        }
        prop_assert_eq!(fresh.stats().buffered, 0);
        prop_assert_eq!(fresh.state_snapshot(), run.replicas[0].state_snapshot());
    }
}
