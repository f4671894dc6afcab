//! Text on real editing traces ("editing-traces by Joseph Gentle and
//! contributors", CC BY 4.0; `benchmarks/traces/`), every library in the
//! same run: minidote, yrs, loro, automerge and diamond-types.
//!
//! `traces` prints, per sequential trace: local replay (one transaction per
//! patch), remote apply of the whole history at a fresh replica, the bytes
//! of the document with its history and of its current state alone, load
//! time, and peak RSS after the replay (one child process per library);
//! then the concurrent trace's replay (one document per agent, forking and
//! merging as `parents` say) and the time a fresh document takes to merge
//! both agents' histories. Times are the minimum of `MINIDOTE_TRACE_RUNS`
//! runs (default 3). `traces rss <library> <trace>` is the child.

use std::io::Read;
use std::path::PathBuf;
use std::time::Instant;

use minidote_benchmarks::peak_rss_kib;

type Patch = (usize, usize, String);

struct Trace {
    name: String,
    txns: Vec<Vec<Patch>>,
    end: String,
}

struct Concurrent {
    agents: usize,
    txns: Vec<(usize, Vec<usize>, Vec<Patch>)>,
    end: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../traces")
}

fn json(name: &str) -> serde_json::Value {
    let f = std::fs::File::open(dir().join(format!("{name}.json.gz"))).expect("trace");
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .unwrap();
    serde_json::from_str(&s).unwrap()
}

fn patches(v: &serde_json::Value) -> Vec<Patch> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_u64().unwrap() as usize,
                p[1].as_u64().unwrap() as usize,
                p[2].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn load(name: &str) -> Trace {
    let j = json(name);
    assert!(j["startContent"].as_str().unwrap_or("").is_empty());
    Trace {
        name: name.to_owned(),
        txns: j["txns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| patches(&t["patches"]))
            .collect(),
        end: j["endContent"].as_str().unwrap().to_owned(),
    }
}

fn load_concurrent() -> Concurrent {
    let j = json("friendsforever.concurrent");
    Concurrent {
        agents: j["numAgents"].as_u64().unwrap() as usize,
        txns: j["txns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["agent"].as_u64().unwrap() as usize,
                    t["parents"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p.as_u64().unwrap() as usize)
                        .collect(),
                    patches(&t["patches"]),
                )
            })
            .collect(),
        end: j["endContent"].as_str().unwrap().to_owned(),
    }
}

/// One text document of one library.
trait TextDoc: Sized {
    const NAME: &'static str;
    /// A document for `agent`; agents of one concurrent run start from the
    /// same `genesis` (libraries whose text object must be shared).
    fn new(agent: u64, genesis: Option<&Self>) -> Self;
    /// One transaction of patches (code point positions).
    fn edit(&mut self, patches: &[Patch]);
    /// What changed since the last call (an incremental update).
    fn take_update(&mut self) -> Vec<u8>;
    fn import(&mut self, u: &[u8]);
    fn text(&self) -> String;
    /// The whole history as the library ships it to a fresh peer.
    fn history(&self) -> Vec<u8>;
    /// A fresh replica applying `history()`.
    fn from_history(bytes: &[u8]) -> Self;
    /// The document saved with its history (what `open` reads back).
    fn save(&self) -> Vec<u8>;
    /// The current state without history, where the library has one.
    fn state(&self) -> Option<Vec<u8>>;
    /// Opens a saved document (`save()`, or `state()` where the library
    /// loads from it).
    fn open(bytes: &[u8]) -> Self;
    /// What `open` reads: the state where there is one that opens.
    fn saved_for_open(&self) -> Vec<u8> {
        self.save()
    }
}

mod md {
    use super::*;
    use minidote_core::{
        CatchUp, Config, CrdtType, Key, Op, Pos, Replica, ReplicaId, Update, Value, VectorClock,
    };

    pub struct Md {
        r: Replica,
        k: Key,
        mark: VectorClock,
    }

    /// Every transaction stays in the log (what a fresh peer is sent),
    /// unless `MINIDOTE_SNAPSHOT_EVERY` says how often to fold it into a
    /// snapshot (as a replica's default, 10,000, does).
    fn config() -> Config {
        Config {
            snapshot_every: std::env::var("MINIDOTE_SNAPSHOT_EVERY")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            max_frame_bytes: 1 << 30,
            ..Config::default()
        }
    }

