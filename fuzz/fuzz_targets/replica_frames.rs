//! Feeds arbitrary frames to a replica over a link (trusted, or speaking
//! only for itself, by the first input byte): whatever arrives, the replica
//! never panics, and it stays usable for local writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidote_core::{
    Config, CrdtType, Frame, Hello, Key, LinkId, LinkPolicy, Op, Replica, ReplicaId, Update,
    VectorClock,
};

fuzz_target!(|data: &[u8]| {
    let mut r = Replica::new(
        ReplicaId(1),
        Config {
            buffer_capacity: 8,
            buffer_bytes: 4096,
            ..Config::default()
        },
    );
    let (policy, data) = match data.split_first() {
        Some((b, rest)) => (
            match b % 3 {
                0 => LinkPolicy::TRUSTED,
                1 => LinkPolicy::OWN,
                _ => LinkPolicy::READ,
            },
            rest,
        ),
        None => (LinkPolicy::TRUSTED, data),
    };
    r.link_open_with(LinkId(1), None, policy, 0);
    let hello = Frame::Hello(Hello {
        replica: ReplicaId(2),
        room: "default".into(),
        clock: VectorClock::new(),
        token: None,
    });
    r.handle_frame(LinkId(1), &hello.encode(), 0).unwrap();
    // The input is a sequence of length-prefixed frames.
    let mut rest = data;
    let mut now = 1;
    while let Some((&len, tail)) = rest.split_first() {
        let n = (len as usize).min(tail.len());
        let (frame, next) = tail.split_at(n);
        rest = next;
        now += 10;
        if r.handle_frame(LinkId(1), frame, now).is_err() {
            break;
        }
        while r.poll_transmit().is_some() {}
        while r.poll_event().is_some() {}
    }
    let k = Key::new("k", CrdtType::CounterPn, "b");
    r.update_objects(vec![Update::new(k, Op::Increment(1))], None)
        .unwrap();
    let _ = r.stats();
});
