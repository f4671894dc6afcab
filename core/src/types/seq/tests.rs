//! Unit tests of the sequence CRDT: ops, non-interleaving, and random
//! concurrent edits checked against a plain-vector reference that runs the
//! same integration rule element by element (no runs, no tree, no index).

use std::collections::HashMap;

use super::*;
use crate::clock::VectorClock;

fn rid(n: u64) -> ReplicaId {
    ReplicaId(n)
}

fn cp(at: u64) -> Pos {
    Pos { at, utf16: false }
}

fn text(s: &str) -> TextChunk {
    TextChunk::new(s.to_owned())
}

type T = Seq<TextChunk>;

fn value(s: &T) -> String {
    match s.value() {
        crate::value::Value::Str(s) => s,
        v => panic!("not a string: {v:?}"),
    }
}

/// One replica of a text, with its seq counter.
struct Peer {
    id: ReplicaId,
    seq: u64,
    s: T,
}

impl Peer {
    fn new(n: u64) -> Self {
        Peer {
            id: rid(n),
            seq: 0,
            s: T::default(),
        }
    }

    fn op(&mut self, op: SeqOp<TextChunk>) -> (Dot, Effect<TextChunk>) {
        self.seq += 1;
        let dot = Dot::new(self.id, self.seq);
        let e = self
            .s
            .prepare_apply(&[(0, op)], self.id, dot, None)
            .expect("valid op");
        self.s.check();
        (dot, e)
    }

    fn ins(&mut self, at: u64, s: &str) -> (Dot, Effect<TextChunk>) {
        self.op(SeqOp::Ins(cp(at), text(s)))
    }

    fn del(&mut self, at: u64, n: u64) -> (Dot, Effect<TextChunk>) {
        self.op(SeqOp::Del(cp(at), n))
    }

    fn recv(&mut self, m: &(Dot, Effect<TextChunk>)) {
        self.s.apply(&m.1, m.0, None);
        self.s.check();
    }
}

#[test]
fn inserts_deletes_and_splices_apply_in_place() {
    let mut a = Peer::new(1);
    a.ins(0, "hello");
    a.ins(5, " world");
    a.ins(0, ">");
    assert_eq!(value(&a.s), ">hello world");
    a.del(1, 5);
    assert_eq!(value(&a.s), "> world");
    a.op(SeqOp::Splice(cp(2), 5, text("there")));
    assert_eq!(value(&a.s), "> there");
    a.op(SeqOp::Clear);
    assert_eq!(value(&a.s), "");
    assert!(!a.s.is_empty() && !a.s.any_visible());
    a.ins(0, "x");
    assert_eq!(value(&a.s), "x");
}

#[test]
fn out_of_range_indexes_are_refused_and_change_nothing() {
    let mut a = Peer::new(1);
    a.ins(0, "abc");
    let before = a.s.clone();
    for op in [
        SeqOp::Ins(cp(4), text("x")),
        SeqOp::Del(cp(2), 2),
        SeqOp::Del(cp(u64::MAX), 1),
        SeqOp::Del(cp(1), u64::MAX),
        SeqOp::Splice(cp(3), 1, text("y")),
    ] {
        let err = a.s.prepare_apply(&[(0, op)], a.id, Dot::new(a.id, 9), None);
        assert!(
            matches!(err, Err(UpdateError::IndexOutOfRange { .. })),
            "{err:?}"
        );
        assert_eq!(a.s, before);
    }
    // A later op of the batch out of range refuses the whole batch.
    let ops = [(0, SeqOp::Ins(cp(0), text("x"))), (1, SeqOp::Del(cp(3), 2))];
    let err = Seq::prepare(Some(&a.s), &ops, a.id);
    assert!(matches!(
        err,
        Err(UpdateError::IndexOutOfRange { index: 1, .. })
    ));
    // ... but sees the earlier ones.
    let ops = [(0, SeqOp::Ins(cp(0), text("x"))), (1, SeqOp::Del(cp(3), 1))];
    let e = Seq::prepare(Some(&a.s), &ops, a.id).unwrap();
    a.s.apply(&e, Dot::new(a.id, 2), None);
    assert_eq!(value(&a.s), "xab");
}

