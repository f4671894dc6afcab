//! A loop for profilers (callgrind, perf): N single-increment transactions.
//! `cargo build --release --example profile_local && valgrind --tool=callgrind target/release/examples/profile_local 200000`
use minidote_core::{Config, CrdtType, Key, Op, Replica, ReplicaId, Update};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut r = Replica::new(ReplicaId(1), Config::default());
    let k = Key::new("likes", CrdtType::CounterPn, "demo");
    let t = std::time::Instant::now();
    for _ in 0..n {
        r.update_objects(vec![Update::new(k.clone(), Op::Increment(1))], None)
            .unwrap();
    }
    let dt = t.elapsed();
    println!(
        "{n} txns in {dt:?}: {:.0} txns/s",
        n as f64 / dt.as_secs_f64()
    );
}
