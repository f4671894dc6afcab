// The JS API in Node (memory replicas): semantics, values both ways,
// errors that leave state unchanged. Run by `make test` after the build.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Replica, Clock, MinidoteError } from "../pkg/index.js";

const k = (name, type) => [name, type, "test"];

async function value(r, key) {
  const [[v]] = await r.readObjects([key]);
  return v;
}

test("a memory replica has a 16-hex-digit id and its room", async () => {
  const r = await Replica.open({ room: "demo" });
  assert.match(r.id, /^[0-9a-f]{16}$/);
  assert.equal(r.room, "demo");
  const other = await Replica.open();
  assert.notEqual(other.id, r.id);
  assert.equal(other.room, "default");
  await r.close();
  await other.close();
});

test("every type through the API", async () => {
  const r = await Replica.open();
  const c = k("c", "counter_pn");
  const sb = k("sb", "counter_pn_sb");
  const aw = k("aw", "set_aw");
  const rw = k("rw", "set_rw");
  const go = k("go", "set_go");
  const tp = k("tp", "set_2p");
  const mv = k("mv", "register_mv");
  const lww = k("lww", "register_lww");
  const ew = k("ew", "flag_ew");
  const dw = k("dw", "flag_dw");
  await r.updateObjects([
    [c, "increment", 5], [c, "decrement", 2],
    [sb, "increment", 3],
    [aw, "add_all", ["b", "a", "c"]], [aw, "remove", "c"],
    [rw, "add", 1], [rw, "add", 2], [rw, "remove", 1],
    [go, "add", "x"],
    [tp, "add", "p"], [tp, "add", "q"], [tp, "remove", "p"],
    [mv, "assign", "v1"],
    [lww, "assign", { nested: [1, 2] }],
    [ew, "enable"],
    [dw, "enable"], [dw, "disable"],
  ]);
  const [values] = await r.readObjects([c, sb, aw, rw, go, tp, mv, lww, ew, dw]);
  assert.deepEqual(values, [3, 3, ["a", "b"], [2], ["x"], ["q"], ["v1"], { nested: [1, 2] }, true, false]);
  // Absent objects read as their initial value.
  const [empty] = await r.readObjects([k("none", "set_aw"), k("none", "counter_pn"), k("none", "register_lww"), k("none", "flag_ew")]);
  assert.deepEqual(empty, [[], 0, null, false]);
  // counter_pn_sb is state-based: per-replica totals; it may go negative.
  await r.updateObjects([[sb, "decrement", 10]]);
  assert.equal(await value(r, sb), -7);
  await r.close();
});

test("values convert both ways", async () => {
  const r = await Replica.open();
  const reg = k("v", "register_lww");
  const cases = [
    [null, null],
    [true, true],
    [false, false],
    [42, 42],
    [-7, -7],
    [2 ** 53 - 1, 2 ** 53 - 1],
    [123n, 123],                       // a safe BigInt comes back as a number
    [2n ** 62n, 2n ** 62n],            // an unsafe int comes back as a BigInt
    [-(2n ** 63n), -(2n ** 63n)],
    [1.5, 1.5],
    [2 ** 60, 2 ** 60],                // an unsafe number is a float
    ["héllo", "héllo"],
    [new Uint8Array([0, 1, 255]), new Uint8Array([0, 1, 255])],
    [[1, "two", [3, [4n ** 30n]]], [1, "two", [3, [4n ** 30n]]]],
    [{ a: 1, b: { c: [true, null] } }, { a: 1, b: { c: [true, null] } }],
  ];
  for (const [input, expected] of cases) {
    await r.updateObjects([[reg, "assign", input]]);
    assert.deepEqual(await value(r, reg), expected, `round trip of ${String(input)}`);
  }
  // Set elements keep the documented total order: ints before strings.
  const s = k("s", "set_aw");
  await r.updateObjects([[s, "add_all", ["b", 2, "a", 1, null, true]]]);
  assert.deepEqual(await value(r, s), [null, true, 1, 2, "a", "b"]);
  await r.close();
});