#[test]
fn utf16_indexes_convert_and_refuse_the_middle_of_a_pair() {
    let mut a = Peer::new(1);
    a.ins(0, "a😀b");
    let u = |at| Pos { at, utf16: true };
    assert_eq!(a.s.len(), (3, 4));
    let e = a.s.prepare_apply(
        &[(0, SeqOp::Ins(u(3), text("x")))],
        a.id,
        Dot::new(a.id, 2),
        None,
    );
    assert!(e.is_ok());
    assert_eq!(value(&a.s), "a😀xb");
    let err = a.s.prepare_apply(
        &[(0, SeqOp::Ins(u(2), text("x")))],
        a.id,
        Dot::new(a.id, 3),
        None,
    );
    assert!(matches!(
        err,
        Err(UpdateError::InsideSurrogatePair { at: 2, .. })
    ));
    let err =
        a.s.prepare_apply(&[(0, SeqOp::Del(u(0), 2))], a.id, Dot::new(a.id, 3), None);
    assert!(matches!(
        err,
        Err(UpdateError::InsideSurrogatePair { at: 2, .. })
    ));
    a.s.prepare_apply(&[(0, SeqOp::Del(u(1), 2))], a.id, Dot::new(a.id, 3), None)
        .unwrap();
    assert_eq!(value(&a.s), "axb");
}

/// Each of `words` is typed by its own replica at index `at` of a shared
/// base text, one transaction per character, forward or backward; every
/// replica then receives everything, in several orders.
fn concurrent_typing(words: &[&str], backward: bool) -> Vec<String> {
    let mut base = Peer::new(100);
    let m0 = base.ins(0, "[]");
    let mut peers: Vec<Peer> = (0..words.len()).map(|i| Peer::new(i as u64 + 1)).collect();
    let mut msgs = Vec::new();
    for (p, w) in peers.iter_mut().zip(words) {
        p.recv(&m0);
        let chars: Vec<char> = w.chars().collect();
        let mut mine = Vec::new();
        if backward {
            for c in chars.iter().rev() {
                mine.push(p.ins(1, &c.to_string()));
            }
        } else {
            for (k, c) in chars.iter().enumerate() {
                mine.push(p.ins(1 + k as u64, &c.to_string()));
            }
        }
        msgs.push(mine);
    }
    let mut out = Vec::new();
    // Every replica gets the others' runs, in each order of senders.
    for (i, p) in peers.iter_mut().enumerate() {
        let mut order: Vec<usize> = (0..words.len()).filter(|j| *j != i).collect();
        if i % 2 == 1 {
            order.reverse();
        }
        for j in order {
            for m in &msgs[j] {
                p.recv(m);
            }
        }
        out.push(value(&p.s));
    }
    // And one that gets them interleaved message by message.
    let mut fresh = Peer::new(99);
    fresh.recv(&m0);
    let longest = msgs.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for m in msgs.iter().rev() {
            if let Some(m) = m.get(k) {
                fresh.recv(m);
            }
        }
    }
    out.push(value(&fresh.s));
    out
}

fn assert_whole(results: &[String], words: &[&str]) {
    for r in results {
        assert_eq!(r, &results[0], "replicas diverge");
    }
    let inner = &results[0][1..results[0].len() - 1];
    let mut rest = inner.to_owned();
    for w in words {
        assert!(rest.contains(w), "{w:?} is not whole in {inner:?}");
        rest = rest.replacen(w, "", 1);
    }
    assert!(rest.is_empty());
}

#[test]
fn concurrent_forward_typing_does_not_interleave() {
    let words = ["alpha", "bravo"];
    assert_whole(&concurrent_typing(&words, false), &words);
    let words = ["one", "two", "three"];
    assert_whole(&concurrent_typing(&words, false), &words);
}

#[test]
fn concurrent_backward_typing_does_not_interleave() {
    let words = ["alpha", "bravo"];
    assert_whole(&concurrent_typing(&words, true), &words);
    let words = ["one", "two", "three"];
    assert_whole(&concurrent_typing(&words, true), &words);
}

