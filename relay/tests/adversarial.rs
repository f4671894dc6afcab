//! Hostile peers against a real relay (SECURITY.md): one test per attack of
//! the integrity issue. Each used to erase, forge or split a room, make it
//! unjoinable or grow the relay's memory without bound.

mod common;

use std::time::Duration;

use common::relay_proc::*;
use common::*;
use minidote_core::wire::{
    encode_txn_bytes, error_code, txns_frame, txns_frames, Frame, Hello, Txn,
};
use minidote_core::{
    CatchUp, CrdtType, Effect, Key, Op, Replica, ReplicaId, Snapshot, TxnBytes, Update, Value,
    VectorClock,
};
use minidote_relay::token::{self, Scope, SigningKey};
use minidote_relay::Config;

const SECRET: &str = "adversarial secret";
const WAIT: Duration = Duration::from_secs(10);

fn secured() -> Config {
    Config {
        auth_secret: Some(SECRET.into()),
        ..config()
    }
}

/// A token for room "r", bound to `replica` if given.
fn tok(scope: Scope, replica: Option<u64>) -> String {
    tok_ttl(scope, replica, 3600)
}

fn tok_ttl(scope: Scope, replica: Option<u64>, ttl: u64) -> String {
    token::mint_with(
        SigningKey::Secret(SECRET.as_bytes()),
        "r",
        scope,
        replica.map(ReplicaId),
        token::now_secs() + ttl,
    )
    .unwrap()
}

/// A memory replica `id` that wrote `n` registers `{prefix}0..` of `size`
/// bytes each (register i holds bytes of value i).
fn registers(
    id: ReplicaId,
    config: minidote_core::Config,
    prefix: &str,
    n: usize,
    size: usize,
) -> Replica {
    let mut w = Replica::new(id, config);
    for i in 0..n {
        w.update_objects(
            vec![Update::new(
                Key::new(format!("{prefix}{i}"), CrdtType::RegisterLww, "b"),
                Op::Assign(Value::Bytes(vec![i as u8; size])),
            )],
            None,
        )
        .unwrap();
    }
    w
}

/// Every transaction of a memory replica, in log order.
fn log_of(r: &Replica) -> Vec<TxnBytes> {
    match r.catch_up(&VectorClock::new()) {
        CatchUp::Txns(t) => t,
        CatchUp::UpToDate => Vec::new(),
        other => panic!("{other:?}"),
    }
}

fn frame_of(txns: &[TxnBytes]) -> Vec<u8> {
    txns_frame(txns.iter().map(|t| &t[..]))
}

/// Replica 0xa's real first transaction (adds "real"), and a spoof of it
/// under the same dot (adds "spoofed").
fn victim_and_spoof() -> (Replica, Replica) {
    let make = |v: &str| {
        let mut r = Replica::new(ReplicaId(0xa), core_config("r"));
        r.update_objects(vec![Update::new(set(), Op::Add(v.into()))], None)
            .unwrap();
        r
    };
    (make("real"), make("spoofed"))
}

/// A reader that joins with `token` and waits for `want` at `key`.
async fn reader_sees(relay: &TestRelay, id: u64, token: &str, key: &Key, want: Value) -> Peer {
    let mut r = Peer::new(id, core_config("r"));
    r.attach(Client::ws(relay.http).await, Some(token));
    pump_until(&mut [&mut r], WAIT, |ps| ps[0].replica.value(key) == want).await;
    r
}

