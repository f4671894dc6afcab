// The npm package in real headless Chromium, against a real relay process:
// convergence, offline work, reload from IndexedDB, Web Locks, and a
// Python replica in the same room. Run by `make test`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, launchChromium, waitFor } from "./helpers.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WASM_DIR = path.resolve(HERE, "..");
const ROOT = path.resolve(WASM_DIR, "..");
const RELAY = process.env.MINIDOTE_RELAY_BIN ?? path.join(ROOT, "target", "debug", "minidote-relay");
const PYTHON = process.env.MINIDOTE_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");

let browser;


async function startRelay(ports, extra = []) {
  const http = ports?.http ?? (await freePort());
  const tcp = ports?.tcp ?? (await freePort());
  const proc = spawn(RELAY, ["--listen", `127.0.0.1:${http}`, "--tcp-listen", `127.0.0.1:${tcp}`,
    "--memory", "--static", WASM_DIR, ...extra], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "error" } });
  await waitFor(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${http}/healthz`)).ok;
    } catch {
      return false;
    }
  }, "relay up");
  return {
    http, tcp, proc,
    page: `http://127.0.0.1:${http}/tests/page.html`,
    ws: `ws://127.0.0.1:${http}/sync`,
    async stop() {
      proc.kill("SIGKILL");
      await new Promise((r) => proc.once("exit", r));
    },
  };
}

async function openPage(context, relay) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(relay.page);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

/** Runs `body(relay, ctx)` with a fresh relay process and browser context,
 *  closing both whatever happens. */
async function withRelay(extraArgs, body) {
  const relay = await startRelay(undefined, extraArgs);
  const ctx = await browser.newContext();
  try {
    await body(relay, ctx);
  } finally {
    await ctx.close();
    await relay.stop();
  }
}

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

test("two pages converge through the relay; a page offline keeps working and converges on reconnect", async () => {
  await withRelay([], async (relay, ctx) => {
    const [p1, p2] = [await openPage(ctx, relay), await openPage(ctx, relay)];
    for (const [p, name] of [[p1, "a"], [p2, "b"]]) {
      await p.evaluate(async ([name, ws]) => {
        // No BroadcastChannel: the test is about the relay link alone.
        window.r = await minidote.Replica.open({ name, room: "r1", broadcast: false });
        window.changes = 0;
        r.subscribe(() => { window.changes += 1; });
        r.connect(ws);
      }, [name, relay.ws]);
    }
    await p1.evaluate(() => r.updateObjects([[K, "increment", 1], [S, "add", "from-a"]]));
    await p2.evaluate(() => r.updateObjects([[K, "increment", 10], [S, "add", "from-b"]]));
    for (const p of [p1, p2]) {
      await waitFor(() => p.evaluate(async () => (await read(K)) === 11), "converged counter");
      assert.deepEqual(await p.evaluate(() => read(S)), ["from-a", "from-b"]);
    }
    assert.ok((await p2.evaluate(() => window.changes)) >= 2, "subscribers saw remote changes");

    // p1 goes offline and keeps writing.
    await p1.evaluate(() => r.disconnect());
    for (let i = 0; i < 5; i++) await p1.evaluate(() => r.updateObjects([[K, "increment", 100]]));
    await p2.evaluate(() => r.updateObjects([[K, "increment", 1000]]));
    assert.equal(await p1.evaluate(() => read(K)), 511);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await p2.evaluate(() => read(K)), 1011, "offline writes stay local");
    // Back online: both converge.
    await p1.evaluate((ws) => r.connect(ws), relay.ws);
    for (const p of [p1, p2]) {
      await waitFor(() => p.evaluate(async () => (await read(K)) === 1511), "converged after reconnect");
    }
    const [c1, c2] = [await p1.evaluate(() => JSON.stringify(r.stats().clock)),
      await p2.evaluate(() => JSON.stringify(r.stats().clock))];
    assert.equal(c1, c2);
  });
});

