// minidote: the public JS API (API.md), over the wasm `Core`.
//
// Works in browsers (ESM; IndexedDB persistence, one tab per database name
// through Web Locks) and in Node (memory only). All CRDT logic, IndexedDB
// and WebSocket IO are in Rust (../src); this file loads the module, checks
// arguments, and turns errors into MinidoteError.
import init, {
  Core, clockCheck, clockLeq, clockConcurrent, clockMerge, clockJson, clockString,
} from "./wasm/minidote_wasm.js";
import { encodeUpdates, encodeKeys, decodeValues, settle } from "./codec.js";

let loading = null;

function isNode() {
  return typeof process !== "undefined" && !!process.versions?.node && typeof window === "undefined";
}

/** Loads and instantiates the .wasm once (done by Replica.open). */
export function ready() {
  if (!loading) {
    loading = (async () => {
      const url = new URL("./wasm/minidote_wasm_bg.wasm", import.meta.url);
      if (isNode()) {
        const { readFile } = await import("node:fs/promises");
        await init({ module_or_path: await readFile(url) });
      } else {
        await init({ module_or_path: url });
      }
    })();
  }
  return loading;
}

/** Every error the package throws. `code` is one of "invalid_operation",
 * "clock_timeout", "storage" or "protocol". */
export class MinidoteError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "MinidoteError";
    this.code = code;
  }
}

function wrap(e) {
  if (e instanceof MinidoteError) return e;
  if (e && typeof e.code === "string") return new MinidoteError(e.code, e.message);
  return e;
}

const INTERNAL = Symbol("minidote.Clock");
let bytesOf;

/** An immutable vector clock over its bytes, which are the same in every
 * binding. A plain JS object: nothing to free, no finaliser. */
export class Clock {
  #bytes;

  constructor(bytes, token) {
    if (token !== INTERNAL) throw new TypeError("use Clock.fromBytes(bytes)");
    this.#bytes = bytes;
  }

  static {
    bytesOf = (c) => c.#bytes;
  }

  /** Decodes `toBytes()` output (from any binding). */
  static fromBytes(bytes) {
    if (!(bytes instanceof Uint8Array)) {
      throw new MinidoteError("invalid_operation", "not a clock: a clock's bytes are a Uint8Array");
    }
    try {
      clockCheck(bytes);
    } catch (e) {
      throw wrap(e);
    }
    return new Clock(bytes.slice(), INTERNAL);
  }

  toBytes() {
    return this.#bytes.slice();
  }

