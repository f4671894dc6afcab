//! The link protocol between replicas: handshake, forwarding, anti-entropy,
//! snapshot catch-up, the causal buffer, and refusal of bad peers.

mod common;

use common::{key, op};
use minidote_core::{
    Config, CrdtType, DecodeError, Event, Frame, Hello, LinkId, Op, ProtocolError, Replica,
    ReplicaId, Txn, Update, Value, VectorClock, PROTOCOL_VERSION,
};

fn cfg(room: &str) -> Config {
    Config {
        room: room.into(),
        anti_entropy_ms: 100,
        idle_timeout_ms: 1_000,
        ..Config::default()
    }
}

/// A tiny network: replicas and the links between them, pumped by hand.
struct Net {
    r: Vec<Replica>,
    /// (a, b): a's link b connects to b's link a.
    links: Vec<(usize, usize)>,
    now: u64,
}

impl Net {
    fn new(n: usize) -> Net {
        Net {
            r: (0..n)
                .map(|i| Replica::new(ReplicaId(i as u64 + 1), cfg("room")))
                .collect(),
            links: vec![],
            now: 1,
        }
    }

    fn link(&mut self, a: usize, b: usize) {
        self.links.push((a, b));
        let now = self.now;
        self.r[a].link_open(LinkId(b as u64), None, now);
        self.r[b].link_open(LinkId(a as u64), None, now);
        self.pump();
    }

    fn unlink(&mut self, a: usize, b: usize) {
        self.links.retain(|l| *l != (a, b) && *l != (b, a));
        self.r[a].link_closed(LinkId(b as u64));
        self.r[b].link_closed(LinkId(a as u64));
    }

    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.r.len() {
                while let Some(t) = self.r[i].poll_transmit() {
                    let j = t.link.0 as usize;
                    if self.links.contains(&(i, j)) || self.links.contains(&(j, i)) {
                        self.r[j]
                            .handle_frame(LinkId(i as u64), &t.frame, self.now)
                            .unwrap();
                        moved = true;
                    }
                }
                while self.r[i].poll_event().is_some() {}
            }
            if !moved {
                break;
            }
        }
    }
}

#[test]
fn linked_replicas_exchange_what_each_lacks_on_connect() {
    let mut net = Net::new(2);
    let k = key("c", CrdtType::CounterPn);
    op(&mut net.r[0], &k, Op::Increment(1));
    op(&mut net.r[1], &k, Op::Increment(2));
    net.link(0, 1);
    assert_eq!(net.r[0].value(&k), Value::Int(3));
    assert_eq!(net.r[1].value(&k), Value::Int(3));
    // New writes flow while linked.
    op(&mut net.r[1], &k, Op::Increment(4));
    net.pump();
    assert_eq!(net.r[0].value(&k), Value::Int(7));
    let st = net.r[0].stats();
    assert!(st.bytes_sent > 0 && st.bytes_received > 0);
    assert_eq!(st.peers.len(), 1);
    assert_eq!(st.peers[0].id, Some(ReplicaId(2)));
    assert_eq!(st.peers[0].lag, 0);
}

#[test]
fn a_chain_forwards_delivered_transactions_and_drops_duplicates() {
    let mut net = Net::new(3);
    net.link(0, 1);
    net.link(1, 2);
    let k = key("s", CrdtType::SetAw);
    op(&mut net.r[0], &k, Op::Add(Value::from("from-a")));
    op(&mut net.r[2], &k, Op::Add(Value::from("from-c")));
    net.pump();
    for r in &net.r {
        assert_eq!(r.value(&k), common::strs(&["from-a", "from-c"]));
    }
    // Closing the chain into a ring makes every transaction arrive twice.
    net.link(2, 0);
    op(&mut net.r[0], &k, Op::Remove(Value::from("from-c")));
    net.pump();
    for r in &net.r {
        assert_eq!(r.value(&k), common::strs(&["from-a"]));
        assert_eq!(r.clock(), net.r[0].clock());
    }
}

#[test]
fn a_partition_heals_through_anti_entropy() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let k = key("f", CrdtType::FlagEw);
    net.unlink(0, 1);
    op(&mut net.r[0], &k, Op::Enable);
    op(&mut net.r[1], &k, Op::Disable);
    net.link(0, 1);
    assert_eq!(net.r[0].value(&k), Value::Bool(true));
    assert_eq!(net.r[1].value(&k), Value::Bool(true));
}

#[test]
fn a_peer_behind_the_pruned_log_gets_a_snapshot() {
    let mut net = Net::new(2);
    let k = key("c", CrdtType::CounterPn);
    for _ in 0..5 {
        op(&mut net.r[0], &k, Op::Increment(1));
    }
    net.r[0].snapshot();
    op(&mut net.r[0], &k, Op::Increment(1));
    net.link(0, 1);
    assert_eq!(net.r[1].value(&k), Value::Int(6));
    assert_eq!(net.r[1].stats().snapshots_merged, 1);
    assert_eq!(net.r[1].clock(), net.r[0].clock());
}