test("map_rr: a remove racing an update keeps only the update, for every embedded type", async () => {
  // Per type: the base op, the op that races a remove of the field, and
  // what the field reads after both pages converge.
  const races = {
    counter_pn: [["increment", 7], ["increment", 5], 5],
    counter_pn_sb: [["increment", 7], ["increment", 5], 5],
    set_aw: [["add", "old"], ["add", "new"], ["new"]],
    set_rw: [["add", "old"], ["add", "new"], ["new"]],
    set_go: [["add", "old"], ["add", "new"], ["new"]],
    set_2p: [["add", "old"], ["add", "new"], ["new"]],
    register_mv: [["assign", "old"], ["assign", "new"], ["new"]],
    register_lww: [["assign", "old"], ["assign", "new"], "new"],
    flag_ew: [["enable"], ["enable"], true],
    flag_dw: [["enable"], ["disable"], false],
    map_rr: [["update", [["x", "counter_pn"], "increment", 7]], ["update", [["y", "set_aw"], "add", "new"]], { y: ["new"] }],
    map_go: [["update", [["x", "counter_pn"], "increment", 7]], ["update", [["y", "set_aw"], "add", "new"]], { y: ["new"] }],
  };
  await withRelay([], async (relay, ctx) => {
    const [p1, p2] = [await openPage(ctx, relay), await openPage(ctx, relay)];
    for (const [p, name] of [[p1, "ma"], [p2, "mb"]]) {
      await p.evaluate(async ([name, ws]) => {
        window.r = await minidote.Replica.open({ name, room: "maps" });
        r.connect(ws);
      }, [name, relay.ws]);
    }
    const doc = (ty) => ["doc-" + ty, "map_rr", "b"];
    const up = (ty, op) => [doc(ty), "update", [["f", ty], ...op]];
    const base = Object.keys(races).map((ty) => up(ty, races[ty][0]));
    await p1.evaluate((u) => r.updateObjects(u), base);
    const clock = async (p) => p.evaluate(() => JSON.stringify(r.stats().clock));
    await waitFor(async () => (await clock(p1)) === (await clock(p2)), "base converged");
    await p1.evaluate(() => r.disconnect());
    await p1.evaluate((u) => r.updateObjects(u), Object.keys(races).map((ty) => [doc(ty), "remove", ["f", ty]]));
    await p2.evaluate((u) => r.updateObjects(u), Object.keys(races).map((ty) => up(ty, races[ty][1])));
    await p1.evaluate((ws) => r.connect(ws), relay.ws);
    await waitFor(async () => (await clock(p1)) === (await clock(p2)), "converged after the race");
    for (const [ty, [, , want]] of Object.entries(races)) {
      for (const p of [p1, p2]) {
        assert.deepEqual(await p.evaluate((k) => read(k), doc(ty)), { f: want }, ty);
      }
    }
  });
});

test("a reload restores the replica from IndexedDB with the relay stopped; one tab per database", async () => {
  // The page comes from one relay process and syncs through another, so
  // the sync relay can be stopped while the page still reloads.
  const web = await startRelay();
  const relay = await startRelay();
  const ctx = await browser.newContext();
  try {
    const page = await openPage(ctx, web);
    const before = await page.evaluate(async (ws) => {
      window.r = await minidote.Replica.open({ name: "keep", room: "r2", snapshotEvery: 20 });
      r.connect(ws);
      for (let i = 0; i < 50; i++) {
        await r.updateObjects([[K, "increment", 1], [S, "add", i]]);
      }
      return { id: r.id, clock: JSON.stringify(r.stats().clock), v: await read(K) };
    }, relay.ws);
    assert.equal(before.v, 50);
    // A second open of the same database, in another tab, is refused.
    const other = await openPage(ctx, web);
    const err = await other.evaluate(async () => {
      try {
        await minidote.Replica.open({ name: "keep", room: "r2" });
        return null;
      } catch (e) {
        return { code: e.code, isMinidote: e instanceof minidote.MinidoteError };
      }
    });
    assert.deepEqual(err, { code: "storage", isMinidote: true });
    await other.close();
    await relay.stop();
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const after = await page.evaluate(async () => {
      window.r = await minidote.Replica.open({ name: "keep", room: "r2" });
      const s = r.stats();
      return { id: r.id, clock: JSON.stringify(s.clock), v: await read(K), set: (await read(S)).length,
        recovered: s.recovery_records, snapshots: s.snapshots };
    });
    assert.equal(after.id, before.id);
    assert.equal(after.clock, before.clock);
    assert.equal(after.v, 50);
    assert.equal(after.set, 50);
    // The log was pruned behind snapshots, so fewer records were replayed.
    assert.ok(after.recovered < 50, `replayed ${after.recovered}`);
    // New writes continue the same seq.
    const next = await page.evaluate(async () => {
      const c = await r.updateObjects([[K, "increment", 1]]);
      return c.toJSON()[r.id];
    });
    assert.equal(next, 51);
  } finally {
    await ctx.close();
    await web.stop();
  }
});

