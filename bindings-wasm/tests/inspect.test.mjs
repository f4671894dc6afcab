// What an editor binding and an inspector rely on, in Node: subscribers see
// a change before the call that made it returns, in the order changes
// applied, with the writer's `origin`; keepHistory/inspect/seqStats.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Replica, Clock, MinidoteError } from "../pkg/index.js";

const K = ["n", "counter_pn", "t"];
const T = ["doc", "text", "t"];

test("subscribers see a change before updateObjects returns, with its origin", async () => {
  const r = await Replica.open();
  const seen = [];
  r.subscribe((keys, deltas, info) => seen.push([keys, deltas, info.origin]));
  const tag = { editor: 1 };
  const p = r.updateObjects([[T, "insert", [0, "hi"]]], undefined, { origin: tag });
  assert.equal(seen.length, 1, "delivered synchronously, before the promise");
  assert.equal(seen[0][2], tag);
  assert.deepEqual(seen[0][1].get(JSON.stringify(T)), [{ insert: "hi" }]);
  await p;
  await r.updateObjects([[K, "increment", 1]]);
  assert.equal(seen[1][2], undefined, "no origin given");
  await r.close();
});

test("remote changes are delivered before applyUpdate resolves, without an origin", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const frames = [];
  a.onLocalUpdate((f) => frames.push(f));
  await a.updateObjects([[T, "insert", [0, "abc"]]], undefined, { origin: "a's editor" });
  await new Promise((res) => setTimeout(res, 0));
  assert.equal(frames.length, 1);
  const seen = [];
  b.subscribe((keys, deltas, info) => seen.push([deltas.get(JSON.stringify(T)), info.origin]));
  const st = b.applyUpdate(frames[0]);
  assert.deepEqual(seen, [[[{ insert: "abc" }], undefined]], "before the promise settles");
  assert.equal((await st).applied, 1);
  await a.close();
  await b.close();
});

test("a write made inside a callback is delivered after the change being delivered", async () => {
  const r = await Replica.open();
  const order = [];
  r.subscribe((keys, deltas, info) => {
    order.push(`first:${info.origin}`);
    if (info.origin === "outer") {
      r.updateObjects([[K, "increment", 1]], undefined, { origin: "inner" });
      order.push("inner written");
    }
  });
  r.subscribe((keys, deltas, info) => order.push(`second:${info.origin}`));
  await r.updateObjects([[K, "increment", 1]], undefined, { origin: "outer" });
  assert.deepEqual(order, ["first:outer", "inner written", "second:outer", "first:inner", "second:inner"]);
  assert.equal(r.read([K])[0], 2);
  await r.close();
});

test("a subscriber that throws does not stop the others or the write", async () => {
  const r = await Replica.open();
  let other = 0;
  const warn = console.warn;
  const warned = [];
  console.warn = (m) => warned.push(String(m));
  try {
    r.subscribe(() => { throw new Error("boom"); });
    r.subscribe(() => { other += 1; });
    await r.updateObjects([[K, "increment", 1]]);
  } finally {
    console.warn = warn;
  }
  assert.equal(other, 1);
  assert.equal(r.read([K])[0], 1);
  assert.ok(warned.some((w) => w.includes("boom")), warned.join("\n"));
  await r.close();
});

test("inspect shows the last transactions with deps and keys, and what waits in the buffer", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  assert.deepEqual(b.inspect(), { history: [], buffered: [] });
  b.keepHistory(3);
  const afterFirst = await a.updateObjects([[K, "increment", 1]]);
  await a.updateObjects([[K, "increment", 1]]);
  // Only a's second write: it waits for the first.
  const tail = a.exportSince(afterFirst);
  assert.equal(tail.length, 1);
  assert.equal((await b.applyUpdate(tail[0])).pending, 1);
  const held = b.inspect().buffered;
  assert.equal(held.length, 1);
  assert.equal(held[0].origin, a.id);
  assert.equal(held[0].seq, 2);
  assert.ok(held[0].waitsFor instanceof Clock);
  assert.deepEqual(held[0].waitsFor.toJSON(), { [a.id]: 1 });
  assert.deepEqual(b.inspect({ buffered: 0 }).buffered, []);
  for (const f of a.exportSince()) await b.applyUpdate(f);
  await b.updateObjects([[K, "increment", 5], [T, "insert", [0, "x"]]]);
  const h = b.inspect().history;
  assert.deepEqual(h.map((t) => [t.origin, t.seq, t.local]), [[a.id, 1, false], [a.id, 2, false], [b.id, 1, true]]);
  assert.deepEqual(h[2].keys, [K, T]);
  assert.deepEqual(h[2].deps.toJSON(), { [a.id]: 2 });
  assert.deepEqual(b.inspect().buffered, []);
  b.keepHistory(0);
  assert.deepEqual(b.inspect().history, []);
  assert.throws(() => b.keepHistory(-1), (e) => e instanceof MinidoteError && e.code === "invalid_operation");
  await a.close();
  await b.close();
});

test("seqStats counts runs, visible elements and tombstones", async () => {
  const r = await Replica.open();
  assert.deepEqual(r.seqStats(T), { runs: 0, elements: 0, visible: 0, tombstones: 0, length: 0 });
  await r.updateObjects([[T, "insert", [0, "hello"]]]);
  await r.updateObjects([[T, "delete", [1, 2]]]);
  const st = r.seqStats(T);
  assert.deepEqual([st.elements, st.visible, st.tombstones, st.length], [5, 3, 2, 3]);
  await r.updateObjects([[T, "insert", [0, "😀"]]]);
  assert.equal(r.seqStats(T).length, 5, "UTF-16 units");
  assert.throws(() => r.seqStats(K), (e) => e instanceof MinidoteError && e.code === "invalid_operation");
  await r.close();
});

test("a subscriber removed by another during a delivery is not called for it", async () => {
  const r = await Replica.open();
  let stopB = null;
  let b = 0;
  r.subscribe(() => stopB?.());
  stopB = r.subscribe(() => { b += 1; });
  await r.updateObjects([[K, "increment", 1]]);
  assert.equal(b, 0);
  await r.close();
});