test("invalid updates are refused with invalid_operation and change nothing", async () => {
  const r = await Replica.open();
  const c = k("c", "counter_pn");
  const [, before] = await r.readObjects([]);
  const bad = [
    [[c, "increment", 1], [c, "frobnicate", 1]],            // unknown op
    [[c, "increment", 1], [["x", "no_such_type", "b"], "add", 1]],
    [[c, "increment", 1], [c, "increment", "one"]],         // wrong argument
    [[c, "increment", 1], [k("r", "register_lww"), "assign", 2n ** 64n]], // outside i64
    [[c, "increment", 1], ["not a key", "add", 1]],
    [[c, "increment", 1], [k("s", "set_aw"), "add"]],       // missing argument
    "not an array",
    // Lone surrogates, which would turn into U+FFFD and merge two keys.
    [[c, "increment", 1], [k("s", "set_aw"), "add", "a\ud800b"]],
    [[c, "increment", 1], [["a\udc00", "set_aw", "b"], "add", "x"]],
    [[c, "increment", 1], [["x", "set_aw", "\ud800"], "add", "x"]],
    [[c, "increment", 1], [k("r", "register_lww"), "assign", { "\ud800": 1 }]],
    [[c, "increment", 1], [k("s", "set_aw"), "add_all", ["ok", "\udfff"]]],
    // A transaction no frame could carry.
    [[c, "increment", 1], [k("r", "register_lww"), "assign", new Uint8Array(1_100_000)]],
  ];
  for (const updates of bad) {
    await assert.rejects(r.updateObjects(updates), (e) => {
      assert.ok(e instanceof MinidoteError, String(e));
      assert.equal(e.code, "invalid_operation");
      return true;
    });
  }
  const [values, after] = await r.readObjects([c]);
  assert.deepEqual(values, [0]);
  assert.ok(after.equals(before), "the clock did not move");
  await assert.rejects(r.readObjects([["a", "counter_pn"]]), (e) => e.code === "invalid_operation");
  await assert.rejects(r.updateObjects([], "not a clock"), (e) => e.code === "invalid_operation");
  await r.close();
});

test("maps: nested fields, values, remove and reset, typed errors", async () => {
  const r = await Replica.open();
  const doc = k("doc", "map_rr");
  const go = k("g", "map_go");
  // API.md's examples: one field, and two deep.
  await r.updateObjects([
    [doc, "update", [["done", "flag_ew"], "enable"]],
    [doc, "update", [["meta", "map_rr"], "update", [["tags", "set_aw"], "add", "x"]]],
    [doc, "update", [["meta", "map_rr"], "update", [["views", "counter_pn"], "increment", 3]]],
    [go, "update", [["n", "counter_pn_sb"], "increment", 2]],
  ]);
  assert.deepEqual(await value(r, doc), { done: true, meta: { tags: ["x"], views: 3 } });
  assert.deepEqual(await value(r, go), { n: 2 });
  // A name used with two types reads the first type of the table.
  await r.updateObjects([[doc, "update", [["done", "counter_pn"], "increment", 9]]]);
  assert.equal((await value(r, doc)).done, 9);
  await r.updateObjects([[doc, "remove", ["done", "counter_pn"]]]);
  assert.equal((await value(r, doc)).done, true);
  // A removed field is gone; a field back at its initial state too.
  await r.updateObjects([[doc, "remove", ["meta", "map_rr"]], [doc, "update", [["done", "flag_ew"], "disable"]]]);
  assert.deepEqual(await value(r, doc), {});
  await r.updateObjects([[doc, "update", [["t", "register_lww"], "assign", "v"]], [doc, "reset"]]);
  assert.deepEqual(await value(r, doc), {});
  // Bad map updates refuse the whole batch.
  const [, before] = await r.readObjects([]);
  const ok = [go, "update", [["s", "set_aw"], "add", 1]];
  for (const bad of [
    [doc, "update", [["x", "sett"], "add", 1]],
    [doc, "update", ["x", "add"]],
    [doc, "update", [["x", "counter_pn"], "add", 1]],
    [doc, "remove", "x"],
    [go, "remove", ["n", "counter_pn_sb"]],
    [go, "reset"],
    [go, "update", [["n", "counter_pn_sb"], "increment", 2n ** 63n - 1n]],
  ]) {
    await assert.rejects(r.updateObjects([ok, bad]), (e) => e.code === "invalid_operation", JSON.stringify(bad, (_, v) => typeof v === "bigint" ? String(v) : v));
  }
  const [, after] = await r.readObjects([]);
  assert.ok(after.equals(before), "nothing was applied");
  assert.deepEqual(await value(r, go), { n: 2 });
  await r.close();
});

