//! Side-by-side workloads: minidote-core against automerge, yrs, loro and
//! crdts. Every workload is generated once from a fixed seed, then fed to
//! each library through the same small trait, in the same process.
//!
//! Stand-ins where a peer lacks a type (also printed in the report):
//! * counters: yrs has none, so a map entry is read and written back;
//!   automerge and loro have counters; crdts has `PNCounter`.
//! * add-wins set: automerge, yrs and loro use a map from element to
//!   `true` (delete = remove the entry); crdts has `Orswot`.
//! * registers: map entries (automerge, yrs, loro); crdts a `LWWReg` per
//!   key in a `HashMap`.
//! * flags: a map entry holding a bool (automerge, yrs, loro); crdts a
//!   `LWWReg<bool>`.

use std::collections::HashMap;

/// A tiny deterministic generator (splitmix64), so workloads need no
/// dependency and are the same on every run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    #[allow(clippy::should_implement_trait)] // a generator, not an iterator
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub const SEED: u64 = 0x6d69_6e69_646f_7465;

/// A replica id as a real client would have one: random, 32 bits (Yjs
/// client ids are 32-bit; minidote's are 64-bit but always travel as 8
/// bytes), so no library gets a one-byte id for free.
pub fn realistic_id(i: u64) -> u64 {
    (Rng::new(SEED ^ i).next() & 0xffff_ffff) | 0x8000_0000
}

/// One op of the mixed remote-apply workload (W2).
#[derive(Clone, Copy, Debug)]
pub enum Mixed {
    Increment,
    Add(u64),
    Remove(u64),
    Write(u32, u64),
}

/// The workloads, generated once.
#[derive(Debug)]
pub struct Workloads {
    /// W1: set adds (elements), then removes.
    pub set_adds: Vec<u64>,
    pub set_removes: Vec<u64>,
    /// W1: register writes (key, value).
    pub writes: Vec<(u32, u64)>,
    /// W2: mixed ops in causal (program) order.
    pub mixed: Vec<Mixed>,
    /// W7: nested map writes (document, field of its `meta` map, value).
    pub nested: Vec<(u32, u32, u64)>,
}

impl Workloads {
    /// `n`: ops per workload (1M in the issue; `MINIDOTE_BENCH_OPS`).
    pub fn generate(n: usize) -> Self {
        let mut r = Rng::new(SEED);
        let elems = (n / 10).max(1) as u64;
        let set_adds = (0..n).map(|_| r.below(elems)).collect();
        let set_removes = (0..n / 10).map(|_| r.below(elems)).collect();
        let keys = (n / 100).max(1) as u64;
        let writes = (0..n).map(|i| (r.below(keys) as u32, i as u64)).collect();
        let mixed = (0..n)
            .map(|i| match r.below(10) {
                0..=3 => Mixed::Increment,
                4..=7 => Mixed::Add(r.below(elems)),
                8 => Mixed::Remove(r.below(elems)),
                _ => Mixed::Write(r.below(keys) as u32, i as u64),
            })
            .collect();
        let docs = (n / 1000).max(1) as u64;
        let nested = (0..n)
            .map(|i| (r.below(docs) as u32, r.below(10) as u32, i as u64))
            .collect();
        Workloads {
            set_adds,
            set_removes,
            writes,
            mixed,
            nested,
        }
    }
}

/// What every library implements. One op per transaction unless named
/// otherwise.
pub trait Subject: Sized {
    const NAME: &'static str;
    /// Which stand-ins it uses, for the report.
    const STAND_INS: &'static str;
    fn new(replica: u64) -> Self;
    fn counter_single(&mut self, n: usize);
    fn counter_batches(&mut self, n: usize, batch: usize);
    fn set_add(&mut self, e: u64);
    fn set_remove(&mut self, e: u64);
    fn write(&mut self, k: u32, v: u64);
    fn flag(&mut self, on: bool);
    fn mixed(&mut self, op: Mixed) {
        match op {
            Mixed::Increment => self.counter_single(1),
            Mixed::Add(e) => self.set_add(e),
            Mixed::Remove(e) => self.set_remove(e),
            Mixed::Write(k, v) => self.write(k, v),
        }
    }
    /// The effects made since the last call, one blob per transaction
    /// (what a peer receives).
    fn take_updates(&mut self) -> Vec<Vec<u8>>;
    /// Applies blobs from `take_updates` of another replica, in order.
    fn apply(&mut self, updates: &[Vec<u8>]);
    /// W3: what a peer broadcasts live for the transactions since the last
    /// call (by default the same as `take_updates`). The first call may
    /// switch capturing on, so call it once before the ops.
    fn live_updates(&mut self) -> Vec<Vec<u8>> {
        self.take_updates()
    }
    /// W3: stop capturing (the receivers have no listening peer).
    fn end_live(&mut self) {}
    /// W3: the library's own measure of updates held back until their
    /// dependencies arrive, if it exposes one, and its unit.
    fn buffered(&mut self) -> Option<(usize, &'static str)> {
        None
    }
    /// The whole state, as stored or sent in catch-up.
    fn save(&mut self) -> Vec<u8>;
    fn load(bytes: &[u8]) -> Self;
    /// A number that depends on the state, to check replicas agree and to
    /// keep the optimiser honest.
    fn digest(&mut self) -> u64;
    /// W7: in one transaction, sets field `f` of the map `meta` inside the
    /// map of document `doc` to `v` (the nested maps are made on first use).
    fn nested_write(&mut self, doc: u32, f: u32, v: u64);
    /// W7: the value at `doc.meta.f` (0 if absent).
    fn nested_read(&mut self, doc: u32, f: u32) -> u64;
}

