//! The relay as a real process: kill -9 and restart keeps room data, a
//! SIGTERM flushes and exits cleanly, and a second relay on the same data
//! file is refused.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use minidote_core::{CrdtType, Key, Op, Update, Value};

use relay_proc::*;

const WAIT: Duration = Duration::from_secs(10);

fn counter() -> Key {
    Key::new("likes", CrdtType::CounterPn, "b")
}

async fn write_through(p: &Proc, id: u64, n: usize) {
    let mut a = Peer::new(id, core_config("r"));
    a.attach(Client::tcp(p.tcp).await, None);
    for _ in 0..n {
        a.replica
            .update_objects(vec![Update::new(counter(), Op::Increment(1))], None)
            .unwrap();
    }
    // Until the relay has committed them to SQLite.
    let want = n as u64;
    pump_until(&mut [&mut a], WAIT, |_| {
        futures_executor_metric(p.http, "storage_records_total") >= want
    })
    .await;
}

async fn read_back(p: &Proc, id: u64) -> Value {
    let mut b = Peer::new(id, core_config("r"));
    b.attach(Client::ws(p.http).await, None);
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        b.pump().await;
        let v = b.replica.value(&counter());
        if v != Value::Null && v == last {
            // Stable over a few rounds.
            for _ in 0..20 {
                b.pump().await;
            }
            return b.replica.value(&counter());
        }
        last = v;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_the_room_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay.db");
    let mut p = spawn(&data);
    write_through(&p, 1, 300).await;
    p.child.kill().unwrap(); // SIGKILL
    p.child.wait().unwrap();
    let mut p = spawn(&data);
    assert_eq!(read_back(&p, 2).await, Value::Int(300));
    // And it keeps growing after the restart.
    write_through(&p, 3, 5).await;
    assert_eq!(read_back(&p, 4).await, Value::Int(305));
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_and_exits_cleanly_and_a_second_relay_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("relay.db");
    let mut p = spawn(&data);
    // A second relay on the same file fails at once, with a clear error.
    let out = relay_on(&data).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("relay store"), "{err}");
    // Writes, then SIGTERM while a peer is still linked.
    let mut a = Peer::new(1, core_config("r"));
    a.attach(Client::tcp(p.tcp).await, None);
    for _ in 0..50 {
        a.replica
            .update_objects(vec![Update::new(counter(), Op::Increment(2))], None)
            .unwrap();
    }
    pump_until(&mut [&mut a], WAIT, |_| {
        futures_executor_metric(p.http, "txns_stored_total") == 50
    })
    .await;
    let pid = p.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = p.child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let mut p = spawn(&data);
    assert_eq!(read_back(&p, 2).await, Value::Int(100));
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "listen",
        "tcp-listen",
        "no-tcp",
        "data",
        "memory",
        "static",
        "auth-secret",
        "max-frame-bytes",
        "max-snapshot-bytes",
        "max-connections",
        "queue-frames",
        "queue-bytes",
        "compact-after",
        "idle-timeout",
        "auth-public-key",
        "max-hello-bytes",
        "max-rooms",
        "max-room-name-bytes",
        "buffer-bytes",
        "allowed-origins",
    ] {
        assert!(help.contains(&format!("--{flag}")), "--{flag} in --help");
        let env = format!("MINIDOTE_RELAY_{}", flag.replace('-', "_").to_uppercase());
        assert!(help.contains(&env), "{env} in --help");
    }
    let out = Command::new(BIN)
        .args(["token", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "auth-secret",
        "auth-private-key",
        "room",
        "scope",
        "replica",
        "ttl",
    ] {
        assert!(help.contains(&format!("--{flag}")), "token --{flag}");
    }
}

#[test]
fn flags_can_come_from_the_environment() {
    // A bad value through the environment is reported like a bad flag.
    let out = Command::new(BIN)
        .env("MINIDOTE_RELAY_MAX_FRAME_BYTES", "not-a-number")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-frame-bytes"));
    // And a good one takes effect: the relay refuses a too-small limit.
    let out = Command::new(BIN)
        .args([
            "--memory",
            "--listen",
            "127.0.0.1:0",
            "--tcp-listen",
            "127.0.0.1:0",
        ])
        .env("MINIDOTE_RELAY_MAX_FRAME_BYTES", "100")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 1024"));
}
