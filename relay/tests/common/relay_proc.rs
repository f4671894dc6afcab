//! The relay binary as a child process, for tests that kill it, restart it
//! or measure its memory.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::metric;

pub const BIN: &str = env!("CARGO_BIN_EXE_minidote-relay");

pub struct Proc {
    pub child: Child,
    pub http: SocketAddr,
    pub tcp: SocketAddr,
}

impl Drop for Proc {
    /// A test that fails half-way must not leave its relay running.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field(line: &str, name: &str) -> Option<SocketAddr> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

/// The relay binary on free ports.
fn on_free_ports() -> Command {
    let mut c = Command::new(BIN);
    c.args(["--listen", "127.0.0.1:0", "--tcp-listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1");
    c
}

/// The relay binary on free ports with its room log at `data`.
pub fn relay_on(data: &Path) -> Command {
    let mut c = on_free_ports();
    c.arg("--data").arg(data);
    c
}

/// Starts the binary on free ports and waits for its "listening" line.
pub fn spawn(data: &Path) -> Proc {
    spawn_cmd(relay_on(data))
}

/// The binary on free ports, in memory, with `args` added.
pub fn spawn_memory(args: &[&str]) -> Proc {
    let mut c = on_free_ports();
    c.arg("--memory").args(args);
    spawn_cmd(c)
}

/// Resident memory of a process, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Starts `cmd` (the relay binary with its flags) and waits for its
/// "listening" line.
pub fn spawn_cmd(mut cmd: Command) -> Proc {
    let mut child = cmd
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the relay");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("minidote-relay listening") => break Some(line),
            Some(Ok(_)) => {}
            _ => break None,
        }
    };
    let Some(line) = listening else {
        let status = child.wait().unwrap();
        panic!("the relay exited before listening: {status}");
    };
    // Keep draining stderr so the relay never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Proc {
        http: field(&line, "http").expect("http address"),
        tcp: field(&line, "tcp").expect("tcp address"),
        child,
    }
}

/// /metrics read synchronously (inside a polling closure).
pub fn futures_executor_metric(http: SocketAddr, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    metric(&text, name)
}