test("a read with a clock this replica has not reached times out", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const clock = await a.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  const t0 = Date.now();
  await assert.rejects(b.readObjects([k("c", "counter_pn")], clock, { timeoutMs: 50 }), (e) => {
    assert.equal(e.code, "clock_timeout");
    return true;
  });
  assert.ok(Date.now() - t0 >= 40);
  // An update that must follow that clock times out too, and applies nothing.
  await assert.rejects(b.updateObjects([[k("c", "counter_pn"), "increment", 5]], clock, { timeoutMs: 50 }),
    (e) => e.code === "clock_timeout");
  const [[still], bClock] = await b.readObjects([k("c", "counter_pn")]);
  assert.equal(still, 0);
  assert.deepEqual(bClock.toJSON(), {});
  // Its own clock is reached at once, and reads see the write.
  const [[v], c2] = await a.readObjects([k("c", "counter_pn")], clock);
  assert.equal(v, 1);
  assert.ok(clock.leq(c2));
  await a.close();
  await b.close();
});

test("clocks: bytes, order, merge, JSON", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const ca = await a.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  const cb = await b.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  assert.ok(ca.concurrent(cb));
  const m = ca.merge(cb);
  assert.ok(ca.leq(m) && cb.leq(m) && !m.leq(ca));
  const again = Clock.fromBytes(m.toBytes());
  assert.ok(again.equals(m));
  assert.deepEqual(m.toJSON(), { [a.id]: 1, [b.id]: 1 });
  assert.throws(() => Clock.fromBytes(new Uint8Array([9, 9, 9])));
  await a.close();
  await b.close();
});

test("subscribe fires on changes with the keys; unsubscribe stops it", async () => {
  const r = await Replica.open();
  const seen = [];
  const off = r.subscribe((keys) => seen.push(keys));
  await r.updateObjects([[k("c", "counter_pn"), "increment", 1], [k("s", "set_aw"), "add", 1]]);
  await new Promise((res) => setTimeout(res, 10));
  assert.deepEqual(seen, [[k("c", "counter_pn"), k("s", "set_aw")]]);
  off();
  await r.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(seen.length, 1);
  // A subscriber may call back into the replica.
  let inner = null;
  r.subscribe(() => { inner = r.stats().txns_local; });
  await r.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(inner, 3);
  await r.close();
});

test("stats has the Python fields", async () => {
  const r = await Replica.open();
  await r.updateObjects([[k("c", "counter_pn"), "increment", 1]]);
  const s = r.stats();
  for (const f of ["id", "room", "clock", "buffered", "pending_requests", "txns_local", "txns_remote",
    "bytes_sent", "bytes_received", "log_records", "snapshots", "peers"]) {
    assert.ok(f in s, f);
  }
  assert.equal(s.txns_local, 1);
  assert.ok(s.clock instanceof Clock);
  await r.close();
});

test("Node is memory only; a closed replica refuses work", async () => {
  await assert.rejects(Replica.open({ name: "db" }), (e) => e instanceof MinidoteError && e.code === "storage");
  const r = await Replica.open();
  await r.close();
  await assert.rejects(r.updateObjects([[k("c", "counter_pn"), "increment", 1]]), (e) => e.code === "storage");
  await r.close(); // twice is fine
});

