//! `minidote-wasm`: Minidote for browsers and Node, through wasm-bindgen.
//!
//! This crate exports two low-level classes, `Clock` and `Core`; the npm
//! package's `index.js` wraps `Core` into the public `Replica` (API.md) and
//! turns thrown `{code, message}` errors into `MinidoteError`s. All IO is
//! here and event-driven, with no threads: IndexedDB (through
//! indexed_db_futures) for records, `web-sys` WebSocket for links, and
//! `setTimeout` for the core's timers. The core decides everything else.

#![forbid(unsafe_code)]

mod batch;
mod convert;
mod idb;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use minidote_core::{
    Config, DeltaOp, Event, Key, LinkId, ReadOutcome, Record, Replica, ReplicaId, Ticket,
    UpdateOutcome, VectorClock,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use crate::idb::Idb;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
    #[wasm_bindgen(js_namespace = console, js_name = warn)]
    fn console_warn(s: &str);
}

/// A thrown error: an `Error` with a `code` ("invalid_operation",
/// "clock_timeout", "storage" or "protocol"), which index.js turns into a
/// `MinidoteError`.
fn js_err(code: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    let _ = Reflect::set(&e, &"code".into(), &code.into());
    e.into()
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

fn hex(id: ReplicaId) -> String {
    id.to_string()
}

// ---------------------------------------------------------------- Clock

// The JS `Clock` (js/index.js) is a plain object over the clock's bytes,
// with no wasm memory of its own (so no finaliser, and nothing to free):
// these functions do its few operations on the bytes.

fn clock_of(bytes: &[u8]) -> Result<VectorClock, JsValue> {
    VectorClock::from_bytes(bytes)
        .map_err(|e| js_err("invalid_operation", &format!("not a clock: {e}")))
}

/// A clock as the bytes the JS `Clock` wraps.
fn clock_js(c: &VectorClock) -> JsValue {
    Uint8Array::from(&c.to_bytes()[..]).into()
}

/// Throws unless `bytes` are a clock's `toBytes()` (from any binding).
#[wasm_bindgen(js_name = clockCheck)]
pub fn clock_check(bytes: &[u8]) -> Result<(), JsValue> {
    clock_of(bytes).map(|_| ())
}

/// Whether everything in `a` is in `b`.
#[wasm_bindgen(js_name = clockLeq)]
pub fn clock_leq(a: &[u8], b: &[u8]) -> Result<bool, JsValue> {
    Ok(clock_of(a)?.leq(&clock_of(b)?))
}

/// Whether neither clock is `leq` the other.
#[wasm_bindgen(js_name = clockConcurrent)]
pub fn clock_concurrent(a: &[u8], b: &[u8]) -> Result<bool, JsValue> {
    Ok(clock_of(a)?.concurrent(&clock_of(b)?))
}

/// The pointwise maximum.
#[wasm_bindgen(js_name = clockMerge)]
pub fn clock_merge(a: &[u8], b: &[u8]) -> Result<Vec<u8>, JsValue> {
    Ok(clock_of(a)?.merged(&clock_of(b)?).to_bytes())
}

/// `{replicaId: seq}`.
#[wasm_bindgen(js_name = clockJson)]
pub fn clock_json(bytes: &[u8]) -> Result<JsValue, JsValue> {
    let o = Object::new();
    for (r, s) in clock_of(bytes)?.iter() {
        let _ = Reflect::set(&o, &hex(r).into(), &(s as f64).into());
    }
    Ok(o.into())
}

/// `Clock{replica: seq, ...}`.
#[wasm_bindgen(js_name = clockString)]
pub fn clock_string(bytes: &[u8]) -> Result<String, JsValue> {
    Ok(format!("Clock{:?}", clock_of(bytes)?))
}

fn clock_arg(bytes: Option<Vec<u8>>) -> Result<Option<VectorClock>, JsValue> {
    bytes
        .map(|b| {
            VectorClock::from_bytes(&b)
                .map_err(|e| js_err("invalid_operation", &format!("not a clock: {e}")))
        })
        .transpose()
}

// ---------------------------------------------------------------- Node

struct Waiter {
    resolve: Function,
    reject: Function,
    /// The timeout's id and callback; the callback is dropped with the
    /// waiter (a `once_into_js` callback would leak when the timer is
    /// cleared).
    timer: Option<(JsValue, Closure<dyn FnMut()>)>,
}

/// One WebSocket link with reconnects.
struct Link {
    url: String,
    token: Option<String>,
    ws: Option<WebSocket>,
    id: u64,
    attempts: u32,
    /// When the current link's handshake completed (ms since the epoch).
    up_since: Option<f64>,
    wanted: bool,
    reconnect: Option<(JsValue, Closure<dyn FnMut()>)>,
    // Kept alive while the socket is.
    _handlers: Vec<Closure<dyn FnMut(JsValue)>>,
}

/// Re-issues a restored replica's writes ([`Replica::repair`]) from the
/// newest stored snapshot, once nothing is waiting to be stored.
async fn repair(me: Weak<RefCell<Node>>) {
    // Until it is done or cannot be: the replica stays offline meanwhile
    // (`stats().repairPending`).
    let mut pause = 50.0;
    loop {
        let Some(n) = me.upgrade() else { return };
        let idb = n.borrow().idb.clone();
        let Some(idb) = idb else { return };
        let idle = |n: &Node| !n.writing && n.unsaved.is_empty();
        if idle(&n.borrow()) {
            let base = idb.latest_snapshot().await;
            let mut b = n.borrow_mut();
            if idle(&b) {
                let result = match base {
                    Ok(base) => b.replica.repair(base.as_deref()).map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match result {
                    Ok(done) => {
                        console_warn(&format!(
                            "minidote: re-issued {} writes of replica {} (from seq {}) as replica {}",
                            done.reissued, done.old_id, done.from_seq, done.new_id
                        ));
                        b.drain();
                        return;
                    }
                    Err(e)
                        if e == minidote_core::RepairError::NotDurable.to_string()
                            || e == minidote_core::RepairError::BaseMismatch.to_string() => {}
                    Err(e) if e == minidote_core::RepairError::NotNeeded.to_string() => return,
                    Err(e) => {
                        console_warn(&format!("minidote: cannot repair: {e}"));
                        b.last_protocol_error = Some(format!("cannot repair: {e}"));
                        return;
                    }
                }
            }
        }
        drop(n);
        let wait = js_sys::Promise::new(&mut |resolve, _| {
            set_timeout(&resolve, pause);
        });
        pause = (pause * 2.0).min(5_000.0);
        let _ = wasm_bindgen_futures::JsFuture::from(wait).await;
    }
}

struct Node {
    replica: Replica,
    start: f64,
    waiters: HashMap<Ticket, Waiter>,
    subscribers: Vec<(u32, Function)>,
    next_sub: u32,
    /// Deltas of the transaction whose `Changed` event comes next.
    deltas: Vec<(Key, Vec<DeltaOp>)>,
    idb: Option<Rc<Idb>>,
    unsaved: Vec<Record>,
    writing: bool,
    storage_error: Option<String>,
    commits: u64,
    link: Option<Link>,
    next_link: u64,
    timer: Option<(f64, JsValue)>,
    timer_cb: Option<Closure<dyn FnMut()>>,
    closed: bool,
    protocol_errors: u64,
    last_protocol_error: Option<String>,
    me: Weak<RefCell<Node>>,
    flushed: Vec<Function>,
    /// `onLocalUpdate` callbacks, by id.
    local_subs: Vec<(u32, Function)>,
    /// Pending `flush` calls: id, resolve, and their timer.
    flushes: Vec<Flush>,
    next_flush: u64,
    /// Keys of recent calls, by content (batch.rs).
    keys: batch::KeyCache,
    /// Callbacks owed, in the order the core reported their causes
    /// (see [`deliver`]).
    outbox: std::collections::VecDeque<Delivery>,
    /// [`deliver`] is running (a callback that calls back in adds to the
    /// queue; the running loop delivers it after the current one).
    delivering: bool,
    /// A microtask will run [`deliver`] (for causes no entry point
    /// delivers itself, such as a store commit).
    deliver_scheduled: bool,
    /// The `origin` of the `updateObjects` call being applied, handed to
    /// subscribers with its change.
    origin: JsValue,
    /// `onProgress` callbacks, by id.
    progress_subs: Vec<(u32, Function)>,
}

/// A callback owed to the app.
enum Delivery {
    /// Subscribers: `(changedKeys, deltas, info)`.
    Change(Array, js_sys::Map, Object),
    /// `onLocalUpdate` callbacks: a frame.
    Local(Uint8Array),
    /// `onProgress` callbacks: `{received, expected, bytes, done}`.
    Progress(Object),
}

/// Calls what the outbox holds, in order, outside any borrow of the node,
/// so a callback may call back into the replica. Every entry point that
/// can change the replica calls it after releasing its borrow, so
/// subscribers see a change before the call that made it returns (an
/// editor binding relies on it: its document and the replica's move in
/// lockstep). Causes with no entry point (a store commit) are delivered
/// from a microtask.
fn deliver(node: &Rc<RefCell<Node>>) {
    {
        let Ok(mut n) = node.try_borrow_mut() else {
            return;
        };
        if n.delivering {
            return;
        }
        n.delivering = true;
    }
    loop {
        let next = {
            let Ok(mut n) = node.try_borrow_mut() else {
                break;
            };
            match n.outbox.pop_front() {
                None => None,
                Some(d) => {
                    let ids: Vec<u32> = n.callbacks(&d).iter().map(|(i, _)| *i).collect();
                    Some((d, ids))
                }
            }
        };
        let Some((d, ids)) = next else { break };
        for id in ids {
            // Looked up again before each call: a callback may have
            // removed a later one.
            let f = match node.try_borrow() {
                Ok(n) => n
                    .callbacks(&d)
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, f)| f.clone()),
                Err(_) => None,
            };
            let Some(f) = f else { continue };
            let out = match &d {
                Delivery::Change(keys, deltas, info) => f.call3(&JsValue::NULL, keys, deltas, info),
                Delivery::Local(frame) => f.call1(&JsValue::NULL, frame),
                Delivery::Progress(p) => f.call1(&JsValue::NULL, p),
            };
            if let Err(e) = out {
                console_warn(&format!("minidote: a callback threw: {e:?}"));
            }
        }
    }
    if let Ok(mut n) = node.try_borrow_mut() {
        n.delivering = false;
    }
}