#[test]
fn a_run_typed_in_one_transaction_stays_whole_too() {
    let mut a = Peer::new(1);
    let mut b = Peer::new(2);
    let m1 = a.ins(0, "hello");
    let m2 = b.ins(0, "world");
    a.recv(&m2);
    b.recv(&m1);
    assert_eq!(value(&a.s), value(&b.s));
    assert!(value(&a.s) == "helloworld" || value(&a.s) == "worldhello");
}

#[test]
fn typing_makes_runs_across_transactions() {
    let mut a = Peer::new(1);
    for (k, c) in "the quick brown fox".chars().enumerate() {
        a.ins(k as u64, &c.to_string());
    }
    assert_eq!(a.s.runs(), 1);
    // Deleting a word splits it into three runs; deleting its neighbours
    // merges the tombstones.
    a.del(4, 6);
    assert_eq!(value(&a.s), "the brown fox");
    assert_eq!(a.s.runs(), 3);
    a.del(3, 1);
    assert_eq!(a.s.runs(), 3);
    let mut w = Writer::new();
    a.s.encode(&mut w);
    let b = T::decode(&mut Reader::new(w.as_slice())).unwrap();
    assert_eq!(b, a.s);
    assert_eq!(value(&b), "thebrown fox");
}

// ----- the reference -----

#[derive(Clone, Debug)]
struct RefElem {
    id: ElemId,
    left: Option<ElemId>,
    right: Option<ElemId>,
    ch: char,
    vis: bool,
}

/// The same rule as `Seq::integrate_run`, one element at a time over a
/// vector, with linear searches.
#[derive(Clone, Default)]
struct RefDoc(Vec<RefElem>);

impl RefDoc {
    fn pos(&self, id: ElemId) -> Option<usize> {
        self.0.iter().position(|e| e.id == id)
    }

    fn integrate(&mut self, e: RefElem) {
        let Some(start) = (match e.left {
            None => Some(0),
            Some(l) => self.pos(l).map(|p| p + 1),
        }) else {
            return;
        };
        let lp = |d: &RefDoc, x: Option<ElemId>| x.and_then(|i| d.pos(i)).map_or(0, |p| p + 1);
        let rp = |d: &RefDoc, x: Option<ElemId>| x.and_then(|i| d.pos(i)).unwrap_or(d.0.len());
        let mut i = start;
        let mut scanning = false;
        let mut scan_at = start;
        while i < self.0.len() {
            let o = &self.0[i];
            if Some(o.id) == e.right {
                break;
            }
            if o.left == e.left {
                if o.right == e.right {
                    if e.id < o.id {
                        break;
                    }
                    scanning = false;
                } else if rp(self, o.right) < rp(self, e.right) {
                    if !scanning {
                        scanning = true;
                        scan_at = i;
                    }
                } else {
                    scanning = false;
                }
            } else if lp(self, o.left) < lp(self, e.left) {
                break;
            }
            i += 1;
        }
        if scanning {
            i = scan_at;
        }
        self.0.insert(i, e);
    }

    fn apply(&mut self, eff: &Effect<TextChunk>, dot: Dot) {
        let mut off = 0u32;
        for p in eff {
            match p {
                Piece::Ins {
                    left,
                    right,
                    content,
                } => {
                    let right = right.map(|r| r.resolve(dot));
                    let mut left = left.map(|r| r.resolve(dot));
                    for ch in content.as_str().chars() {
                        let id = ElemId::new(dot, off);
                        off += 1;
                        self.integrate(RefElem {
                            id,
                            left,
                            right,
                            ch,
                            vis: true,
                        });
                        left = Some(id);
                    }
                }
                Piece::Del {
                    first,
                    len,
                    per_txn,
                } => {
                    let first = first.resolve(dot);
                    for k in 0..*len {
                        let id = id_at(first, *per_txn && *len > 1, k);
                        match self.pos(id) {
                            Some(p) => self.0[p].vis = false,
                            None => break,
                        }
                    }
                }
            }
        }
    }

    fn value(&self) -> String {
        self.0.iter().filter(|e| e.vis).map(|e| e.ch).collect()
    }
}

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

struct Msg {
    dot: Dot,
    clock: VectorClock,
    effect: Effect<TextChunk>,
}

