//! Prints encoded sizes per effect type, as a markdown table for
//! BENCHMARKS.md: `cargo run --release -p minidote-core --example sizes`.
use minidote_core::{CatchUp, Config, CrdtType, Frame, Key, Op, Replica, ReplicaId, Update, Value};

fn last_frame(r: &Replica) -> Vec<u8> {
    let CatchUp::Txns(t) = r.catch_up(&Default::default()) else {
        unreachable!()
    };
    Frame::Txns(vec![t.last().unwrap().clone()]).encode()
}

fn main() {
    println!("| type | op | frame bytes (no deps) | frame bytes (2 deps, 3 replicas) | effect body bytes |");
    println!("|---|---|---|---|---|");
    let cases: Vec<(CrdtType, Op)> = vec![
        (CrdtType::CounterPn, Op::Increment(1)),
        (CrdtType::CounterPnSb, Op::Increment(1)),
        (CrdtType::SetAw, Op::Add(Value::from("milk"))),
        (CrdtType::SetRw, Op::Add(Value::from("milk"))),
        (CrdtType::SetGo, Op::Add(Value::from("milk"))),
        (CrdtType::Set2p, Op::Add(Value::from("milk"))),
        (CrdtType::RegisterMv, Op::Assign(Value::from("title"))),
        (CrdtType::RegisterLww, Op::Assign(Value::from("title"))),
        (CrdtType::FlagEw, Op::Enable),
        (CrdtType::FlagDw, Op::Enable),
    ];
    for (ty, op) in cases {
        let key = Key::new("likes", ty, "demo");
        let header_and_key = 3 + 8 + 1 + 1 + 1 + 1 + 1 + 6 + 5;
        // No deps: a replica's first transaction.
        let mut a = Replica::new(ReplicaId(1), Config::default());
        a.update_objects(vec![Update::new(key.clone(), op.clone())], None)
            .unwrap();
        let plain = last_frame(&a).len();
        // Two deps: the other two replicas wrote since a's last transaction.
        let (mut b, mut c) = (
            Replica::new(ReplicaId(2), Config::default()),
            Replica::new(ReplicaId(3), Config::default()),
        );
        b.update_objects(vec![Update::new(key.clone(), op.clone())], None)
            .unwrap();
        c.update_objects(vec![Update::new(key.clone(), op.clone())], None)
            .unwrap();
        for src in [&b, &c] {
            let CatchUp::Txns(t) = src.catch_up(a.clock()) else {
                unreachable!()
            };
            a.handle_txns(None, t).unwrap();
        }
        a.update_objects(vec![Update::new(key.clone(), op.clone())], None)
            .unwrap();
        let deps = last_frame(&a).len();
        println!(
            "| `{ty}` | `{}` | {plain} | {deps} | {} |",
            op.name(),
            plain - header_and_key
        );
    }
    println!();
    println!("| replicas | clock bytes (`Clock.to_bytes()`) |");
    println!("|---|---|");
    for n in [3u64, 10, 100, 1000] {
        let c: minidote_core::VectorClock = (1..=n)
            .map(|i| (ReplicaId(i * 0x9e37_79b9_7f4a_7c15), 1000 + i))
            .collect();
        println!("| {n} | {} |", c.to_bytes().len());
    }
}