// ------------------------------------------------------------ minidote

pub mod md {
    use super::*;
    use minidote_core::wire::txns_frames;
    use minidote_core::{
        CatchUp, Config, CrdtType, Field, Frame, Hello, Key, LinkId, Op, Replica, ReplicaId,
        Update, UpdateOutcome, Value, VectorClock,
    };

    pub struct Md {
        pub r: Replica,
        counter: Key,
        set: Key,
        flag: Key,
        regs: HashMap<u32, Key>,
        /// W7: one `map_rr` object per document, and the field names.
        docs: HashMap<u32, Key>,
        meta: Field,
        fields: Vec<Field>,
        sent: usize,
        /// W3: a link to a listening peer, whose frames are the broadcast.
        live: Option<LinkId>,
    }

    fn config() -> Config {
        Config {
            snapshot_every: 0,
            buffer_capacity: 2_000_000,
            buffer_bytes: usize::MAX,
            ..Config::default()
        }
    }

    impl Md {
        fn run(&mut self, ups: Vec<Update>) {
            match self.r.update_objects(ups, None).expect("valid") {
                UpdateOutcome::Committed(_) => {}
                UpdateOutcome::Pending(_) => unreachable!("memory replica"),
            }
            while self.r.poll_event().is_some() {}
        }
        fn reg(&mut self, k: u32) -> Key {
            self.regs
                .entry(k)
                .or_insert_with(|| Key::new(format!("r{k}"), CrdtType::RegisterLww, "b"))
                .clone()
        }
    }

