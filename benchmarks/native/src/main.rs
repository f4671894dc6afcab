//! `minidote-benchmarks report`: turns criterion's results (run first with
//! `cargo bench`) into the markdown tables of BENCHMARKS.md, and measures
//! what criterion does not: bytes (W4, W6), the three-replica concurrency
//! run (W3), and peak RSS with one process per library
//! (`minidote-benchmarks rss <library>`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use minidote_benchmarks::{
    am::Am, cr::Cr, lo::Lo, md::Md, peak_rss_kib, ys::Ys, Rng, Subject, Workloads, SEED,
};

const LIBS: [&str; 5] = ["minidote", "automerge", "yrs", "loro", "crdts"];

fn ops() -> usize {
    std::env::var("MINIDOTE_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

fn main() {
    let all: Vec<String> = std::env::args().collect();
    let args = all.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("rss") => rss(args.get(1).map(String::as_str).unwrap_or("minidote")),
        Some("prof") => prof(args.get(1).map(String::as_str).unwrap_or("set")),
        Some("w3") => w3(),
        Some("sizes") => w4_w6(ops()),
        Some("report") => report(Path::new(
            args.get(1)
                .map(String::as_str)
                .unwrap_or("target/criterion"),
        )),
        _ => eprintln!(
            "usage: minidote-benchmarks report [criterion dir] | rss <library> | prof set|w2|counter|reg|flag"
        ),
    }
}

/// A replica after W1's counter batches, set adds and register writes.
fn w1_state<S: Subject>(w: &Workloads, n: usize) -> S {
    let mut s = S::new(minidote_benchmarks::realistic_id(1));
    s.counter_batches(n, 1000);
    for &e in &w.set_adds {
        s.set_add(e);
    }
    for &(k, v) in &w.writes {
        s.write(k, v);
    }
    s
}

/// One minidote workload, repeated, for a profiler:
/// `perf record -g target/release/minidote-benchmarks prof set`.
fn prof(what: &str) {
    let n = ops();
    let w = Workloads::generate(n);
    let t = Instant::now();
    let mut d = 0;
    match what {
        "w2" => {
            let mut writer = Md::new(minidote_benchmarks::realistic_id(1));
            for &op in &w.mixed {
                writer.mixed(op);
            }
            let fx = writer.take_updates();
            let t = Instant::now();
            for _ in 0..5 {
                let mut r = Md::new(minidote_benchmarks::realistic_id(2));
                r.apply(&fx);
                d ^= r.digest();
            }
            eprintln!("apply: {:.1} ms each", t.elapsed().as_secs_f64() * 200.0);
        }
        "flag" => {
            for _ in 0..5 {
                let mut s = Md::new(minidote_benchmarks::realistic_id(1));
                for i in 0..n / 5 {
                    s.flag(i % 2 == 0);
                }
                d ^= s.digest();
            }
        }
        "reg" => {
            for _ in 0..3 {
                let mut s = Md::new(minidote_benchmarks::realistic_id(1));
                for &(k, v) in &w.writes {
                    s.write(k, v);
                }
                d ^= s.digest();
            }
        }
        "counter" => {
            for _ in 0..3 {
                let mut s = Md::new(minidote_benchmarks::realistic_id(1));
                s.counter_single(n);
                d ^= s.digest();
            }
        }
        _ => {
            for _ in 0..3 {
                let mut s = Md::new(minidote_benchmarks::realistic_id(1));
                for &e in &w.set_adds {
                    s.set_add(e);
                }
                for &e in &w.set_removes {
                    s.set_remove(e);
                }
                d ^= s.digest();
            }
        }
    }
    std::hint::black_box(d);
    eprintln!("{what}: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
}

/// W1 + W2 for one library in this process; prints the peak RSS in KiB.
fn rss(lib: &str) {
    let n = if lib == "automerge" {
        ops() / 100
    } else {
        ops()
    };
    let w = Workloads::generate(n);
    fn run<S: Subject>(w: &Workloads, n: usize) -> u64 {
        let mut s = w1_state::<S>(w, n);
        let mut writer = S::new(minidote_benchmarks::realistic_id(3));
        for &op in &w.mixed {
            writer.mixed(op);
        }
        let fx = writer.take_updates();
        let mut r = S::new(minidote_benchmarks::realistic_id(2));
        r.apply(&fx);
        s.digest() ^ r.digest()
    }
    let d = match lib {
        "minidote" => run::<Md>(&w, n),
        "automerge" => run::<Am>(&w, n),
        "yrs" => run::<Ys>(&w, n),
        "loro" => run::<Lo>(&w, n),
        _ => run::<Cr>(&w, n),
    };
    std::hint::black_box(d);
    println!("{}", peak_rss_kib());
}

struct Result {
    median_ns: f64,
    elements: u64,
}

fn read_criterion(dir: &Path) -> BTreeMap<String, BTreeMap<String, Result>> {
    let mut out: BTreeMap<String, BTreeMap<String, Result>> = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "new") {
                    if let Some(r) = read_one(&p) {
                        out.entry(r.0).or_default().insert(r.1, r.2);
                    }
                } else if p
                    .file_name()
                    .is_some_and(|n| n != "report" && n != "base" && n != "change")
                {
                    stack.push(p);
                }
            }
        }
    }
    out
}