test("a Python replica in the same relay room sees the browser's writes, and the browser sees Python's", async () => {
  const relay = await startRelay();
  const ctx = await browser.newContext();
  const script = `
import sys, time, minidote
K = ("likes", "counter_pn", "b")
with minidote.Replica(room="py") as r:
    r.connect(sys.argv[1])
    clock = r.update_objects([(K, "increment", 100)])
    print(clock.to_bytes().hex(), flush=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        v = r.read_objects([K])[0][0]
        if v == 101:
            print("python sees", v, flush=True)
            sys.exit(0)
        time.sleep(0.05)
    print("python saw", v, flush=True)
    sys.exit(1)
`;
  try {
    const page = await openPage(ctx, relay);
    await page.evaluate(async (ws) => {
      window.r = await minidote.Replica.open({ room: "py" });
      r.connect(ws);
    }, relay.ws);
    const py = spawn(PYTHON, ["-c", script, `127.0.0.1:${relay.tcp}`], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    py.stdout.on("data", (d) => { out += d; });
    await waitFor(() => out.includes("\n"), "python's clock");
    const clockHex = out.split("\n")[0].trim();
    // The browser waits on Python's clock (a session guarantee across bindings).
    const seen = await page.evaluate(async (hex) => {
      const bytes = new Uint8Array(hex.match(/../g).map((h) => parseInt(h, 16)));
      return await read(K, minidote.Clock.fromBytes(bytes), 15000);
    }, clockHex);
    assert.equal(seen, 100);
    await page.evaluate(() => r.updateObjects([[K, "increment", 1]]));
    const code = await new Promise((r) => py.once("exit", r));
    assert.equal(code, 0, out);
    assert.match(out, /python sees 101/);
  } finally {
    await ctx.close();
    await relay.stop();
  }
});

test("a relay's refusal is final: no reconnect loop, and connect() starts again", async () => {
  await withRelay(["--auth-secret", "s3cret"], async (relay, ctx) => {
    const mint = (room) =>
      spawnSync(RELAY, ["token", "--auth-secret", "s3cret", "--room", room, "--scope", "write"], { encoding: "utf8" })
        .stdout.trim();
    const metric = async (name) => {
      const text = await (await fetch(`http://127.0.0.1:${relay.http}/metrics`)).text();
      return Number(text.match(new RegExp(`^minidote_relay_${name} (\\d+)`, "m"))?.[1] ?? NaN);
    };
    const page = await openPage(ctx, relay);
    await page.evaluate(async ([ws, token]) => {
      window.r = await minidote.Replica.open({ room: "mine" });
      r.connect(ws, { token });
    }, [relay.ws, mint("someone-else")]);
    await waitFor(() => page.evaluate(() => /not reconnecting/.test(r.stats().last_protocol_error ?? "")),
      "refused for good");
    await new Promise((ok) => setTimeout(ok, 2500));
    // The backoff (250 ms, doubling) would have retried 3 times in 2.5 s.
    assert.equal(await metric("auth_failures_total"), 1);
    assert.equal(await page.evaluate(() => r.connected), false);
    await page.evaluate(([ws, token]) => r.connect(ws, { token }), [relay.ws, mint("mine")]);
    await waitFor(() => page.evaluate(() => r.connected), "connected with a good token");
  });
});

test("an IndexedDB database of an older schema is refused, not misread", async () => {
  await withRelay([], async (relay, ctx) => {
    const page = await openPage(ctx, relay);
    const err = await page.evaluate(async () => {
      // A database as schema 1 (protocol 1) left it.
      await new Promise((ok, fail) => {
        const req = indexedDB.open("old", 1);
        req.onupgradeneeded = () => {
          req.result.createObjectStore("log");
          req.result.createObjectStore("meta");
        };
        req.onsuccess = () => {
          const tx = req.result.transaction("meta", "readwrite");
          tx.objectStore("meta").put(1, "schema");
          tx.objectStore("meta").put("00000000000000aa", "id");
          tx.objectStore("meta").put("r", "room");
          tx.oncomplete = () => { req.result.close(); ok(); };
          tx.onerror = () => fail(tx.error);
        };
        req.onerror = () => fail(req.error);
      });
      try {
        await minidote.Replica.open({ name: "old", room: "r" });
        return null;
      } catch (e) {
        return `${e.code}: ${e.message}`;
      }
    });
    assert.match(err ?? "opened", /schema version 1; this build reads 5/);
  });
});

test("20 of 20 pages that connect, write and close at once reach the relay; flush says so", async () => {
  await withRelay([], async (relay, ctx) => {
    for (let i = 0; i < 20; i++) {
      const p = await openPage(ctx, relay);
      const warned = [];
      p.on("console", (m) => { if (m.type() === "warning") warned.push(m.text()); });
      await p.evaluate(async (ws) => {
        const r = await minidote.Replica.open({ room: "flush" });
        r.connect(ws);
        await r.updateObjects([[K, "increment", 1]]);
        await r.close();
      }, relay.ws);
      await p.close();
      assert.deepEqual(warned.filter((w) => w.includes("closing after")), []);
    }
    const later = await openPage(ctx, relay);
    await later.evaluate(async (ws) => {
      window.r = await minidote.Replica.open({ room: "flush" });
      r.connect(ws);
    }, relay.ws);
    await waitFor(() => later.evaluate(() => r.read([K])[0] === 20), "20 of 20 writes");
    // flush: true once the relay stored a new write.
    assert.equal(await later.evaluate(async () => {
      await r.updateObjects([[K, "increment", 1]]);
      return await r.flush({ timeoutMs: 10000 });
    }), true);
  });
});

test("flush returns false, not hangs, when the relay is down; close is bounded and warns", async () => {
  await withRelay([], async (relay, ctx) => {
    const p = await openPage(ctx, relay);
    const warned = [];
    p.on("console", (m) => { if (m.type() === "warning") warned.push(m.text()); });
    const dead = `ws://127.0.0.1:${await freePort()}/sync`;
    const [flushed, flushMs, closeMs] = await p.evaluate(async (ws) => {
      const r = await minidote.Replica.open({ room: "down" });
      r.connect(ws);
      await r.updateObjects([[K, "increment", 1]]);
      let t = performance.now();
      const f = await r.flush({ timeoutMs: 500 });
      const fm = performance.now() - t;
      t = performance.now();
      await r.close({ flushTimeoutMs: 300 });
      return [f, fm, performance.now() - t];
    }, dead);
    assert.equal(flushed, false);
    assert.ok(flushMs < 3000 && closeMs < 3000, `${flushMs} ms, ${closeMs} ms`);
    await waitFor(() => warned.some((w) => w.includes("closing after 300 ms with 0 of this replica's 1 writes")),
      "a warning that says what was not delivered");
  });
});

test("tabs of one origin and room converge through a BroadcastChannel with no relay, also after one reopens", async () => {
  await withRelay([], async (relay, ctx) => {
    const open = async (name) => {
      const p = await openPage(ctx, relay);
      await p.evaluate(async (name) => {
        window.r = await minidote.Replica.open({ name, room: "tabs" }); // no connect()
      }, name);
      return p;
    };
    const [p1, p2] = [await open("tab-a"), await open("tab-b")];
    await p1.evaluate(() => r.updateObjects([[K, "increment", 1], [S, "add", "a"]]));
    await p2.evaluate(() => r.updateObjects([[K, "increment", 10], [S, "add", "b"]]));
    for (const p of [p1, p2]) {
      await waitFor(() => p.evaluate(() => r.read([K])[0] === 11), "tabs converged");
      assert.deepEqual(await p.evaluate(() => r.read([S])[0]), ["a", "b"]);
    }
    // p2 closes; p1 writes meanwhile; p2 reopens (from IndexedDB) and a
    // fresh memory tab joins: both catch up from p1.
    await p2.evaluate(() => r.close());
    await p2.close();
    await p1.evaluate(() => r.updateObjects([[K, "increment", 100]]));
    const p3 = await open("tab-b");
    const p4 = await openPage(ctx, relay);
    await p4.evaluate(async () => { window.r = await minidote.Replica.open({ room: "tabs" }); });
    for (const p of [p3, p4]) {
      await waitFor(() => p.evaluate(() => r.read([K])[0] === 111), "caught up after reopening");
    }
    // Garbage from a tab is refused and applies nothing.
    await p4.evaluate(() => {
      const c = new BroadcastChannel("minidote:tabs");
      c.postMessage({ t: "updates", frames: [new Uint8Array([1, 2, 3])] });
      c.postMessage({ t: "need", from: "x", req: 1, leader: true, clock: new Uint8Array([9, 9]) });
      c.postMessage("hello");
      c.close();
    });
    await waitFor(() => p1.evaluate(() => r.stats().tab_errors >= 3), "bad tab messages counted");
    assert.equal(await p1.evaluate(() => r.read([K])[0]), 111);
    // Another room is not linked.
    const other = await openPage(ctx, relay);
    await other.evaluate(async () => { window.r = await minidote.Replica.open({ room: "elsewhere" }); });
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await other.evaluate(() => r.read([K])[0]), 0);
  });
});