    impl TextDoc for Md {
        const NAME: &'static str = "minidote";
        fn new(agent: u64, _: Option<&Self>) -> Self {
            Md {
                r: Replica::new(ReplicaId(agent), config()),
                k: Key::new("t", CrdtType::Text, "b"),
                mark: VectorClock::new(),
            }
        }
        fn edit(&mut self, patches: &[Patch]) {
            let mut ups = Vec::with_capacity(2);
            for (pos, del, ins) in patches {
                let p = Pos {
                    at: *pos as u64,
                    utf16: false,
                };
                if *del > 0 {
                    ups.push(Update::new(self.k.clone(), Op::Delete(p, *del as u64)));
                }
                if !ins.is_empty() {
                    ups.push(Update::new(
                        self.k.clone(),
                        Op::Insert(p, Value::Str(ins.clone())),
                    ));
                }
            }
            if !ups.is_empty() {
                self.r.update_objects(ups, None).unwrap();
            }
        }
        fn take_update(&mut self) -> Vec<u8> {
            let f = txns(&self.r, &self.mark);
            self.mark = self.r.clock().clone();
            f
        }
        fn import(&mut self, u: &[u8]) {
            if !u.is_empty() {
                self.r.import_frame(u).unwrap();
            }
        }
        fn text(&self) -> String {
            match self.r.value(&self.k) {
                Value::Str(s) => s,
                _ => unreachable!(),
            }
        }
        fn history(&self) -> Vec<u8> {
            txns(&self.r, &VectorClock::new())
        }
        fn from_history(bytes: &[u8]) -> Self {
            let mut m = Md::new(2, None);
            m.import(bytes);
            m
        }
        /// The log: every transaction (minidote keeps history as its log,
        /// beside the state).
        fn save(&self) -> Vec<u8> {
            self.history()
        }
        fn state(&self) -> Option<Vec<u8>> {
            Some(self.r.state_snapshot().encode())
        }
        /// A replica opens from its snapshot (the log after it is empty).
        fn open(bytes: &[u8]) -> Self {
            let (r, _) = Replica::restore(ReplicaId(3), config(), Some(bytes), [], 1).unwrap();
            Md {
                r,
                k: Key::new("t", CrdtType::Text, "b"),
                mark: VectorClock::new(),
            }
        }
        fn saved_for_open(&self) -> Vec<u8> {
            self.state().unwrap()
        }
    }

    /// One `Txns` frame with everything `r` has beyond `since`.
    fn txns(r: &Replica, since: &VectorClock) -> Vec<u8> {
        match r.catch_up(since) {
            CatchUp::Txns(t) => minidote_core::wire::txns_frame(t.iter().map(|t| &t[..])),
            CatchUp::UpToDate => Vec::new(),
            _ => unreachable!(),
        }
    }
}

mod ys {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{
        Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, TextRef, Transact, Update,
    };

    pub struct Ys {
        d: Doc,
        t: TextRef,
        sv: StateVector,
    }

    impl TextDoc for Ys {
        const NAME: &'static str = "yrs";
        fn new(agent: u64, _: Option<&Self>) -> Self {
            let d = Doc::with_options(Options {
                client_id: agent,
                // Code points equal UTF-16 units in these traces (no
                // character outside the BMP). `MINIDOTE_YRS_BYTES=1`
                // counts bytes instead (right only for ASCII traces), to
                // see what the unit costs.
                offset_kind: if std::env::var_os("MINIDOTE_YRS_BYTES").is_some() {
                    OffsetKind::Bytes
                } else {
                    OffsetKind::Utf16
                },
                ..Options::default()
            });
            let t = d.get_or_insert_text("t");
            Ys {
                d,
                t,
                sv: StateVector::default(),
            }
        }
        fn edit(&mut self, patches: &[Patch]) {
            let mut txn = self.d.transact_mut();
            for (pos, del, ins) in patches {
                if *del > 0 {
                    self.t.remove_range(&mut txn, *pos as u32, *del as u32);
                }
                if !ins.is_empty() {
                    self.t.insert(&mut txn, *pos as u32, ins);
                }
            }
        }
        fn take_update(&mut self) -> Vec<u8> {
            let txn = self.d.transact();
            let u = txn.encode_state_as_update_v1(&self.sv);
            self.sv = txn.state_vector();
            u
        }
        fn import(&mut self, u: &[u8]) {
            self.d
                .transact_mut()
                .apply_update(Update::decode_v1(u).unwrap())
                .unwrap();
        }
        fn text(&self) -> String {
            self.t.get_string(&self.d.transact())
        }
        fn history(&self) -> Vec<u8> {
            self.d
                .transact()
                .encode_state_as_update_v1(&StateVector::default())
        }
        fn from_history(bytes: &[u8]) -> Self {
            let mut y = Ys::new(2, None);
            y.import(bytes);
            y
        }
        /// Yjs's compact encoding (`encodeStateAsUpdateV2`).
        fn save(&self) -> Vec<u8> {
            self.d
                .transact()
                .encode_state_as_update_v2(&StateVector::default())
        }
        fn state(&self) -> Option<Vec<u8>> {
            None
        }
        fn open(bytes: &[u8]) -> Self {
            let y = Ys::new(3, None);
            y.d.transact_mut()
                .apply_update(Update::decode_v2(bytes).unwrap())
                .unwrap();
            y
        }
    }
}