  /** `{replicaId: seq}`. */
  toJSON() {
    return clockJson(this.#bytes);
  }

  /** Whether everything in this clock is in `other`. */
  leq(other) {
    return clockLeq(this.#bytes, bytesOf(other));
  }

  /** Whether the clocks are equal (the encoding is canonical). */
  equals(other) {
    const a = this.#bytes, b = bytesOf(other);
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }

  /** Whether neither clock is `leq` the other. */
  concurrent(other) {
    return clockConcurrent(this.#bytes, bytesOf(other));
  }

  /** The pointwise maximum. */
  merge(other) {
    return new Clock(clockMerge(this.#bytes, bytesOf(other)), INTERNAL);
  }

  toString() {
    return clockString(this.#bytes);
  }

  /** Nothing to free (kept for code written against 0.1's wasm Clock). */
  free() {}
}

function clock(bytes) {
  return new Clock(bytes, INTERNAL);
}

function clockBytes(c) {
  if (c === undefined || c === null) return undefined;
  if (!(c instanceof Clock)) {
    throw new MinidoteError("invalid_operation", "clock must be a Clock (or omitted)");
  }
  return bytesOf(c);
}

/** Calls `f` with the call buffer `buf` (just encoded): the key ids it
 * registered are kept only if the core took it. */
function send(f, buf) {
  let out;
  try {
    out = f(buf);
  } catch (e) {
    settle(false);
    throw e;
  }
  settle(true);
  return out;
}

function readPair(pair) {
  return [decodeValues(pair[0]), clock(pair[1])];
}

/** Holds `minidote:<name>` until released; fails at once if another tab
 * (or Replica) holds it. */
async function lockDatabase(name) {
  const locks = globalThis.navigator?.locks;
  if (!locks) return null;
  return await new Promise((resolve, reject) => {
    locks
      .request(`minidote:${name}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          reject(new MinidoteError("storage",
            `database "${name}" is already open (in another tab, or another Replica here)`));
          return undefined;
        }
        return new Promise((release) => resolve(release));
      })
      .catch(reject);
  });
}

/** Links same-origin tabs of one room through a BroadcastChannel. Each tab
 * posts its own writes once durable, gathered into one message per task
 * (a loop of single writes costs one post, not one per write). A tab that
 * opens, or finds a gap, posts what it has (its clock) and one tab answers
 * with what it lacks, addressed to it: the tab holding the room's Web Lock
 * answers the others, and the others answer that tab, the first to answer
 * making the rest stand down (where there are no Web Locks, everyone
 * answers that way). Messages are checked like any peer's frames: garbage
 * is counted and dropped. */
class TabLink {
  #channel;
  #stop;
  #replica;
  #core;
  #id = Math.random().toString(36).slice(2) + Date.now().toString(36);
  #req = 0;
  #leader = false;
  #locks;
  #release = null;
  #closed = false;
  /** Own frames waiting for the next post. */
  #queue = [];
  #timer = null;
  /** Needs this tab may answer, by "from:req", until another tab does. */
  #pending = new Map();

  /** Bad messages from other tabs. */
  errors = 0;
  /** Needs this tab answered. */
  answers = 0;

  constructor(replica, core, room) {
    this.#replica = replica;
    this.#core = core;
    this.#channel = new BroadcastChannel(`minidote:${room}`);
    this.#channel.onmessage = (e) => this.#receive(e.data);
    this.#stop = replica.onLocalUpdate((frame) => this.#enqueue(frame));
    this.#locks = globalThis.navigator?.locks;
    this.#locks?.request(`minidote-tabs:${room}`, () => {
      if (this.#closed) return undefined;
      this.#leader = true;
      return new Promise((release) => { this.#release = release; });
    }).catch(() => {});
    this.#need();
  }

  #post(msg) {
    try {
      this.#channel.postMessage(msg);
    } catch {
      // Closed meanwhile.
    }
  }

  #need() {
    this.#post({ t: "need", from: this.#id, req: ++this.#req, leader: this.#leader, clock: this.#core.stats().clock });
  }

  #enqueue(frame) {
    this.#queue.push(frame);
    if (this.#queue.length >= 256) this.#flush();
    else if (this.#timer === null) this.#timer = setTimeout(() => this.#flush(), 0);
  }

  #flush() {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#queue.length === 0) return;
    const frames = this.#queue;
    this.#queue = [];
    this.#post({ t: "updates", frames });
  }

  #answer(msg) {
    // A bad clock throws here, before anyone is told to stand down.
    const frames = this.#replica.exportSince(Clock.fromBytes(msg.clock));
    this.answers += 1;
    this.#post({ t: "answer", to: msg.from, req: msg.req });
    if (frames.length > 0) this.#post({ t: "updates", to: msg.from, frames });
  }

  async #receive(msg) {
    try {
      if (msg?.t === "updates" && Array.isArray(msg.frames)) {
        if (msg.to !== undefined && msg.to !== this.#id) return;
        let gap = false;
        for (const frame of msg.frames) {
          const st = await this.#replica.applyUpdate(frame);
          gap = st.pending > 0;
        }
        // A gap: ask the other tabs for what is missing.
        if (gap) this.#need();
      } else if (msg?.t === "need" && msg.clock instanceof Uint8Array && typeof msg.from === "string") {
        if (msg.from === this.#id) return;
        if (!msg.leader && this.#locks) {
          // The leader answers the other tabs.
          if (this.#leader) this.#answer(msg);
          return;
        }
        // The leader's need (or no Web Locks): whoever comes first.
        const key = `${msg.from}:${msg.req}`;
        if (this.#pending.has(key) || this.#pending.size >= 64) return;
        this.#pending.set(key, setTimeout(() => {
          this.#pending.delete(key);
          if (this.#closed) return;
          try {
            this.#answer(msg);
          } catch (e) {
            if (typeof wrap(e)?.code !== "string") throw e;
            this.errors += 1;
          }
        }, Math.random() * 50));
      } else if (msg?.t === "answer") {
        const key = `${msg.to}:${msg.req}`;
        const t = this.#pending.get(key);
        if (t !== undefined) {
          clearTimeout(t);
          this.#pending.delete(key);
        }
      } else {
        this.errors += 1;
      }
    } catch (e) {
      // A bad message from a tab: refused, nothing applied.
      if (typeof wrap(e)?.code !== "string") throw e;
      this.errors += 1;
    }
  }

  close() {
    this.#flush();
    this.#closed = true;
    this.#stop();
    for (const t of this.#pending.values()) clearTimeout(t);
    this.#pending.clear();
    this.#release?.();
    this.#channel.close();
  }
}

export class Replica {
  #core;
  #release;
  #tabs = null;

  constructor(core, release) {
    if (!(core instanceof Core)) {
      throw new TypeError("use `await Replica.open({...})`");
    }
    this.#core = core;
    this.#release = release;
  }

  /** Opens a replica. `name`: IndexedDB database (omitted: memory only).
   * `room`: replication group. `snapshotEvery`: records between snapshots.
   * `broadcast` (default true in browsers): link same-origin tabs of the
   * room directly through a BroadcastChannel, with or without a relay. */
  static async open({ name, room = "default", snapshotEvery, broadcast = !isNode() } = {}) {
    await ready();
    let release = null;
    if (name !== undefined && name !== null) {
      if (typeof name !== "string" || name === "") {
        throw new MinidoteError("invalid_operation", "name must be a non-empty string");
      }
      if (typeof indexedDB === "undefined") {
        throw new MinidoteError("storage",
          "no IndexedDB in this environment: omit `name` for a memory-only replica");
      }
      release = await lockDatabase(name);
    }
    try {
      const core = await Core.open(name ?? undefined, String(room), snapshotEvery ?? undefined);
      const r = new Replica(core, release);
      if (broadcast && typeof BroadcastChannel !== "undefined") {
        r.#tabs = new TabLink(r, core, String(room));
      }
      return r;
    } catch (e) {
      release?.();
      throw wrap(e);
    }
  }

  /** This replica's id: 16 hex digits, kept across reopening. */
  get id() {
    return this.#core.id;
  }

  get room() {
    return this.#core.room;
  }

  /** Whether the link's handshake has completed. */
  get connected() {
    return this.#core.connected;
  }

  /** One atomic transaction; resolves with the clock after it, once durable.
   * With `clock`, it first waits until this replica has reached it (or
   * rejects with `clock_timeout` after `timeoutMs`). Subscribers see the
   * change before this call returns, with `origin` (any value) in their
   * `info` when it applies at once (not after waiting for a clock). */
  async updateObjects(updates, after, { timeoutMs = 10000, origin } = {}) {
    try {
      const c = clockBytes(after), ms = Number(timeoutMs), core = this.#core;
      const out = send((b) => core.updateObjects(b, c, ms, origin), encodeUpdates(updates));
      return clock(out instanceof Uint8Array ? out : await out);
    } catch (e) {
      throw wrap(e);
    }
  }

  /** The current local values of `keys`, synchronously: no clock to wait
   * for, no Promise (for rendering). `readObjects` is the call that waits. */
  read(keys) {
    try {
      const core = this.#core;
      return decodeValues(send((b) => core.read(b), encodeKeys(keys)));
    } catch (e) {
      throw wrap(e);
    }
  }

  /** Resolves with `[values, clock]`; with `clock`, waits until it is reached. */
  async readObjects(keys, after, { timeoutMs = 10000 } = {}) {
    try {
      const c = clockBytes(after), ms = Number(timeoutMs), core = this.#core;
      const out = send((b) => core.readObjects(b, c, ms), encodeKeys(keys));
      return readPair(Array.isArray(out) ? out : await out);
    } catch (e) {
      throw wrap(e);
    }
  }

  /** Links to a relay, e.g. "ws://127.0.0.1:8080/sync"; reconnects with backoff. */
  connect(url, { token } = {}) {
    try {
      this.#core.connect(String(url), token ?? undefined);
    } catch (e) {
      throw wrap(e);
    }
  }

  disconnect() {
    this.#core.disconnect();
  }

  /** A cursor at `index` (UTF-16 units) of a list or text: opaque bytes
   * that stay with their element while others edit. */
  cursor(key, index) {
    try {
      return this.#core.cursor(key, Number(index));
    } catch (e) {
      throw wrap(e);
    }
  }

  /** The index (UTF-16 units) a cursor points at now. */
  resolve(cursor) {
    if (!(cursor instanceof Uint8Array)) {
      throw new MinidoteError("invalid_operation", "a cursor is a Uint8Array");
    }
    try {
      return this.#core.resolve(cursor);
    } catch (e) {
      throw wrap(e);
    }
  }

  /** The wire frames a replica at `clock` lacks (everything without one). */
  exportSince(clock) {
    try {
      return this.#core.exportSince(clockBytes(clock));
    } catch (e) {
      throw wrap(e);
    }
  }

  /** Applies a frame from any channel; resolves with `{applied, pending,
   * missing}`. Garbage rejects with code "protocol" and applies nothing. */
  async applyUpdate(frame) {
    if (!(frame instanceof Uint8Array)) {
      throw new MinidoteError("protocol", "a frame is a Uint8Array");
    }
    try {
      const st = this.#core.applyUpdate(frame);
      st.missing = clock(st.missing);
      return st;
    } catch (e) {
      throw wrap(e);
    }
  }

  /** `cb(changedKeys, deltas, info)` on local and remote changes, where
   * `deltas` maps each changed list or text (by its key's JSON) to
   * `[{retain}, {insert}, {delete}]` in UTF-16 units, and `info.origin` is
   * the `origin` the change's `updateObjects` call passed (undefined for
   * remote changes). Called in the order the changes applied, before the
   * call that applied them returns (a write from inside a callback is
   * delivered after it); returns `unsubscribe`. */
  subscribe(cb) {
    if (typeof cb !== "function") throw new TypeError("subscribe takes a function");
    const id = this.#core.subscribe(cb);
    return () => this.#core.unsubscribe(id);
  }

  /** `cb(frame)` with a `Txns` frame (Uint8Array) of this replica's own
   * writes once they are durable: carry it over any channel and
   * `applyUpdate` it at the other end. Returns the function that stops it. */
  onLocalUpdate(cb) {
    if (typeof cb !== "function") throw new TypeError("onLocalUpdate takes a function");
    const id = this.#core.onLocalUpdate(cb);
    return () => this.#core.offLocalUpdate(id);
  }

  /** `cb({received, expected, bytes, done})` while this replica catches
   * up from the relay: `received` of `expected` transactions (a snapshot
   * counts what it covers), `bytes` received since the catch-up started,
   * and `done` on its last event (complete, or the link dropped). A
   * catch-up starts when the relay's handshake shows writes this replica
   * lacks. Returns the function that stops it. */
  onProgress(cb) {
    if (typeof cb !== "function") throw new TypeError("onProgress takes a function");
    const id = this.#core.onProgress(cb);
    return () => this.#core.offProgress(id);
  }

  /** Resolves with true once the relay link's handshake completed and
   * everything the relay had then has arrived here; false if that did not
   * happen within `timeoutMs` (or there is no link). Read after it to see
   * the room as it was when you joined. */
  async catchUp({ timeoutMs = 10000 } = {}) {
    const deadline = Date.now() + Number(timeoutMs);
    for (;;) {
      if (this.#core.connected && !this.#core.catchingUp) return true;
      const left = deadline - Date.now();
      if (!(left > 0)) return false;
      await new Promise((res) => setTimeout(res, Math.min(20, left)));
    }
  }

  /** Keeps summaries of the last `n` transactions this replica delivers
   * (local and remote) for `inspect()`; 0 turns it off. */
  keepHistory(n) {
    const v = Number(n);
    if (!(v >= 0 && v <= 0xffffffff && Number.isInteger(v))) {
      throw new MinidoteError("invalid_operation", "keepHistory takes a count (0 turns it off)");
    }
    this.#core.keepHistory(v);
  }

  /** What an inspector shows: `history`, the last transactions (see
   * `keepHistory`), oldest first, as `{origin, seq, deps, keys, local}`;
   * `buffered`, up to `buffered` transactions of the causal buffer, as
   * `{origin, seq, waitsFor}` (the deps not delivered yet). */
  inspect({ buffered = 32 } = {}) {
    const n = Math.floor(Number(buffered));
    const out = this.#core.inspect(n > 0 ? Math.min(n, 0xffffffff) : 0);
    for (const t of out.history) t.deps = clock(t.deps);
    for (const b of out.buffered) b.waitsFor = clock(b.waitsFor);
    return out;
  }

  /** `{runs, elements, visible, tombstones, length}` of a list or text in
   * memory (`length` in UTF-16 units, read in O(1)). */
  seqStats(key) {
    try {
      return this.#core.seqStats(key);
    } catch (e) {
      throw wrap(e);
    }
  }

  /** Resolves with true once the relay reported every write of this
   * replica stored, false if that did not happen within `timeoutMs`. */
  async flush({ timeoutMs = 10000 } = {}) {
    return await this.#core.flush(Number(timeoutMs));
  }

  stats() {
    const s = this.#core.stats();
    s.clock = clock(s.clock);
    for (const p of s.peers) p.clock = clock(p.clock);
    s.tab_errors = this.#tabs?.errors ?? 0;
    s.tab_answers = this.#tabs?.answers ?? 0;
    return s;
  }

  /** Takes a snapshot now and prunes the log. */
  snapshot() {
    try {
      this.#core.snapshot();
    } catch (e) {
      throw wrap(e);
    }
  }

  /** Waits (up to `flushTimeoutMs`) for the relay to store this replica's
   * writes, finishes pending writes, drops the link, releases the database. */
  async close({ flushTimeoutMs = 2000 } = {}) {
    this.#tabs?.close();
    this.#tabs = null;
    try {
      await this.#core.close(Number(flushTimeoutMs));
    } finally {
      this.#release?.();
      this.#release = null;
    }
  }
}