/// A replica freed without `close()` (its `Core` collected or `free()`d)
/// settles what still waits on it: a pending `flush` resolves false and a
/// pending call rejects, instead of never settling (their timers would
/// otherwise fire into dropped callbacks).
impl Drop for Node {
    fn drop(&mut self) {
        for f in std::mem::take(&mut self.flushes) {
            if let Some((id, _)) = &f.timer {
                clear_timeout(id);
            }
            let _ = f.resolve.call1(&JsValue::NULL, &JsValue::FALSE);
        }
        for (_, w) in std::mem::take(&mut self.waiters) {
            if let Some((id, _)) = &w.timer {
                clear_timeout(id);
            }
            let _ = w
                .reject
                .call1(&JsValue::NULL, &js_err("storage", "the replica was freed"));
        }
        if let Some((_, id)) = self.timer.take() {
            clear_timeout(&id);
        }
    }
}

/// A `flush()` waiting for peers to report this replica's writes stored.
struct Flush {
    id: u64,
    resolve: Function,
    timer: Option<(JsValue, Closure<dyn FnMut()>)>,
}

impl Node {
    fn now(&self) -> u64 {
        (now_ms() - self.start).max(0.0) as u64
    }

    /// Carries out everything the replica asked for.
    fn drain(&mut self) {
        while let Some(r) = self.replica.poll_record() {
            self.unsaved.push(r);
        }
        // After a storage error nothing more is written: a later batch
        // must not report the lost one persisted.
        if !self.unsaved.is_empty()
            && !self.writing
            && self.idb.is_some()
            && self.storage_error.is_none()
        {
            self.start_write();
        }
        let mut failed_links = Vec::new();
        while let Some(t) = self.replica.poll_transmit() {
            if let Some(l) = &self.link {
                if LinkId(l.id) == t.link {
                    if let Some(ws) = l.ws.as_ref().filter(|w| w.ready_state() == WebSocket::OPEN) {
                        let _ = ws.send_with_u8_array(&t.frame);
                    }
                }
            }
        }
        while let Some(e) = self.replica.poll_event() {
            match e {
                Event::Committed { ticket, clock } => {
                    if let Some(w) = self.take_waiter(ticket) {
                        let _ = w.resolve.call1(&JsValue::NULL, &clock_js(&clock));
                    }
                }
                Event::UpdateFailed { ticket, error } => {
                    if let Some(w) = self.take_waiter(ticket) {
                        let _ = w.reject.call1(
                            &JsValue::NULL,
                            &js_err("invalid_operation", &error.to_string()),
                        );
                    }
                }
                Event::ReadReady {
                    ticket,
                    values,
                    clock,
                } => {
                    if let Some(w) = self.take_waiter(ticket) {
                        let pair = Array::of2(
                            &Uint8Array::from(&batch::put_values(&values)[..]),
                            &clock_js(&clock),
                        );
                        let _ = w.resolve.call1(&JsValue::NULL, &pair);
                    }
                }
                Event::Delta { key, delta } => {
                    if !self.subscribers.is_empty() {
                        self.deltas.push((key, delta));
                    }
                }
                Event::Changed(keys) => {
                    let deltas = std::mem::take(&mut self.deltas);
                    if !self.subscribers.is_empty() {
                        let arr: Array = keys.iter().map(convert::from_key).collect();
                        // Keyed by the key's JSON, as API.md says.
                        let map = js_sys::Map::new();
                        for (k, d) in &deltas {
                            let json = js_sys::JSON::stringify(&convert::from_key(k))
                                .map(String::from)
                                .unwrap_or_default();
                            map.set(&json.into(), &convert::from_delta(d));
                        }
                        let info = Object::new();
                        let _ = Reflect::set(&info, &"origin".into(), &self.origin);
                        self.post(Delivery::Change(arr, map, info));
                    }
                }
                Event::RepairNeeded { conflict } => {
                    let msg = format!(
                        "a peer holds this replica's transaction {conflict:?} with other bytes: it was restored from an older copy of its database; re-issuing its writes from there under a new replica id"
                    );
                    console_warn(&format!("minidote: {msg}"));
                    self.last_protocol_error = Some(msg);
                    wasm_bindgen_futures::spawn_local(repair(self.me.clone()));
                }
                Event::LocalUpdate(frame) => {
                    if !self.local_subs.is_empty() {
                        self.post(Delivery::Local(Uint8Array::from(&frame[..])));
                    }
                }
                Event::Progress(p) => {
                    if !self.progress_subs.is_empty() {
                        let o = Object::new();
                        let set = |k: &str, v: JsValue| {
                            let _ = Reflect::set(&o, &k.into(), &v);
                        };
                        set("received", (p.received as f64).into());
                        set("expected", (p.expected as f64).into());
                        set("bytes", (p.bytes as f64).into());
                        set("done", p.done.into());
                        self.post(Delivery::Progress(o));
                    }
                }
                Event::LinkUp { .. } => {
                    if let Some(l) = &mut self.link {
                        l.up_since = Some(js_sys::Date::now());
                    }
                }
                Event::LinkFailed { link, error } => {
                    self.protocol_errors += 1;
                    let mut msg = error.to_string();
                    // A refusal that retrying cannot fix (token, version,
                    // room, shared id) ends the reconnect loop; `connect`
                    // starts it again.
                    if error.is_permanent() {
                        if let Some(l) = self.link.as_mut().filter(|l| LinkId(l.id) == link) {
                            l.wanted = false;
                            msg += "; refused for good, not reconnecting";
                        }
                    }
                    console_warn(&format!("minidote: link failed: {msg}"));
                    self.last_protocol_error = Some(msg);
                    failed_links.push(link);
                }
            }
        }
        for link in failed_links {
            // The Error frame was sent above; now close, and reconnect later.
            if let Some(l) = &self.link {
                if LinkId(l.id) == link {
                    if let Some(ws) = &l.ws {
                        let _ = ws.close();
                    }
                }
            }
        }
        if !self.flushes.is_empty() && self.delivered() {
            for f in std::mem::take(&mut self.flushes) {
                if let Some((id, _)) = &f.timer {
                    clear_timeout(id);
                }
                let _ = f.resolve.call1(&JsValue::NULL, &JsValue::TRUE);
                wasm_bindgen_futures::spawn_local(async move { drop(f) });
            }
        }
        self.arm_timer();
    }

