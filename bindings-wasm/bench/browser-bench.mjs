// minidote in headless Chromium: the in-memory workloads, and
// IndexedDB-persisted throughput with 1, 100 and 1,000 updates per call
// (each call resolves after its IndexedDB transaction commits). The page
// is served by a relay process (--static), as in the browser tests.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { importMap } from "./importmap.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WASM_DIR = path.resolve(HERE, "..");
const ROOT = path.resolve(WASM_DIR, "..");
const RELAY = process.env.MINIDOTE_RELAY_BIN ?? path.join(ROOT, "target", "debug", "minidote-relay");

// A page that loads minidote and the peers unbundled, through an import map.
const map = importMap(WASM_DIR, ["yjs", "loro-crdt/base64"], {
  "@automerge/automerge": "node_modules/@automerge/automerge/dist/mjs/entrypoints/fullfat_base64.js",
});
fs.writeFileSync(path.join(HERE, ".peers.html"), `<!doctype html><meta charset="utf-8">
<script type="importmap">${JSON.stringify(map)}</script>
<script type="module">
  import * as minidote from "/pkg/index.js";
  import * as Y from "yjs";
  import * as Automerge from "@automerge/automerge";
  import * as Loro from "loro-crdt/base64";
  import { workloads, best } from "/bench/peers.mjs";
  await minidote.ready();
  window.run = async () => {
    const rows = [];
    for (const w of workloads({ minidote, Y, Automerge, Loro })) {
      const row = { name: w.name };
      for (const lib of ["minidote", "yjs", "automerge", "loro"]) row[lib] = await best(w[lib]);
      rows.push(row);
    }
    return rows;
  };
  window.ready = true;
</script>`);

const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});
const relay = spawn(RELAY, ["--listen", `127.0.0.1:${port}`, "--no-tcp", "--memory", "--static", WASM_DIR],
  { stdio: "ignore", env: { ...process.env, RUST_LOG: "error" } });
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
  } catch {}
  if (i > 200) throw new Error("relay did not start");
  await new Promise((r) => setTimeout(r, 50));
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  await page.goto(`http://127.0.0.1:${port}/tests/page.html`);
  await page.waitForFunction(() => window.ready === true);
  const version = await browser.version();
  const results = await page.evaluate(async () => {
    const out = [];
    const K = ["likes", "counter_pn", "b"];
    const best = async (f) => Math.max(await f(), await f(), await f());
    const mem = async (n, perCall, broadcast = false) => {
      const r = await minidote.Replica.open({ broadcast });
      const ops = Array.from({ length: perCall }, () => [K, "increment", 1]);
      const t0 = performance.now();
      for (let i = 0; i < n / perCall; i++) await r.updateObjects(ops);
      const rate = n / ((performance.now() - t0) / 1000);
      await r.close();
      return rate;
    };
    out.push(["in memory: 100k counter increments, single-op txns", await best(() => mem(100_000, 1))]);
    out.push(["in memory: 100k counter increments, 1,000-op batches", await best(() => mem(100_000, 1000))]);
    out.push(["in memory, tabs linked (`broadcast`, the browser default): 100k single-op txns", await best(() => mem(100_000, 1, true))]);
    let db = 0;
    const idb = async (calls, perCall, pipelined) => {
      const r = await minidote.Replica.open({ name: `bench-${db++}`, room: "bench" });
      const ops = Array.from({ length: perCall }, () => [K, "increment", 1]);
      const t0 = performance.now();
      if (pipelined) {
        await Promise.all(Array.from({ length: calls }, () => r.updateObjects(ops)));
      } else {
        for (let i = 0; i < calls; i++) await r.updateObjects(ops);
      }
      const secs = (performance.now() - t0) / 1000;
      const commits = r.stats().storage_commits;
      await r.close();
      return [calls * perCall / secs, calls / secs, commits];
    };
    for (const [calls, per] of [[500, 1], [200, 100], [50, 1000]]) {
      const [ups, cps, commits] = await idb(calls, per, false);
      out.push([`IndexedDB: ${per} update(s) per call, awaited one by one (${calls} calls)`, ups, cps, commits]);
    }
    for (const [calls, per] of [[2000, 1], [200, 100]]) {
      const [ups, cps, commits] = await idb(calls, per, true);
      out.push([`IndexedDB: ${per} update(s) per call, ${calls} calls in flight together`, ups, cps, commits]);
    }
    return out;
  });
  const peersPage = await browser.newPage();
  peersPage.on("pageerror", (e) => console.error("page error:", e.message));
  await peersPage.goto(`http://127.0.0.1:${port}/bench/.peers.html`);
  await peersPage.waitForFunction(() => window.ready === true, null, { timeout: 60000 });
  const rows = await peersPage.evaluate(() => window.run());
  const { table } = await import("./peers.mjs");
  console.log(`Chromium ${version}, headless, in memory, side by side; ops/s, best of 3 (ratio = minidote / peer)\n`);
  console.log(table(rows));
  console.log("");
  console.log(`Chromium ${version}, headless; updates/s (best of 3 in memory, one run for IndexedDB)\n`);
  console.log("| workload | updates/s | calls/s | IndexedDB transactions |");
  console.log("|---|---|---|---|");
  for (const [name, ups, cps, commits] of results) {
    const f = (x) => (x === undefined ? "—" : Math.round(x).toLocaleString("en-US"));
    console.log(`| ${name} | ${f(ups)} | ${f(cps)} | ${f(commits)} |`);
  }
} finally {
  await browser.close();
  relay.kill("SIGKILL");
}
