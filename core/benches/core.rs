//! Criterion benchmarks of the core. Results and the command are recorded
//! in BENCHMARKS.md: `cargo bench -p minidote-core --bench core`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use minidote_core::{
    CatchUp, Config, CrdtType, Field, Frame, Hello, Key, LinkId, Op, Replica, ReplicaId, Snapshot,
    Txn, TxnBytes, Update, Value,
};

fn likes() -> Key {
    Key::new("likes", CrdtType::CounterPn, "demo")
}

fn memory(id: u64) -> Replica {
    Replica::new(ReplicaId(id), Config::default())
}

/// `n` single-increment transactions made at replica `id`, encoded; they
/// touch 1,000 counters in turn, so a snapshot of the result is not trivial.
fn increments(id: u64, n: usize) -> Vec<TxnBytes> {
    let mut r = Replica::new(
        ReplicaId(id),
        Config {
            snapshot_every: 0,
            ..Config::default()
        },
    );
    let keys: Vec<Key> = (0..1000)
        .map(|i| Key::new(format!("likes{i}"), CrdtType::CounterPn, "demo"))
        .collect();
    for i in 0..n {
        let k = keys[i % keys.len()].clone();
        r.update_objects(vec![Update::new(k, Op::Increment(1))], None)
            .unwrap();
    }
    match r.catch_up(&Default::default()) {
        CatchUp::Txns(t) => t,
        _ => unreachable!(),
    }
}

