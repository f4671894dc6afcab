//! Tokens, bad input and limits: each closes only the offending link, with
//! an `Error` frame, while the relay and the other peers carry on.

mod common;

use std::time::Duration;

use common::*;
use minidote_core::wire::{error_code, Frame};
use minidote_core::{
    CatchUp, CrdtType, Key, Op, Replica, ReplicaId, Update, Value, PROTOCOL_VERSION,
};
use minidote_relay::token::{self, Scope};
use minidote_relay::Config;

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "test-secret";

fn counter() -> Key {
    Key::new("likes", CrdtType::CounterPn, "b")
}

fn write(p: &mut Peer, op: Op) {
    p.replica
        .update_objects(vec![Update::new(counter(), op)], None)
        .expect("valid update");
}

fn secured() -> Config {
    Config {
        auth_secret: Some(SECRET.into()),
        ..config()
    }
}

fn tok(room: &str, scope: Scope, ttl: i64) -> String {
    let exp = (token::now_secs() as i64 + ttl).max(0) as u64;
    token::mint(SECRET.as_bytes(), room, scope, exp)
}

/// A `Txns` frame with `n` valid transactions from a fresh replica `id`,
/// each a register write of `size` bytes.
fn txns_frame(id: u64, n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut r = Replica::new(ReplicaId(id), core_config("r"));
    let k = Key::new("blob", CrdtType::RegisterLww, "b");
    for i in 0..n {
        let v = Value::Bytes(vec![(i % 251) as u8; size]);
        r.update_objects(vec![Update::new(k.clone(), Op::Assign(v))], None)
            .unwrap();
    }
    let CatchUp::Txns(txns) = r.catch_up(&Default::default()) else {
        panic!("txns")
    };
    // One frame per transaction, as a stream of live updates would be.
    txns.iter()
        .map(|t| minidote_core::wire::txns_frame([&t[..]].into_iter()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_case() {
    let relay = start(secured()).await;
    // Missing, forged, expired and wrong-room tokens are refused.
    let forged = {
        // A write token's header and claims under a read token's signature.
        let t = tok("r", Scope::Read, 3600);
        let sig = t.rsplit_once('.').unwrap().1;
        let other = token::mint(b"another secret", "r", Scope::Write, u64::MAX / 2);
        format!("{}.{sig}", other.rsplit_once('.').unwrap().0)
    };
    let bad = [
        (None, "token is required"),
        (Some(forged), "signature"),
        (Some(tok("r", Scope::Write, -10)), "expired"),
        (Some(tok("elsewhere", Scope::Write, 3600)), "for room"),
        (Some("garbage".to_owned()), "malformed"),
    ];
    for (t, why) in bad {
        let mut c = Client::tcp(relay.tcp).await;
        c.send(&hello(9, "r", t.as_deref())).await;
        let (code, msg) = c.expect_error().await;
        assert_eq!(code, error_code::UNAUTHORIZED, "{why}: {msg}");
        assert!(msg.contains(why), "{why} in {msg:?}");
    }
    assert_eq!(relay.metric("auth_failures_total"), 5);

    // A writer and a read-scope reader.
    let mut w = Peer::new(1, core_config("r"));
    let mut rd = Peer::new(2, core_config("r"));
    w.attach(
        Client::ws(relay.http).await,
        Some(&tok("r", Scope::Write, 3600)),
    );
    rd.attach(
        Client::tcp(relay.tcp).await,
        Some(&tok("r", Scope::Read, 3600)),
    );
    write(&mut w, Op::Increment(3));
    pump_until(&mut [&mut w, &mut rd], WAIT, |ps| {
        ps[1].replica.value(&counter()) == Value::Int(3)
    })
    .await;
    // The reader's own write is refused: neither stored nor forwarded.
    write(&mut rd, Op::Increment(100));
    for _ in 0..100 {
        w.pump().await;
        rd.pump().await;
    }
    assert_eq!(w.replica.value(&counter()), Value::Int(3));
    assert!(relay.metric("txns_refused_total") >= 1);
    assert_eq!(relay.metric("txns_stored_total"), 1);
    // A raw read-scope client gets an Error{read only} and stays linked.
    let mut raw = Client::tcp(relay.tcp).await;
    raw.send(&hello(7, "r", Some(&tok("r", Scope::Read, 3600))))
        .await;
    for f in txns_frame(7, 1, 8) {
        raw.send(&f).await;
    }
    let mut saw = false;
    for _ in 0..50 {
        if let Some(f) = raw.recv(Duration::from_millis(20)).await {
            if let Ok(Frame::Error { code, .. }) = Frame::decode(&f) {
                assert_eq!(code, error_code::READ_ONLY);
                saw = true;
                break;
            }
        }
    }
    assert!(saw, "read-only refusal");
    raw.send(&Frame::Ping(5).encode()).await;
    let mut pong = false;
    for _ in 0..50 {
        if let Some(f) = raw.recv(Duration::from_millis(20)).await {
            if Frame::decode(&f) == Ok(Frame::Pong(5)) {
                pong = true;
                break;
            }
        }
    }
    assert!(pong, "the read-only link stays open");
    assert_eq!(relay.metric("txns_stored_total"), 1);
    relay.stop().await;
}

/// A healthy pair that must keep converging while bad clients come and go.
async fn healthy(relay: &TestRelay) -> (Peer, Peer) {
    let mut a = Peer::new(1, core_config("r"));
    let mut b = Peer::new(2, core_config("r"));
    a.attach(Client::ws(relay.http).await, None);
    b.attach(Client::tcp(relay.tcp).await, None);
    (a, b)
}

async fn still_converge(a: &mut Peer, b: &mut Peer) {
    write(a, Op::Increment(1));
    let want = a.replica.value(&counter());
    pump_until(&mut [a, b], WAIT, |ps| {
        ps[1].replica.value(&counter()) == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_bad_frames_close_only_that_connection() {
    let relay = start(Config {
        max_frame_bytes: 4096,
        max_hello_bytes: 64 << 10,
        ..config()
    })
    .await;
    let (mut a, mut b) = healthy(&relay).await;
    still_converge(&mut a, &mut b).await;

    let cases: Vec<(&str, Vec<Vec<u8>>, u16)> = vec![
        (
            "unknown version",
            vec![vec![9, 0, 1, 2, 3]],
            error_code::VERSION,
        ),
        (
            "garbage",
            vec![vec![PROTOCOL_VERSION, 0xff, 0xde, 0xad]],
            error_code::MALFORMED,
        ),
        (
            "truncated hello",
            vec![hello(9, "r", None)[..6].to_vec()],
            error_code::MALFORMED,
        ),
        (
            "first frame not Hello",
            vec![Frame::Ping(1).encode()],
            error_code::HELLO_EXPECTED,
        ),
        (
            "second Hello",
            vec![hello(9, "r", None), hello(9, "r", None)],
            error_code::MALFORMED,
        ),
        (
            "txns with garbage effects",
            vec![hello(9, "r", None), {
                let mut f = txns_frame(9, 1, 8).remove(0);
                // version, tag, count, origin, seq, deps, blob length,
                // then the blob: claim 5 effects where there is 1.
                assert_eq!(f[14], 1);
                f[14] = 5;
                f
            }],
            error_code::MALFORMED,
        ),
        (
            "oversize frame",
            vec![hello(9, "r", None), txns_frame(9, 1, 8000).remove(0)],
            error_code::TOO_LARGE,
        ),
        (
            "oversize before Hello",
            vec![vec![1; 70 << 10]],
            error_code::TOO_LARGE,
        ),
    ];
    for (name, frames, want) in cases {
        for ws in [false, true] {
            let mut c = if ws {
                Client::ws(relay.http).await
            } else {
                Client::tcp(relay.tcp).await
            };
            if ws && name == "oversize before Hello" {
                continue; // the WebSocket limit is the frame limit
            }
            eprintln!("case {name} ws={ws}");
            for f in &frames {
                c.send(f).await;
            }
            let (code, msg) = c.expect_error().await;
            assert_eq!(
                code,
                want,
                "{name} over {}: {msg}",
                if ws { "ws" } else { "tcp" }
            );
        }
        still_converge(&mut a, &mut b).await;
    }
    // Raw garbage on TCP: a length prefix over the limit.
    let mut c = Client::tcp(relay.tcp).await;
    c.send_raw(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]).await;
    assert_eq!(c.expect_error().await.0, error_code::TOO_LARGE);
    // A text message on the WebSocket.
    let mut c = Client::ws(relay.http).await;
    c.send_text("hello?").await;
    assert_eq!(c.expect_error().await.0, error_code::MALFORMED);
    still_converge(&mut a, &mut b).await;
    assert!(
        a.errors.is_empty() && b.errors.is_empty(),
        "{:?} {:?}",
        a.errors,
        b.errors
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_idle_timeout() {
    let relay = start(Config {
        max_connections: 3,
        idle_timeout: Duration::from_millis(600),
        ..config()
    })
    .await;
    let (mut a, mut b) = healthy(&relay).await;
    let mut quiet = Client::tcp(relay.tcp).await;
    quiet.send(&hello(9, "r", None)).await;
    // All three are admitted (sessions start after the WebSocket upgrade).
    pump_until(&mut [&mut a, &mut b], WAIT, |_| {
        relay.metric("connections_active") == 3
    })
    .await;
    let mut over = Client::ws(relay.http).await;
    let (code, _) = over.expect_error().await;
    assert_eq!(code, error_code::OVERLOADED);
    assert_eq!(relay.metric("connections_refused_total"), 1);
    // The quiet client never answers; the relay pings and then gives up,
    // while the healthy peers, which ping every 200 ms, stay linked.
    let mut frames = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !quiet.closed && std::time::Instant::now() < deadline {
        a.pump().await;
        b.pump().await;
        if let Some(f) = quiet.recv(Duration::from_millis(5)).await {
            frames.push(Frame::decode(&f).unwrap());
        }
    }
    assert!(quiet.closed);
    assert!(frames.iter().any(|f| matches!(f, Frame::Ping(_))));
    assert!(frames
        .iter()
        .any(|f| matches!(f, Frame::Error { code, .. } if *code == error_code::IDLE)));
    // The healthy peers, which ping every 200 ms, are still linked.
    still_converge(&mut a, &mut b).await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_disconnected_without_stalling_the_room() {
    let relay = start(Config {
        queue_frames: 64,
        queue_bytes: 1 << 20,
        ..config()
    })
    .await;
    // The stalled client joins and then never reads.
    let mut stalled = Client::tcp(relay.tcp).await;
    stalled.send(&hello(8, "r", None)).await;
    let mut reader = Peer::new(2, core_config("r"));
    reader.attach(Client::ws(relay.http).await, None);
    reader.pump().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    stalled.pause_reading();
    let mut writer = Client::tcp(relay.tcp).await;
    writer.send(&hello(7, "r", None)).await;
    let frames = txns_frame(7, 6000, 4000); // 24 MB: more than socket buffers hold
    let k = Key::new("blob", CrdtType::RegisterLww, "b");
    // The writer goes at the reader's pace; the stalled client falls behind.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for (i, chunk) in frames.chunks(50).enumerate() {
        for f in chunk {
            writer.send(f).await;
        }
        let sent = ((i + 1) * 50) as u64;
        while reader.replica.clock().get(ReplicaId(7)) < sent {
            reader.pump().await;
            assert!(std::time::Instant::now() < deadline, "the reader kept up");
        }
    }
    // Once the relay gave up on it, the stalled client reads again and
    // finds an Error{slow consumer}, then the close.
    stalled.resume_reading();
    let got = stalled.recv_until_closed(Duration::from_secs(20)).await;
    let closed = stalled.closed;
    assert_eq!(relay.metric("slow_consumers_total"), 1);
    assert_eq!(relay.metric("txns_stored_total"), 6000);
    assert_ne!(reader.replica.value(&k), Value::Null);
    assert!(closed);
    assert!(
        got.iter()
            .any(|f| matches!(f, Frame::Error { code, .. } if *code == error_code::SLOW_CONSUMER)),
        "slow-consumer error frame"
    );
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_frame_that_arrives_in_pieces_across_ping_ticks_is_read_whole() {
    // Pings every 300 ms; the frame arrives in three pieces 400 ms apart,
    // so the session's select! wakes for a ping in the middle of it.
    let relay = start(Config {
        idle_timeout: Duration::from_millis(900),
        ..config()
    })
    .await;
    let mut c = Client::tcp(relay.tcp).await;
    c.send(&hello(9, "r", None)).await;
    let frame = txns_frame(9, 1, 300).remove(0);
    let mut bytes = (frame.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    let third = bytes.len() / 3;
    for piece in [&bytes[..2], &bytes[2..third], &bytes[third..]] {
        c.send_raw(piece).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    while relay.metric("txns_stored_total") != 1 {
        assert!(std::time::Instant::now() < deadline, "the frame was stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let frames = c.recv_until_closed(Duration::from_millis(200)).await;
    assert!(
        !frames.iter().any(|f| matches!(f, Frame::Error { .. })),
        "no error: {frames:?}"
    );
    relay.stop().await;
}
