//! Counters and gauges, rendered as Prometheus text at `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use minidote_core::wire::error_code;

/// Every error code the relay sends, for the `errors_sent` counter.
const CODES: [(u16, &str); 15] = [
    (error_code::MALFORMED, "malformed"),
    (error_code::VERSION, "version"),
    (error_code::ROOM_MISMATCH, "room_mismatch"),
    (error_code::UNAUTHORIZED, "unauthorized"),
    (error_code::READ_ONLY, "read_only"),
    (error_code::TOO_LARGE, "too_large"),
    (error_code::SLOW_CONSUMER, "slow_consumer"),
    (error_code::HELLO_EXPECTED, "hello_expected"),
    (error_code::OVERLOADED, "overloaded"),
    (error_code::DUPLICATE_ID, "duplicate_id"),
    (error_code::IDLE, "idle"),
    (error_code::FORBIDDEN, "forbidden"),
    (error_code::INTEGRITY, "integrity"),
    (error_code::EXPIRED, "expired"),
    (error_code::LIMIT, "limit"),
];

macro_rules! metrics {
    ($($(#[doc = $doc:literal])* $name:ident: $kind:literal,)*) => {
        /// The relay's counters. All are monotonic except the gauges.
        #[derive(Debug, Default)]
        pub struct Metrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
            errors: [AtomicU64; CODES.len()],
        }

        impl Metrics {
            /// Prometheus text exposition format, version 0.0.4.
            pub fn render(&self) -> String {
                let mut out = String::with_capacity(4096);
                $(
                    let help = concat!($($doc),*).trim();
                    let name = concat!("minidote_relay_", stringify!($name));
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} {}", $kind);
                    let _ = writeln!(out, "{name} {}", self.$name.load(Relaxed));
                )*
                let name = "minidote_relay_errors_sent_total";
                let _ = writeln!(out, "# HELP {name} Error frames sent to peers, by reason.");
                let _ = writeln!(out, "# TYPE {name} counter");
                for ((_, reason), n) in CODES.iter().zip(&self.errors) {
                    let _ = writeln!(out, "{name}{{reason=\"{reason}\"}} {}", n.load(Relaxed));
                }
                out
            }
        }
    };
}

metrics! {
    /// Connections accepted (WebSocket and TCP).
    connections_total: "counter",
    /// Connections open now.
    connections_active: "gauge",
    /// Connections refused because --max-connections was reached.
    connections_refused_total: "counter",
    /// Peers that completed a Hello.
    peers_joined_total: "counter",
    /// Rooms held in memory.
    rooms: "gauge",
    /// Frames received.
    frames_received_total: "counter",
    /// Bytes received in frames.
    bytes_received_total: "counter",
    /// Frames sent.
    frames_sent_total: "counter",
    /// Bytes sent in frames.
    bytes_sent_total: "counter",
    /// Transactions received from peers (before deduplication).
    txns_received_total: "counter",
    /// New transactions added to a room log.
    txns_stored_total: "counter",
    /// Transactions dropped as duplicates by (origin, seq).
    txns_duplicate_total: "counter",
    /// Transactions held because their dependencies had not arrived.
    txns_buffered_total: "counter",
    /// Transactions refused from read-scope peers.
    txns_refused_total: "counter",
    /// Transactions queued to peers: live forwarding and catch-up.
    txns_delivered_total: "counter",
    /// Snapshot frames stored as a room base.
    snapshots_stored_total: "counter",
    /// Room logs folded into a snapshot base.
    compactions_total: "counter",
    /// Snapshot frames sent to peers in catch-up.
    snapshots_sent_total: "counter",
    /// Peers disconnected because their outgoing queue was full.
    slow_consumers_total: "counter",
    /// Handshakes refused for a missing, forged, expired or wrong-room token.
    auth_failures_total: "counter",
    /// SQLite transactions committed by the store.
    storage_commits_total: "counter",
    /// Room-log records written to SQLite.
    storage_records_total: "counter",
    /// SQLite commit attempts that failed (the group is retried, in order).
    storage_errors_total: "counter",
    /// Transactions refused because their origin was not the link's own
    /// replica id and the token lacked the forward scope.
    txns_forbidden_total: "counter",
    /// Snapshot frames refused: the token lacked the snapshot scope.
    snapshots_refused_total: "counter",
    /// Second copies of a transaction with other bytes (the first is kept,
    /// the sender's link closed).
    integrity_conflicts_total: "counter",
    /// Held transactions dropped because a room's causal buffer was full
    /// (--buffer-bytes, or 100,000 transactions).
    buffer_dropped_total: "counter",
    /// Held transactions dropped after waiting --buffer-hold-secs for their
    /// dependencies (fetched again when they can be delivered).
    buffer_expired_total: "counter",
    /// Times a link's writer waited for the relay-wide send budget
    /// (--send-budget-bytes): frames in flight to slow readers hold it.
    send_budget_waits_total: "counter",
    /// Links closed because their token expired while they were open.
    tokens_expired_total: "counter",
    /// Joins refused by --max-rooms or --max-room-name-bytes.
    rooms_refused_total: "counter",
    /// Rooms with no peers evicted from memory (--room-evict-secs; read
    /// again from the store when a peer joins).
    rooms_evicted_total: "counter",
    /// Rooms read from the store because a peer joined one not in memory.
    rooms_loaded_total: "counter",
    /// Links closed as slow consumers during catch-up (no progress for the
    /// idle timeout).
    catch_up_stalls_total: "counter",
    /// Group commits reported back to the rooms (forwarding follows them).
    commits_released_total: "counter",
    /// WebSocket upgrades refused because their Origin is not in
    /// --allowed-origins.
    origins_refused_total: "counter",
}

impl Metrics {
    /// Counts an Error frame sent with `code`.
    pub fn error_sent(&self, code: u16) {
        if let Some(i) = CODES.iter().position(|(c, _)| *c == code) {
            self.errors[i].fetch_add(1, Relaxed);
        }
    }

    /// Adds `n` to a counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_with_help_and_type() {
        let m = Metrics::default();
        Metrics::add(&m.txns_stored_total, 3);
        m.error_sent(error_code::SLOW_CONSUMER);
        let text = m.render();
        assert!(text.contains("# TYPE minidote_relay_txns_stored_total counter\n"));
        assert!(text.contains("\nminidote_relay_txns_stored_total 3\n"));
        assert!(text.contains("minidote_relay_errors_sent_total{reason=\"slow_consumer\"} 1\n"));
        assert!(text.contains("# HELP minidote_relay_rooms Rooms held in memory.\n"));
    }
}
