// The call buffer (src/batch.rs has the format): a batch of updates or keys
// written into one Uint8Array, so a call crosses into wasm once instead of
// once per element, and values read back from one.
//
// Strings are written by hand while they are ASCII (most keys and op names),
// and with TextEncoder otherwise; a lone surrogate is refused, because UTF-8
// cannot hold it and a lossy conversion would merge two different keys.

const SAME_KEY = 1, SAME_OP = 2, HAS_ARG = 4, SAME_UPDATE = 8, KEY_ID = 16, KEY_NEW = 32;
/** Key ids per generation (src/batch.rs holds the same number). */
const MAX_IDS = 65536;
const NULL = 0, FALSE = 1, TRUE = 2, INT53 = 3, FLOAT = 4, INT64 = 5, STR = 6, BYTES = 7, LIST = 8, MAP = 9;
const MAX_DEPTH = 64;
const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n;
const LONE_SURROGATE = "string holds a lone surrogate, which is not valid Unicode text (it would turn into U+FFFD, and two different strings into one); encode it first";
const SHAPE = "an update is a [key, op] or [key, op, arg] array";
const KEY_SHAPE = "a key is a [key, type, bucket] array of 3 strings";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function invalid(message) {
  const e = new Error(message);
  e.code = "invalid_operation";
  return e;
}

/** A growable output buffer, reused from call to call (wasm-bindgen copies
 * the bytes into wasm memory before the call returns). */
let buf = new Uint8Array(1 << 16);
let view = new DataView(buf.buffer);
let pos = 0;

function need(n) {
  if (pos + n <= buf.length) return;
  let size = buf.length * 2;
  while (size < pos + n) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, pos));
  buf = next;
  view = new DataView(buf.buffer);
}

const hasWellFormed = typeof "".isWellFormed === "function";
const LONE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function putStr(s) {
  const n = s.length;
  need(4 + 3 * n);
  let p = pos + 4;
  let i = 0;
  if (n <= 64) {
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[p++] = c;
    }
  }
  if (i < n) {
    if (hasWellFormed ? !s.isWellFormed() : LONE.test(s)) throw invalid(LONE_SURROGATE);
    p += encoder.encodeInto(i === 0 ? s : s.slice(i), buf.subarray(p)).written;
  }
  view.setUint32(pos, p - pos - 4, true);
  pos = p;
}

function putLen(n) {
  need(4);
  view.setUint32(pos, n, true);
  pos += 4;
}

function putValue(v, depth) {
  need(9);
  switch (typeof v) {
    case "number":
      buf[pos] = Number.isSafeInteger(v) ? INT53 : FLOAT;
      view.setFloat64(pos + 1, v, true);
      pos += 9;
      return;
    case "string":
      buf[pos++] = STR;
      putStr(v);
      return;
    case "boolean":
      buf[pos++] = v ? TRUE : FALSE;
      return;
    case "undefined":
      buf[pos++] = NULL;
      return;
    case "bigint":
      if (v < I64_MIN || v > I64_MAX) throw invalid(`int ${v} is outside the 64-bit signed range`);
      buf[pos] = INT64;
      view.setBigInt64(pos + 1, v, true);
      pos += 9;
      return;
    case "object":
      if (v === null) {
        buf[pos++] = NULL;
        return;
      }
      if (depth >= MAX_DEPTH) throw invalid(`value nested deeper than ${MAX_DEPTH} levels`);
      if (v instanceof Uint8Array) {
        buf[pos++] = BYTES;
        putLen(v.length);
        need(v.length);
        buf.set(v, pos);
        pos += v.length;
        return;
      }
      if (Array.isArray(v)) {
        buf[pos++] = LIST;
        putLen(v.length);
        for (let i = 0; i < v.length; i++) putValue(v[i], depth + 1);
        return;
      }
      if (v instanceof Map) {
        buf[pos++] = MAP;
        putLen(v.size);
        for (const [k, x] of v) {
          if (typeof k !== "string") throw invalid("a Map's keys must be strings");
          putStr(k);
          putValue(x, depth + 1);
        }
        return;
      }
      {
        const proto = Object.getPrototypeOf(v);
        if (proto !== Object.prototype && proto !== null) {
          throw invalid(`cannot store a ${v.constructor?.name ?? "non-plain object"}: use null, a boolean, a number, a BigInt, a string, a Uint8Array, an array or a plain object`);
        }
        const keys = Object.keys(v);
        buf[pos++] = MAP;
        putLen(keys.length);
        for (const k of keys) {
          putStr(k);
          putValue(v[k], depth + 1);
        }
      }
      return;
    default:
      throw invalid(`cannot store a ${typeof v}: use null, a boolean, a number, a BigInt, a string, a Uint8Array, an array or a plain object`);
  }
}