test("one tab answers a new tab, not every tab; a loop of writes takes a few posts", async () => {
  await withRelay([], async (relay, ctx) => {
    const pages = [];
    for (let i = 0; i < 5; i++) {
      const p = await openPage(ctx, relay);
      await p.evaluate(async () => { window.r = await minidote.Replica.open({ room: "fan" }); });
      pages.push(p);
    }
    const answers = async () => {
      let n = 0;
      for (const p of pages) n += await p.evaluate(() => r.stats().tab_answers);
      return n;
    };
    // Each tab's opening need is answered once (by the tab holding the
    // room's lock; the first tab found no one).
    await waitFor(async () => (await answers()) === 4, "one answer per opening tab");
    // 1,000 single writes in a loop reach every tab, in a few posts.
    await pages[1].evaluate(() => {
      window.posts = 0;
      window.spy = new BroadcastChannel("minidote:fan");
      spy.onmessage = (e) => { if (e.data?.t === "updates") posts += 1; };
    });
    await pages[0].evaluate(async () => {
      for (let i = 0; i < 1000; i++) await r.updateObjects([[K, "increment", 1]]);
    });
    for (const p of pages) await waitFor(() => p.evaluate(() => r.read([K])[0] === 1000), "every tab has them");
    const posts = await pages[1].evaluate(() => { spy.close(); return posts; });
    assert.ok(posts >= 1 && posts <= 10, `${posts} posts for 1,000 writes`);
    // A sixth tab catches up from one answer.
    const late = await openPage(ctx, relay);
    await late.evaluate(async () => { window.r = await minidote.Replica.open({ room: "fan" }); });
    await waitFor(() => late.evaluate(() => r.read([K])[0] === 1000), "the late tab caught up");
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(await answers(), 5);
    // The leader goes: another tab takes its lock and answers the next one.
    await pages[0].evaluate(() => r.close());
    await pages[0].close();
    pages.shift();
    pages.push(late);
    const last = await openPage(ctx, relay);
    await last.evaluate(async () => { window.r = await minidote.Replica.open({ room: "fan" }); });
    await waitFor(() => last.evaluate(() => r.read([K])[0] === 1000), "caught up from the new leader");
    for (const p of pages) assert.equal(await p.evaluate(() => r.stats().tab_errors), 0);
  });
});