    /// The callbacks a delivery goes to.
    fn callbacks(&self, d: &Delivery) -> &[(u32, Function)] {
        match d {
            Delivery::Change(..) => &self.subscribers,
            Delivery::Local(_) => &self.local_subs,
            Delivery::Progress(_) => &self.progress_subs,
        }
    }

    /// Queues a callback; a microtask delivers it if the entry point that
    /// caused it does not.
    fn post(&mut self, d: Delivery) {
        self.outbox.push_back(d);
        if !self.deliver_scheduled {
            self.deliver_scheduled = true;
            let me = self.me.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let Some(n) = me.upgrade() else { return };
                if let Ok(mut g) = n.try_borrow_mut() {
                    g.deliver_scheduled = false;
                }
                deliver(&n);
            });
        }
    }

    /// Whether the relay reported every own write stored (true with no
    /// link only when there is nothing to deliver).
    fn delivered(&self) -> bool {
        let own = self.replica.clock().get(self.replica.id());
        match &self.link {
            None => own == 0,
            Some(l) => {
                self.replica.link_established(LinkId(l.id)) && self.replica.stored_everywhere()
            }
        }
    }

    /// Resolves with whether every own write was reported stored within
    /// `timeout_ms`.
    fn flush(&mut self, timeout_ms: f64) -> Promise {
        // setTimeout takes at most 2^31 - 1 ms (else it fires at once).
        let timeout_ms = if timeout_ms.is_nan() {
            0.0
        } else {
            timeout_ms.clamp(0.0, 2_147_483_647.0)
        };
        if self.delivered() {
            return Promise::resolve(&JsValue::TRUE);
        }
        // No link to wait for (or no time): it cannot happen.
        if self.closed || self.link.is_none() || timeout_ms <= 0.0 {
            return Promise::resolve(&JsValue::FALSE);
        }
        let id = self.next_flush;
        self.next_flush += 1;
        let me = self.me.clone();
        Promise::new(&mut |resolve, _| {
            let me = me.clone();
            let on_timeout = Closure::<dyn FnMut()>::new(move || {
                let Some(n) = me.upgrade() else { return };
                let mut n = n.borrow_mut();
                if let Some(i) = n.flushes.iter().position(|f| f.id == id) {
                    let f = n.flushes.remove(i);
                    let _ = f.resolve.call1(&JsValue::NULL, &JsValue::FALSE);
                    // The flush owns this callback: drop it after this call.
                    wasm_bindgen_futures::spawn_local(async move { drop(f) });
                }
            });
            let t = set_timeout(on_timeout.as_ref().unchecked_ref(), timeout_ms);
            self.flushes.push(Flush {
                id,
                resolve,
                timer: Some((t, on_timeout)),
            });
        })
    }

    fn take_waiter(&mut self, t: Ticket) -> Option<Waiter> {
        let w = self.waiters.remove(&t)?;
        if let Some((id, _)) = &w.timer {
            clear_timeout(id);
        }
        Some(w)
    }

    /// One timer for the core's next deadline.
    fn arm_timer(&mut self) {
        let Some(deadline) = self.replica.poll_timeout() else {
            return;
        };
        let at = self.start + deadline as f64;
        if let Some((t, _)) = &self.timer {
            if *t <= at {
                return;
            }
        }
        if let Some((_, id)) = self.timer.take() {
            clear_timeout(&id);
        }
        if self.timer_cb.is_none() {
            let me = self.me.clone();
            self.timer_cb = Some(Closure::new(move || {
                if let Some(rc) = me.upgrade() {
                    let mut n = rc.borrow_mut();
                    n.timer = None;
                    if !n.closed {
                        let now = n.now();
                        n.replica.handle_timeout(now);
                        n.drain();
                    }
                    drop(n);
                    deliver(&rc);
                }
            }));
        }
        let cb = self.timer_cb.as_ref().expect("set above");
        let id = set_timeout(cb.as_ref().unchecked_ref(), (at - now_ms()).max(0.0));
        self.timer = Some((at, id));
    }

    fn start_write(&mut self) {
        let Some(idb) = self.idb.clone() else { return };
        let batch = std::mem::take(&mut self.unsaved);
        let upto = batch.iter().map(Record::lsn).max().unwrap_or(0);
        self.writing = true;
        let me = self.me.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let result = idb.write(&batch).await;
            let Some(n) = me.upgrade() else { return };
            let mut n = n.borrow_mut();
            n.writing = false;
            match result {
                Ok(()) => {
                    n.commits += 1;
                    n.replica.persisted(upto);
                }
                Err(e) => {
                    console_warn(&format!("minidote: storage failed: {e}"));
                    n.storage_error = Some(e.clone());
                    let waiters: Vec<Ticket> = n.waiters.keys().copied().collect();
                    for t in waiters {
                        if let Some(w) = n.take_waiter(t) {
                            let _ = w.reject.call1(&JsValue::NULL, &js_err("storage", &e));
                        }
                    }
                }
            }
            if n.storage_error.is_none() {
                n.drain();
            }
            if !n.writing && (n.unsaved.is_empty() || n.storage_error.is_some()) {
                for f in std::mem::take(&mut n.flushed) {
                    let _ = f.call0(&JsValue::NULL);
                }
            }
            drop(n);
            if let Some(rc) = me.upgrade() {
                deliver(&rc);
            }
        });
    }

    fn check_usable(&self) -> Result<(), JsValue> {
        if self.closed {
            return Err(js_err("storage", "the replica is closed"));
        }
        if let Some(e) = &self.storage_error {
            return Err(js_err("storage", e));
        }
        Ok(())
    }

    // ----- links

    fn open_link(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !link.wanted {
            return;
        }
        self.next_link += 1;
        let id = self.next_link;
        let ws = match WebSocket::new(&link.url) {
            Ok(ws) => ws,
            Err(e) => {
                console_warn(&format!("minidote: cannot open {}: {e:?}", link.url));
                self.schedule_reconnect();
                return;
            }
        };
        ws.set_binary_type(BinaryType::Arraybuffer);
        let me = self.me.clone();
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(rc) = me.upgrade() {
                let mut n = rc.borrow_mut();
                let token = n.link.as_ref().and_then(|l| l.token.clone());
                let now = n.now();
                n.replica.link_open(LinkId(id), token, now);
                n.drain();
                drop(n);
                deliver(&rc);
            }
        });
        let me = self.me.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let Some(n) = me.upgrade() else { return };
            let Ok(ev) = e.dyn_into::<MessageEvent>() else {
                return;
            };
            let data = ev.data();
            let Ok(buf) = data.dyn_into::<js_sys::ArrayBuffer>() else {
                return;
            };
            let bytes = Uint8Array::new(&buf).to_vec();
            let rc = n;
            let mut n = rc.borrow_mut();
            let now = n.now();
            let _ = n.replica.handle_frame(LinkId(id), &bytes, now);
            n.drain();
            drop(n);
            deliver(&rc);
        });
        let me = self.me.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let Some(rc) = me.upgrade() else { return };
            let mut n = rc.borrow_mut();
            n.replica.link_closed(LinkId(id));
            if let Ok(ev) = e.dyn_into::<CloseEvent>() {
                // Keep a refusal's message rather than the close code.
                let refused = n.link.as_ref().is_some_and(|l| l.id == id && !l.wanted);
                if !ev.was_clean() && !refused {
                    n.last_protocol_error = Some(format!("link closed: code {}", ev.code()));
                }
            }
            let current = n.link.as_ref().is_some_and(|l| l.id == id);
            if current {
                if let Some(l) = n.link.as_mut() {
                    l.ws = None;
                }
                n.schedule_reconnect();
            }
            n.drain();
            drop(n);
            deliver(&rc);
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        link.id = id;
        link.ws = Some(ws);
        link._handlers = vec![on_open, on_message, on_close];
    }

    fn schedule_reconnect(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if !link.wanted || self.closed || link.reconnect.is_some() {
            return;
        }
        // Only a link that stayed up restarts the backoff: a relay that
        // refuses every handshake is retried ever more slowly.
        if link
            .up_since
            .take()
            .is_some_and(|t| js_sys::Date::now() - t >= 10_000.0)
        {
            link.attempts = 0;
        }
        link.attempts = link.attempts.saturating_add(1);
        let base = (250.0 * 2f64.powi(link.attempts.min(7) as i32 - 1)).min(15_000.0);
        let delay = base * (0.5 + js_sys::Math::random() / 2.0);
        let me = self.me.clone();
        let cb = Closure::<dyn FnMut()>::new(move || {
            let Some(n) = me.upgrade() else { return };
            let mut n = n.borrow_mut();
            // Dropping the stored closure inside its own call is deferred
            // until the call returns.
            let mine = n.link.as_mut().and_then(|l| l.reconnect.take());
            if !n.closed {
                n.open_link();
            }
            drop(n);
            if let Some((_, cb)) = mine {
                wasm_bindgen_futures::spawn_local(async move { drop(cb) });
            }
        });
        let id = set_timeout(cb.as_ref().unchecked_ref(), delay);
        link.reconnect = Some((id, cb));
    }

    fn drop_link(&mut self) {
        if let Some(mut l) = self.link.take() {
            l.wanted = false;
            if let Some((t, _)) = l.reconnect.take() {
                clear_timeout(&t);
            }
            if let Some(ws) = l.ws.take() {
                ws.set_onclose(None);
                ws.set_onmessage(None);
                ws.set_onopen(None);
                let _ = ws.close();
            }
            self.replica.link_closed(LinkId(l.id));
        }
    }
}