fn read_one(new: &Path) -> Option<(String, String, Result)> {
    let b: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new.join("benchmark.json")).ok()?).ok()?;
    let e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(new.join("estimates.json")).ok()?).ok()?;
    let group = b["group_id"].as_str()?.to_owned();
    let func = b["function_id"]
        .as_str()
        .or(b["value_str"].as_str())?
        .to_owned();
    let elements = b["throughput"]["Elements"].as_u64().unwrap_or(1);
    let median_ns = e["median"]["point_estimate"].as_f64()?;
    Some((
        group,
        func,
        Result {
            median_ns,
            elements,
        },
    ))
}

fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.1} ms", ns / 1e6)
    } else {
        format!("{:.0} µs", ns / 1e3)
    }
}

fn report(dir: &Path) {
    let n = ops();
    let results = read_criterion(dir);
    println!("Ops per workload: {n} (automerge: {}, the same generator at a hundredth of the size). Median of 10 criterion samples; ops/s = workload ops / median.\n", n / 100);
    println!("| workload | minidote | automerge | yrs | loro | crdts | minidote ÷ fastest peer |");
    println!("|---|---|---|---|---|---|---|");
    for (group, libs) in &results {
        let mut row = format!("| {group} |");
        let mut best_peer: f64 = 0.0;
        let mut md_rate = None;
        for lib in LIBS {
            match libs.get(lib) {
                Some(r) => {
                    let rate = r.elements as f64 / (r.median_ns / 1e9);
                    row += &format!(" {} ({}/s) |", fmt_time(r.median_ns), fmt_rate(rate));
                    if lib == "minidote" {
                        md_rate = Some(rate);
                    } else if lib != "crdts" {
                        best_peer = best_peer.max(rate);
                    }
                }
                None => row += " — |",
            }
        }
        match md_rate {
            Some(m) if best_peer > 0.0 => row += &format!(" {:.2}× |", m / best_peer),
            _ => row += " — |",
        }
        println!("{row}");
    }
    println!("\n(The ratio is against the fastest of automerge, yrs and loro: crdts has no transactions, log or sync, so it is the floor for a bare CRDT step, shown but not compared.)\n");
    w3();
    w4_w6(n);
    println!("\n### Peak RSS, one process per library (W1 batches, set adds, register writes, then W2 apply)\n");
    println!("| library | peak RSS |");
    println!("|---|---|");
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("minidote-benchmarks"));
    for lib in LIBS {
        let out = Command::new(&exe).args(["rss", lib]).output();
        let kib: u64 = out
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        println!("| {lib} | {:.1} MiB |", kib as f64 / 1024.0);
    }
    println!("\nStand-ins:\n");
    for (name, s) in [
        (Md::NAME, Md::STAND_INS),
        (Am::NAME, Am::STAND_INS),
        (Ys::NAME, Ys::STAND_INS),
        (Lo::NAME, Lo::STAND_INS),
        (Cr::NAME, Cr::STAND_INS),
    ] {
        println!("* {name}: {s}");
    }
}