#[test]
fn periodic_anti_entropy_sends_need_and_ping() {
    let mut net = Net::new(2);
    net.link(0, 1);
    let due = net.r[0].poll_timeout().unwrap();
    net.r[0].handle_timeout(due);
    let frames: Vec<String> = std::iter::from_fn(|| net.r[0].poll_transmit())
        .map(|t| Frame::decode(&t.frame).unwrap().name().to_owned())
        .collect();
    assert_eq!(frames, ["Need", "Ping"]);
}

#[test]
fn a_silent_link_is_reported_dead() {
    let mut r = Replica::new(ReplicaId(1), cfg("room"));
    r.link_open(LinkId(9), None, 0);
    r.handle_timeout(5_000);
    let ev = std::iter::from_fn(|| r.poll_event()).find(|e| matches!(e, Event::LinkFailed { .. }));
    assert!(matches!(
        ev,
        Some(Event::LinkFailed {
            link: LinkId(9),
            error: ProtocolError::IdleTimeout(_)
        })
    ));
    assert!(r.stats().peers.is_empty());
}

fn hello(room: &str, id: u64) -> Vec<u8> {
    Frame::Hello(Hello {
        replica: ReplicaId(id),
        room: room.into(),
        clock: VectorClock::new(),
        token: None,
    })
    .encode()
}

fn refused(r: &mut Replica, link: u64, frame: &[u8]) -> ProtocolError {
    let err = r.handle_frame(LinkId(link), frame, 1).unwrap_err();
    // An Error frame is queued for the peer before the link closes.
    let sent: Vec<Frame> = std::iter::from_fn(|| r.poll_transmit())
        .filter(|t| t.link == LinkId(link))
        .map(|t| Frame::decode(&t.frame).unwrap())
        .collect();
    assert!(matches!(sent.last(), Some(Frame::Error { .. })), "{sent:?}");
    err
}

#[test]
fn bad_peers_are_refused_with_an_error_frame_and_other_links_carry_on() {
    let mut r = Replica::new(ReplicaId(1), cfg("room"));
    for l in 1..=6 {
        r.link_open(LinkId(l), None, 0);
    }
    while r.poll_transmit().is_some() {}
    assert!(matches!(
        refused(&mut r, 1, &hello("other", 5)),
        ProtocolError::RoomMismatch { .. }
    ));
    let mut v2 = hello("room", 5);
    v2[0] = PROTOCOL_VERSION + 1;
    assert!(matches!(
        refused(&mut r, 2, &v2),
        ProtocolError::Decode(DecodeError::UnsupportedVersion { found, .. })
            if found == PROTOCOL_VERSION + 1
    ));
    assert!(matches!(
        refused(&mut r, 3, b"\x01\xffgarbage"),
        ProtocolError::Decode(_)
    ));
    assert!(matches!(
        refused(&mut r, 4, &Frame::Need(VectorClock::new()).encode()),
        ProtocolError::HelloExpected("Need")
    ));
    assert!(matches!(
        refused(&mut r, 5, &hello("room", 1)),
        ProtocolError::SameReplicaId(_)
    ));
    // The good link still works.
    r.handle_frame(LinkId(6), &hello("room", 7), 1).unwrap();
    let k = key("c", CrdtType::CounterPn);
    let txn = Txn {
        origin: ReplicaId(7),
        seq: 1,
        deps: VectorClock::new(),
        effects: vec![(
            k.clone(),
            minidote_core::Effect::CounterPn(minidote_core::effect::CounterPn::delta(5)),
        )],
    };
    r.handle_frame(
        LinkId(6),
        &Frame::Txns(vec![txn.encode().into()]).encode(),
        2,
    )
    .unwrap();
    assert_eq!(r.value(&k), Value::Int(5));
    assert_eq!(r.stats().peers.len(), 1);
}

#[test]
fn a_bad_transaction_ends_the_link_and_is_never_applied() {
    let mut r = Replica::new(ReplicaId(1), cfg("room"));
    r.link_open(LinkId(1), None, 0);
    r.handle_frame(LinkId(1), &hello("room", 2), 0).unwrap();
    let k = key("c", CrdtType::CounterPn);
    let good = Txn {
        origin: ReplicaId(2),
        seq: 1,
        deps: VectorClock::new(),
        effects: vec![(
            k.clone(),
            minidote_core::Effect::CounterPn(minidote_core::effect::CounterPn::delta(5)),
        )],
    }
    .encode();
    // Same header shape, but an effect of an unknown type tag.
    let mut bad = Txn {
        origin: ReplicaId(2),
        seq: 2,
        deps: VectorClock::new(),
        effects: vec![(
            k.clone(),
            minidote_core::Effect::CounterPn(minidote_core::effect::CounterPn::delta(5)),
        )],
    }
    .encode();
    bad[12] = 42; // the key's type tag: origin 8, seq, deps, len, count
    let frame = Frame::Txns(vec![good.into(), bad.into()]).encode();
    assert!(r.handle_frame(LinkId(1), &frame, 1).is_err());
    // The valid transaction before it was applied whole; the bad one not.
    assert_eq!(r.value(&k), Value::Int(5));
    assert_eq!(r.clock().get(ReplicaId(2)), 1);
    assert!(r.stats().peers.is_empty(), "the link was dropped");
}