// ---------------------------------------------------------------- Core

/// Registers the promise of `t`; with `timeout = (ms, what)`, rejects it
/// with `clock_timeout` and cancels the ticket if it is still waiting then.
fn add_waiter(
    node: &Rc<RefCell<Node>>,
    n: &mut Node,
    t: Ticket,
    resolve: Function,
    reject: Function,
    timeout: Option<(f64, &'static str)>,
) {
    let timer = timeout.map(|(ms, what)| {
        let me = Rc::downgrade(node);
        let on_timeout = Closure::<dyn FnMut()>::new(move || {
            let Some(n) = me.upgrade() else { return };
            let mut n = n.borrow_mut();
            if let Some(w) = n.waiters.remove(&t) {
                n.replica.cancel(t);
                let msg = format!("{what}: the clock was not reached within {ms} ms");
                let _ = w
                    .reject
                    .call1(&JsValue::NULL, &js_err("clock_timeout", &msg));
                // The waiter owns this callback: drop it after this call.
                wasm_bindgen_futures::spawn_local(async move { drop(w) });
            }
        });
        let id = set_timeout(on_timeout.as_ref().unchecked_ref(), ms.max(0.0));
        (id, on_timeout)
    });
    n.waiters.insert(
        t,
        Waiter {
            resolve,
            reject,
            timer,
        },
    );
}

/// A replica with its IO. Wrapped by index.js as `Replica`.
#[wasm_bindgen]
pub struct Core {
    node: Rc<RefCell<Node>>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core").field("id", &self.id()).finish()
    }
}