// The call buffer (js/codec.js, src/batch.rs): key arrays are sent by id
// after the first time, repeated updates in one byte, values in one buffer.
test("key arrays sent by id stay right when changed, after a failed call, and past a generation", async () => {
  const r = await Replica.open();
  const key = ["a", "counter_pn", "b"];
  await r.updateObjects([[key, "increment", 1]]);
  // The same array, changed in place, names another object.
  key[0] = "z";
  await r.updateObjects([[key, "increment", 5]]);
  assert.deepEqual(r.read([["a", "counter_pn", "b"], ["z", "counter_pn", "b"]]), [1, 5]);
  key[1] = "set_aw";
  await r.updateObjects([[key, "add", "x"]]);
  assert.deepEqual(r.read([key]), [["x"]]);
  // A call that fails after registering a key: the key still works later.
  const fresh = ["f", "counter_pn", "b"];
  const bad = ["g", "no_such_type", "b"];
  await assert.rejects(r.updateObjects([[fresh, "increment", 1], [bad, "increment", 1]]),
    (e) => e.code === "invalid_operation" && /no_such_type/.test(e.message));
  await assert.rejects(r.updateObjects([[bad, "increment", 1]]), (e) => /no_such_type/.test(e.message));
  await r.updateObjects([[fresh, "increment", 2]]);
  assert.deepEqual(r.read([fresh]), [2]);
  // Another replica shares the module's id table.
  const other = await Replica.open();
  await other.updateObjects([[fresh, "increment", 7]]);
  assert.deepEqual(other.read([fresh, key]), [7, []]);
  // More key arrays than one generation holds (65,536), in one call and
  // across calls: every key is still the right one.
  const many = Array.from({ length: 70_000 }, (_, i) => [`m${i}`, "counter_pn", "b"]);
  await r.updateObjects(many.map((m, i) => [m, "increment", i]));
  await r.updateObjects(many.map((m) => [m, "increment", 1]));
  const got = r.read(many);
  assert.equal(got.length, many.length);
  for (let i = 0; i < many.length; i += 997) assert.equal(got[i], i + 1, many[i][0]);
  assert.equal(got[69_999], 70_000);
  assert.deepEqual(r.read([fresh, ["a", "counter_pn", "b"]]), [2, 1]);
  await r.close();
  await other.close();
});

test("batches: repeated updates, values of every kind, and refusals", async () => {
  const r = await Replica.open();
  const c = k("c", "counter_pn");
  const same = [c, "increment", 2];
  await r.updateObjects(Array.from({ length: 1000 }, () => same));
  await r.updateObjects([[c, "increment"], [c, "increment"], [c, "decrement", 3]]);
  assert.equal(r.read([c])[0], 1999);
  const reg = k("v", "register_lww");
  // A Map is a map; "__proto__" is an ordinary field both ways.
  await r.updateObjects([[reg, "assign", new Map([["x", 1]])]]);
  assert.deepEqual(r.read([reg])[0], { x: 1 });
  await r.updateObjects([[reg, "assign", JSON.parse('{"__proto__": 5, "é": "ü"}')]]);
  const v = r.read([reg])[0];
  assert.equal(Object.getPrototypeOf(v), Object.prototype);
  assert.deepEqual(Object.keys(v).sort(), ["__proto__", "é"]);
  assert.equal(v["é"], "ü");
  const long = "x".repeat(100) + "é" + "y".repeat(100);
  await r.updateObjects([[reg, "assign", [long, "ascii", "", "日本"]]]);
  assert.deepEqual(r.read([reg])[0], [long, "ascii", "", "日本"]);
  const [, before] = await r.readObjects([]);
  for (const bad of [new Date(), () => 1, Symbol("s"), new Map([[1, 2]]), new Set([1]), "a".repeat(70) + "\ud800"]) {
    await assert.rejects(r.updateObjects([[c, "increment", 1], [reg, "assign", bad]]),
      (e) => e instanceof MinidoteError && e.code === "invalid_operation", String(bad?.toString?.()));
  }
  let deep = 1;
  for (let i = 0; i < 70; i++) deep = [deep];
  await assert.rejects(r.updateObjects([[reg, "assign", deep]]), (e) => /deeper/.test(e.message));
  assert.throws(() => r.read(["not a key"]), (e) => e.code === "invalid_operation");
  assert.throws(() => r.read([["a", 1, "b"]]), (e) => e.code === "invalid_operation");
  const [, after] = await r.readObjects([]);
  assert.ok(after.equals(before), "nothing was applied");
  assert.equal(r.read([c])[0], 1999);
  // Clocks are plain objects over bytes: nothing to free.
  assert.ok(before instanceof Clock);
  before.free();
  assert.ok(Clock.fromBytes(after.toBytes()).equals(after));
  assert.throws(() => Clock.fromBytes("nope"), (e) => e.code === "invalid_operation");
  await r.close();
});