mod lo {
    use super::*;
    use loro::{ExportMode, LoroDoc, LoroText, VersionVector};

    pub struct Lo {
        d: LoroDoc,
        t: LoroText,
        vv: VersionVector,
    }

    impl TextDoc for Lo {
        const NAME: &'static str = "loro";
        fn new(agent: u64, _: Option<&Self>) -> Self {
            let d = LoroDoc::new();
            d.set_peer_id(agent).unwrap();
            let t = d.get_text("t");
            Lo {
                d,
                t,
                vv: VersionVector::default(),
            }
        }
        fn edit(&mut self, patches: &[Patch]) {
            for (pos, del, ins) in patches {
                if *del > 0 {
                    self.t.delete(*pos, *del).unwrap();
                }
                if !ins.is_empty() {
                    self.t.insert(*pos, ins).unwrap();
                }
            }
            self.d.commit();
        }
        fn take_update(&mut self) -> Vec<u8> {
            let u = self.d.export(ExportMode::updates(&self.vv)).unwrap();
            self.vv = self.d.oplog_vv();
            u
        }
        fn import(&mut self, u: &[u8]) {
            self.d.import(u).unwrap();
        }
        fn text(&self) -> String {
            self.t.to_string()
        }
        fn history(&self) -> Vec<u8> {
            self.d.export(ExportMode::all_updates()).unwrap()
        }
        fn from_history(bytes: &[u8]) -> Self {
            let mut l = Lo::new(2, None);
            l.import(bytes);
            l
        }
        fn save(&self) -> Vec<u8> {
            self.d.export(ExportMode::Snapshot).unwrap()
        }
        fn state(&self) -> Option<Vec<u8>> {
            Some(
                self.d
                    .export(ExportMode::shallow_snapshot(&self.d.oplog_frontiers()))
                    .unwrap(),
            )
        }
        fn open(bytes: &[u8]) -> Self {
            let mut l = Lo::new(3, None);
            l.import(bytes);
            l
        }
    }
}

mod am {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ChangeHash, ObjType, ReadDoc, TextEncoding, ROOT};

    pub struct Am {
        d: AutoCommit,
        t: automerge::ObjId,
        heads: Vec<ChangeHash>,
    }

    impl TextDoc for Am {
        const NAME: &'static str = "automerge";
        fn new(agent: u64, genesis: Option<&Self>) -> Self {
            let actor = ActorId::from(agent.to_be_bytes().as_slice());
            match genesis {
                // Agents share the text object the genesis made.
                Some(g) => {
                    let mut d = g.d.clone().fork();
                    d.set_actor(actor);
                    let heads = d.get_heads();
                    Am {
                        t: g.t.clone(),
                        d,
                        heads,
                    }
                }
                None => {
                    let mut d = AutoCommit::new_with_encoding(TextEncoding::UnicodeCodePoint)
                        .with_actor(actor);
                    let t = d.put_object(ROOT, "t", ObjType::Text).unwrap();
                    d.commit();
                    let heads = d.get_heads();
                    Am { d, t, heads }
                }
            }
        }
        fn edit(&mut self, patches: &[Patch]) {
            for (pos, del, ins) in patches {
                self.d
                    .splice_text(&self.t, *pos, *del as isize, ins)
                    .unwrap();
            }
            self.d.commit();
        }
        // The transaction just committed, as one change: `save_after`
        // re-walks the history per call, which took this harness over ten
        // minutes on the concurrent trace.
        fn take_update(&mut self) -> Vec<u8> {
            let u = match self.d.get_last_local_change() {
                Some(c) => c.raw_bytes().to_vec(),
                None => Vec::new(),
            };
            self.heads = self.d.get_heads();
            u
        }
        fn import(&mut self, u: &[u8]) {
            if !u.is_empty() {
                let c = automerge::Change::from_bytes(u.to_vec()).unwrap();
                self.d.apply_changes([c]).unwrap();
            }
        }
        fn text(&self) -> String {
            self.d.text(&self.t).unwrap()
        }
        fn history(&self) -> Vec<u8> {
            self.d.clone().save()
        }
        fn from_history(bytes: &[u8]) -> Self {
            Self::open(bytes)
        }
        fn save(&self) -> Vec<u8> {
            self.d.clone().save()
        }
        fn state(&self) -> Option<Vec<u8>> {
            None
        }
        fn open(bytes: &[u8]) -> Self {
            let mut d = AutoCommit::load(bytes).unwrap();
            let t = match d.get(ROOT, "t").unwrap() {
                Some((_, id)) => id,
                None => unreachable!(),
            };
            let heads = d.get_heads();
            Am { d, t, heads }
        }
    }
}