    impl Subject for Md {
        const NAME: &'static str = "minidote";
        const STAND_INS: &'static str = "native types (counter_pn, set_aw, register_lww, flag_ew)";
        fn new(replica: u64) -> Self {
            Md {
                r: Replica::new(ReplicaId(replica), config()),
                counter: Key::new("c", CrdtType::CounterPn, "b"),
                set: Key::new("s", CrdtType::SetAw, "b"),
                flag: Key::new("f", CrdtType::FlagEw, "b"),
                regs: HashMap::new(),
                docs: HashMap::new(),
                meta: Field::new("meta", CrdtType::MapRr),
                fields: (0..10)
                    .map(|f| Field::new(format!("f{f}"), CrdtType::RegisterLww))
                    .collect(),
                sent: 0,
                live: None,
            }
        }
        fn counter_single(&mut self, n: usize) {
            for _ in 0..n {
                let u = Update::new(self.counter.clone(), Op::Increment(1));
                self.run(vec![u]);
            }
        }
        fn counter_batches(&mut self, n: usize, batch: usize) {
            for _ in 0..n / batch {
                let ups = (0..batch)
                    .map(|_| Update::new(self.counter.clone(), Op::Increment(1)))
                    .collect();
                self.run(ups);
            }
        }
        fn set_add(&mut self, e: u64) {
            let u = Update::new(self.set.clone(), Op::Add(Value::Int(e as i64)));
            self.run(vec![u]);
        }
        fn set_remove(&mut self, e: u64) {
            let u = Update::new(self.set.clone(), Op::Remove(Value::Int(e as i64)));
            self.run(vec![u]);
        }
        fn write(&mut self, k: u32, v: u64) {
            let key = self.reg(k);
            self.run(vec![Update::new(key, Op::Assign(Value::Int(v as i64)))]);
        }
        fn flag(&mut self, on: bool) {
            let op = if on { Op::Enable } else { Op::Disable };
            self.run(vec![Update::new(self.flag.clone(), op)]);
        }
        /// What a link ships: `Txns` frames of at most `max_frame_bytes`,
        /// holding the transactions made since the last call.
        fn take_updates(&mut self) -> Vec<Vec<u8>> {
            let txns = match self.r.catch_up(&minidote_core::VectorClock::new()) {
                CatchUp::Txns(mut t) => t.split_off(self.sent.min(t.len())),
                _ => Vec::new(),
            };
            self.sent += txns.len();
            txns_frames(&txns, self.r.config().max_frame_bytes)
        }
        fn apply(&mut self, updates: &[Vec<u8>]) {
            for f in updates {
                self.r.import_frame(f).expect("valid frame");
            }
            while self.r.poll_event().is_some() {}
        }
        /// The `Txns` frames the replica sends a linked peer: what it
        /// broadcasts live. The first call opens the link.
        fn live_updates(&mut self) -> Vec<Vec<u8>> {
            let link = match self.live {
                Some(l) => l,
                None => {
                    let l = LinkId(1);
                    self.r.link_open(l, None, 0);
                    let hello = Frame::Hello(Hello {
                        replica: ReplicaId(u64::MAX),
                        room: self.r.room().to_owned(),
                        clock: VectorClock::new(),
                        token: None,
                    });
                    self.r.handle_frame(l, &hello.encode(), 0).expect("hello");
                    self.live = Some(l);
                    l
                }
            };
            let mut out = Vec::new();
            while let Some(t) = self.r.poll_transmit() {
                if t.link == link
                    && (t.frame.get(1) == Some(&minidote_core::wire::TXNS_TAG)
                        || minidote_core::wire::is_run(&t.frame))
                {
                    out.push(t.frame);
                }
            }
            out
        }
        fn end_live(&mut self) {
            if let Some(l) = self.live.take() {
                self.r.link_closed(l);
                while self.r.poll_transmit().is_some() {}
                while self.r.poll_event().is_some() {}
            }
        }
        fn buffered(&mut self) -> Option<(usize, &'static str)> {
            Some((self.r.stats().buffered, "transactions"))
        }
        fn save(&mut self) -> Vec<u8> {
            self.r.state_snapshot().encode()
        }
        fn load(bytes: &[u8]) -> Self {
            let (r, _) =
                Replica::restore(ReplicaId(99), config(), Some(bytes), std::iter::empty(), 1)
                    .expect("valid snapshot");
            let mut m = Md::new(99);
            m.r = r;
            m
        }
        fn nested_write(&mut self, doc: u32, f: u32, v: u64) {
            let key = self
                .docs
                .entry(doc)
                .or_insert_with(|| Key::new(format!("d{doc}"), CrdtType::MapRr, "b"))
                .clone();
            let assign = Op::Assign(Value::Int(v as i64));
            let op = Op::Update(
                self.meta.clone(),
                Box::new(Op::Update(
                    self.fields[f as usize].clone(),
                    Box::new(assign),
                )),
            );
            self.run(vec![Update::new(key, op)]);
        }
        fn nested_read(&mut self, doc: u32, f: u32) -> u64 {
            let key = Key::new(format!("d{doc}"), CrdtType::MapRr, "b");
            let Value::Map(m) = self.r.value(&key) else {
                return 0;
            };
            match m.get("meta") {
                Some(Value::Map(meta)) => match meta.get(&format!("f{f}")) {
                    Some(Value::Int(i)) => *i as u64,
                    _ => 0,
                },
                _ => 0,
            }
        }
        fn digest(&mut self) -> u64 {
            let c = self.r.value(&self.counter);
            let s = self.r.value(&self.set);
            let n = match s {
                Value::List(l) => l.len() as u64,
                _ => 0,
            };
            match c {
                Value::Int(i) => i as u64 ^ (n << 32),
                _ => n,
            }
        }
    }
}

// ------------------------------------------------------------ automerge

pub mod am {
    use super::*;
    use automerge::transaction::Transactable;
    use automerge::{ActorId, AutoCommit, ReadDoc, ScalarValue, ROOT};

    pub struct Am {
        pub d: AutoCommit,
        counter: automerge::ObjId,
        set: automerge::ObjId,
        regs: automerge::ObjId,
        heads: Vec<automerge::ChangeHash>,
        /// W7: each document's `meta` map.
        meta: HashMap<u32, automerge::ObjId>,
    }

