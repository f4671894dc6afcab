// Lists and text through the JS API in Node: ops, errors (nothing applied),
// UTF-16 indexes, non-interleaving on three replicas synced by hand with
// exportSince/applyUpdate, deltas and cursors, and every editing trace of
// benchmarks/traces ("editing-traces by Joseph Gentle and contributors",
// CC BY 4.0). Trace positions count code points: the replay converts them
// to UTF-16 units, as an app on `string.length` would.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { Replica, MinidoteError } from "../pkg/index.js";

const T = ["doc", "text", "b"];
const L = ["items", "list", "b"];

async function value(r, key) {
  const [[v]] = await r.readObjects([key]);
  return v;
}

async function sync(a, b) {
  const [, clock] = await b.readObjects([]);
  for (const f of a.exportSince(clock)) await b.applyUpdate(f);
}

test("list and text ops; text indexes count UTF-16 units", async () => {
  const r = await Replica.open();
  await r.updateObjects([[L, "insert", [0, "b"]], [L, "insert", [0, "a"]], [L, "insert_all", [2, [1, [2]]]]]);
  await r.updateObjects([[L, "delete", [1, 1]]]);
  assert.deepEqual(await value(r, L), ["a", 1, [2]]);
  await r.updateObjects([[T, "insert", [0, "a😀b"]]]);
  assert.equal((await value(r, T)).length, 4);
  // Index 3 is after the emoji (two units).
  await r.updateObjects([[T, "insert", [3, "x"]], [T, "splice", [0, 1, "A"]]]);
  assert.equal(await value(r, T), "A😀xb");
  await assert.rejects(r.updateObjects([[T, "insert", [2, "!"]]]), (e) => e instanceof MinidoteError && /surrogate/.test(e.message));
  await r.close();
});

test("bad indexes and arguments are invalid_operation and apply nothing", async () => {
  const r = await Replica.open();
  const c = ["c", "counter_pn", "b"];
  await r.updateObjects([[T, "insert", [0, "abcd"]], [L, "insert", [0, 1]]]);
  const [before] = await r.readObjects([T, L, c]);
  for (const bad of [
    [T, "insert", [5, "x"]], [T, "insert", [-1, "x"]], [T, "insert", [0, 5]],
    [T, "delete", [2, 3]], [T, "splice", [0, 1]], [T, "insert_all", [0, ["x"]]],
    [L, "insert", [2, 1]], [L, "delete", [0, 2]], [L, "insert_all", [0, 1]],
    [T, "insert", "x"], [T, "insert"],
  ]) {
    await assert.rejects(
      async () => r.updateObjects([[c, "increment", 1], bad]),
      (e) => e instanceof MinidoteError && e.code === "invalid_operation",
      JSON.stringify(bad),
    );
  }
  const [after] = await r.readObjects([T, L, c]);
  assert.deepEqual(after, before);
  await r.close();
});

test("three replicas typing at one place never interleave", async () => {
  const rs = await Promise.all([0, 1, 2].map(() => Replica.open()));
  await rs[0].updateObjects([[T, "insert", [0, "<>"]]]);
  await sync(rs[0], rs[1]);
  await sync(rs[0], rs[2]);
  const words = ["alpha", "bravo", "charlie"];
  for (let i = 0; i < 3; i++) {
    const w = words[i];
    for (let n = 0; n < w.length; n++) {
      if (i === 1) await rs[i].updateObjects([[T, "insert", [1, w[w.length - 1 - n]]]]);
      else await rs[i].updateObjects([[T, "insert", [1 + n, w[n]]]]);
    }
  }
  for (const a of rs) for (const b of rs) if (a !== b) await sync(a, b);
  const got = await Promise.all(rs.map((r) => value(r, T)));
  assert.equal(new Set(got).size, 1);
  const inner = got[0].slice(1, -1);
  for (const w of words) assert.ok(inner.includes(w), `${w} whole in ${inner}`);
  for (const r of rs) await r.close();
});