/// Keys core's element hashing (core has no randomness), once per module.
fn key_hashing() {
    static DONE: std::sync::Once = std::sync::Once::new();
    DONE.call_once(|| {
        let mut key = [0u8; 16];
        random_bytes(&mut key);
        minidote_core::set_hash_key(key);
    });
}

/// Fills `buf` from `crypto.getRandomValues` (browsers, Node 19+), or from
/// `Math.random` where there is no Web Crypto.
fn random_bytes(buf: &mut [u8]) {
    let from_crypto = (|| {
        let crypto = js_sys::Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
        let f: js_sys::Function = js_sys::Reflect::get(&crypto, &"getRandomValues".into())
            .ok()?
            .dyn_into()
            .ok()?;
        let arr = js_sys::Uint8Array::new_with_length(buf.len() as u32);
        f.call1(&crypto, &arr).ok()?;
        arr.copy_to(buf);
        Some(())
    })();
    if from_crypto.is_none() {
        for b in buf.iter_mut() {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
}

fn new_id() -> ReplicaId {
    let mut b = [0u8; 8];
    random_bytes(&mut b);
    ReplicaId(u64::from_le_bytes(b))
}

#[wasm_bindgen]
impl Core {
    /// Opens a replica: in memory (`name` null) or restored from the
    /// IndexedDB database `name`.
    pub async fn open(
        name: Option<String>,
        room: String,
        snapshot_every: Option<u32>,
    ) -> Result<Core, JsValue> {
        key_hashing();
        let config = Config {
            room: room.clone(),
            persistent: name.is_some(),
            snapshot_every: u64::from(snapshot_every.unwrap_or(10_000)),
            emit_changes: true,
            ..Config::default()
        };
        let start = now_ms();
        let (replica, idb) = match name {
            None => (Replica::new(new_id(), config), None),
            Some(name) => {
                let (idb, loaded) = Idb::open(&name).await.map_err(|e| js_err("storage", &e))?;
                if let Some(stored) = &loaded.room {
                    if *stored != room {
                        idb.close();
                        return Err(js_err(
                            "storage",
                            &format!("database {name:?} holds room {stored:?}, not {room:?}"),
                        ));
                    }
                }
                let (id, fresh) = match loaded.id.as_deref().and_then(ReplicaId::from_hex) {
                    Some(id) => (id, false),
                    None => (new_id(), true),
                };
                if fresh {
                    idb.put_meta(&hex(id), &room)
                        .await
                        .map_err(|e| js_err("storage", &e))?;
                }
                let (mut replica, _report) = Replica::restore(
                    id,
                    config,
                    loaded.snapshot.as_deref(),
                    loaded.records.iter().map(|r| &r[..]),
                    loaded.next_lsn,
                )
                .map_err(|e| js_err("storage", &format!("cannot restore {name:?}: {e}")))?;
                replica.set_recovery_ms((now_ms() - start) as u64);
                (replica, Some(Rc::new(idb)))
            }
        };
        let node = Rc::new_cyclic(|me| {
            RefCell::new(Node {
                replica,
                start,
                waiters: HashMap::new(),
                subscribers: Vec::new(),
                next_sub: 1,
                deltas: Vec::new(),
                idb,
                unsaved: Vec::new(),
                writing: false,
                storage_error: None,
                commits: 0,
                link: None,
                next_link: 0,
                timer: None,
                timer_cb: None,
                closed: false,
                protocol_errors: 0,
                last_protocol_error: None,
                me: me.clone(),
                flushed: Vec::new(),
                local_subs: Vec::new(),
                flushes: Vec::new(),
                next_flush: 1,
                keys: batch::KeyCache::new(),
                outbox: Default::default(),
                delivering: false,
                deliver_scheduled: false,
                origin: JsValue::UNDEFINED,
                progress_subs: Vec::new(),
            })
        });
        node.borrow_mut().drain();
        Ok(Core { node })
    }

    /// The replica id: 16 hex digits.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        hex(self.node.borrow().replica.id())
    }

    /// The room.
    #[wasm_bindgen(getter)]
    pub fn room(&self) -> String {
        self.node.borrow().replica.room().to_owned()
    }

    /// Runs one atomic transaction, given as a call buffer (batch.rs).
    /// Returns the clock's bytes after it when it is done at once (memory
    /// replicas), or a Promise of them otherwise (it resolves once durable,
    /// and once `clock`, if given, was reached). Throws `{code, message}`
    /// on bad input; nothing is applied then.
    #[wasm_bindgen(js_name = updateObjects)]
    pub fn update_objects(
        &self,
        updates: &[u8],
        clock: Option<Vec<u8>>,
        timeout_ms: f64,
        origin: JsValue,
    ) -> Result<JsValue, JsValue> {
        let out = self.update_objects_inner(updates, clock, timeout_ms, origin);
        // Only after a call the core took: the JS codec keeps the key ids
        // of this call once it returns, and a subscriber's own calls must
        // not run before that (a refused call delivers nothing new anyway).
        if out.is_ok() {
            deliver(&self.node);
        }
        out
    }

    fn update_objects_inner(
        &self,
        updates: &[u8],
        clock: Option<Vec<u8>>,
        timeout_ms: f64,
        origin: JsValue,
    ) -> Result<JsValue, JsValue> {
        let mut n = self.node.borrow_mut();
        let ups =
            batch::updates(updates, &mut n.keys).map_err(|e| js_err("invalid_operation", &e))?;
        let client = clock_arg(clock)?;
        n.check_usable()?;
        // Only waiting for a clock times out; waiting for IndexedDB does not.
        let timeout = client
            .as_ref()
            .filter(|c| !c.leq(n.replica.clock()))
            .map(|_| (timeout_ms, "updateObjects"));
        let out = n
            .replica
            .update_objects(ups, client.as_ref())
            .map_err(|e| js_err("invalid_operation", &e.to_string()))?;
        let result = match out {
            UpdateOutcome::Committed(c) => clock_js(&c),
            UpdateOutcome::Pending(t) => Promise::new(&mut |resolve, reject| {
                add_waiter(&self.node, &mut n, t, resolve, reject, timeout);
            })
            .into(),
        };
        // What this call applied goes to subscribers with its origin; an
        // update that waits for a clock applies later, without one.
        n.origin = origin;
        n.drain();
        n.origin = JsValue::UNDEFINED;
        Ok(result)
    }

    /// Reads objects (keys as a call buffer): `[values, clock]` (both as
    /// bytes) at once, or a Promise of it when `clock` is not reached yet
    /// (rejected with `clock_timeout` after `timeoutMs`).
    #[wasm_bindgen(js_name = readObjects)]
    pub fn read_objects(
        &self,
        keys: &[u8],
        clock: Option<Vec<u8>>,
        timeout_ms: f64,
    ) -> Result<JsValue, JsValue> {
        let mut n = self.node.borrow_mut();
        let ks = batch::keys(keys, &mut n.keys).map_err(|e| js_err("invalid_operation", &e))?;
        let client = clock_arg(clock)?;
        if n.closed {
            return Err(js_err("storage", "the replica is closed"));
        }
        let result = match n.replica.read_objects(ks, client.as_ref()) {
            ReadOutcome::Ready(values, c) => Array::of2(
                &Uint8Array::from(&batch::put_values(&values)[..]),
                &clock_js(&c),
            )
            .into(),
            ReadOutcome::Pending(t) => {
                let timeout = Some((timeout_ms, "readObjects"));
                Promise::new(&mut |resolve, reject| {
                    add_waiter(&self.node, &mut n, t, resolve, reject, timeout);
                })
                .into()
            }
        };
        n.drain();
        Ok(result)
    }

    /// Links to a relay (or peer) at `url`; reconnects with backoff until
    /// `disconnect()` or `close()`. Needs a global `WebSocket`.
    pub fn connect(&self, url: String, token: Option<String>) -> Result<(), JsValue> {
        let has_ws = Reflect::has(&js_sys::global(), &"WebSocket".into()).unwrap_or(false);
        if !has_ws {
            return Err(js_err(
                "protocol",
                "no WebSocket in this environment (Node 22+ has one built in)",
            ));
        }
        let mut n = self.node.borrow_mut();
        n.check_usable()?;
        n.drop_link();
        n.link = Some(Link {
            url,
            token,
            ws: None,
            id: 0,
            attempts: 0,
            up_since: None,
            wanted: true,
            reconnect: None,
            _handlers: Vec::new(),
        });
        n.open_link();
        Ok(())
    }

    /// Drops the link (writes keep working offline).
    pub fn disconnect(&self) {
        let mut n = self.node.borrow_mut();
        n.drop_link();
        n.drain();
        drop(n);
        deliver(&self.node);
    }

    /// Whether the link's handshake has completed.
    #[wasm_bindgen(getter)]
    pub fn connected(&self) -> bool {
        let n = self.node.borrow();
        n.link
            .as_ref()
            .is_some_and(|l| n.replica.link_established(LinkId(l.id)))
    }

    /// Calls `cb(changedKeys)` on every local and remote change; returns an
    /// id for `unsubscribe`.
    pub fn subscribe(&self, cb: Function) -> u32 {
        let mut n = self.node.borrow_mut();
        let id = n.next_sub;
        n.next_sub += 1;
        n.subscribers.push((id, cb));
        id
    }

    /// A cursor at `index` (UTF-16 units) of the list or text `key`.
    pub fn cursor(&self, key: JsValue, index: f64) -> Result<Vec<u8>, JsValue> {
        let k = convert::to_key(&key).map_err(|e| js_err("invalid_operation", &e))?;
        if !(index >= 0.0 && index.fract() == 0.0) {
            return Err(js_err(
                "invalid_operation",
                &format!("cursor: index {index} is out of range"),
            ));
        }
        let n = self.node.borrow();
        n.replica
            .cursor(&k, index as u64, true)
            .map_err(|e| js_err("invalid_operation", &format!("cursor: {e}")))
    }

    /// The index (UTF-16 units) a cursor points at now.
    pub fn resolve(&self, cursor: Vec<u8>) -> Result<f64, JsValue> {
        let n = self.node.borrow();
        n.replica
            .resolve(&cursor)
            .map(|(_, _, n16)| n16 as f64)
            .map_err(|e| js_err("invalid_operation", &format!("resolve: {e}")))
    }

    /// The wire frames a replica at `clock` lacks (everything without one).
    #[wasm_bindgen(js_name = exportSince)]
    pub fn export_since(&self, clock: Option<Vec<u8>>) -> Result<Array, JsValue> {
        let theirs = clock_arg(clock)?.unwrap_or_default();
        let n = self.node.borrow();
        Ok(n.replica
            .export_since(&theirs)
            .iter()
            .map(|f| JsValue::from(Uint8Array::from(&f[..])))
            .collect())
    }

    /// Applies a frame from any channel: `{applied, pending, missing}`.
    /// Bytes that are not an update throw `protocol`; nothing is applied.
    #[wasm_bindgen(js_name = applyUpdate)]
    pub fn apply_update(&self, frame: Vec<u8>) -> Result<JsValue, JsValue> {
        let mut n = self.node.borrow_mut();
        n.check_usable()?;
        let out = n.replica.apply_update(&frame);
        n.drain();
        drop(n);
        deliver(&self.node);
        let st = out.map_err(|e| js_err("protocol", &format!("applyUpdate: {e}")))?;
        let missing: VectorClock = st.missing.iter().map(|m| (m.origin, m.to)).collect();
        let o = Object::new();
        let _ = Reflect::set(&o, &"applied".into(), &(st.delivered as f64).into());
        let _ = Reflect::set(&o, &"pending".into(), &(st.buffered as f64).into());
        let _ = Reflect::set(&o, &"missing".into(), &clock_js(&missing));
        Ok(o.into())
    }

    /// The current local values of `keys` (a call buffer), at once (no
    /// clock to wait for), as a values buffer.
    pub fn read(&self, keys: &[u8]) -> Result<Vec<u8>, JsValue> {
        let mut n = self.node.borrow_mut();
        let ks = batch::keys(keys, &mut n.keys).map_err(|e| js_err("invalid_operation", &e))?;
        if n.closed {
            return Err(js_err("storage", "the replica is closed"));
        }
        // The state as it is, own writes still being stored included (a
        // read with no clock would wait for them).
        let mut out = Vec::with_capacity(4 + 9 * ks.len());
        out.extend_from_slice(&(ks.len() as u32).to_le_bytes());
        for k in &ks {
            batch::put_value(&mut out, &n.replica.value(k));
        }
        Ok(out)
    }

    /// Calls `cb(frame)` with a `Txns` frame of this replica's own writes
    /// once they are durable; returns an id for `offLocalUpdate`.
    #[wasm_bindgen(js_name = onLocalUpdate)]
    pub fn on_local_update(&self, cb: Function) -> u32 {
        let mut n = self.node.borrow_mut();
        let id = n.next_sub;
        n.next_sub += 1;
        n.local_subs.push((id, cb));
        n.replica.set_emit_local_updates(true);
        id
    }

    /// Removes an `onLocalUpdate` callback.
    #[wasm_bindgen(js_name = offLocalUpdate)]
    pub fn off_local_update(&self, id: u32) {
        let mut n = self.node.borrow_mut();
        n.local_subs.retain(|(i, _)| *i != id);
        if n.local_subs.is_empty() {
            n.replica.set_emit_local_updates(false);
        }
    }

    /// Resolves with `true` once the relay reported every write of this
    /// replica stored, or `false` after `timeoutMs`.
    pub fn flush(&self, timeout_ms: f64) -> Promise {
        self.node.borrow_mut().flush(timeout_ms)
    }

    /// Removes a subscriber.
    pub fn unsubscribe(&self, id: u32) {
        self.node.borrow_mut().subscribers.retain(|(i, _)| *i != id);
    }

    /// Takes a snapshot now and prunes the log.
    pub fn snapshot(&self) -> Result<(), JsValue> {
        let mut n = self.node.borrow_mut();
        n.check_usable()?;
        n.replica.snapshot();
        n.drain();
        drop(n);
        deliver(&self.node);
        Ok(())
    }

    /// Calls `cb({received, expected, bytes, done})` as a catch-up from
    /// the relay moves; returns an id for `offProgress`.
    #[wasm_bindgen(js_name = onProgress)]
    pub fn on_progress(&self, cb: Function) -> u32 {
        let mut n = self.node.borrow_mut();
        let id = n.next_sub;
        n.next_sub += 1;
        n.progress_subs.push((id, cb));
        id
    }

    /// Removes an `onProgress` callback.
    #[wasm_bindgen(js_name = offProgress)]
    pub fn off_progress(&self, id: u32) {
        self.node
            .borrow_mut()
            .progress_subs
            .retain(|(i, _)| *i != id);
    }

    /// Whether a catch-up from the relay is in progress.
    #[wasm_bindgen(getter, js_name = catchingUp)]
    pub fn catching_up(&self) -> bool {
        self.node.borrow().replica.catching_up()
    }

    /// Keeps summaries of the last `n` delivered transactions for
    /// `inspect` (0: none).
    #[wasm_bindgen(js_name = keepHistory)]
    pub fn keep_history(&self, n: u32) {
        self.node.borrow_mut().replica.set_history(n as usize);
    }

    /// `{history: [{origin, seq, deps, keys, local}], buffered: [{origin,
    /// seq, waitsFor}]}`, clocks as bytes.
    pub fn inspect(&self, buffered: u32) -> JsValue {
        let n = self.node.borrow();
        let history: Array = n
            .replica
            .history()
            .map(|t| {
                let o = Object::new();
                let _ = Reflect::set(&o, &"origin".into(), &hex(t.origin).into());
                let _ = Reflect::set(&o, &"seq".into(), &(t.seq as f64).into());
                let _ = Reflect::set(&o, &"deps".into(), &clock_js(&t.deps));
                let keys: Array = t.keys.iter().map(convert::from_key).collect();
                let _ = Reflect::set(&o, &"keys".into(), &keys);
                let _ = Reflect::set(&o, &"local".into(), &t.local.into());
                JsValue::from(o)
            })
            .collect();
        let held: Array = n
            .replica
            .buffered(buffered as usize)
            .iter()
            .map(|b| {
                let o = Object::new();
                let _ = Reflect::set(&o, &"origin".into(), &hex(b.origin).into());
                let _ = Reflect::set(&o, &"seq".into(), &(b.seq as f64).into());
                let _ = Reflect::set(&o, &"waitsFor".into(), &clock_js(&b.waits_for));
                JsValue::from(o)
            })
            .collect();
        let o = Object::new();
        let _ = Reflect::set(&o, &"history".into(), &history);
        let _ = Reflect::set(&o, &"buffered".into(), &held);
        o.into()
    }

    /// `{runs, elements, visible, tombstones}` of a list or text.
    #[wasm_bindgen(js_name = seqStats)]
    pub fn seq_stats(&self, key: JsValue) -> Result<JsValue, JsValue> {
        let k = convert::to_key(&key).map_err(|e| js_err("invalid_operation", &e))?;
        let n = self.node.borrow();
        let st = n.replica.seq_stats(&k).ok_or_else(|| {
            js_err(
                "invalid_operation",
                &format!("seqStats: a {} is not a list or text", k.ty.name()),
            )
        })?;
        let o = Object::new();
        for (name, v) in [
            ("runs", st.runs),
            ("elements", st.elements),
            ("visible", st.visible),
            ("tombstones", st.tombstones),
            ("length", st.utf16),
        ] {
            let _ = Reflect::set(&o, &name.into(), &(v as f64).into());
        }
        Ok(o.into())
    }

    /// A plain object with the same fields as Python's `stats()`.
    pub fn stats(&self) -> JsValue {
        let n = self.node.borrow();
        let s = n.replica.stats();
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        set("id", hex(s.id).into());
        set("room", n.replica.room().into());
        set("clock", clock_js(&s.clock));
        set("buffered", (s.buffered as f64).into());
        set("pending_requests", (s.pending_requests as f64).into());
        set("txns_local", (s.txns_local as f64).into());
        set("txns_remote", (s.txns_remote as f64).into());
        set("duplicates", (s.duplicates as f64).into());
        set("integrity_conflicts", (s.integrity_conflicts as f64).into());
        set("restores", (s.restores as f64).into());
        set("reissued", (s.reissued as f64).into());
        set("repair_pending", s.repair_pending.into());
        set("refused", (s.refused as f64).into());
        set("buffer_dropped", (s.buffer_dropped as f64).into());
        set("bytes_sent", (s.bytes_sent as f64).into());
        set("bytes_received", (s.bytes_received as f64).into());
        set("log_records", (s.log_records as f64).into());
        set("log_len", (s.log_len as f64).into());
        set("snapshots", (s.snapshots as f64).into());
        set("snapshots_merged", (s.snapshots_merged as f64).into());
        set(
            "recovery_ms",
            s.last_recovery_ms
                .map_or(JsValue::NULL, |m| (m as f64).into()),
        );
        set("recovery_records", (s.last_recovery_records as f64).into());
        set("storage_commits", (n.commits as f64).into());
        set("protocol_errors", (n.protocol_errors as f64).into());
        set(
            "last_protocol_error",
            n.last_protocol_error
                .as_deref()
                .map_or(JsValue::NULL, JsValue::from_str),
        );
        let peers = Array::new();
        for p in s.peers {
            let po = Object::new();
            let _ = Reflect::set(
                &po,
                &"addr".into(),
                &n.link
                    .as_ref()
                    .map_or(JsValue::NULL, |l| l.url.as_str().into()),
            );
            let _ = Reflect::set(
                &po,
                &"id".into(),
                &p.id.map_or(JsValue::NULL, |i| hex(i).into()),
            );
            let _ = Reflect::set(&po, &"connected".into(), &p.connected.into());
            let _ = Reflect::set(&po, &"clock".into(), &clock_js(&p.clock));
            let _ = Reflect::set(&po, &"lag".into(), &(p.lag as f64).into());
            peers.push(&po);
        }
        set("peers", peers.into());
        o.into()
    }

    /// Waits for pending writes, drops the link, closes the database.
    /// With a link, first waits up to `flushTimeoutMs` for the relay to
    /// report this replica's writes stored, and warns if it did not.
    /// Pending requests are rejected.
    pub fn close(&self, flush_timeout_ms: f64) -> Promise {
        let node = self.node.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let flush = {
                let mut n = node.borrow_mut();
                let own = n.replica.clock().get(n.replica.id());
                (!n.closed && n.link.is_some() && own > 0).then(|| n.flush(flush_timeout_ms))
            };
            if let Some(p) = flush {
                let done = wasm_bindgen_futures::JsFuture::from(p).await;
                if done.ok().and_then(|v| v.as_bool()) != Some(true) {
                    let n = node.borrow();
                    let own = n.replica.clock().get(n.replica.id());
                    let stored = n.replica.stats().peers.first().map_or(0, |p| p.stored);
                    let fate = if n.idb.is_some() {
                        "they stay in IndexedDB and are sent when it is opened and connected again"
                    } else {
                        "this memory-only replica loses the rest"
                    };
                    console_warn(&format!(
                        "minidote: closing after {flush_timeout_ms} ms with {stored} of this replica's {own} writes confirmed by the relay; {fate}"
                    ));
                }
            }
            let wait = {
                let mut n = node.borrow_mut();
                if n.closed {
                    return Ok(JsValue::UNDEFINED);
                }
                n.drop_link();
                if n.writing || !n.unsaved.is_empty() {
                    Some(Promise::new(&mut |resolve, _| n.flushed.push(resolve)))
                } else {
                    None
                }
            };
            if let Some(p) = wait {
                let _ = wasm_bindgen_futures::JsFuture::from(p).await;
            }
            let mut n = node.borrow_mut();
            n.closed = true;
            if let Some((_, t)) = n.timer.take() {
                clear_timeout(&t);
            }
            let waiters: Vec<Ticket> = n.waiters.keys().copied().collect();
            for t in waiters {
                if let Some(w) = n.take_waiter(t) {
                    let _ = w
                        .reject
                        .call1(&JsValue::NULL, &js_err("storage", "the replica was closed"));
                }
            }
            if let Some(idb) = n.idb.take() {
                if let Ok(idb) = Rc::try_unwrap(idb) {
                    idb.close();
                }
            }
            n.subscribers.clear();
            n.local_subs.clear();
            for f in std::mem::take(&mut n.flushes) {
                if let Some((id, _)) = &f.timer {
                    clear_timeout(id);
                }
                let _ = f.resolve.call1(&JsValue::NULL, &JsValue::FALSE);
            }
            Ok(JsValue::UNDEFINED)
        })
    }
}
