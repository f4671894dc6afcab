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