/// W3, minidote: 3 replicas × 100k set ops on a shared pool of 10k
/// elements, 10% removes of elements added elsewhere; every transaction is
/// delivered to the two others in a shuffled order (any order: the causal
/// buffer restores causality) with 5% duplicates.
fn w3() {
    use minidote_benchmarks::w3;
    let per = 100_000;
    println!("### W3, concurrency\n");
    println!("3 replicas × {per} set ops (automerge: {}) over 10,000 shared elements, 10% removes of elements each replica added itself while the others add them concurrently. Every transaction is shipped as the library broadcasts it live (minidote: a `Txns` frame; yrs: the transaction's update; loro: `export(updates)`; automerge: `save_after`). Each replica receives the other two streams interleaved, shuffled in windows of 1,000 (so many arrive before their dependencies), plus 5% duplicates, in batches of 100. Time to quiescence is the time to apply every delivery at all three replicas.\n", per / 100);
    println!("| library | deliveries | quiescence | deliveries/s | peak held back (the library's own measure) | quiescent, replicas agree |");
    println!("|---|---|---|---|---|---|");
    fn row<S: Subject>(per: usize) {
        let r = w3::<S>(per);
        println!(
            "| {} | {} | {:.0} ms | {}/s | {} | {} |",
            S::NAME,
            r.deliveries,
            r.secs * 1000.0,
            fmt_rate(r.deliveries as f64 / r.secs),
            r.peak_buffered
                .map_or("not exposed".to_owned(), |(n, u)| format!("{n} {u}")),
            if r.quiescent && r.agree {
                "yes"
            } else {
                "**no**"
            }
        );
    }
    row::<Md>(per);
    row::<Am>(per / 100);
    row::<Ys>(per);
    row::<Lo>(per);
    println!();
}

