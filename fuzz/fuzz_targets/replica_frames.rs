//! Feeds arbitrary frames to a replica over a link: whatever arrives, the
//! replica never panics, and it stays usable for local writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minidote_core::{Config, CrdtType, Frame, Hello, Key, LinkId, Op, Replica, ReplicaId, Update, VectorClock};

fuzz_target!(|data: &[u8]| {
    let mut r = Replica::new(ReplicaId(1), Config { buffer_capacity: 8, ..Config::default() });
    r.link_open(LinkId(1), None, 0);
    let hello = Frame::Hello(Hello { replica: ReplicaId(2), room: "default".into(), clock: VectorClock::new(), token: None });
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
    r.update_objects(vec![Update::new(k, Op::Increment(1))], None).unwrap();
    let _ = r.stats();
});