mod dt {
    use super::*;
    use diamond_types::list::encoding::{EncodeOptions, ENCODE_PATCH};
    use diamond_types::list::ListCRDT;
    use diamond_types::AgentId;

    pub struct Dt {
        d: ListCRDT,
        agent: AgentId,
        v: Vec<usize>,
    }

    impl TextDoc for Dt {
        const NAME: &'static str = "diamond-types";
        fn new(agent: u64, _: Option<&Self>) -> Self {
            let mut d = ListCRDT::new();
            let agent = d.get_or_create_agent_id(&format!("agent{agent}"));
            Dt {
                d,
                agent,
                v: Vec::new(),
            }
        }
        fn edit(&mut self, patches: &[Patch]) {
            for (pos, del, ins) in patches {
                if *del > 0 {
                    self.d.delete_without_content(self.agent, *pos..*pos + *del);
                }
                if !ins.is_empty() {
                    self.d.insert(self.agent, *pos, ins);
                }
            }
        }
        fn take_update(&mut self) -> Vec<u8> {
            // A patch: the default (ENCODE_FULL) also stores the start
            // version's whole text, a checkout per call.
            let u = self.d.oplog.encode_from(ENCODE_PATCH, &self.v);
            self.v = self.d.oplog.local_version().to_vec();
            u
        }
        fn import(&mut self, u: &[u8]) {
            self.d.merge_data_and_ff(u).unwrap();
        }
        fn text(&self) -> String {
            self.d.branch.content().to_string()
        }
        fn history(&self) -> Vec<u8> {
            self.d.oplog.encode(EncodeOptions::default())
        }
        fn from_history(bytes: &[u8]) -> Self {
            Self::open(bytes)
        }
        fn save(&self) -> Vec<u8> {
            self.history()
        }
        fn state(&self) -> Option<Vec<u8>> {
            None
        }
        fn open(bytes: &[u8]) -> Self {
            let mut d = ListCRDT::load_from(bytes).unwrap();
            let agent = d.get_or_create_agent_id("agent3");
            Dt {
                d,
                agent,
                v: Vec::new(),
            }
        }
    }
}