/// W4 catch-up and W6 sizes.
fn w4_w6(n: usize) {
    let w = Workloads::generate(n);
    let w10 = Workloads::generate(n / 100);
    fn catch<S: Subject>(w: &Workloads) -> (usize, f64, usize, f64, usize) {
        let mut writer = S::new(minidote_benchmarks::realistic_id(1));
        for &op in &w.mixed {
            writer.mixed(op);
        }
        let fx = writer.take_updates();
        let fx_bytes: usize = fx.iter().map(Vec::len).sum();
        let t = Instant::now();
        let mut r = S::new(minidote_benchmarks::realistic_id(2));
        r.apply(&fx);
        let t_fx = t.elapsed().as_secs_f64();
        let snap = writer.save();
        let t = Instant::now();
        let mut l = S::load(&snap);
        std::hint::black_box(l.digest());
        let t_snap = t.elapsed().as_secs_f64();
        (fx_bytes, t_fx, snap.len(), t_snap, w.mixed.len())
    }
    println!(
        "### W4, catch-up of a replica {n} ops behind (automerge: {})\n",
        n / 100
    );
    println!("| library | (a) effects: bytes | time | bytes/op | (b) snapshot: bytes | time |");
    println!("|---|---|---|---|---|---|");
    for (name, (fb, ft, sb, st, ops)) in [
        ("minidote", catch::<Md>(&w)),
        ("automerge", catch::<Am>(&w10)),
        ("yrs", catch::<Ys>(&w)),
        ("loro", catch::<Lo>(&w)),
    ] {
        println!(
            "| {name} | {fb} | {:.0} ms | {:.1} | {sb} | {:.0} ms |",
            ft * 1000.0,
            fb as f64 / ops as f64,
            st * 1000.0
        );
    }
    // W6: bytes per op of each kind (one op, one transaction, as sent).
    fn per_op<S: Subject>() -> [usize; 5] {
        let mut s = S::new(minidote_benchmarks::realistic_id(1));
        // The size of the second op of a kind (a different element, key
        // or value), so one-off setup is excluded.
        let mut size = |first: &dyn Fn(&mut S), second: &dyn Fn(&mut S)| {
            first(&mut s);
            s.take_updates();
            second(&mut s);
            s.take_updates().iter().map(Vec::len).sum::<usize>()
        };
        [
            size(&|s| s.counter_single(1), &|s| s.counter_single(1)),
            size(&|s| s.set_add(42), &|s| s.set_add(43)),
            size(&|s| s.write(7, 123_456), &|s| s.write(8, 654_321)),
            size(&|s| s.flag(false), &|s| s.flag(true)),
            // W7: a field of an existing nested map (the maps were made by
            // the first write).
            size(&|s| s.nested_write(3, 1, 123_456), &|s| {
                s.nested_write(3, 2, 654_321)
            }),
        ]
    }
    println!("\n### W6, sizes\n");
    println!("Encoded bytes of one op in its own transaction, as shipped to a peer:\n");
    println!("| library | counter increment | set add | register write | flag enable | nested map field write |");
    println!("|---|---|---|---|---|---|");
    for (name, b) in [
        ("minidote", per_op::<Md>()),
        ("automerge", per_op::<Am>()),
        ("yrs", per_op::<Ys>()),
        ("loro", per_op::<Lo>()),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            b[0], b[1], b[2], b[3], b[4]
        );
    }
    fn w1_snapshot<S: Subject>(w: &Workloads, n: usize) -> usize {
        w1_state::<S>(w, n).save().len()
    }
    println!("\nSnapshot (saved state) bytes after W1 (counter batches, set adds, register writes; automerge at a hundredth):\n");
    println!("| | minidote | automerge | yrs | loro |");
    println!("|---|---|---|---|---|");
    let sizes = [
        (w1_snapshot::<Md>(&w, n), n),
        (w1_snapshot::<Am>(&w10, n / 100), n / 100),
        (w1_snapshot::<Ys>(&w, n), n),
        (w1_snapshot::<Lo>(&w, n), n),
    ];
    println!(
        "| bytes | {} |",
        sizes.map(|(b, _)| b.to_string()).join(" | ")
    );
    // W1's state holds 3 × ops (counter batches, set adds, register writes).
    println!(
        "| bytes per op | {} |",
        sizes
            .map(|(b, ops)| format!("{:.2}", b as f64 / (3 * ops) as f64))
            .join(" | ")
    );
    println!("\nClock bytes, every replica at seq 1,000: minidote `Clock.to_bytes()` (version byte included), loro's `VersionVector::encode()`, yrs's `StateVector::encode_v1()`. Two id kinds: random 64-bit ids (how minidote and loro pick them) and random 32-bit ids (how Yjs picks them). Automerge has no version vector (its heads are 32-byte change hashes), so it is not in this table.\n");
    println!("| replicas | minidote, 64-bit ids | loro, 64-bit ids | yrs, 64-bit ids | minidote, 32-bit ids | loro, 32-bit ids | yrs, 32-bit ids |");
    println!("|---|---|---|---|---|---|---|");
    use yrs::updates::encoder::Encode;
    for k in [3u64, 10, 100, 1000] {
        let mut row = format!("| {k} |");
        for bits in [64u32, 32] {
            let ids: Vec<u64> = (1..=k)
                .map(|i| {
                    let r = Rng::new(SEED ^ 0xc10c ^ i).next();
                    if bits == 32 {
                        r & 0xffff_ffff
                    } else {
                        r
                    }
                })
                .collect();
            let c = minidote_core::VectorClock::from_entries(
                ids.iter().map(|&i| (minidote_core::ReplicaId(i), 1000)),
            );
            let mut vv = loro::VersionVector::default();
            let mut sv = yrs::StateVector::default();
            for &i in &ids {
                vv.insert(i, 1000);
                sv.set_max(i, 1000);
            }
            row += &format!(
                " {} | {} | {} |",
                c.to_bytes().len(),
                vv.encode().len(),
                sv.encode_v1().len()
            );
        }
        println!("{row}");
    }
}