fn local(c: &mut Criterion) {
    let mut g = c.benchmark_group("local_txn");
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_increment", |b| {
        let mut r = memory(1);
        let k = likes();
        b.iter(|| {
            r.update_objects(vec![Update::new(k.clone(), Op::Increment(1))], None)
                .unwrap();
        })
    });
    g.bench_function("single_set_add", |b| {
        let mut r = memory(1);
        let k = Key::new("list", CrdtType::SetAw, "demo");
        let mut i = 0i64;
        b.iter(|| {
            i += 1;
            r.update_objects(
                vec![Update::new(k.clone(), Op::Add(Value::Int(i % 10_000)))],
                None,
            )
            .unwrap();
        })
    });
    g.bench_function("persistent_single_increment", |b| {
        let mut r = Replica::new(
            ReplicaId(1),
            Config {
                persistent: true,
                ..Config::default()
            },
        );
        let k = likes();
        b.iter(|| {
            r.update_objects(vec![Update::new(k.clone(), Op::Increment(1))], None)
                .unwrap();
            let mut top = 0;
            while let Some(rec) = r.poll_record() {
                top = rec.lsn();
                black_box(&rec);
            }
            r.persisted(top);
            while r.poll_event().is_some() {}
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("batch_1000_increments_one_key", |b| {
        let mut r = memory(1);
        let k = likes();
        b.iter(|| {
            let ups = (0..1000)
                .map(|_| Update::new(k.clone(), Op::Increment(1)))
                .collect();
            r.update_objects(ups, None).unwrap();
        })
    });
    g.bench_function("batch_1000_increments_1000_keys", |b| {
        let mut r = memory(1);
        let keys: Vec<Key> = (0..1000)
            .map(|i| Key::new(format!("k{i}"), CrdtType::CounterPn, "b"))
            .collect();
        b.iter(|| {
            let ups = keys
                .iter()
                .map(|k| Update::new(k.clone(), Op::Increment(1)))
                .collect();
            r.update_objects(ups, None).unwrap();
        })
    });
    g.finish();
}

/// A replica with an open link from a peer, as a binding would drive it.
fn linked(id: u64) -> Replica {
    let mut r = Replica::new(
        ReplicaId(id),
        Config {
            snapshot_every: 0,
            ..Config::default()
        },
    );
    r.link_open(LinkId(1), None, 0);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId(u64::MAX),
        room: "default".into(),
        clock: Default::default(),
        token: None,
    });
    r.handle_frame(LinkId(1), &hello.encode(), 0).unwrap();
    while r.poll_transmit().is_some() {}
    r
}

fn remote(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_apply");
    let frames: Vec<Vec<u8>> = increments(2, 100_000)
        .chunks(1000)
        .map(|c| Frame::Txns(c.to_vec()).encode())
        .collect();
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(20);
    g.bench_function("100k_increments_over_1k_keys_in_frames_of_1000", |b| {
        b.iter_batched(
            || linked(1),
            |mut r| {
                for f in &frames {
                    r.handle_frame(LinkId(1), f, 1).unwrap();
                }
                assert_eq!(r.clock().get(ReplicaId(2)), 100_000);
                r
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec");
    let txn = Txn {
        origin: ReplicaId(7),
        seq: 42,
        deps: Default::default(),
        effects: vec![(
            likes(),
            minidote_core::Effect::CounterPn(minidote_core::effect::CounterPn::delta(1)),
        )],
    };
    let bytes = txn.encode();
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode_increment_txn", |b| {
        b.iter(|| black_box(&txn).encode())
    });
    g.bench_function("decode_increment_txn", |b| {
        b.iter(|| Txn::decode(black_box(&bytes)).unwrap())
    });
    let frame = Frame::Txns(increments(3, 1000)).encode();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("decode_frame_of_1000_txns", |b| {
        b.iter(|| Frame::decode(black_box(&frame)).unwrap())
    });
    g.finish();
}

fn catch_up(c: &mut Criterion) {
    let mut g = c.benchmark_group("catch_up");
    g.sample_size(10);
    let mut source = Replica::new(
        ReplicaId(9),
        Config {
            snapshot_every: 0,
            ..Config::default()
        },
    );
    for t in increments(4, 1_000_000).chunks(10_000) {
        source.handle_txns(None, t.to_vec()).unwrap();
    }
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("1m_txns_behind_from_the_log", |b| {
        b.iter_batched(
            || linked(1),
            |mut r| {
                let CatchUp::Txns(t) = source.catch_up(r.clock()) else {
                    unreachable!()
                };
                // As a link carries it: frames of at most 1 MiB.
                for chunk in t.chunks(30_000) {
                    let f = Frame::Txns(chunk.to_vec()).encode();
                    r.handle_frame(LinkId(1), &f, 1).unwrap();
                }
                assert_eq!(r.clock(), source.clock());
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("1m_txns_behind_from_a_snapshot", |b| {
        b.iter(|| {
            let mut r = memory(1);
            let bytes = source.state_snapshot().encode();
            let snap = Snapshot::decode(&bytes).unwrap();
            r.merge_snapshot(&snap);
            assert_eq!(r.clock(), source.clock());
            assert_eq!(r.state_snapshot().objects.len(), 1000);
            r
        })
    });
    g.finish();
}

fn snapshot_merge(c: &mut Criterion) {
    let mut g = c.benchmark_group("snapshot_merge");
    // Two replicas with 10k set elements each, half of them shared, plus
    // concurrent removes: a realistic partition heal.
    let unpruned = |id| {
        Replica::new(
            ReplicaId(id),
            Config {
                snapshot_every: 0,
                ..Config::default()
            },
        )
    };
    let (mut a, mut b) = (unpruned(1), unpruned(2));
    let set = Key::new("s", CrdtType::SetAw, "b");
    for i in 0..10_000i64 {
        a.update_objects(vec![Update::new(set.clone(), Op::Add(Value::Int(i)))], None)
            .unwrap();
    }
    let CatchUp::Txns(t) = a.catch_up(b.clock()) else {
        unreachable!()
    };
    b.handle_txns(None, t).unwrap();
    for i in 0..5_000i64 {
        a.update_objects(
            vec![Update::new(set.clone(), Op::Remove(Value::Int(i * 2)))],
            None,
        )
        .unwrap();
        b.update_objects(
            vec![Update::new(set.clone(), Op::Add(Value::Int(10_000 + i)))],
            None,
        )
        .unwrap();
    }
    let snap_b = b.state_snapshot();
    g.throughput(Throughput::Elements(15_000));
    g.bench_function("set_aw_15k_elements", |bch| {
        bch.iter_batched(
            || {
                let bytes = a.state_snapshot().encode();
                Replica::restore(ReplicaId(1), Config::default(), Some(&bytes), [], 1)
                    .unwrap()
                    .0
            },
            |mut r| {
                r.merge_snapshot(&snap_b);
                r
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// `doc.meta.f{f} = v`: a field of a `map_rr` inside the `map_rr` `doc`.
fn nested_write(doc: &Key, f: usize, v: i64) -> Update {
    let meta = Field::new("meta", CrdtType::MapRr);
    let field = Field::new(format!("f{f}"), CrdtType::RegisterLww);
    let op = Op::Update(
        meta,
        Box::new(Op::Update(field, Box::new(Op::Assign(Value::Int(v))))),
    );
    Update::new(doc.clone(), op)
}

fn maps(c: &mut Criterion) {
    let mut g = c.benchmark_group("maps");
    g.throughput(Throughput::Elements(1));
    g.bench_function("nested_field_write_of_1k_docs", |b| {
        let mut r = memory(1);
        let docs: Vec<Key> = (0..1000)
            .map(|i| Key::new(format!("d{i}"), CrdtType::MapRr, "demo"))
            .collect();
        let mut i = 0usize;
        b.iter(|| {
            i += 1;
            let u = nested_write(&docs[i % 1000], i % 10, i as i64);
            r.update_objects(vec![u], None).unwrap();
        })
    });
    // 100k nested writes made at replica 2, applied in frames of 1,000.
    let mut w = Replica::new(
        ReplicaId(2),
        Config {
            snapshot_every: 0,
            ..Config::default()
        },
    );
    let docs: Vec<Key> = (0..1000)
        .map(|i| Key::new(format!("d{i}"), CrdtType::MapRr, "demo"))
        .collect();
    for i in 0..100_000 {
        w.update_objects(vec![nested_write(&docs[i % 1000], i % 10, i as i64)], None)
            .unwrap();
    }
    let CatchUp::Txns(txns) = w.catch_up(&Default::default()) else {
        unreachable!()
    };
    let frames: Vec<Vec<u8>> = txns
        .chunks(1000)
        .map(|c| Frame::Txns(c.to_vec()).encode())
        .collect();
    g.throughput(Throughput::Elements(100_000));
    g.sample_size(10);
    g.bench_function("remote_apply_100k_nested_writes", |b| {
        b.iter_batched(
            || linked(1),
            |mut r| {
                for f in &frames {
                    r.handle_frame(LinkId(1), f, 1).unwrap();
                }
                assert_eq!(r.clock().get(ReplicaId(2)), 100_000);
                r
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(
    benches,
    local,
    remote,
    codec,
    catch_up,
    snapshot_merge,
    maps
);
criterion_main!(benches);
