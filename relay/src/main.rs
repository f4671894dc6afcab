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
    /// HS256 secret: every Hello must carry a JWT for its room. Without it (or --auth-public-key) the relay is open, and says so in the log.
    #[arg(long, env = "MINIDOTE_RELAY_AUTH_SECRET", hide_env_values = true)]
    auth_secret: Option<String>,
    /// Ed25519 public key (SPKI PEM file) that checks EdDSA-signed JWTs, so this relay can verify tokens without holding the signing key.
    #[arg(long, env = "MINIDOTE_RELAY_AUTH_PUBLIC_KEY", value_name = "PEM")]
    auth_public_key: Option<PathBuf>,
    /// Largest frame accepted before the handshake (the Hello, whose clock names every writer of the room).
    #[arg(long, env = "MINIDOTE_RELAY_MAX_HELLO_BYTES", default_value_t = 1 << 20)]
    max_hello_bytes: usize,
    /// Most rooms held at once; joins of further rooms are refused with Error{limit}.
    #[arg(long, env = "MINIDOTE_RELAY_MAX_ROOMS", default_value_t = 100_000)]
    max_rooms: usize,
    /// Longest room name, in bytes.
    #[arg(
        long,
        env = "MINIDOTE_RELAY_MAX_ROOM_NAME_BYTES",
        default_value_t = 256
    )]
    max_room_name_bytes: usize,
    /// Browser origins allowed to open /sync, comma-separated (e.g. https://app.example). Requests without an Origin header (native clients) are always allowed. Default: any origin.
    #[arg(long, env = "MINIDOTE_RELAY_ALLOWED_ORIGINS", value_delimiter = ',')]
    allowed_origins: Option<Vec<String>>,
    /// Most bytes of transactions a room holds while their dependencies are missing (newest dropped first, fetched again later).
    #[arg(long, env = "MINIDOTE_RELAY_BUFFER_BYTES", default_value_t = 64 << 20)]
    buffer_bytes: usize,
    /// Seconds a transaction is held for its missing dependencies before it is dropped (fetched again later). 0: never.
    #[arg(long, env = "MINIDOTE_RELAY_BUFFER_HOLD_SECS", default_value_t = 300.0)]
    buffer_hold_secs: f64,
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
    /// Most bytes of frames built for all links together and not yet written to their sockets; a link's writer waits for room (slow readers cannot together hold more).
    #[arg(long, env = "MINIDOTE_RELAY_SEND_BUDGET_BYTES", default_value_t = 256 << 20)]
    send_budget_bytes: usize,
    /// Most bytes queued to one peer before it is disconnected as a slow consumer.
    #[arg(long, env = "MINIDOTE_RELAY_QUEUE_BYTES", default_value_t = 64 << 20)]
    queue_bytes: usize,
    /// Fold a room's oldest transactions into one snapshot once its log holds more than this many (0: never).
    #[arg(long, env = "MINIDOTE_RELAY_COMPACT_AFTER", default_value_t = 100_000)]
    compact_after: usize,
    /// With --data: seconds a room with no peers stays in memory before it is dropped (it is read again from the store when a peer joins). 0: rooms stay in memory.
    #[arg(long, env = "MINIDOTE_RELAY_ROOM_EVICT_SECS", default_value_t = 60.0)]
    room_evict_secs: f64,
    /// Seconds without a frame before a peer is disconnected (the relay pings every third of it).
    #[arg(long, env = "MINIDOTE_RELAY_IDLE_TIMEOUT", default_value_t = 30.0)]
    idle_timeout: f64,
}

#[derive(Args, Debug)]
struct TokenArgs {
    /// The relay's HS256 secret.
    #[arg(
        long,
        env = "MINIDOTE_RELAY_AUTH_SECRET",
        hide_env_values = true,
        required_unless_present = "auth_private_key"
    )]
    auth_secret: Option<String>,
    /// Sign EdDSA instead, with this Ed25519 private key (PKCS#8 PEM file).
    #[arg(long, value_name = "PEM", conflicts_with = "auth_secret")]
    auth_private_key: Option<PathBuf>,
    /// The room the token opens.
    #[arg(long)]
    room: String,
    /// read: receive only. write: also send its own transactions. forward: also carry other replicas' transactions. snapshot: also send snapshots.
    #[arg(long)]
    scope: Scope,
    /// Bind the token to this replica id (16 hex digits): the relay refuses a Hello that announces another.
    #[arg(long, value_parser = token::parse_replica)]
    replica: Option<minidote_core::ReplicaId>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 86_400)]
    ttl: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(t)) = cli.command {
        let expires = token::now_secs().saturating_add(t.ttl);
        let pem = match read_key(t.auth_private_key.as_deref()) {
            Ok(p) => p,
            Err(code) => return code,
        };
        let key = match (&pem, &t.auth_secret) {
            (Some(p), _) => token::SigningKey::Ed25519Pem(p),
            (None, Some(s)) => token::SigningKey::Secret(s.as_bytes()),
            (None, None) => unreachable!("clap requires one"),
        };
        return match token::mint_with(key, &t.room, t.scope, t.replica, expires) {
            Ok(tok) => {
                println!("{tok}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("minidote-relay: {e}");
                ExitCode::from(2)
            }
        };
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
    let auth_public_key = match read_key(s.auth_public_key.as_deref()) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let config = Config {
        listen: s.listen,
        tcp_listen: (!s.no_tcp).then_some(s.tcp_listen),
        data: (!s.memory).then_some(s.data),
        static_dir: s.static_dir,
        auth_secret: s.auth_secret,
        auth_public_key,
        max_hello_bytes: s.max_hello_bytes,
        max_rooms: s.max_rooms,
        max_room_name_bytes: s.max_room_name_bytes,
        buffer_bytes: s.buffer_bytes,
        buffer_hold: Duration::try_from_secs_f64(s.buffer_hold_secs)
            .ok()
            .filter(|d| !d.is_zero()),
        allowed_origins: s.allowed_origins,
        max_frame_bytes: s.max_frame_bytes,
        max_snapshot_bytes: s.max_snapshot_bytes,
        max_connections: s.max_connections,
        queue_frames: s.queue_frames,
        queue_bytes: s.queue_bytes,
        send_budget_bytes: s.send_budget_bytes,
        idle_timeout: Duration::from_secs_f64(s.idle_timeout),
        compact_after: s.compact_after,
        room_evict_after: Duration::try_from_secs_f64(s.room_evict_secs)
            .ok()
            .filter(|d| !d.is_zero()),
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

/// Reads a key file named by a flag, or says why it cannot.
fn read_key(path: Option<&std::path::Path>) -> Result<Option<Vec<u8>>, ExitCode> {
    let Some(p) = path else { return Ok(None) };
    std::fs::read(p).map(Some).map_err(|e| {
        eprintln!("minidote-relay: cannot read {}: {e}", p.display());
        ExitCode::from(2)
    })
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