test("tabs linked both by a BroadcastChannel and the relay apply nothing twice", async () => {
  await withRelay([], async (relay, ctx) => {
    const pages = [];
    for (const name of ["both-a", "both-b"]) {
      const p = await openPage(ctx, relay);
      await p.evaluate(async ([name, ws]) => {
        window.r = await minidote.Replica.open({ name, room: "both" });
        r.connect(ws);
      }, [name, relay.ws]);
      pages.push(p);
    }
    for (let i = 0; i < 20; i++) {
      await pages[i % 2].evaluate(() => r.updateObjects([[K, "increment", 1], [S, "add", String(Math.random())]]));
    }
    for (const p of pages) {
      await waitFor(() => p.evaluate(() => r.read([K])[0] === 20), "converged");
      const st = await p.evaluate(() => ({ remote: r.stats().txns_remote, n: r.read([S])[0].length }));
      assert.equal(st.remote, 10, "each remote transaction applied once");
      assert.equal(st.n, 20);
    }
  });
});

test("read() right after an IndexedDB write, before it is stored, shows it and does not trap", async () => {
  await withRelay([], async (relay, ctx) => {
    const p = await openPage(ctx, relay);
    const [during, after, flushed] = await p.evaluate(async () => {
      const r = await minidote.Replica.open({ name: "read-during-write", room: "rd" });
      const pending = r.updateObjects([[K, "increment", 3]]);
      const during = r.read([K])[0];
      await pending;
      const after = r.read([K])[0];
      const flushed = await r.flush({ timeoutMs: Infinity }).catch((e) => String(e)) === false
        ? "no link" : "?";
      await r.close();
      return [during, after, flushed];
    });
    assert.equal(during, 3);
    assert.equal(after, 3);
    assert.equal(flushed, "no link");
  });
});

