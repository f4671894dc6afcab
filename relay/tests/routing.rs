//! The relay end to end on 127.0.0.1: routing between WebSocket and TCP
//! peers, the room log, rooms, snapshots as bases, metrics.

mod common;

use std::time::Duration;

use common::*;
use minidote_core::{Op, Value};

const WAIT: Duration = Duration::from_secs(10);

const SECRET: &str = "routing secret";

/// A relay that checks tokens, so a pruned peer can be given the snapshot
/// scope (only such a peer may send snapshots).
fn secured(c: minidote_relay::Config) -> minidote_relay::Config {
    minidote_relay::Config {
        auth_secret: Some(SECRET.into()),
        ..c
    }
}

fn tok(scope: minidote_relay::token::Scope) -> String {
    minidote_relay::token::mint(
        SECRET.as_bytes(),
        "r",
        scope,
        minidote_relay::token::now_secs() + 3600,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_tcp_replicas_converge_through_the_relay() {
    let relay = start(config()).await;
    let mut a = Peer::new(1, core_config("r"));
    let mut b = Peer::new(2, core_config("r"));
    let mut c = Peer::new(3, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    b.attach(Client::tcp(relay.tcp).await, None);
    c.attach(Client::ws(relay.http).await, None);
    for i in 0..50 {
        write(&mut a, &counter(), Op::Increment(1));
        write(&mut b, &counter(), Op::Increment(2));
        write(&mut c, &set(), Op::Add(Value::Int(i)));
        if i % 10 == 0 {
            for p in [&mut a, &mut b, &mut c] {
                p.pump().await;
            }
        }
    }
    let keys = [counter(), set()];
    pump_until(&mut [&mut a, &mut b, &mut c], WAIT, |ps| {
        converged(ps, &keys)
    })
    .await;
    assert_eq!(a.replica.value(&counter()), Value::Int(150));
    assert_eq!(
        b.replica.value(&set()),
        Value::List((0..50).map(Value::Int).collect())
    );
    assert!(a.errors.is_empty() && b.errors.is_empty() && c.errors.is_empty());
    assert_eq!(relay.metric("txns_stored_total"), 150);
    assert_eq!(relay.metric("peers_joined_total"), 3);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_everything_from_the_room_log_after_the_writer_left() {
    let relay = start(config()).await;
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::tcp(relay.tcp).await, None);
    for _ in 0..200 {
        write(&mut a, &counter(), Op::Increment(1));
    }
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("txns_stored_total") == 200
    })
    .await;
    drop(a); // gone for good
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut b], WAIT, |ps| {
        ps[0].replica.value(&counter()) == Value::Int(200)
    })
    .await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_are_pushed_to_the_relay_on_reconnect() {
    let relay = start(config()).await;
    let mut a = Peer::new(1, core_config("r"));
    let mut b = Peer::new(2, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    b.attach(Client::ws(relay.http).await, None);
    write(&mut a, &counter(), Op::Increment(1));
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        converged(ps, &[counter()])
    })
    .await;
    a.detach();
    for _ in 0..10 {
        write(&mut a, &counter(), Op::Increment(1)); // offline
    }
    write(&mut b, &counter(), Op::Increment(100));
    for _ in 0..20 {
        a.pump().await;
        b.pump().await;
    }
    assert_eq!(b.replica.value(&counter()), Value::Int(101));
    a.attach(Client::tcp(relay.tcp).await, None);
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        converged(ps, &[counter()])
    })
    .await;
    assert_eq!(b.replica.value(&counter()), Value::Int(111));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated() {
    let relay = start(config()).await;
    let mut a = Peer::new(1, core_config("x"));
    let mut b = Peer::new(2, core_config("y"));
    let mut c = Peer::new(3, core_config("x"));
    a.attach(Client::ws(relay.http).await, None);
    b.attach(Client::tcp(relay.tcp).await, None);
    c.attach(Client::tcp(relay.tcp).await, None);
    write(&mut a, &counter(), Op::Increment(5));
    write(&mut b, &counter(), Op::Increment(7));
    pump_until(&mut [&mut a, &mut b, &mut c], WAIT, |ps| {
        ps[2].replica.value(&counter()) == Value::Int(5)
    })
    .await;
    for _ in 0..50 {
        for p in [&mut a, &mut b, &mut c] {
            p.pump().await;
        }
    }
    assert_eq!(a.replica.value(&counter()), Value::Int(5));
    assert_eq!(b.replica.value(&counter()), Value::Int(7));
    assert_eq!(c.replica.value(&counter()), Value::Int(5));
    assert_eq!(relay.metric("rooms"), 2);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_from_a_pruned_peer_becomes_the_room_base() {
    use minidote_relay::token::Scope;
    let relay = start(secured(config())).await;
    // `a` writes alone and prunes its log behind snapshots, then meets the
    // relay: the relay lacks pruned transactions, so `a` sends a snapshot.
    let mut a = Peer::new(
        1,
        minidote_core::Config {
            snapshot_every: 10,
            ..core_config("r")
        },
    );
    for i in 0..35 {
        write(&mut a, &counter(), Op::Increment(1));
        write(&mut a, &set(), Op::Add(Value::Int(i)));
    }
    // A memory replica keeps writes no peer confirmed past `snapshot_every`
    // (so a writer's offline writes reach a relay as transactions); an
    // explicit snapshot prunes them.
    a.replica.snapshot();
    a.pump().await;
    a.attach(Client::tcp(relay.tcp).await, Some(&tok(Scope::Snapshot)));
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("snapshots_stored_total") == 1
    })
    .await;
    // Then the transactions after `a`'s last snapshot, if any.
    for _ in 0..20 {
        a.pump().await;
    }
    drop(a);
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, Some(&tok(Scope::Read)));
    pump_until(&mut [&mut b], WAIT, |ps| {
        ps[0].replica.value(&counter()) == Value::Int(35)
            && ps[0].replica.value(&set()) == Value::List((0..35).map(Value::Int).collect())
    })
    .await;
    assert!(relay.metric("snapshots_sent_total") >= 1);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_metrics_answer_over_http() {
    let relay = start(config()).await;
    let (status, body) = http_get(relay.http, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, before) = http_get(relay.http, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(metric(&before, "txns_stored_total"), 0);
    let mut a = Peer::new(1, core_config("r"));
    let mut b = Peer::new(2, core_config("r"));
    a.attach(Client::tcp(relay.tcp).await, None);
    b.attach(Client::ws(relay.http).await, None);
    for _ in 0..5 {
        write(&mut a, &counter(), Op::Increment(1));
    }
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        converged(ps, &[counter()])
    })
    .await;
    let (_, after) = http_get(relay.http, "/metrics").await;
    assert_eq!(metric(&after, "txns_stored_total"), 5);
    assert!(metric(&after, "txns_received_total") >= 5);
    assert!(
        metric(&after, "txns_delivered_total") >= 5,
        "forwarded to b"
    );
    assert_eq!(metric(&after, "peers_joined_total"), 2);
    assert_eq!(metric(&after, "connections_active"), 2);
    assert!(metric(&after, "frames_received_total") > metric(&before, "frames_received_total"));
    drop(a);
    drop(b);
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("connections_active") != 0 {
        assert!(std::time::Instant::now() < deadline, "links closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_log_is_compacted_into_a_base_and_every_peer_still_converges() {
    let relay = start(minidote_relay::Config {
        compact_after: 40,
        ..config()
    })
    .await;
    let mut a = Peer::new(1, core_config("r"));
    let mut c = Peer::new(3, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    c.attach(Client::tcp(relay.tcp).await, None);
    for i in 0..30 {
        write(&mut a, &counter(), Op::Increment(1));
        write(&mut a, &set(), Op::Add(Value::Int(i)));
        a.pump().await;
    }
    let keys = [counter(), set()];
    pump_until(&mut [&mut a, &mut c], WAIT, |ps| converged(ps, &keys)).await;
    c.detach(); // c is behind from here on
    for i in 30..150 {
        write(&mut a, &counter(), Op::Increment(1));
        write(&mut a, &set(), Op::Add(Value::Int(i)));
        if i % 3 == 0 {
            write(&mut a, &set(), Op::Remove(Value::Int(i - 1)));
        }
        a.pump().await;
    }
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("compactions_total") >= 2
    })
    .await;
    drop(a);
    // A brand-new peer, and one that lacks only part of the history.
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, None);
    c.attach(Client::tcp(relay.tcp).await, None);
    let want_set: Vec<Value> = (0..150)
        .filter(|i| !(i + 1 >= 30 && (i + 1) % 3 == 0 && i + 1 < 150))
        .map(Value::Int)
        .collect();
    pump_until(&mut [&mut b, &mut c], WAIT, |ps| {
        converged(ps, &keys) && ps[0].replica.value(&counter()) == Value::Int(150)
    })
    .await;
    assert_eq!(b.replica.value(&set()), Value::List(want_set));
    assert!(relay.metric("snapshots_sent_total") >= 2);
    assert!(b.errors.is_empty() && c.errors.is_empty());
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_served_at_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<h1>demo</h1>").unwrap();
    let relay = start(minidote_relay::Config {
        static_dir: Some(dir.path().to_owned()),
        ..config()
    })
    .await;
    let (status, body) = http_get(relay.http, "/").await;
    assert_eq!((status, body.as_str()), (200, "<h1>demo</h1>"));
    let (status, _) = http_get(relay.http, "/missing.js").await;
    assert_eq!(status, 404);
    // The API routes still win over the folder.
    let (status, body) = http_get(relay.http, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_larger_than_the_frame_limit_is_still_taken() {
    // Frames are limited to 4 KiB, but a pruned peer's state is ~20 KiB:
    // the snapshot limit applies to it, and the room still catches up.
    use minidote_relay::token::Scope;
    let relay = start(secured(minidote_relay::Config {
        max_frame_bytes: 4096,
        ..config()
    }))
    .await;
    let mut a = Peer::new(
        1,
        minidote_core::Config {
            snapshot_every: 10,
            max_frame_bytes: 4096,
            ..core_config("r")
        },
    );
    for i in 0..2000 {
        write(&mut a, &set(), Op::Add(Value::Int(i)));
    }
    a.replica.snapshot();
    a.pump().await;
    a.attach(Client::tcp(relay.tcp).await, Some(&tok(Scope::Snapshot)));
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("snapshots_stored_total") == 1
    })
    .await;
    drop(a);
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, Some(&tok(Scope::Write)));
    pump_until(&mut [&mut b], WAIT, |ps| {
        ps[0].replica.value(&set()) == Value::List((0..2000).map(Value::Int).collect())
    })
    .await;
    assert!(b.errors.is_empty(), "{:?}", b.errors);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_with_no_peers_leaves_memory_and_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(minidote_relay::Config {
        data: Some(dir.path().join("relay.db")),
        room_evict_after: Some(Duration::from_millis(100)),
        ..config()
    })
    .await;
    let gauge = |r: &TestRelay| r.metric("rooms");
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    for i in 0..50 {
        write(&mut a, &set(), Op::Add(Value::Int(i)));
    }
    let want = Value::List((0..50).map(Value::Int).collect());
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut a, &mut b], WAIT, |ps| {
        ps[1].replica.value(&set()) == want
    })
    .await;
    assert_eq!(gauge(&relay), 1);
    // Everyone leaves: after the grace period the room is dropped.
    a.detach();
    b.detach();
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("rooms_evicted_total") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the room stayed in memory"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gauge(&relay), 0);
    // A newcomer joins: the room is read back from the store, whole.
    let mut c = Peer::new(3, core_config("r"));
    c.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut c], WAIT, |ps| {
        ps[0].replica.value(&set()) == want
    })
    .await;
    assert_eq!(relay.metric("rooms_loaded_total"), 1);
    assert_eq!(gauge(&relay), 1);
    // And the old writer continues where it was; its seqs still line up.
    a.attach(Client::ws(relay.http).await, None);
    write(&mut a, &set(), Op::Add(Value::Int(50)));
    let want = Value::List((0..51).map(Value::Int).collect());
    pump_until(&mut [&mut a, &mut c], WAIT, |ps| {
        ps[1].replica.value(&set()) == want
    })
    .await;
    assert!(
        a.errors.is_empty() && c.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        c.errors
    );
    // A peer that comes back within the grace period keeps the room.
    let evicted = relay.metric("rooms_evicted_total");
    c.detach();
    a.detach();
    a.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut a], WAIT, |ps| {
        ps[0].replica.stats().peers.iter().any(|p| p.connected)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.metric("rooms_evicted_total"), evicted);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_only_relay_never_evicts_what_it_cannot_reload() {
    let relay = start(minidote_relay::Config {
        room_evict_after: Some(Duration::from_millis(50)),
        ..config()
    })
    .await;
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    write(&mut a, &set(), Op::Add(Value::Int(1)));
    pump_until(&mut [&mut a], WAIT, |_| {
        relay.metric("txns_received_total") >= 1
    })
    .await;
    a.detach();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(relay.metric("rooms_evicted_total"), 0);
    let mut b = Peer::new(2, core_config("r"));
    b.attach(Client::ws(relay.http).await, None);
    let want = Value::List(vec![Value::Int(1)]);
    pump_until(&mut [&mut b], WAIT, |ps| {
        ps[0].replica.value(&set()) == want
    })
    .await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_learns_when_a_durable_relay_stored_its_writes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = start(minidote_relay::Config {
        data: Some(dir.path().join("relay.db")),
        ..config()
    })
    .await;
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    pump_until(&mut [&mut a], WAIT, |ps| {
        ps[0].replica.stats().peers.iter().any(|p| p.connected)
    })
    .await;
    assert!(!a.replica.stored_everywhere() || a.replica.clock().get(a.replica.id()) == 0);
    for i in 0..20 {
        write(&mut a, &set(), Op::Add(Value::Int(i)));
    }
    assert!(
        !a.replica.stored_everywhere(),
        "not before the relay says so"
    );
    pump_until(&mut [&mut a], WAIT, |ps| ps[0].replica.stored_everywhere()).await;
    assert_eq!(a.replica.stats().peers[0].stored, 20);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_relay_reports_stored_writes_and_a_rejoining_writer_learns_at_once() {
    let relay = start(config()).await;
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    for i in 0..5 {
        write(&mut a, &set(), Op::Add(Value::Int(i)));
    }
    pump_until(&mut [&mut a], WAIT, |ps| ps[0].replica.stored_everywhere()).await;
    assert_eq!(a.replica.stats().peers[0].stored, 5);
    // Back with nothing new to send: the relay's Stored after its Hello
    // says the writes are there.
    a.detach();
    a.attach(Client::tcp(relay.tcp).await, None);
    pump_until(&mut [&mut a], WAIT, |ps| ps[0].replica.stored_everywhere()).await;
    assert_eq!(a.replica.stats().peers[0].stored, 5);
    relay.stop().await;
}