struct Sim {
    peers: Vec<Peer>,
    clocks: Vec<VectorClock>,
    refs: Vec<RefDoc>,
    log: Vec<Msg>,
    /// Per peer, indexes into `log` not delivered yet.
    inbox: Vec<Vec<usize>>,
    snaps: Vec<(T, VectorClock)>,
}

impl Sim {
    fn new(n: usize) -> Self {
        Sim {
            peers: (0..n).map(|i| Peer::new(i as u64 + 1)).collect(),
            clocks: vec![VectorClock::new(); n],
            refs: vec![RefDoc::default(); n],
            log: Vec::new(),
            inbox: vec![Vec::new(); n],
            snaps: Vec::new(),
        }
    }

    /// A batch of 2–3 ops in one transaction, each in range for the
    /// document the ops before it leave.
    fn local_batch(&mut self, p: usize, rng: &mut Rng) {
        let mut len = self.peers[p].s.len().0;
        let mut ops = Vec::new();
        for i in 0..2 + rng.below(2) as usize {
            let op = if len > 0 && rng.below(2) == 0 {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(3));
                len -= n;
                SeqOp::Del(cp(at), n)
            } else {
                len += 2;
                SeqOp::Ins(cp(rng.below(len - 1)), text("xy"))
            };
            ops.push((i, op));
        }
        let peer = &mut self.peers[p];
        peer.seq += 1;
        let dot = Dot::new(peer.id, peer.seq);
        let effect = if rng.below(2) == 0 {
            peer.s
                .prepare_apply(&ops, peer.id, dot, None)
                .expect("valid batch")
        } else {
            let e = Seq::prepare(Some(&peer.s), &ops, peer.id).expect("valid batch");
            peer.s.apply(&e, dot, None);
            e
        };
        peer.s.check();
        self.refs[p].apply(&effect, dot);
        self.clocks[p].raise(dot.replica, dot.seq);
        let i = self.log.len();
        self.log.push(Msg {
            dot,
            clock: self.clocks[p].clone(),
            effect,
        });
        for (q, inbox) in self.inbox.iter_mut().enumerate() {
            if q != p {
                inbox.push(i);
            }
        }
    }

    fn local(&mut self, p: usize, rng: &mut Rng) {
        let len = self.peers[p].s.len().0;
        let alphabet = ['a', 'b', 'c', 'd', 'é', '😀'];
        let word: String = (0..1 + rng.below(3))
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
            .collect();
        let op = match rng.below(10) {
            0..=5 => SeqOp::Ins(cp(rng.below(len + 1)), text(&word)),
            6..=8 if len > 0 => {
                let at = rng.below(len);
                SeqOp::Del(cp(at), 1 + rng.below((len - at).min(4)))
            }
            9 if len > 0 => {
                let at = rng.below(len);
                SeqOp::Splice(cp(at), rng.below((len - at).min(3)), text(&word))
            }
            _ => SeqOp::Ins(cp(0), text(&word)),
        };
        let (dot, effect) = self.peers[p].op(op);
        self.refs[p].apply(&effect, dot);
        self.clocks[p].raise(dot.replica, dot.seq);
        let i = self.log.len();
        self.log.push(Msg {
            dot,
            clock: self.clocks[p].clone(),
            effect,
        });
        for (q, inbox) in self.inbox.iter_mut().enumerate() {
            if q != p {
                inbox.push(i);
            }
        }
    }

    fn deliverable(&self, p: usize, m: &Msg) -> bool {
        let c = &self.clocks[p];
        m.clock.iter().all(|(r, s)| {
            if r == m.dot.replica {
                c.get(r) + 1 == s
            } else {
                c.get(r) >= s
            }
        })
    }

    /// Delivers one random deliverable message to `p`; false if none.
    fn deliver(&mut self, p: usize, rng: &mut Rng) -> bool {
        let ready: Vec<usize> = (0..self.inbox[p].len())
            .filter(|&k| self.deliverable(p, &self.log[self.inbox[p][k]]))
            .collect();
        if ready.is_empty() {
            return false;
        }
        let k = ready[rng.below(ready.len() as u64) as usize];
        let i = self.inbox[p].remove(k);
        let m = &self.log[i];
        self.peers[p].s.apply(&m.effect, m.dot, None);
        self.peers[p].s.check();
        self.refs[p].apply(&m.effect, m.dot);
        self.clocks[p].raise(m.dot.replica, m.dot.seq);
        true
    }

    /// A fresh state with every logged effect within `clock` applied.
    fn replay(&self, clock: &VectorClock) -> T {
        let mut s = T::default();
        for m in &self.log {
            if clock.contains(&m.dot) {
                s.apply(&m.effect, m.dot, None);
            }
        }
        s
    }
}