    impl Subject for Am {
        const NAME: &'static str = "automerge";
        const STAND_INS: &'static str =
            "Counter in a map; set = map elem→true; registers and flag = map entries";
        /// Every replica starts from the same genesis change (made once by
        /// actor 0), so they share the object ids of `c`, `s` and `r`.
        fn new(replica: u64) -> Self {
            static GENESIS: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
            let genesis = GENESIS.get_or_init(|| {
                let mut d = AutoCommit::new().with_actor(ActorId::from([0u8; 8].as_slice()));
                let counter = d.put_object(ROOT, "c", automerge::ObjType::Map).unwrap();
                d.put(&counter, "n", ScalarValue::counter(0)).unwrap();
                d.put_object(ROOT, "s", automerge::ObjType::Map).unwrap();
                d.put_object(ROOT, "r", automerge::ObjType::Map).unwrap();
                d.save()
            });
            let mut a = Self::load(genesis);
            a.d.set_actor(ActorId::from(replica.to_be_bytes().as_slice()));
            a
        }
        fn counter_single(&mut self, n: usize) {
            for _ in 0..n {
                self.d.increment(&self.counter, "n", 1).unwrap();
                self.d.commit();
            }
        }
        fn counter_batches(&mut self, n: usize, batch: usize) {
            for _ in 0..n / batch {
                for _ in 0..batch {
                    self.d.increment(&self.counter, "n", 1).unwrap();
                }
                self.d.commit();
            }
        }
        fn set_add(&mut self, e: u64) {
            self.d.put(&self.set, e.to_string(), true).unwrap();
            self.d.commit();
        }
        fn set_remove(&mut self, e: u64) {
            let key = e.to_string();
            if self.d.get(&self.set, key.as_str()).unwrap().is_some() {
                self.d.delete(&self.set, key.as_str()).unwrap();
            }
            self.d.commit();
        }
        fn write(&mut self, k: u32, v: u64) {
            self.d.put(&self.regs, k.to_string(), v).unwrap();
            self.d.commit();
        }
        fn flag(&mut self, on: bool) {
            self.d.put(ROOT, "f", on).unwrap();
            self.d.commit();
        }
        /// Every change since the last call, as one blob (`save_after`),
        /// as automerge ships them in catch-up.
        fn take_updates(&mut self) -> Vec<Vec<u8>> {
            let blob = self.d.save_after(&self.heads);
            self.heads = self.d.get_heads();
            if blob.is_empty() {
                Vec::new()
            } else {
                vec![blob]
            }
        }
        fn apply(&mut self, updates: &[Vec<u8>]) {
            for u in updates {
                self.d.load_incremental(u).unwrap();
            }
        }
        fn save(&mut self) -> Vec<u8> {
            self.d.save()
        }
        fn load(bytes: &[u8]) -> Self {
            let d = AutoCommit::load(bytes).unwrap();
            let counter = d.get(ROOT, "c").unwrap().map(|(_, id)| id).unwrap_or(ROOT);
            let set = d.get(ROOT, "s").unwrap().map(|(_, id)| id).unwrap_or(ROOT);
            let regs = d.get(ROOT, "r").unwrap().map(|(_, id)| id).unwrap_or(ROOT);
            let mut d = d;
            let heads = d.get_heads();
            Am {
                d,
                counter,
                set,
                regs,
                heads,
                meta: HashMap::new(),
            }
        }
        fn digest(&mut self) -> u64 {
            let c = match self.d.get(&self.counter, "n").unwrap() {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Counter(c) => i64::from(c) as u64,
                    _ => 0,
                },
                _ => 0,
            };
            c ^ ((self.d.length(&self.set) as u64) << 32)
        }
        fn nested_write(&mut self, doc: u32, f: u32, v: u64) {
            let meta = match self.meta.get(&doc) {
                Some(m) => m.clone(),
                None => {
                    let d = self
                        .d
                        .put_object(ROOT, format!("d{doc}"), automerge::ObjType::Map)
                        .unwrap();
                    let m = self
                        .d
                        .put_object(&d, "meta", automerge::ObjType::Map)
                        .unwrap();
                    self.meta.insert(doc, m.clone());
                    m
                }
            };
            self.d.put(&meta, format!("f{f}"), v).unwrap();
            self.d.commit();
        }
        fn nested_read(&mut self, doc: u32, f: u32) -> u64 {
            let obj = |d: &AutoCommit, at: &automerge::ObjId, k: &str| match d.get(at, k).unwrap() {
                Some((automerge::Value::Object(_), id)) => Some(id),
                _ => None,
            };
            let Some(dm) = obj(&self.d, &ROOT, &format!("d{doc}")) else {
                return 0;
            };
            let Some(meta) = obj(&self.d, &dm, "meta") else {
                return 0;
            };
            match self.d.get(&meta, format!("f{f}").as_str()).unwrap() {
                Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
                    ScalarValue::Uint(u) => *u,
                    ScalarValue::Int(i) => *i as u64,
                    _ => 0,
                },
                _ => 0,
            }
        }
    }
}