function isKey(k) {
  return Array.isArray(k) && k.length === 3;
}

// Key ids (src/batch.rs): each key array met gets a number, sent instead of
// its strings the next time. An entry holds the strings it was registered
// with, so an array changed since is sent in full again.
let gen = 0;
let nextId = 0;
let ids = new WeakMap();
/** The entries registered by the call being encoded: forgotten if it fails. */
const fresh = [];

/** Writes key `k` (by id when it has one) and returns the flags that say
 * how. */
function putKey(k) {
  const a = k[0], b = k[1], c = k[2];
  if (typeof a !== "string" || typeof b !== "string" || typeof c !== "string") {
    throw invalid("key parts must be strings");
  }
  const e = ids.get(k);
  if (e !== undefined && e.gen === gen && e.a === a && e.b === b && e.c === c) {
    need(4);
    view.setUint32(pos, e.id, true);
    pos += 4;
    return KEY_ID;
  }
  if (nextId >= MAX_IDS) {
    // Out of ids until the next call starts a new generation.
    putStr(a);
    putStr(b);
    putStr(c);
    return 0;
  }
  const id = nextId++;
  need(4);
  view.setUint32(pos, id, true);
  pos += 4;
  putStr(a);
  putStr(b);
  putStr(c);
  const entry = { gen, id, a, b, c };
  ids.set(k, entry);
  fresh.push(k);
  return KEY_NEW;
}

/** After a call: `ok` keeps the ids registered in it, otherwise they are
 * forgotten (the core may not hold them). */
export function settle(ok) {
  if (!ok) for (const k of fresh) ids.delete(k);
  fresh.length = 0;
}

function start() {
  fresh.length = 0;
  if (nextId >= MAX_IDS) {
    // A new generation: the core clears its table when it sees it.
    gen = (gen + 1) >>> 0;
    nextId = 0;
    ids = new WeakMap();
  }
  pos = 0;
  need(4);
  view.setUint32(0, gen, true);
  pos = 4;
}

/** `[[key, op, arg?], ...]` → the call buffer. Shape errors are thrown
 * here; type, op and argument errors come from the core. */
export function encodeUpdates(updates) {
  if (!Array.isArray(updates)) throw invalid("updates must be an array");
  start();
  let k0, k1, k2, op, arg, len = 0;
  const n = updates.length;
  for (let i = 0; i < n; i++) {
    const u = updates[i];
    if (!Array.isArray(u) || (u.length !== 2 && u.length !== 3)) {
      settle(false);
      throw invalid(`update #${i}: ${SHAPE}`);
    }
    const key = u[0], name = u[1];
    need(1);
    const at = pos++;
    let flags = 0;
    if (!isKey(key)) {
      settle(false);
      throw invalid(`update #${i}: ${KEY_SHAPE}`);
    }
    if (i > 0 && key[0] === k0 && key[1] === k1 && key[2] === k2) {
      flags |= SAME_KEY;
    } else {
      try {
        flags |= putKey(key);
      } catch (e) {
        settle(false);
        throw invalid(`update #${i}: ${e.message}`);
      }
      k0 = key[0]; k1 = key[1]; k2 = key[2];
    }
    if (typeof name !== "string") {
      settle(false);
      throw invalid(`update #${i}: the op name must be a string`);
    }
    if (i > 0 && name === op) {
      // The same update again (an increment repeated, say): one byte.
      if (flags === SAME_KEY && u.length === len && (len === 2 || (u[2] === arg && (typeof arg !== "object" || arg === null)))) {
        buf[at] = SAME_UPDATE;
        continue;
      }
      flags |= SAME_OP;
    } else {
      putStr(name);
      op = name;
    }
    len = u.length;
    arg = u[2];
    if (u.length === 3) {
      flags |= HAS_ARG;
      try {
        putValue(u[2], 0);
      } catch (e) {
        settle(false);
        throw invalid(`update #${i}: ${e.message}`);
      }
    }
    buf[at] = flags;
  }
  return buf.subarray(0, pos);
}