fn random_run(seed: u64, n: usize, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut sim = Sim::new(n);
    for _ in 0..steps {
        let p = rng.below(n as u64) as usize;
        match rng.below(5) {
            0 | 1 => sim.local(p, &mut rng),
            4 => sim.local_batch(p, &mut rng),
            _ => {
                sim.deliver(p, &mut rng);
            }
        }
        assert_eq!(
            value(&sim.peers[p].s),
            sim.refs[p].value(),
            "seed {seed}: peer {p} vs the reference"
        );
        if rng.below(8) == 0 {
            sim.snaps
                .push((sim.peers[p].s.clone(), sim.clocks[p].clone()));
        }
    }
    for p in 0..n {
        while sim.deliver(p, &mut rng) {}
        assert!(sim.inbox[p].is_empty());
    }
    let v = value(&sim.peers[0].s);
    for p in 0..n {
        assert_eq!(value(&sim.peers[p].s), v, "seed {seed}: peer {p} diverges");
        assert_eq!(sim.refs[p].value(), v, "seed {seed}: reference {p}");
        assert_eq!(sim.peers[p].s, sim.peers[0].s, "seed {seed}: states differ");
        // The state round-trips through its encoding.
        let mut w = Writer::new();
        sim.peers[p].s.encode(&mut w);
        let back = T::decode(&mut Reader::new(w.as_slice())).expect("decodes");
        assert_eq!(back, sim.peers[p].s, "seed {seed}: encoding round trip");
        back.check();
    }
    // Joins of snapshots equal the replay of the union of their histories,
    // in either order; a join with itself changes nothing.
    let snaps = std::mem::take(&mut sim.snaps);
    for _ in 0..snaps.len().min(12) {
        let (a, ca) = &snaps[rng.below(snaps.len() as u64) as usize];
        let (b, cb) = &snaps[rng.below(snaps.len() as u64) as usize];
        let want = sim.replay(&ca.merged(cb));
        let mut ab = a.clone();
        ab.join(b, cb);
        ab.check();
        let mut ba = b.clone();
        ba.join(a, ca);
        assert_eq!(value(&ab), value(&want), "seed {seed}: join");
        assert_eq!(ab, want, "seed {seed}: join state");
        assert_eq!(ba, want, "seed {seed}: join commutes");
        let mut aa = ab.clone();
        aa.join(&ab, &ca.merged(cb));
        assert_eq!(aa, ab);
        // Into an empty state too (no order is taken on trust).
        let mut fresh = T::default();
        fresh.join(&ab, &ca.merged(cb));
        assert_eq!(fresh, ab, "seed {seed}: join into empty");
    }
}

#[test]
fn random_concurrent_edits_converge_and_match_the_reference() {
    for seed in 0..300 {
        random_run(seed, 2 + (seed % 4) as usize, 120);
    }
}

#[test]
fn long_random_runs_split_leaves_and_still_match() {
    for seed in 0..6 {
        random_run(1000 + seed, 3, 3000);
    }
}

#[test]
fn effects_round_trip_and_name_their_observed_dots() {
    let mut a = Peer::new(1);
    a.ins(0, "abc");
    let (_, e) = a.op(SeqOp::Splice(cp(1), 1, text("xy")));
    let mut w = Writer::new();
    T::encode_effect(&e, &mut w);
    let back = T::decode_effect(&mut Reader::new(w.as_slice())).unwrap();
    assert_eq!(back, e);
    let mut seen = Vec::new();
    T::observed(&e, &mut |d| seen.push(d));
    assert!(seen.iter().all(|d| *d == Dot::new(a.id, 1)) && !seen.is_empty());
    // Garbage never panics.
    for n in 0..w.as_slice().len() {
        let _ = T::decode_effect(&mut Reader::new(&w.as_slice()[..n]));
    }
    let _: HashMap<u8, u8> = HashMap::new();
}