// ------------------------------------------------------------ yrs

pub mod ys {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::updates::encoder::Encode;
    use yrs::{Doc, Map, MapPrelim, MapRef, Options, Out, ReadTxn, Transact, Update};

    pub struct Ys {
        pub d: Doc,
        m: MapRef,
        s: MapRef,
        r: MapRef,
        /// W7: the root map of documents, and each document's `meta` map.
        docs: MapRef,
        meta: HashMap<u32, MapRef>,
        pending: Vec<Vec<u8>>,
        sv: yrs::StateVector,
        /// Capture each transaction's own update (what a Yjs provider
        /// broadcasts from `doc.on('update')`); only W3 switches it on.
        live: bool,
    }

    impl Ys {
        fn txn<F: FnOnce(&mut yrs::TransactionMut<'_>, &Ys)>(&mut self, f: F) {
            let mut t = self.d.transact_mut();
            f(&mut t, self);
            if self.live {
                let u = t.encode_update_v1();
                drop(t);
                self.pending.push(u);
            }
        }
    }

    impl Subject for Ys {
        const NAME: &'static str = "yrs";
        const STAND_INS: &'static str = "counter = map entry read and written back; set = map elem→true; registers and flag = map entries";
        fn new(replica: u64) -> Self {
            let d = Doc::with_options(Options {
                client_id: replica,
                ..Options::default()
            });
            let m = d.get_or_insert_map("m");
            let s = d.get_or_insert_map("s");
            let r = d.get_or_insert_map("r");
            let docs = d.get_or_insert_map("docs");
            Ys {
                d,
                m,
                s,
                r,
                docs,
                meta: HashMap::new(),
                pending: Vec::new(),
                sv: yrs::StateVector::default(),
                live: false,
            }
        }
        fn counter_single(&mut self, n: usize) {
            for _ in 0..n {
                self.txn(|t, me| {
                    let v =
                        me.m.get(t, "c")
                            .and_then(|v| v.cast::<i64>().ok())
                            .unwrap_or(0);
                    me.m.insert(t, "c", v + 1);
                });
            }
        }
        fn counter_batches(&mut self, n: usize, batch: usize) {
            for _ in 0..n / batch {
                self.txn(|t, me| {
                    for _ in 0..batch {
                        let v =
                            me.m.get(t, "c")
                                .and_then(|v| v.cast::<i64>().ok())
                                .unwrap_or(0);
                        me.m.insert(t, "c", v + 1);
                    }
                });
            }
        }
        fn set_add(&mut self, e: u64) {
            self.txn(|t, me| {
                me.s.insert(t, e.to_string(), true);
            });
        }
        fn set_remove(&mut self, e: u64) {
            self.txn(|t, me| {
                me.s.remove(t, &e.to_string());
            });
        }
        fn write(&mut self, k: u32, v: u64) {
            self.txn(|t, me| {
                me.r.insert(t, k.to_string(), v as f64);
            });
        }
        fn flag(&mut self, on: bool) {
            self.txn(|t, me| {
                me.m.insert(t, "f", on);
            });
        }
        /// Everything since the last call as one update: the diff against
        /// the state vector of the previous call, as a Yjs peer ships it in
        /// sync step 2.
        fn take_updates(&mut self) -> Vec<Vec<u8>> {
            self.pending.clear();
            let t = self.d.transact();
            let diff = t.encode_state_as_update_v1(&self.sv);
            let sv = t.state_vector();
            drop(t);
            if sv == self.sv {
                return Vec::new();
            }
            self.sv = sv;
            vec![diff]
        }
        fn apply(&mut self, updates: &[Vec<u8>]) {
            let mut t = self.d.transact_mut();
            for u in updates {
                t.apply_update(Update::decode_v1(u).unwrap()).unwrap();
            }
        }
        fn live_updates(&mut self) -> Vec<Vec<u8>> {
            self.live = true;
            std::mem::take(&mut self.pending)
        }
        fn end_live(&mut self) {
            self.live = false;
        }
        /// Bytes of the update yrs holds until its missing blocks arrive.
        fn buffered(&mut self) -> Option<(usize, &'static str)> {
            let t = self.d.transact();
            let n = t
                .store()
                .pending_update()
                .map_or(0, |p| p.update.encode_v1().len());
            Some((n, "bytes pending"))
        }
        fn save(&mut self) -> Vec<u8> {
            self.d
                .transact()
                .encode_state_as_update_v1(&yrs::StateVector::default())
        }
        fn load(bytes: &[u8]) -> Self {
            let mut y = Ys::new(99);
            y.apply(&[bytes.to_vec()]);
            y
        }
        fn digest(&mut self) -> u64 {
            let t = self.d.transact();
            let c = self
                .m
                .get(&t, "c")
                .and_then(|v| v.cast::<i64>().ok())
                .unwrap_or(0) as u64;
            c ^ ((self.s.len(&t) as u64) << 32)
        }
        fn nested_write(&mut self, doc: u32, f: u32, v: u64) {
            let mut t = self.d.transact_mut();
            let meta = match self.meta.get(&doc) {
                Some(m) => m.clone(),
                None => {
                    let dm = self
                        .docs
                        .insert(&mut t, format!("d{doc}"), MapPrelim::default());
                    let m = dm.insert(&mut t, "meta", MapPrelim::default());
                    self.meta.insert(doc, m.clone());
                    m
                }
            };
            meta.insert(&mut t, format!("f{f}"), v as i64);
            if self.live {
                let u = t.encode_update_v1();
                drop(t);
                self.pending.push(u);
            }
        }
        fn nested_read(&mut self, doc: u32, f: u32) -> u64 {
            let t = self.d.transact();
            let Some(Out::YMap(dm)) = self.docs.get(&t, &format!("d{doc}")) else {
                return 0;
            };
            let Some(Out::YMap(meta)) = dm.get(&t, "meta") else {
                return 0;
            };
            meta.get(&t, &format!("f{f}"))
                .and_then(|v| v.cast::<i64>().ok())
                .unwrap_or(0) as u64
        }
    }
}