/** `[key, ...]` → the call buffer. */
export function encodeKeys(keys) {
  if (!Array.isArray(keys)) throw invalid("keys must be an array");
  start();
  let k0, k1, k2;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (!isKey(key)) {
      settle(false);
      throw invalid(`key #${i}: ${KEY_SHAPE}`);
    }
    need(1);
    if (i > 0 && key[0] === k0 && key[1] === k1 && key[2] === k2) {
      buf[pos++] = SAME_KEY;
      continue;
    }
    const at = pos++;
    try {
      buf[at] = putKey(key);
    } catch (e) {
      settle(false);
      throw invalid(`key #${i}: ${e.message}`);
    }
    k0 = key[0]; k1 = key[1]; k2 = key[2];
  }
  return buf.subarray(0, pos);
}

// ---------------------------------------------------------------- values out

let inp, inView, at;

function getStr(n) {
  const end = at + n;
  if (n <= 32) {
    let s = "";
    let i = at;
    for (; i < end; i++) {
      const c = inp[i];
      if (c >= 0x80) break;
      s += String.fromCharCode(c);
    }
    if (i === end) {
      at = end;
      return s;
    }
  }
  const s = decoder.decode(inp.subarray(at, end));
  at = end;
  return s;
}

function getValue() {
  const tag = inp[at++];
  switch (tag) {
    case NULL: return null;
    case FALSE: return false;
    case TRUE: return true;
    case INT53:
    case FLOAT: {
      const f = inView.getFloat64(at, true);
      at += 8;
      return f;
    }
    case INT64: {
      const b = inView.getBigInt64(at, true);
      at += 8;
      return b;
    }
    case STR: {
      const n = inView.getUint32(at, true);
      at += 4;
      return getStr(n);
    }
    case BYTES: {
      const n = inView.getUint32(at, true);
      at += 4;
      const b = inp.slice(at, at + n);
      at += n;
      return b;
    }
    case LIST: {
      const n = inView.getUint32(at, true);
      at += 4;
      const out = new Array(n);
      for (let i = 0; i < n; i++) out[i] = getValue();
      return out;
    }
    case MAP: {
      const n = inView.getUint32(at, true);
      at += 4;
      const out = {};
      for (let i = 0; i < n; i++) {
        const k = getStr(inView.getUint32((at += 4) - 4, true));
        const x = getValue();
        // `out[k] =` would set the prototype for "__proto__".
        if (k === "__proto__") Object.defineProperty(out, k, { value: x, enumerable: true, writable: true, configurable: true });
        else out[k] = x;
      }
      return out;
    }
    default:
      throw new Error(`minidote: bad value tag ${tag} from the core`);
  }
}

/** The core's `n:u32 value*` → an array of JS values. */
export function decodeValues(bytes) {
  inp = bytes;
  inView = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  at = 0;
  const n = inView.getUint32(0, true);
  at = 4;
  const out = new Array(n);
  for (let i = 0; i < n; i++) out[i] = getValue();
  inp = inView = undefined;
  return out;
}
