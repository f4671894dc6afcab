//! Criterion side-by-side: each workload, each library, same process, same
//! generated input. Setup (building a writer's effects, a state to load)
//! is outside the timed part. `MINIDOTE_BENCH_OPS` sets the ops per
//! workload (default 1,000,000).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use minidote_benchmarks::{
    am::Am, cr::Cr, lo::Lo, md::Md, realistic_id, ys::Ys, Subject, Workloads,
};

fn ops() -> usize {
    std::env::var("MINIDOTE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A group with 10 samples (criterion's minimum: these runs take seconds)
/// and throughput in workload ops.
fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    ops: u64,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(ops));
    g
}

/// Times `run` on a fresh `setup()` per iteration.
fn timed<S, T>(
    iters: u64,
    mut setup: impl FnMut() -> S,
    mut run: impl FnMut(&mut S) -> T,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut s = setup();
        let t = Instant::now();
        std::hint::black_box(run(&mut s));
        total += t.elapsed();
        drop(s);
    }
    total
}

fn w1<S: Subject>(c: &mut Criterion, w: &Workloads, n: usize) {
    let mut g = group(c, "W1 counter, one op per txn", n as u64);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| timed(it, || S::new(realistic_id(1)), |s| s.counter_single(n)))
    });
    g.finish();
    let mut g = group(c, "W1 counter, 1,000-op batches", n as u64);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(1)),
                |s| s.counter_batches(n, 1000),
            )
        })
    });
    g.finish();
    let mut g = group(
        c,
        "W1 set adds then removes",
        (w.set_adds.len() + w.set_removes.len()) as u64,
    );
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(1)),
                |s| {
                    for &e in &w.set_adds {
                        s.set_add(e);
                    }
                    for &e in &w.set_removes {
                        s.set_remove(e);
                    }
                },
            )
        })
    });
    g.finish();
    let mut g = group(c, "W1 register writes", w.writes.len() as u64);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(1)),
                |s| {
                    for &(k, v) in &w.writes {
                        s.write(k, v);
                    }
                },
            )
        })
    });
    g.finish();
    let flags = n / 5;
    let mut g = group(c, "W1 flag toggles", flags as u64);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(1)),
                |s| {
                    for i in 0..flags {
                        s.flag(i % 2 == 0);
                    }
                },
            )
        })
    });
    g.finish();
}

fn w2_w4_w5<S: Subject>(c: &mut Criterion, w: &Workloads) {
    if S::NAME == "crdts" {
        return; // no effects to ship: crdts has no log or sync
    }
    // One writer makes the effects once; each iteration applies them.
    let mut writer = S::new(realistic_id(1));
    for &op in &w.mixed {
        writer.mixed(op);
    }
    let effects = writer.take_updates();
    let want = writer.digest();
    let snapshot = writer.save();
    let mut g = group(c, "W2 remote apply, mixed effects", w.mixed.len() as u64);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(2)),
                |s| {
                    s.apply(&effects);
                    if S::NAME != "crdts" {
                        assert_eq!(s.digest(), want, "{} replica agrees", S::NAME);
                    }
                },
            )
        })
    });
    g.finish();
    {
        let mut g = group(c, "W5 load a saved state", w.mixed.len() as u64);
        g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
            b.iter_custom(|it| timed(it, || (), |_| S::load(&snapshot).digest()))
        });
        g.finish();
        let mut g = group(c, "W5 save the state", w.mixed.len() as u64);
        g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
            b.iter_custom(|it| timed(it, || (), |_| writer.save().len()))
        });
        g.finish();
    }
}

/// dmonad's B3.1 shape: 1,540 writers each set one map key; one replica
/// applies all of them.
fn b31<S: Subject>(c: &mut Criterion) {
    let effects: Vec<Vec<u8>> = (0..1540u64)
        .flat_map(|i| {
            let mut s = S::new(realistic_id(1000 + i));
            s.write(i as u32, i);
            s.take_updates()
        })
        .collect();
    if effects.is_empty() {
        return;
    }
    let mut g = group(c, "W2 B3.1: 1,540 writers, one key each", 1540);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| timed(it, || S::new(realistic_id(1)), |s| s.apply(&effects)))
    });
    g.finish();
}

/// W7: nested maps. Writes of one field of the `meta` map inside one of
/// n/1000 document maps, one transaction each; then one replica applies
/// them all. (Yjs `MapRef` in a root map, Loro `LoroMap` child containers,
/// automerge nested `Map` objects, minidote a `map_rr` per document with a
/// `map_rr` field.)
fn w7<S: Subject>(c: &mut Criterion, w: &Workloads) {
    if S::NAME == "crdts" {
        return;
    }
    let n = w.nested.len() as u64;
    let mut g = group(c, "W7 nested map writes", n);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(1)),
                |s| {
                    for &(d, f, v) in &w.nested {
                        s.nested_write(d, f, v);
                    }
                },
            )
        })
    });
    g.finish();
    let mut writer = S::new(realistic_id(1));
    for &(d, f, v) in &w.nested {
        writer.nested_write(d, f, v);
    }
    let effects = writer.take_updates();
    let probe: Vec<(u32, u32)> = w
        .nested
        .iter()
        .rev()
        .take(100)
        .map(|&(d, f, _)| (d, f))
        .collect();
    let want: Vec<u64> = probe
        .iter()
        .map(|&(d, f)| writer.nested_read(d, f))
        .collect();
    assert!(want.iter().any(|v| *v != 0), "{} wrote", S::NAME);
    let mut g = group(c, "W7 nested map remote apply", n);
    g.bench_function(BenchmarkId::from_parameter(S::NAME), |b| {
        b.iter_custom(|it| {
            timed(
                it,
                || S::new(realistic_id(2)),
                |s| {
                    s.apply(&effects);
                    let got: Vec<u64> = probe.iter().map(|&(d, f)| s.nested_read(d, f)).collect();
                    assert_eq!(got, want, "{} replica agrees", S::NAME);
                },
            )
        })
    });
    g.finish();
}

fn all<S: Subject>(c: &mut Criterion, w: &Workloads, n: usize) {
    w1::<S>(c, w, n);
    w2_w4_w5::<S>(c, w);
    b31::<S>(c);
    w7::<S>(c, w);
}

fn benches(c: &mut Criterion) {
    let n = ops();
    let w = Workloads::generate(n);
    all::<Md>(c, &w, n);
    all::<Lo>(c, &w, n);
    all::<Ys>(c, &w, n);
    all::<Cr>(c, &w, n);
    // Automerge gets a hundredth of each workload (the same generator at
    // that size): one commit per op costs it ~1 ms once the history holds
    // 100k ops, so a full run would take hours. Its rate is per op, and
    // flattered by the shorter history.
    let n100 = n / 100;
    let w100 = Workloads::generate(n100);
    all::<Am>(c, &w100, n100);
}

criterion_group!(peers, benches);
criterion_main!(peers);