// ------------------------------------------------------------ loro

pub mod lo {
    use super::*;
    use loro::{ExportMode, LoroCounter, LoroDoc, LoroMap, VersionVector};

    pub struct Lo {
        pub d: LoroDoc,
        c: LoroCounter,
        s: LoroMap,
        r: LoroMap,
        f: LoroMap,
        vv: VersionVector,
        /// W7: the root map of documents (child containers), and each
        /// document's `meta` map.
        docs: LoroMap,
        meta: HashMap<u32, LoroMap>,
    }

    impl Subject for Lo {
        const NAME: &'static str = "loro";
        const STAND_INS: &'static str =
            "LoroCounter; set = map elem→true; registers and flag = map entries";
        fn new(replica: u64) -> Self {
            let d = LoroDoc::new();
            d.set_peer_id(replica).unwrap();
            let c = d.get_counter("c");
            let s = d.get_map("s");
            let r = d.get_map("r");
            let f = d.get_map("f");
            let docs = d.get_map("docs");
            Lo {
                d,
                c,
                s,
                r,
                f,
                vv: VersionVector::default(),
                docs,
                meta: HashMap::new(),
            }
        }
        fn counter_single(&mut self, n: usize) {
            for _ in 0..n {
                self.c.increment(1.0).unwrap();
                self.d.commit();
            }
        }
        fn counter_batches(&mut self, n: usize, batch: usize) {
            for _ in 0..n / batch {
                for _ in 0..batch {
                    self.c.increment(1.0).unwrap();
                }
                self.d.commit();
            }
        }
        fn set_add(&mut self, e: u64) {
            self.s.insert(&e.to_string(), true).unwrap();
            self.d.commit();
        }
        fn set_remove(&mut self, e: u64) {
            self.s.delete(&e.to_string()).unwrap();
            self.d.commit();
        }
        fn write(&mut self, k: u32, v: u64) {
            self.r.insert(&k.to_string(), v as i64).unwrap();
            self.d.commit();
        }
        fn flag(&mut self, on: bool) {
            self.f.insert("f", on).unwrap();
            self.d.commit();
        }
        /// Loro exports by version range, not per commit: one blob holds
        /// everything since the last call (the per-commit cost would be an
        /// export per op).
        fn take_updates(&mut self) -> Vec<Vec<u8>> {
            let out = self.d.export(ExportMode::updates(&self.vv)).unwrap();
            self.vv = self.d.oplog_vv();
            vec![out]
        }
        fn apply(&mut self, updates: &[Vec<u8>]) {
            for u in updates {
                self.d.import(u).unwrap();
            }
        }
        /// Bytes of the changes loro holds until their dependencies arrive.
        fn buffered(&mut self) -> Option<(usize, &'static str)> {
            let n = self
                .d
                .export_pending_updates()
                .ok()
                .flatten()
                .map_or(0, |b| b.len());
            Some((n, "bytes pending"))
        }
        fn save(&mut self) -> Vec<u8> {
            self.d.export(ExportMode::Snapshot).unwrap()
        }
        fn load(bytes: &[u8]) -> Self {
            let l = Lo::new(99);
            l.d.import(bytes).unwrap();
            l
        }
        fn digest(&mut self) -> u64 {
            (self.c.get_value() as i64 as u64) ^ ((self.s.len() as u64) << 32)
        }
        // Child containers made on a map key with `get_or_create_container`
        // (deprecated in loro 1.x in favour of `ensure_mergeable_*`, which
        // makes mergeable children); kept as measured in BENCHMARKS.md.
        #[allow(deprecated)]
        fn nested_write(&mut self, doc: u32, f: u32, v: u64) {
            let meta = match self.meta.get(&doc) {
                Some(m) => m.clone(),
                None => {
                    let dm = self
                        .docs
                        .get_or_create_container(&format!("d{doc}"), LoroMap::new())
                        .unwrap();
                    let m = dm.get_or_create_container("meta", LoroMap::new()).unwrap();
                    self.meta.insert(doc, m.clone());
                    m
                }
            };
            meta.insert(&format!("f{f}"), v as i64).unwrap();
            self.d.commit();
        }
        fn nested_read(&mut self, doc: u32, f: u32) -> u64 {
            use loro::{Container, LoroValue, ValueOrContainer};
            let map = |v: Option<ValueOrContainer>| match v {
                Some(ValueOrContainer::Container(Container::Map(m))) => Some(m),
                _ => None,
            };
            let Some(meta) =
                map(self.docs.get(&format!("d{doc}"))).and_then(|d| map(d.get("meta")))
            else {
                return 0;
            };
            match meta.get(&format!("f{f}")) {
                Some(ValueOrContainer::Value(LoroValue::I64(i))) => i as u64,
                _ => 0,
            }
        }
    }
}

