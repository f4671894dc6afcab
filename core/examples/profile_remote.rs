//! A loop for profilers: a replica applies 100k remote increments (over 1k
//! keys) arriving on a link in frames of 1,000.
use minidote_core::{
    CatchUp, Config, CrdtType, Frame, Hello, Key, LinkId, Op, Replica, ReplicaId, Update,
};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let cfg = Config {
        snapshot_every: 0,
        ..Config::default()
    };
    let mut src = Replica::new(ReplicaId(2), cfg.clone());
    let keys: Vec<Key> = (0..1000)
        .map(|i| Key::new(format!("likes{i}"), CrdtType::CounterPn, "demo"))
        .collect();
    for i in 0..n {
        src.update_objects(
            vec![Update::new(keys[i % 1000].clone(), Op::Increment(1))],
            None,
        )
        .unwrap();
    }
    let CatchUp::Txns(t) = src.catch_up(&Default::default()) else {
        unreachable!()
    };
    let frames: Vec<Vec<u8>> = t
        .chunks(1000)
        .map(|c| Frame::Txns(c.to_vec()).encode())
        .collect();
    let mut r = Replica::new(ReplicaId(1), cfg);
    r.link_open(LinkId(1), None, 0);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId(2),
        room: "default".into(),
        clock: Default::default(),
        token: None,
    });
    r.handle_frame(LinkId(1), &hello.encode(), 0).unwrap();
    let t0 = std::time::Instant::now();
    for f in &frames {
        r.handle_frame(LinkId(1), f, 1).unwrap();
    }
    let dt = t0.elapsed();
    println!(
        "{n} remote txns in {dt:?}: {:.0}/s",
        n as f64 / dt.as_secs_f64()
    );
}