fn runs() -> usize {
    std::env::var("MINIDOTE_TRACE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// Minimum wall time of `runs()` runs, in ms, and the last result.
fn best<T>(mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs() {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        out = Some(r);
    }
    (best, out.unwrap())
}

fn replay<D: TextDoc>(t: &Trace) -> D {
    let mut d = D::new(1, None);
    for txn in &t.txns {
        for p in txn {
            d.edit(std::slice::from_ref(p));
        }
    }
    d
}

struct Row {
    lib: &'static str,
    local: f64,
    remote: f64,
    history: usize,
    saved: usize,
    state: Option<usize>,
    open: f64,
    rss: Option<u64>,
}

fn measure<D: TextDoc>(t: &Trace) -> Row {
    let (local, d) = best(|| replay::<D>(t));
    assert_eq!(d.text(), t.end, "{}: {} replays wrong", t.name, D::NAME);
    let hist = d.history();
    let (remote, r) = best(|| D::from_history(&hist));
    assert_eq!(r.text(), t.end, "{}: {} remote apply", t.name, D::NAME);
    let saved = d.save();
    let state = d.state();
    let for_open = d.saved_for_open();
    let (open, o) = best(|| D::open(&for_open));
    assert_eq!(o.text(), t.end, "{}: {} open", t.name, D::NAME);
    Row {
        lib: D::NAME,
        local,
        remote,
        history: hist.len(),
        saved: saved.len(),
        state: state.map(|s| s.len()),
        open,
        rss: child_rss(D::NAME, t),
    }
}

fn child_rss(lib: &str, t: &Trace) -> Option<u64> {
    // The child reads the patches from a compact file, so that what parsing
    // the JSON allocated is not in its heap when the replay starts.
    let path = std::env::temp_dir().join(format!("minidote-trace-{}.bin", t.name));
    if !path.exists() {
        let mut b = Vec::new();
        let put = |b: &mut Vec<u8>, x: usize| b.extend_from_slice(&(x as u32).to_le_bytes());
        put(&mut b, t.txns.len());
        for txn in &t.txns {
            put(&mut b, txn.len());
            for (pos, del, ins) in txn {
                put(&mut b, *pos);
                put(&mut b, *del);
                put(&mut b, ins.len());
                b.extend_from_slice(ins.as_bytes());
            }
        }
        put(&mut b, t.end.len());
        b.extend_from_slice(t.end.as_bytes());
        std::fs::write(&path, b).ok()?;
    }
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .args(["rss", lib, path.to_str()?])
        .output()
        .ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

fn read_bin(path: &str) -> Trace {
    let b = std::fs::read(path).unwrap();
    let mut i = 0usize;
    fn get(b: &[u8], i: &mut usize) -> usize {
        let x = u32::from_le_bytes(b[*i..*i + 4].try_into().unwrap()) as usize;
        *i += 4;
        x
    }
    let n = get(&b, &mut i);
    let mut txns = Vec::with_capacity(n);
    for _ in 0..n {
        let k = get(&b, &mut i);
        let mut ps = Vec::with_capacity(k);
        for _ in 0..k {
            let pos = get(&b, &mut i);
            let del = get(&b, &mut i);
            let len = get(&b, &mut i);
            ps.push((pos, del, String::from_utf8(b[i..i + len].to_vec()).unwrap()));
            i += len;
        }
        txns.push(ps);
    }
    let len = get(&b, &mut i);
    let end = String::from_utf8(b[i..i + len].to_vec()).unwrap();
    Trace {
        name: path.to_owned(),
        txns,
        end,
    }
}

/// The resident set now, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn rss_child(lib: &str, path: &str) {
    let t = read_bin(path);
    // Reset the peak to what is resident now (Linux: `clear_refs` 5), so
    // the peak measured is the replay's, not the JSON parser's.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base = rss_kib();
    let text = match lib {
        "minidote" => replay::<md::Md>(&t).text(),
        "yrs" => replay::<ys::Ys>(&t).text(),
        "loro" => replay::<lo::Lo>(&t).text(),
        "automerge" => replay::<am::Am>(&t).text(),
        "diamond-types" => replay::<dt::Dt>(&t).text(),
        _ => panic!("unknown library {lib}"),
    };
    assert_eq!(text, t.end);
    // Peak RSS of the process less what it held before the replay (the
    // trace itself, parsed).
    println!("{}", peak_rss_kib().saturating_sub(base));
}

/// The concurrent trace: one document per agent, each transaction applied
/// after bringing its agent to exactly its parents' version (the other
/// agent's updates, in order); returns the ms of the whole replay, and of a
/// fresh document merging both agents' updates.
fn concurrent<D: TextDoc>(c: &Concurrent) -> (f64, f64) {
    let genesis = D::new(999, None);
    let (replay_ms, (docs, updates)) = best(|| {
        let mut docs: Vec<D> = (0..c.agents)
            .map(|a| D::new(a as u64 + 1, Some(&genesis)))
            .collect();
        let mut updates: Vec<Vec<Vec<u8>>> = vec![Vec::new(); c.agents];
        let mut have = vec![vec![0usize; c.agents]; c.agents];
        let mut versions: Vec<Vec<usize>> = Vec::new();
        for (a, parents, patches) in &c.txns {
            let a = *a;
            let mut want = vec![0usize; c.agents];
            for p in parents {
                for (w, v) in want.iter_mut().zip(&versions[*p]) {
                    *w = (*w).max(*v);
                }
            }
            for b in 0..c.agents {
                if b != a {
                    for u in &updates[b][have[a][b]..want[b].max(have[a][b])] {
                        docs[a].import(u);
                    }
                    have[a][b] = have[a][b].max(want[b]);
                }
            }
            docs[a].edit(patches);
            let u = docs[a].take_update();
            updates[a].push(u);
            have[a][a] += 1;
            versions.push(have[a].clone());
        }
        (docs, updates)
    });
    let _ = docs;
    let (merge_ms, m) = best(|| {
        let mut m = D::new(500, Some(&genesis));
        for u in updates.iter().flatten() {
            m.import(u);
        }
        m
    });
    assert_eq!(m.text(), c.end, "{}: concurrent merge", D::NAME);
    (replay_ms, merge_ms)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("rss") {
        rss_child(&args[2], &args[3]);
        return;
    }
    // `traces prof local|remote <trace>`: minidote only, five times, for
    // `perf record -g`.
    if args.get(1).map(String::as_str) == Some("prof") {
        let t = load(&args[3]);
        let d = replay::<md::Md>(&t);
        let hist = d.history();
        for _ in 0..5 {
            let start = Instant::now();
            let n = if args[2] == "local" {
                replay::<md::Md>(&t).text().len()
            } else {
                md::Md::from_history(&hist).text().len()
            };
            eprintln!("{} ms ({n})", start.elapsed().as_millis());
        }
        return;
    }
    let only: Option<&str> = args.get(1).map(String::as_str);
    let names = [
        "automerge-paper",
        "seph-blog1",
        "rustcode",
        "sveltecomponent",
        "friendsforever_flat",
    ];
    println!("Editing traces: editing-traces by Joseph Gentle and contributors (CC BY 4.0).");
    println!("Times: minimum of {} runs, ms. Ratios: the library's figure over minidote's, for times and sizes alike: above 1 means minidote is faster or smaller.\n", runs());
    for name in names.iter().filter(|n| only.is_none_or(|o| o == **n)) {
        let t = load(name);
        let patches: usize = t.txns.iter().map(Vec::len).sum();
        println!(
            "### {name} ({patches} patches, {} code points at the end)\n",
            t.end.chars().count()
        );
        println!("| library | local replay ms | remote apply ms | history bytes | saved bytes | state-only bytes | open ms | peak RSS MiB |");
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let rows = [
            measure::<md::Md>(&t),
            measure::<ys::Ys>(&t),
            measure::<lo::Lo>(&t),
            measure::<am::Am>(&t),
            measure::<dt::Dt>(&t),
        ];
        let m = &rows[0];
        for r in &rows {
            let ratio = |x: f64, y: f64| {
                if r.lib == "minidote" {
                    String::new()
                } else {
                    format!(" ({:.2}×)", x / y)
                }
            };
            println!(
                "| {} | {:.1}{} | {:.1}{} | {}{} | {}{} | {} | {:.1}{} | {} |",
                r.lib,
                r.local,
                ratio(r.local, m.local),
                r.remote,
                ratio(r.remote, m.remote),
                r.history,
                ratio(r.history as f64, m.history as f64),
                r.saved,
                ratio(r.saved as f64, m.saved as f64),
                r.state.map_or("—".to_owned(), |s| s.to_string()),
                r.open,
                ratio(r.open, m.open),
                r.rss
                    .map_or("?".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0)),
            );
        }
        println!();
    }
    if only.is_none_or(|o| o == "concurrent") {
        let c = load_concurrent();
        println!(
            "### friendsforever.concurrent ({} txns, {} agents)\n",
            c.txns.len(),
            c.agents
        );
        println!(
            "| library | replay with forks and merges ms | fresh merge of both histories ms |"
        );
        println!("|---|---:|---:|");
        // Printed as they finish.
        let (mr, mm) = concurrent::<md::Md>(&c);
        println!("| minidote | {mr:.1} | {mm:.1} |");
        let row = |lib: &str, (r, m): (f64, f64)| {
            println!(
                "| {lib} | {r:.1} ({:.2}×) | {m:.1} ({:.2}×) |",
                r / mr,
                m / mm
            );
        };
        row("yrs", concurrent::<ys::Ys>(&c));
        row("loro", concurrent::<lo::Lo>(&c));
        row("automerge", concurrent::<am::Am>(&c));
        row("diamond-types", concurrent::<dt::Dt>(&c));
    }
}