fn txn(origin: u64, seq: u64, deps: &[(u64, u64)], n: i64) -> minidote_core::TxnBytes {
    Txn {
        origin: ReplicaId(origin),
        seq,
        deps: deps.iter().map(|(r, s)| (ReplicaId(*r), *s)).collect(),
        effects: vec![(
            key("c", CrdtType::CounterPn),
            minidote_core::Effect::CounterPn(minidote_core::effect::CounterPn::delta(n)),
        )],
    }
    .encode()
    .into()
}

#[test]
fn out_of_order_transactions_wait_in_the_buffer_until_their_dependencies_arrive() {
    let mut r = Replica::new(ReplicaId(1), Config::default());
    let st = r
        .handle_txns(None, vec![txn(2, 2, &[], 10), txn(3, 1, &[(2, 2)], 100)])
        .unwrap();
    assert_eq!((st.delivered, st.buffered), (0, 2));
    assert_eq!(
        st.missing,
        vec![minidote_core::MissingRange {
            origin: ReplicaId(2),
            from: 1,
            to: 2
        }]
    );
    assert_eq!(r.value(&key("c", CrdtType::CounterPn)), Value::Int(0));
    let st = r
        .handle_txns(None, vec![txn(2, 1, &[], 1), txn(2, 1, &[], 1)])
        .unwrap();
    assert_eq!((st.delivered, st.duplicates), (3, 1));
    assert_eq!(r.value(&key("c", CrdtType::CounterPn)), Value::Int(111));
    assert_eq!(r.stats().buffered, 0);
}

#[test]
fn a_full_buffer_drops_the_newest_and_reports_the_gap() {
    let mut r = Replica::new(
        ReplicaId(1),
        Config {
            buffer_capacity: 2,
            ..Config::default()
        },
    );
    let st = r
        .handle_txns(
            None,
            vec![txn(2, 3, &[], 1), txn(2, 4, &[], 1), txn(2, 5, &[], 1)],
        )
        .unwrap();
    assert_eq!((st.buffered, st.dropped), (2, 1));
    // A lower seq evicts the highest held one: it unblocks delivery sooner.
    let st = r.handle_txns(None, vec![txn(2, 2, &[], 1)]).unwrap();
    assert_eq!((st.buffered, st.dropped), (1, 1));
    assert_eq!(r.missing()[0].from, 1);
    r.handle_txns(None, vec![txn(2, 1, &[], 1)]).unwrap();
    assert_eq!(
        r.clock().get(ReplicaId(2)),
        3,
        "seq 4 was evicted and must be fetched again"
    );
    assert_eq!(r.stats().buffer_dropped, 2);
}

#[test]
fn a_gap_in_a_link_triggers_a_need_request() {
    let mut r = Replica::new(ReplicaId(1), cfg("room"));
    r.link_open(LinkId(1), None, 0);
    r.handle_frame(LinkId(1), &hello("room", 2), 0).unwrap();
    while r.poll_transmit().is_some() {}
    r.handle_frame(
        LinkId(1),
        &Frame::Txns(vec![txn(2, 2, &[], 1)]).encode(),
        50,
    )
    .unwrap();
    let t = r.poll_transmit().expect("need sent");
    assert!(matches!(Frame::decode(&t.frame).unwrap(), Frame::Need(_)));
}

#[test]
fn large_batches_are_split_at_the_frame_limit() {
    let mut a = Replica::new(
        ReplicaId(1),
        Config {
            max_frame_bytes: 100,
            ..cfg("room")
        },
    );
    let k = key("c", CrdtType::CounterPn);
    for _ in 0..20 {
        a.update_objects(vec![Update::new(k.clone(), Op::Increment(1))], None)
            .unwrap();
    }
    a.link_open(LinkId(1), None, 0);
    a.poll_transmit();
    a.handle_frame(LinkId(1), &hello("room", 2), 0).unwrap();
    let frames: Vec<Vec<u8>> = std::iter::from_fn(|| a.poll_transmit())
        .map(|t| t.frame)
        .collect();
    assert!(frames.len() > 1);
    assert!(frames.iter().all(|f| f.len() <= 100));
    let mut b = Replica::new(ReplicaId(2), Config::default());
    for f in frames {
        let Frame::Txns(t) = Frame::decode(&f).unwrap() else {
            panic!()
        };
        b.handle_txns(None, t).unwrap();
    }
    assert_eq!(b.value(&k), Value::Int(20));
}

#[test]
fn a_peer_cannot_change_its_id_on_an_open_link() {
    let mut r = Replica::new(ReplicaId(1), cfg("room"));
    r.link_open(LinkId(1), None, 0);
    r.handle_frame(LinkId(1), &hello("room", 2), 0).unwrap();
    r.handle_frame(LinkId(1), &hello("room", 2), 1).unwrap();
    assert!(matches!(
        r.handle_frame(LinkId(1), &hello("room", 3), 2),
        Err(ProtocolError::PeerChanged { .. })
    ));
}