// ------------------------------------------------------------ crdts

pub mod cr {
    use super::*;
    use crdts::{CmRDT, CvRDT, LWWReg, Orswot, PNCounter};

    /// crdts is a bare data-structure library: no transactions, log, causal
    /// delivery or sync. Its numbers are the floor for the bare CRDT step.
    pub struct Cr {
        actor: u64,
        pub c: PNCounter<u64>,
        pub s: Orswot<u64, u64>,
        pub r: HashMap<u32, LWWReg<u64, u64>>,
        pub f: LWWReg<bool, u64>,
        clock: u64,
        pending: Vec<Vec<u8>>,
    }

    impl Subject for Cr {
        const NAME: &'static str = "crdts";
        const STAND_INS: &'static str = "PNCounter, Orswot, LWWReg per key in a HashMap, LWWReg<bool>; no transactions or sync (updates are its ops, JSON-encoded)";
        fn new(replica: u64) -> Self {
            Cr {
                actor: replica,
                c: PNCounter::default(),
                s: Orswot::default(),
                r: HashMap::new(),
                f: LWWReg {
                    val: false,
                    marker: 0,
                },
                clock: 0,
                pending: Vec::new(),
            }
        }
        fn counter_single(&mut self, n: usize) {
            for _ in 0..n {
                let op = self.c.inc(self.actor);
                self.c.apply(op);
            }
        }
        fn counter_batches(&mut self, n: usize, _batch: usize) {
            self.counter_single(n);
        }
        fn set_add(&mut self, e: u64) {
            let ctx = self.s.read_ctx().derive_add_ctx(self.actor);
            let op = self.s.add(e, ctx);
            self.s.apply(op);
        }
        fn set_remove(&mut self, e: u64) {
            let ctx = self.s.contains(&e).derive_rm_ctx();
            let op = self.s.rm(e, ctx);
            self.s.apply(op);
        }
        fn write(&mut self, k: u32, v: u64) {
            self.clock += 1;
            let c = self.clock;
            self.r
                .entry(k)
                .and_modify(|r| r.update(v, c))
                .or_insert(LWWReg { val: v, marker: c });
        }
        fn flag(&mut self, on: bool) {
            self.clock += 1;
            self.f.update(on, self.clock);
        }
        fn take_updates(&mut self) -> Vec<Vec<u8>> {
            std::mem::take(&mut self.pending)
        }
        fn apply(&mut self, _updates: &[Vec<u8>]) {}
        fn save(&mut self) -> Vec<u8> {
            Vec::new()
        }
        fn load(_bytes: &[u8]) -> Self {
            Cr::new(99)
        }
        fn digest(&mut self) -> u64 {
            let c: i64 = self.c.read().try_into().unwrap_or(0);
            (c as u64) ^ ((self.s.read().val.len() as u64) << 32)
        }
        /// W7 is not run for crdts (no transactions or sync to compare).
        fn nested_write(&mut self, _doc: u32, _f: u32, _v: u64) {}
        fn nested_read(&mut self, _doc: u32, _f: u32) -> u64 {
            0
        }
    }