test("subscribers get deltas in UTF-16 units; cursors stay with their element", async () => {
  const a = await Replica.open();
  const b = await Replica.open();
  const seen = [];
  const off = b.subscribe((keys, deltas) => seen.push([keys, deltas]));
  await a.updateObjects([[T, "insert", [0, "a😀c"]]]);
  await sync(a, b);
  await a.updateObjects([[T, "splice", [3, 1, "d"]]]);
  await sync(a, b);
  await new Promise((r) => setTimeout(r, 10));
  const key = JSON.stringify(T);
  assert.deepEqual(seen[0][0], [T]);
  assert.deepEqual(seen[0][1].get(key), [{ insert: "a😀c" }]);
  assert.deepEqual(seen.at(-1)[1].get(key), [{ retain: 3 }, { delete: 1 }, { insert: "d" }]);
  off();
  const cur = a.cursor(T, 3);
  assert.ok(cur instanceof Uint8Array);
  await b.updateObjects([[T, "insert", [0, "😀"]]]);
  await sync(b, a);
  assert.equal(a.resolve(cur), 5);
  assert.throws(() => a.cursor(T, 99), (e) => e.code === "invalid_operation");
  assert.throws(() => a.resolve(new Uint8Array([9, 9])), (e) => e.code === "invalid_operation");
  await assert.rejects(a.applyUpdate(new Uint8Array([1, 2, 3])), (e) => e.code === "protocol");
  await a.close();
  await b.close();
});

const TRACES = new URL("../../benchmarks/traces/", import.meta.url);
const load = (name) => JSON.parse(gunzipSync(readFileSync(new URL(`${name}.json.gz`, TRACES))).toString("utf8"));

/** The trace's patches as UTF-16 ops. Positions count code points: where
 * the trace inserts characters outside the BMP (two UTF-16 units each), the
 * replay keeps a copy of the text to convert them; none of the traces here
 * has any, so there code points and units coincide and the copy is skipped
 * (the conversion itself is tested above with an emoji). */
function converter(t, start = "") {
  const astral = /[\u{10000}-\u{10ffff}]/u.test(JSON.stringify(t.txns));
  let doc = start;
  return (patches) => {
    const out = [];
    for (const [pos, del, ins] of patches) {
      let at = pos;
      let end = pos + del;
      if (astral) {
        at = u16(doc, pos);
        end = u16(doc, pos + del);
        doc = doc.slice(0, at) + ins + doc.slice(end);
      }
      if (end > at) out.push([T, "delete", [at, end - at]]);
      if (ins) out.push([T, "insert", [at, ins]]);
    }
    return out;
  };
}

/** The UTF-16 index of code point `pos` in `s`. */
function u16(s, pos) {
  let i = 0;
  for (let cp = 0; cp < pos && i < s.length; cp++) {
    const c = s.charCodeAt(i);
    i += c >= 0xd800 && c < 0xdc00 ? 2 : 1;
  }
  return i;
}

for (const name of ["automerge-paper", "seph-blog1", "rustcode", "sveltecomponent", "friendsforever_flat"]) {
  test(`trace ${name} replays exactly`, async () => {
    const t = load(name);
    const r = await Replica.open();
    const start = t.startContent ?? "";
    if (start) await r.updateObjects([[T, "insert", [0, start]]]);
    const ops = converter(t, start);
    for (const txn of t.txns) {
      const u = ops(txn.patches);
      if (u.length) await r.updateObjects(u);
    }
    assert.equal(await value(r, T), t.endContent);
    const fresh = await Replica.open();
    for (const f of r.exportSince()) await fresh.applyUpdate(f);
    assert.equal(await value(fresh, T), t.endContent);
    await r.close();
    await fresh.close();
  });
}

test("the concurrent trace converges on every replica", async () => {
  const t = load("friendsforever.concurrent");
  assert.ok(!/[\u{10000}-\u{10ffff}]/u.test(JSON.stringify(t.txns)), "code points are UTF-16 units here");
  const n = t.numAgents;
  const reps = await Promise.all(Array.from({ length: n }, () => Replica.open()));
  const frames = Array.from({ length: n }, () => []);
  const have = Array.from({ length: n }, () => new Array(n).fill(0));
  const versions = [];
  for (const txn of t.txns) {
    const a = txn.agent;
    let want = new Array(n).fill(0);
    for (const p of txn.parents) want = want.map((x, i) => Math.max(x, versions[p][i]));
    for (let b = 0; b < n; b++) {
      if (b === a) continue;
      for (const f of frames[b].slice(have[a][b], want[b])) await reps[a].applyUpdate(f);
      have[a][b] = Math.max(have[a][b], want[b]);
    }
    const [, before] = await reps[a].readObjects([]);
    // No astral characters in this trace (see `converter`): code points
    // are UTF-16 units.
    await reps[a].updateObjects(converter({ txns: [] })(txn.patches));
    const out = reps[a].exportSince(before);
    assert.equal(out.length, 1);
    frames[a].push(out[0]);
    have[a][a] += 1;
    versions.push([...have[a]]);
  }
  for (let a = 0; a < n; a++)
    for (let b = 0; b < n; b++) if (a !== b) for (const f of frames[b].slice(have[a][b])) await reps[a].applyUpdate(f);
  for (const r of reps) {
    assert.equal(await value(r, T), t.endContent);
    await r.close();
  }
});
