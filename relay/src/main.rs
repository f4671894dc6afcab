//! The `minidote-relay` command: serve, or mint a token.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use minidote_relay::token::{self, Scope};
use minidote_relay::Config;

/// Routes Minidote frames between browser (WebSocket) and native (TCP)
/// peers, and keeps a durable per-room log so offline peers catch up.
///
/// Every flag can also be set through the environment variable named in
/// brackets. Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=debug) for more.
#[derive(Parser, Debug)]
#[command(
    name = "minidote-relay",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a token for a room, signed with the relay's secret.
    Token(TokenArgs),
}

#[derive(Args, Debug)]
struct Serve {
    /// HTTP address: WebSocket at /sync, /healthz, /metrics, and static files.
    #[arg(long, env = "MINIDOTE_RELAY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Raw TCP address for native peers (4-byte big-endian length, then a frame).
    #[arg(
        long,
        env = "MINIDOTE_RELAY_TCP_LISTEN",
        default_value = "127.0.0.1:7070"
    )]
    tcp_listen: String,
    /// Do not listen for raw TCP peers.
    #[arg(long, env = "MINIDOTE_RELAY_NO_TCP", conflicts_with = "tcp_listen")]
    no_tcp: bool,
    /// SQLite file of the durable room log (created if missing).
    #[arg(long, env = "MINIDOTE_RELAY_DATA", default_value = "minidote-relay.db")]
    data: PathBuf,
    /// Keep room logs in memory only; they are lost when the relay stops.
    #[arg(long, env = "MINIDOTE_RELAY_MEMORY")]
    memory: bool,
    /// Serve this folder (the web demo) at /.
    #[arg(long = "static", env = "MINIDOTE_RELAY_STATIC", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// HMAC secret: every Hello must carry a token for its room. Without it the relay is open (and says so in the log).
    #[arg(long, env = "MINIDOTE_RELAY_AUTH_SECRET", hide_env_values = true)]
    auth_secret: Option<String>,
    /// Largest frame accepted or sent, in bytes. Larger frames close the link with Error{too large}.
    #[arg(long, env = "MINIDOTE_RELAY_MAX_FRAME_BYTES", default_value_t = 1 << 20)]
    max_frame_bytes: usize,
    /// Largest Snapshot frame accepted, in bytes (a pruned peer's whole state; other frames keep --max-frame-bytes).
    #[arg(long, env = "MINIDOTE_RELAY_MAX_SNAPSHOT_BYTES", default_value_t = 64 << 20)]
    max_snapshot_bytes: usize,
    /// Most connections open at once; more are refused with Error{overloaded}.
    #[arg(long, env = "MINIDOTE_RELAY_MAX_CONNECTIONS", default_value_t = 10_000)]
    max_connections: usize,
    /// Most items queued to one peer; a peer that falls further behind is disconnected as a slow consumer.
    #[arg(long, env = "MINIDOTE_RELAY_QUEUE_FRAMES", default_value_t = 16_384)]
    queue_frames: usize,
    /// Most bytes queued to one peer before it is disconnected as a slow consumer.
    #[arg(long, env = "MINIDOTE_RELAY_QUEUE_BYTES", default_value_t = 64 << 20)]
    queue_bytes: usize,
    /// Fold a room's oldest transactions into one snapshot once its log holds more than this many (0: never).
    #[arg(long, env = "MINIDOTE_RELAY_COMPACT_AFTER", default_value_t = 100_000)]
    compact_after: usize,
    /// Seconds without a frame before a peer is disconnected (the relay pings every third of it).
    #[arg(long, env = "MINIDOTE_RELAY_IDLE_TIMEOUT", default_value_t = 30.0)]
    idle_timeout: f64,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The relay's HMAC secret.
    #[arg(long, env = "MINIDOTE_RELAY_AUTH_SECRET", hide_env_values = true)]
    auth_secret: String,
    /// The room the token opens.
    #[arg(long)]
    room: String,
    /// read: receive only. write: receive and send.
    #[arg(long)]
    scope: Scope,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(t)) = cli.command {
        let expires = token::now_secs().saturating_add(t.ttl);
        println!(
            "{}",
            token::mint(t.auth_secret.as_bytes(), &t.room, t.scope, expires)
        );
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let s = cli.serve;
    if !(s.idle_timeout.is_finite() && s.idle_timeout >= 0.1) {
        eprintln!("minidote-relay: --idle-timeout must be at least 0.1 seconds");
        return ExitCode::from(2);
    }
    let config = Config {
        listen: s.listen,
        tcp_listen: (!s.no_tcp).then_some(s.tcp_listen),
        data: (!s.memory).then_some(s.data),
        static_dir: s.static_dir,
        auth_secret: s.auth_secret,
        max_frame_bytes: s.max_frame_bytes,
        max_snapshot_bytes: s.max_snapshot_bytes,
        max_connections: s.max_connections,
        queue_frames: s.queue_frames,
        queue_bytes: s.queue_bytes,
        idle_timeout: Duration::from_secs_f64(s.idle_timeout),
        compact_after: s.compact_after,
        ..Config::default()
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("minidote-relay")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("minidote-relay: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(minidote_relay::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("minidote-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