test("a page joining a room of 20,000 transactions sees its catch-up progress reach the end", async () => {
  await withRelay([], async (relay, ctx) => {
    const writer = await openPage(ctx, relay);
    await writer.evaluate(async (ws) => {
      const r = await minidote.Replica.open({ room: "progress", broadcast: false });
      r.connect(ws);
      // Linked first: a memory replica's log keeps 10,000 records, and the
      // relay takes no snapshot from a writer.
      while (!r.connected) await new Promise((res) => setTimeout(res, 10));
      // Paced in thousands, as the Python tests are: a debug-build relay
      // reads slower than a loop of 20,000 writes sends.
      for (let i = 0; i < 20; i++) {
        for (let j = 0; j < 1000; j++) r.updateObjects([[K, "increment", 1]]);
        if (!(await r.flush({ timeoutMs: 30000 }))) throw new Error(`not stored (batch ${i})`);
      }
      await r.close();
    }, relay.ws);
    const reader = await openPage(ctx, relay);
    const seen = await reader.evaluate(async (ws) => {
      const r = await minidote.Replica.open({ room: "progress", broadcast: false });
      const events = [];
      const done = new Promise((res) => r.onProgress((p) => { events.push(p); if (p.done) res(); }));
      const alone = await r.catchUp({ timeoutMs: 50 });
      r.connect(ws);
      const caughtUp = await r.catchUp({ timeoutMs: 30000 });
      // catchUp returns once all of it is here.
      if (alone !== false || caughtUp !== true || r.read([K])[0] !== 20000) {
        throw new Error(`catchUp: ${alone} ${caughtUp} ${r.read([K])[0]}`);
      }
      await done;
      events.push(r.read([K])[0]);
      await r.close();
      return events;
    }, relay.ws);
    const value = seen.pop();
    assert.equal(value, 20000);
    const last = seen.at(-1);
    assert.deepEqual([last.received, last.expected, last.done], [20000, 20000, true]);
    assert.ok(last.bytes > 20000 * 3, JSON.stringify(last));
    assert.ok(seen.every((p) => p.expected === 20000));
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i - 1].received <= seen[i].received);
  });
});