    impl Cr {
        /// Joins another replica's whole state (crdts' only sync).
        pub fn merge_from(&mut self, other: &Cr) {
            self.c.merge(other.c.clone());
            self.s.merge(other.s.clone());
        }
    }
}

/// W3's outcome for one library.
#[derive(Debug)]
pub struct W3 {
    /// Time to apply every delivery at all three replicas.
    pub secs: f64,
    /// Blobs delivered (duplicates included).
    pub deliveries: usize,
    /// Peak of [`Subject::buffered`] over the run, with its unit.
    pub peak_buffered: Option<(usize, &'static str)>,
    /// Buffers empty at the end.
    pub quiescent: bool,
    /// All three replicas have the same digest.
    pub agree: bool,
}

/// W3, concurrency: three replicas each make `per` set ops on a shared pool
/// of 10,000 elements; 10% are removes of an element the replica added
/// itself (which the others add concurrently). Every transaction is shipped
/// as the library broadcasts it live, each receiver gets the other two
/// replicas' streams interleaved, shuffled in windows of 1,000 (so updates
/// often arrive before their dependencies), plus 5% duplicates, applied in
/// batches of 100. The same seed gives every library the same schedule.
pub fn w3<S: Subject>(per: usize) -> W3 {
    let mut rng = Rng::new(SEED ^ 3);
    let mut rs: Vec<S> = (1..=3).map(|i| S::new(realistic_id(10 + i))).collect();
    let mut added: Vec<Vec<u64>> = vec![Vec::new(); 3];
    let mut streams: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 3];
    for r in rs.iter_mut() {
        r.live_updates();
    }
    for i in 0..per * 3 {
        let at = i % 3;
        if rng.below(10) == 0 && !added[at].is_empty() {
            let e = added[at][rng.below(added[at].len() as u64) as usize];
            rs[at].set_remove(e);
        } else {
            let e = rng.below(10_000);
            added[at].push(e);
            rs[at].set_add(e);
        }
        let out = rs[at].live_updates();
        streams[at].extend(out);
    }
    for r in rs.iter_mut() {
        r.end_live();
    }
    let mut deliveries: Vec<Vec<&[u8]>> = vec![Vec::new(); 3];
    for (to, d) in deliveries.iter_mut().enumerate() {
        // Interleave the other two streams, then shuffle within windows.
        let others: Vec<&Vec<Vec<u8>>> = (0..3).filter(|f| *f != to).map(|f| &streams[f]).collect();
        let longest = others.iter().map(|s| s.len()).max().unwrap_or(0);
        for i in 0..longest {
            for s in &others {
                if let Some(b) = s.get(i) {
                    d.push(b);
                }
            }
        }
        for chunk in d.chunks_mut(1000) {
            for i in (1..chunk.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                chunk.swap(i, j);
            }
        }
        let dups: Vec<&[u8]> = (0..d.len() / 20)
            .map(|_| d[rng.below(d.len() as u64) as usize])
            .collect();
        d.extend(dups);
    }
    let batches: Vec<Vec<Vec<Vec<u8>>>> = deliveries
        .iter()
        .map(|d| {
            d.chunks(100)
                .map(|c| c.iter().map(|b| b.to_vec()).collect())
                .collect()
        })
        .collect();
    let mut peak: Option<(usize, &'static str)> = None;
    let t = std::time::Instant::now();
    for (r, bs) in rs.iter_mut().zip(&batches) {
        for b in bs {
            r.apply(b);
            if let Some((n, unit)) = r.buffered() {
                peak = Some((peak.map_or(0, |p| p.0).max(n), unit));
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let quiescent = rs
        .iter_mut()
        .all(|r| r.buffered().is_none_or(|(n, _)| n == 0));
    let digests: Vec<u64> = rs.iter_mut().map(|r| r.digest()).collect();
    W3 {
        secs,
        deliveries: deliveries.iter().map(Vec::len).sum(),
        peak_buffered: peak,
        quiescent,
        agree: digests.windows(2).all(|w| w[0] == w[1]),
    }
}

/// Peak resident memory of this process so far, in KiB (Linux).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}