/// A raw client that completed the handshake as `id`.
async fn raw(relay: &TestRelay, id: u64, token: Option<&str>) -> Client {
    let mut c = Client::tcp(relay.tcp).await;
    c.send(&hello(id, "r", token)).await;
    let f = c.recv(WAIT).await.expect("the relay's Hello");
    assert!(matches!(Frame::decode(&f), Ok(Frame::Hello(_))), "{f:?}");
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_snapshot_erases_nothing_and_the_victim_can_still_write() {
    for secure in [true, false] {
        let relay = start(if secure { secured() } else { config() }).await;
        let wtok = secure.then(|| tok(Scope::Write, None));
        let mut a = Peer::new(0xa, core_config("r"));
        a.attach(Client::tcp(relay.tcp).await, wtok.as_deref());
        for _ in 0..3 {
            write(&mut a, &counter(), Op::Increment(1));
        }
        pump_until(&mut [&mut a], WAIT, |_| {
            relay.metric("txns_stored_total") == 3
        })
        .await;
        // The attack: Snapshot{clock = {A: 2^64-1}, no objects}.
        let forged = Snapshot {
            clock: [(ReplicaId(0xa), u64::MAX)].into_iter().collect(),
            objects: Vec::new(),
        };
        let mut evil = raw(&relay, 0x66, wtok.as_deref()).await;
        evil.send(&Frame::Snapshot(forged.encode()).encode()).await;
        let (code, msg) = evil.expect_error().await;
        assert_eq!(code, error_code::FORBIDDEN, "{msg}");
        assert_eq!(relay.metric("snapshots_refused_total"), 1);
        assert_eq!(relay.metric("snapshots_stored_total"), 0);
        // Nothing was erased, and A keeps writing.
        write(&mut a, &counter(), Op::Increment(1));
        let any = secure.then(|| tok(Scope::Read, None));
        let mut r = Peer::new(0xb, core_config("r"));
        r.attach(Client::ws(relay.http).await, any.as_deref());
        pump_until(&mut [&mut a, &mut r], WAIT, |ps| {
            ps[1].replica.value(&counter()) == Value::Int(4)
        })
        .await;
        assert!(a.errors.is_empty(), "{:?}", a.errors);
        relay.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_token_cannot_inject_transactions_of_another_replica() {
    let relay = start(secured()).await;
    // The victim's real first transaction, and a spoof of it made while
    // the victim is offline.
    let (victim, spoofer) = victim_and_spoof();
    let mut evil = raw(&relay, 0x66, Some(&tok(Scope::Write, None))).await;
    evil.send(&frame_of(&log_of(&spoofer))).await;
    // Dropped and counted, never stored or forwarded (the link stays: an
    // honest replica with other links forwards what it has).
    pump_until(&mut [], WAIT, |_| relay.metric("txns_forbidden_total") == 1).await;
    assert_eq!(relay.metric("txns_stored_total"), 0, "not stored");
    // The victim's real transaction is then taken, and everyone has it.
    let mut a = raw(&relay, 0xa, Some(&tok(Scope::Write, Some(0xa)))).await;
    a.send(&frame_of(&log_of(&victim))).await;
    let r = reader_sees(
        &relay,
        0xb,
        &tok(Scope::Read, None),
        &set(),
        Value::List(vec!["real".into()]),
    )
    .await;
    assert!(r.errors.is_empty());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_a_replica_admits_no_other_id() {
    let relay = start(secured()).await;
    let mut c = Client::tcp(relay.tcp).await;
    c.send(&hello(0x66, "r", Some(&tok(Scope::Write, Some(0xa)))))
        .await;
    let (code, msg) = c.expect_error().await;
    assert_eq!(code, error_code::UNAUTHORIZED);
    assert!(msg.contains("replica"), "{msg}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_a_dot_with_other_bytes_is_refused_and_the_first_kept() {
    let relay = start(secured()).await;
    let (victim, spoofer) = victim_and_spoof();
    let mut a = raw(&relay, 0xa, Some(&tok(Scope::Write, Some(0xa)))).await;
    a.send(&frame_of(&log_of(&victim))).await;
    pump_until(&mut [], WAIT, |_| relay.metric("txns_stored_total") == 1).await;
    // A forwarding peer (the strongest scope short of snapshots) pushes a
    // different transaction under the same dot.
    let mut fwd = raw(&relay, 0x66, Some(&tok(Scope::Forward, None))).await;
    fwd.send(&frame_of(&log_of(&spoofer))).await;
    let (code, msg) = fwd.expect_error().await;
    assert_eq!(code, error_code::INTEGRITY, "{msg}");
    assert_eq!(relay.metric("integrity_conflicts_total"), 1);
    reader_sees(
        &relay,
        0xb,
        &tok(Scope::Read, None),
        &set(),
        Value::List(vec!["real".into()]),
    )
    .await;
    relay.stop().await;
}

/// Ids spread over the whole 64-bit range, as random replica ids are.
fn spread(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_writers_do_not_make_the_room_unjoinable() {
    let relay = start(secured()).await;
    const N: u64 = 10_000;
    let mut txns = Vec::new();
    for i in 0..N {
        let mut w = Replica::new(ReplicaId(spread(i)), core_config("r"));
        w.update_objects(vec![Update::new(counter(), Op::Increment(1))], None)
            .unwrap();
        txns.extend(log_of(&w));
    }
    let mut fwd = raw(&relay, 0x66, Some(&tok(Scope::Forward, None))).await;
    for f in txns_frames(&txns, 1 << 20) {
        fwd.send(&f).await;
    }
    pump_until(&mut [], WAIT, |_| relay.metric("txns_stored_total") == N).await;
    // A newcomer joins (the relay's Hello names 10,000 writers, ~100 KB).
    let rt = tok(Scope::Write, Some(0xb));
    let mut r = reader_sees(&relay, 0xb, &rt, &counter(), Value::Int(N as i64)).await;
    let hello_len = Frame::Hello(Hello {
        replica: ReplicaId(1),
        room: "r".into(),
        clock: r.replica.clock().clone(),
        token: Some(rt.clone()),
    })
    .encode()
    .len();
    assert!(
        hello_len > 64 << 10,
        "the clock is over the old limit: {hello_len}"
    );
    // It reconnects with that clock in its own Hello, and is admitted.
    r.detach();
    r.attach(Client::tcp(relay.tcp).await, Some(&rt));
    write(&mut r, &set(), Op::Add(1.into()));
    for _ in 0..50 {
        r.pump().await;
    }
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(r.replica.stats().peers.iter().any(|p| p.connected));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_that_hides_its_dependency_waits_at_the_relay() {
    let relay = start(secured()).await;
    let mut a = Replica::new(ReplicaId(0xa), core_config("r"));
    a.update_objects(vec![Update::new(set(), Op::Add("x".into()))], None)
        .unwrap();
    let a1 = log_of(&a);
    let mut b = Replica::new(ReplicaId(0xb), core_config("r"));
    b.handle_txns(None, a1.clone()).unwrap();
    b.update_objects(vec![Update::new(set(), Op::Remove("x".into()))], None)
        .unwrap();
    let b1 = Txn::decode(&log_of(&b)[1]).unwrap();
    // B's remove, declaring no deps although it removes (A,1).
    let refs: Vec<(&Key, &Effect)> = b1.effects.iter().map(|(k, e)| (k, e)).collect();
    let lying: TxnBytes = encode_txn_bytes(b1.origin, b1.seq, &VectorClock::new(), &refs).into();
    let mut cb = raw(&relay, 0xb, Some(&tok(Scope::Write, Some(0xb)))).await;
    cb.send(&frame_of(&[lying])).await;
    pump_until(&mut [], WAIT, |_| relay.metric("txns_buffered_total") == 1).await;
    assert_eq!(relay.metric("txns_stored_total"), 0, "held, not delivered");
    let mut ca = raw(&relay, 0xa, Some(&tok(Scope::Write, Some(0xa)))).await;
    ca.send(&frame_of(&a1)).await;
    pump_until(&mut [], WAIT, |_| relay.metric("txns_stored_total") == 2).await;
    // (The empty set is also the initial value: wait for the clock.)
    let mut r = Peer::new(0xc, core_config("r"));
    r.attach(Client::ws(relay.http).await, Some(&tok(Scope::Read, None)));
    let want = b.clock().clone();
    pump_until(&mut [&mut r], WAIT, |ps| ps[0].replica.clock() == &want).await;
    assert_eq!(r.replica.value(&set()), Value::List(vec![]));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_register_timestamp_cannot_freeze_the_register() {
    let relay = start(secured()).await;
    let reg = Key::new("title", CrdtType::RegisterLww, "b");
    let mut evil = Replica::new(ReplicaId(0xff), core_config("r"));
    evil.update_objects(
        vec![Update::new(reg.clone(), Op::Assign("frozen".into()))],
        None,
    )
    .unwrap();
    let mut t = Txn::decode(&log_of(&evil)[0]).unwrap();
    t.effects[0].1 = Effect::RegisterLww(minidote_core::effect::RegisterLww {
        ts: u64::MAX,
        removed: Vec::new(),
        value: Some("frozen".into()),
    });
    let mut c = raw(&relay, 0xff, Some(&tok(Scope::Write, Some(0xff)))).await;
    c.send(&frame_of(&[t.encode().into()])).await;
    pump_until(&mut [], WAIT, |_| relay.metric("txns_stored_total") == 1).await;
    // An honest writer that saw it overwrites it, although its own id is
    // lower and its timestamp cannot exceed u64::MAX.
    let mut a = Peer::new(0xa, core_config("r"));
    a.attach(
        Client::tcp(relay.tcp).await,
        Some(&tok(Scope::Write, Some(0xa))),
    );
    pump_until(&mut [&mut a], WAIT, |ps| {
        ps[0].replica.value(&reg) == "frozen".into()
    })
    .await;
    write(&mut a, &reg, Op::Assign("honest".into()));
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("txns_stored_total") == 2
    })
    .await;
    reader_sees(&relay, 0xb, &tok(Scope::Read, None), &reg, "honest".into()).await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_expires_closes_its_live_link() {
    let relay = start(secured()).await;
    let mut c = raw(&relay, 0xa, Some(&tok_ttl(Scope::Write, None, 2))).await;
    let frames = c.recv_until_closed(Duration::from_secs(8)).await;
    assert!(c.closed, "the link is closed when its token expires");
    assert!(
        frames
            .iter()
            .any(|f| matches!(f, Frame::Error { code, .. } if *code == error_code::EXPIRED)),
        "{frames:?}"
    );
    assert_eq!(relay.metric("tokens_expired_total"), 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_names_and_room_count_are_capped() {
    let relay = start(Config {
        max_rooms: 2,
        ..config()
    })
    .await;
    let mut c = Client::tcp(relay.tcp).await;
    c.send(&hello(1, &"x".repeat(300), None)).await;
    assert_eq!(c.expect_error().await.0, error_code::LIMIT);
    for (i, room) in ["one", "two"].into_iter().enumerate() {
        let mut c = Client::tcp(relay.tcp).await;
        c.send(&hello(i as u64 + 1, room, None)).await;
        assert!(c.recv(WAIT).await.is_some());
    }
    let mut c = Client::tcp(relay.tcp).await;
    c.send(&hello(9, "three", None)).await;
    assert_eq!(c.expect_error().await.0, error_code::LIMIT);
    assert_eq!(relay.metric("rooms_refused_total"), 2);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_other_than_hello_is_refused_before_its_body_is_read() {
    let relay = start(config()).await;
    let mut c = Client::tcp(relay.tcp).await;
    // 60 MiB declared, then version and the Txns tag, and nothing more.
    let mut head = (60u32 << 20).to_be_bytes().to_vec();
    head.extend_from_slice(&[
        minidote_core::PROTOCOL_VERSION,
        minidote_core::wire::TXNS_TAG,
    ]);
    c.send_raw(&head).await;
    assert_eq!(c.expect_error().await.0, error_code::HELLO_EXPECTED);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_stuck_in_catch_up_is_closed_and_frees_its_slot() {
    let relay = start(Config {
        idle_timeout: Duration::from_secs(1),
        max_connections: 3,
        queue_bytes: 1 << 20,
        ..config()
    })
    .await;
    // A log of ~24 MB.
    let w = registers(ReplicaId(0xa), core_config("r"), "k", 24, 1000 << 10);
    let mut cw = raw(&relay, 0xa, None).await;
    for t in log_of(&w) {
        assert!(cw.send(&frame_of(&[t])).await);
    }
    pump_until(&mut [], WAIT, |_| relay.metric("txns_stored_total") == 24).await;
    drop(cw);
    // Two readers that never read.
    let mut stuck = Vec::new();
    for id in [1, 2] {
        let c = Client::tcp(relay.tcp).await;
        c.pause_reading();
        let mut c = c;
        c.send(&hello(id, "r", None)).await;
        stuck.push(c);
    }
    // Each is closed as a slow consumer: by the catch-up stall rule or by
    // its writer's deadline, whichever comes first.
    pump_until(&mut [], WAIT, |_| relay.metric("slow_consumers_total") >= 2).await;
    pump_until(&mut [], WAIT, |_| relay.metric("connections_active") == 0).await;
    // Their slots are free: a newcomer catches up.
    reader_sees(
        &relay,
        3,
        "",
        &Key::new("k23", CrdtType::RegisterLww, "b"),
        Value::Bytes(vec![23; 1000 << 10]),
    )
    .await;
    relay.stop().await;
}

/// What a stored transaction count looks like from `/metrics`, read
/// synchronously.
fn stored(p: &Proc) -> u64 {
    futures_executor_metric(p.http, "txns_stored_total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_relay_forwarded_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay.db");
    let mut p = spawn(&data);
    let w = registers(ReplicaId(0xa), core_config("r"), "k", 300, 60_000);
    let mut reader = Client::tcp(p.tcp).await;
    reader.send(&hello(0xb, "r", None)).await;
    let mut cw = Client::tcp(p.tcp).await;
    cw.send(&hello(0xa, "r", None)).await;
    for t in log_of(&w) {
        cw.send(&frame_of(&[t])).await;
    }
    // Count what the reader receives, then kill the relay at once.
    let mut received = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + WAIT;
    while received.len() < 300 && std::time::Instant::now() < deadline {
        if let Some(f) = reader.recv(Duration::from_millis(50)).await {
            if let Ok(Frame::Txns(ts)) = Frame::decode(&f) {
                for t in ts {
                    received.insert(minidote_core::TxnHeader::parse(&t).unwrap().seq);
                }
            }
        }
        if received.len() >= 150 {
            break;
        }
    }
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    assert!(received.len() >= 150, "the reader got {}", received.len());
    let mut p = spawn(&data);
    let have = stored_after_restart(&p);
    assert!(
        have >= *received.last().unwrap(),
        "the relay forwarded up to seq {} but kept only {have} after kill -9",
        received.last().unwrap()
    );
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

/// After a restart the room's clock is its loaded log: read it through a
/// Hello.
fn stored_after_restart(p: &Proc) -> u64 {
    let _ = stored(p);
    let rt = tokio::runtime::Handle::current();
    let tcp = p.tcp;
    std::thread::spawn(move || {
        rt.block_on(async move {
            let mut c = Client::tcp(tcp).await;
            c.send(&hello(0xc, "r", None)).await;
            match Frame::decode(&c.recv(WAIT).await.unwrap()) {
                Ok(Frame::Hello(h)) => h.clock.get(ReplicaId(0xa)),
                other => panic!("{other:?}"),
            }
        })
    })
    .join()
    .unwrap()
}

/// A packed Need frame of about `bytes` bytes whose clock names origins
/// the room has never seen.
fn bloated_need(bytes: usize) -> Vec<u8> {
    // 32-bit gaps and seqs: 8 bytes per entry on the wire.
    let n = (bytes / 8) as u64;
    let clock: VectorClock = (0..n)
        .map(|i| (ReplicaId(i * 0xffff_ffff + 1), 0xffff_ffff))
        .collect();
    Frame::Need(clock).encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_probes_stay_bounded() {
    let mut rows = Vec::new();
    let p = spawn_memory(&[
        "--max-frame-bytes",
        "2097152",
        "--buffer-bytes",
        "16777216",
        "--idle-timeout",
        "3",
        "--send-budget-bytes",
        "8388608",
    ]);
    let pid = p.child.id();
    let base = rss_kib(pid);
    rows.push(("start".to_owned(), base));

    // 1. Three 1 MB Need frames with bloated clocks (was 11 -> 196 MB).
    let mut keep = Vec::new();
    for id in 1..=3 {
        let mut c = Client::tcp(p.tcp).await;
        c.send(&hello(id, "r", None)).await;
        c.send(&bloated_need(1 << 20)).await;
        keep.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let need = rss_kib(pid);
    rows.push(("3 x 1 MB Need frames".to_owned(), need));

    // 2. 150 held 1 MB transactions (their seq 1 never comes; was 156 MB).
    let big = || minidote_core::Config {
        max_frame_bytes: 2 << 20,
        ..core_config("r")
    };
    let w = registers(ReplicaId(0xa), big(), "k", 151, 1 << 20);
    let mut txns = Vec::new();
    txns.extend(log_of(&w));
    let mut cw = Client::tcp(p.tcp).await;
    cw.send(&hello(0xa, "r", None)).await;
    for t in &txns[1..] {
        cw.send(&frame_of(std::slice::from_ref(t))).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let held = rss_kib(pid);
    rows.push(("150 held 1 MB transactions".to_owned(), held));

    // 3. 50 connections that declare a 64 MiB frame and send 2 bytes.
    let mut idle = Vec::new();
    for id in 100..150 {
        let mut c = Client::tcp(p.tcp).await;
        c.send(&hello(id, "r", None)).await;
        let mut head = (64u32 << 20).to_be_bytes().to_vec();
        head.extend_from_slice(&[minidote_core::PROTOCOL_VERSION, 3]);
        c.send_raw(&head).await;
        idle.push(c);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let declared = rss_kib(pid);
    rows.push(("50 declared 64 MiB frames".to_owned(), declared));
    drop(idle);

    // 4. A 48 MB log and 64 readers that stop reading (8 of them took
    // 408 MB before catch-up shared the log's bytes; the send budget
    // bounds the frames built for all of them together).
    drop(cw);
    let b = registers(ReplicaId(0xb), big(), "b", 48, 1 << 20);
    let mut cb = Client::tcp(p.tcp).await;
    cb.send(&hello(0xb, "r", None)).await;
    for t in log_of(&b) {
        cb.send(&frame_of(&[t])).await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    while stored(&p) < 48 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored(&p), 48);
    drop(cb);
    drop(keep);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logged = rss_kib(pid);
    rows.push(("48 MB log stored".to_owned(), logged));
    let mut stuck = Vec::new();
    for id in 200..264 {
        let c = Client::tcp(p.tcp).await;
        c.pause_reading();
        let mut c = c;
        c.send(&hello(id, "r", None)).await;
        stuck.push(c);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let readers = rss_kib(pid);
    rows.push(("64 stuck readers of that log".to_owned(), readers));
    // The idle timeout (3 s) closes them, whether they are still in
    // catch-up or past it.
    let deadline = std::time::Instant::now() + WAIT;
    let mut after = u64::MAX;
    while after > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        after = futures_executor_metric(p.http, "connections_active");
    }
    rows.push(("connections left open".to_owned(), after));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let closed = rss_kib(pid);
    rows.push(("after they were closed".to_owned(), closed));

    eprintln!("memory probe                     RSS (MiB)");
    for (name, v) in &rows {
        if name.starts_with("connections") {
            eprintln!("{name:<32} {v}");
        } else {
            eprintln!("{name:<32} {:.1}", *v as f64 / 1024.0);
        }
    }
    let mib = |k: u64| k / 1024;
    assert!(mib(need.saturating_sub(base)) < 40, "Need frames: {rows:?}");
    // The buffer holds at most --buffer-bytes (16 MiB) of held transactions.
    assert!(mib(held.saturating_sub(need)) < 48, "held: {rows:?}");
    assert!(
        mib(declared.saturating_sub(held)) < 40,
        "declared: {rows:?}"
    );
    // Readers share the log's bytes, and frames built for them are bounded
    // by the 8 MiB send budget: 64 of them cost far less than one copy of
    // the log.
    assert!(
        mib(readers.saturating_sub(logged)) < 40,
        "readers: {rows:?}"
    );
    assert!(futures_executor_metric(p.http, "send_budget_waits_total") > 0);
    assert_eq!(after, 0, "every stuck reader is closed");
    let mut p = p;
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_open_sync() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = start(Config {
        allowed_origins: Some(vec!["https://app.example".into()]),
        ..config()
    })
    .await;
    let url = format!("ws://{}/sync", relay.http);
    let with_origin = |o: &str| {
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("Origin", o.parse().unwrap());
        req
    };
    let refused = tokio_tungstenite::connect_async(with_origin("https://evil.example")).await;
    assert!(refused.is_err(), "a foreign origin is refused");
    assert_eq!(relay.metric("origins_refused_total"), 1);
    let ok = tokio_tungstenite::connect_async(with_origin("https://app.example")).await;
    assert!(ok.is_ok(), "{:?}", ok.err());
    // Native clients send no Origin and are not affected.
    let mut c = Client::ws(relay.http).await;
    c.send(&hello(1, "r", None)).await;
    assert!(c.recv(WAIT).await.is_some());
    relay.stop().await;
}

/// Frames of 64 KiB, so a state of a few hundred KiB is "larger than any
/// frame" without a test that moves 64 MiB.
const SMALL_FRAME: usize = 64 << 10;

fn small_frames() -> minidote_core::Config {
    minidote_core::Config {
        max_frame_bytes: SMALL_FRAME,
        ..core_config("r")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_larger_than_a_frame_reaches_a_newcomer_in_pieces() {
    let relay = start(Config {
        max_frame_bytes: SMALL_FRAME,
        compact_after: 10,
        ..config()
    })
    .await;
    let mut w = Peer::new(1, small_frames());
    w.replica = registers(ReplicaId(1), small_frames(), "k", 24, 20_000);
    w.attach(Client::ws(relay.http).await, None);
    let last = Key::new("k23", CrdtType::RegisterLww, "b");
    let want = Value::Bytes(vec![23; 20_000]);
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("compactions_total") == 0 {
        w.pump().await;
        assert!(std::time::Instant::now() < deadline, "no compaction");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The base (about 480 KB) is far over the frame limit: a newcomer gets
    // it in SnapshotPart frames, none over the limit, and has everything.
    let mut r = Peer::new(2, small_frames());
    r.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut r], WAIT, |ps| ps[0].replica.value(&last) == want).await;
    assert!(
        r.replica.stats().snapshots_merged >= 1,
        "the base was taken"
    );
    assert!(r.largest_frame <= SMALL_FRAME, "{} bytes", r.largest_frame);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert!(relay.metric("snapshots_sent_total") >= 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_peer_sends_a_snapshot_larger_than_a_frame_in_pieces() {
    let relay = start(Config {
        max_frame_bytes: SMALL_FRAME,
        ..secured()
    })
    .await;
    // A snapshot-scope peer that pruned its log: it can only send its
    // state, which no single frame could carry.
    let mut s = Peer::new(1, small_frames());
    s.replica = registers(ReplicaId(1), small_frames(), "k", 24, 20_000);
    s.replica.snapshot();
    s.attach(
        Client::ws(relay.http).await,
        Some(&tok(Scope::Snapshot, Some(1))),
    );
    let last = Key::new("k23", CrdtType::RegisterLww, "b");
    let want = Value::Bytes(vec![23; 20_000]);
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("snapshots_stored_total") == 0 {
        s.pump().await;
        assert!(std::time::Instant::now() < deadline, "no snapshot stored");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut r = Peer::new(2, small_frames());
    r.attach(Client::ws(relay.http).await, Some(&tok(Scope::Read, None)));
    pump_until(&mut [&mut r], WAIT, |ps| ps[0].replica.value(&last) == want).await;
    assert!(r.largest_frame <= SMALL_FRAME, "{} bytes", r.largest_frame);
    // Pieces that overlap are refused, typed.
    let mut c = raw(&relay, 3, Some(&tok(Scope::Snapshot, Some(3)))).await;
    c.send(&minidote_core::wire::snapshot_part_frame(
        7, 2000, 0, &[1; 600],
    ))
    .await;
    c.send(&minidote_core::wire::snapshot_part_frame(
        7, 2000, 300, &[2; 600],
    ))
    .await;
    let (code, msg) = c.expect_error().await;
    assert_eq!(code, error_code::MALFORMED, "{msg}");
    // And a write-scope peer may not even start one.
    let mut c = raw(&relay, 4, Some(&tok(Scope::Write, Some(4)))).await;
    c.send(&minidote_core::wire::snapshot_part_frame(
        7, 100, 0, b"first",
    ))
    .await;
    let (code, _) = c.expect_error().await;
    assert_eq!(code, error_code::FORBIDDEN);
    relay.stop().await;
}

/// Replica `id`'s first `n` transactions (each adds one to the counter).
fn increments(id: u64, n: usize) -> Vec<TxnBytes> {
    let mut r = Replica::new(ReplicaId(id), core_config("r"));
    for _ in 0..n {
        r.update_objects(vec![Update::new(counter(), Op::Increment(1))], None)
            .unwrap();
    }
    log_of(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_cannot_fill_the_held_buffer_for_everyone_and_held_writes_expire() {
    let relay = start(Config {
        buffer_capacity: 40,
        buffer_hold: Some(Duration::from_millis(200)),
        ..config()
    })
    .await;
    // A writer whose first transaction never comes: everything it sends
    // is held, filling the buffer, but past its share (a quarter) its
    // newest entries give way to anyone else's.
    let hostile = increments(0xbad, 60);
    let mut h = raw(&relay, 0xbad, None).await;
    h.send(&frame_of(&hostile[1..])).await;
    // An honest writer's transaction that arrives before its predecessor
    // is still held, not dropped, and delivered once the gap closes.
    let honest = increments(0xc, 2);
    let mut c = raw(&relay, 0xc, None).await;
    c.send(&frame_of(&honest[1..])).await;
    c.send(&frame_of(&honest[..1])).await;
    let mut r = Peer::new(0xe, core_config("r"));
    r.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut r], WAIT, |ps| {
        ps[0].replica.clock().get(ReplicaId(0xc)) == 2
    })
    .await;
    assert!(relay.metric("buffer_dropped_total") >= 59 - 40);
    // After the hold time, the next batch drops what still waits.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let more = increments(0xd, 1);
    let mut d = raw(&relay, 0xd, None).await;
    d.send(&frame_of(&more)).await;
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("buffer_expired_total") < 10 {
        assert!(std::time::Instant::now() < deadline, "nothing expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop((h, c, d));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomparable_bases_are_folded_into_one() {
    let relay = start(secured()).await;
    // Five pruned peers, each with writes no one else has: their
    // snapshots' clocks are pairwise incomparable.
    for id in 1..=5u64 {
        let mut p = Peer::new(id, core_config("r"));
        write(&mut p, &set(), Op::Add(Value::Int(id as i64)));
        p.replica.snapshot();
        p.attach(
            Client::ws(relay.http).await,
            Some(&tok(Scope::Snapshot, Some(id))),
        );
        let deadline = std::time::Instant::now() + WAIT;
        while relay.metric("snapshots_stored_total") < id {
            p.pump().await;
            assert!(
                std::time::Instant::now() < deadline,
                "snapshot {id} not stored"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("compactions_total") < 4 {
        assert!(std::time::Instant::now() < deadline, "bases not folded");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A newcomer is sent one base holding everything, not five.
    let mut r = Peer::new(9, core_config("r"));
    r.attach(Client::ws(relay.http).await, Some(&tok(Scope::Read, None)));
    let want = Value::List((1..=5).map(Value::Int).collect());
    pump_until(&mut [&mut r], WAIT, |ps| {
        ps[0].replica.value(&set()) == want
    })
    .await;
    assert_eq!(r.replica.stats().snapshots_merged, 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_that_claims_writes_without_their_causal_past_is_refused() {
    let relay = start(secured()).await;
    // A adds "x"; B, having seen it, adds "y".
    let mut a = Peer::new(0xa, core_config("r"));
    let mut b = Peer::new(0xb, core_config("r"));
    a.attach(
        Client::ws(relay.http).await,
        Some(&tok(Scope::Write, Some(0xa))),
    );
    b.attach(
        Client::ws(relay.http).await,
        Some(&tok(Scope::Write, Some(0xb))),
    );
    write(&mut a, &set(), Op::Add("x".into()));
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        ps[1].replica.clock().get(ReplicaId(0xa)) == 1
    })
    .await;
    write(&mut b, &set(), Op::Add("y".into()));
    let both = Value::List(vec!["x".into(), "y".into()]);
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        ps[0].replica.value(&set()) == both
    })
    .await;
    // A snapshot-scope peer sends a base that claims B's write but not the
    // write it depended on, with no content: installing it would prune
    // B's write from the log.
    let forged = Snapshot {
        clock: [(ReplicaId(0xb), 1)].into_iter().collect(),
        objects: Vec::new(),
    };
    let mut s = raw(&relay, 0x5, Some(&tok(Scope::Snapshot, Some(0x5)))).await;
    s.send(&Frame::Snapshot(forged.encode()).encode()).await;
    let (code, msg) = s.expect_error().await;
    assert_eq!(code, error_code::INTEGRITY, "{msg}");
    assert!(msg.contains("dependency"), "{msg}");
    assert_eq!(relay.metric("snapshots_stored_total"), 0);
    // A newcomer still gets both writes.
    let r = reader_sees(&relay, 0xe, &tok(Scope::Read, None), &set(), both).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    relay.stop().await;
}