// ----- hostile states and effects (from review) -----

fn run_of(
    r: u64,
    seq: u64,
    len: u32,
    left: Option<ElemId>,
    content: Option<&str>,
) -> Run<TextChunk> {
    Run {
        id: ElemId::new(Dot::new(rid(r), seq), 0),
        len,
        per_txn: false,
        left,
        right: None,
        content: content.map(text),
    }
}

fn state(runs: Vec<Run<TextChunk>>) -> T {
    let mut tree = Tree::default();
    for r in runs {
        assert!(tree.push_checked(r));
    }
    Seq { tree }
}

fn ctx(entries: &[(u64, u64)]) -> VectorClock {
    VectorClock::from_entries(entries.iter().map(|(r, s)| (rid(*r), *s)))
}

#[test]
fn a_state_cannot_plant_ids_its_clock_does_not_hold() {
    // A snapshot whose clock is {9: 1} holding an element of (7, 4).
    let planted = state(vec![run_of(7, 4, 1, None, Some("x"))]);
    let mut a = Peer::new(7);
    a.ins(0, "abc");
    let before = a.s.clone();
    a.s.join(&planted, &ctx(&[(9, 1)]));
    assert_eq!(a.s, before, "nothing taken");
    let mut empty = T::default();
    empty.join(&planted, &ctx(&[(9, 1)]));
    assert!(empty.is_empty());
    // With the clock that holds it, it is taken.
    a.s.join(&planted, &ctx(&[(7, 4)]));
    assert_eq!(value(&a.s).len(), 4);
}

#[test]
fn a_state_in_the_wrong_order_is_ordered_by_its_origins_everywhere() {
    // "b" (replica 2) before "a" (replica 1), both with no origins: FugueMax
    // puts the lower replica first whatever order the state claims.
    let hostile = state(vec![
        run_of(2, 1, 1, None, Some("b")),
        run_of(1, 1, 1, None, Some("a")),
    ]);
    let c = ctx(&[(1, 1), (2, 1)]);
    let mut z = Peer::new(3);
    z.ins(0, "z");
    let zc = ctx(&[(3, 1)]);
    let mut x = T::default();
    x.join(&hostile, &c);
    x.join(&z.s, &zc);
    let mut y = z.s.clone();
    y.join(&hostile, &c);
    assert_eq!(value(&x), value(&y));
    assert_eq!(x, y);
}

#[test]
fn a_run_claiming_billions_of_deleted_elements_joins_quickly() {
    let huge = state(vec![run_of(5, 1, u32::MAX - 1, None, None)]);
    let mut a = Peer::new(1);
    a.ins(0, "hello");
    let t = std::time::Instant::now();
    a.s.join(&huge, &ctx(&[(5, 1)]));
    assert!(t.elapsed().as_secs() < 5, "took {:?}", t.elapsed());
    assert_eq!(value(&a.s), "hello");
    a.s.check();
}

#[test]
fn long_pastes_are_kept_in_short_runs() {
    let mut a = Peer::new(1);
    a.ins(0, &"x".repeat(10_000));
    assert!(
        a.s.runs() >= 10_000 / run::RUN_MAX as usize,
        "{} runs",
        a.s.runs()
    );
    // Deleting one by one inside it stays cheap and correct.
    for _ in 0..500 {
        a.del(5_000, 1);
    }
    assert_eq!(value(&a.s).len(), 9_500);
    let mut w = Writer::new();
    a.s.encode(&mut w);
    let back = T::decode(&mut Reader::new(w.as_slice())).unwrap();
    assert_eq!(back, a.s);
    back.check();
}

#[test]
fn delete_ranges_whose_last_id_overflows_do_not_decode() {
    for (tag, seq, off) in [(2u8, u64::MAX, 0u64), (1, 1, u32::MAX as u64)] {
        let mut w = Writer::new();
        w.varint(1);
        w.u8(tag);
        w.u8(2);
        Dot::new(rid(1), seq).encode(&mut w);
        w.varint(off);
        w.varint(2);
        assert!(
            T::decode_effect(&mut Reader::new(w.as_slice())).is_err(),
            "tag {tag}"
        );
    }
}
