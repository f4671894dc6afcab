// Bring your own transport in Node: frames from onLocalUpdate carried by a
// shuffling, duplicating channel; garbage refused with "protocol"; a frame
// applied twice changes nothing; synchronous read; flush with no link.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Replica, Clock, MinidoteError } from "../pkg/index.js";
import { rng } from "./rng.mjs";

const K = ["n", "counter_pn", "t"];
const T = ["doc", "text", "t"];
const tick = () => new Promise((r) => setTimeout(r, 0));

test("two replicas synced only through a shuffling, duplicating channel converge", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const chan = [];
  a.onLocalUpdate((f) => chan.push([b, f]));
  b.onLocalUpdate((f) => chan.push([a, f]));
  for (let i = 0; i < 40; i++) {
    await a.updateObjects([[K, "increment", 1], [T, "insert", [0, "a"]]]);
    await b.updateObjects([[K, "increment", 10], [T, "insert", [0, "b"]]]);
  }
  await tick();
  assert.equal(chan.length, 80);
  assert.ok(chan.every(([, f]) => f instanceof Uint8Array));
  const frames = [...chan, ...chan];
  const rand = rng(7);
  for (let i = frames.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [frames[i], frames[j]] = [frames[j], frames[i]];
  }
  let pendingSeen = false;
  for (const [dest, f] of frames) {
    const st = await dest.applyUpdate(f);
    assert.ok(st.missing instanceof Clock);
    pendingSeen ||= st.pending > 0;
  }
  assert.ok(pendingSeen, "some frames arrived before their causes");
  const [va, vb] = [a.read([K, T]), b.read([K, T])];
  assert.deepEqual(va, vb);
  assert.equal(va[0], 440);
  assert.equal([...va[1]].sort().join(""), "a".repeat(40) + "b".repeat(40));
  assert.ok(a.stats().clock.equals(b.stats().clock));
  // Applied again: nothing changes.
  for (const [dest, f] of frames.slice(0, 10)) {
    const st = await dest.applyUpdate(f);
    assert.equal(st.applied, 0);
  }
  assert.deepEqual(a.read([K, T]), va);
  await a.close();
  await b.close();
});

test("only own writes are local updates; the returned function stops them", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const got = [];
  const stop = a.onLocalUpdate((f) => got.push(f));
  await b.updateObjects([[K, "increment", 1]]);
  for (const f of b.exportSince()) await a.applyUpdate(f);
  await a.updateObjects([[K, "increment", 2]]);
  await tick();
  assert.equal(got.length, 1);
  stop();
  await a.updateObjects([[K, "increment", 3]]);
  await tick();
  assert.equal(got.length, 1);
  assert.throws(() => a.onLocalUpdate(42), TypeError);
  await a.close();
  await b.close();
});

test("garbage is refused with code protocol and applies nothing", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  await a.updateObjects([[K, "increment", 4]]);
  const [good] = a.exportSince();
  for (const bad of [new Uint8Array(), new Uint8Array([0]), good.slice(0, good.length - 1),
    new TextEncoder().encode("garbage".repeat(10))]) {
    await assert.rejects(b.applyUpdate(bad), (e) => e instanceof MinidoteError && e.code === "protocol");
  }
  await assert.rejects(b.applyUpdate("not bytes"), (e) => e.code === "protocol");
  assert.deepEqual(b.read([K]), [0]);
  assert.equal((await b.applyUpdate(good)).applied, 1);
  assert.deepEqual(b.read([K]), [4]);
  await a.close();
  await b.close();
});

test("read is synchronous, returns local values, and checks its keys", async () => {
  const a = await Replica.open();
  await a.updateObjects([[K, "increment", 2], [T, "insert", [0, "hi"]]]);
  const v = a.read([K, T, ["nope", "set_aw", "t"]]);
  assert.ok(Array.isArray(v), "not a Promise");
  assert.deepEqual(v, [2, "hi", []]);
  assert.throws(() => a.read([["k", "no_such_type", "t"]]), (e) => e.code === "invalid_operation");
  await a.close();
  assert.throws(() => a.read([K]), (e) => e.code === "storage");
});

test("flush with no link: true with nothing to deliver, false (at once) with writes", async () => {
  const a = await Replica.open();
  assert.equal(await a.flush({ timeoutMs: 100 }), true);
  await a.updateObjects([[K, "increment", 1]]);
  const t = Date.now();
  assert.equal(await a.flush({ timeoutMs: 100 }), false);
  assert.ok(Date.now() - t < 2000);
  await a.close();
});
