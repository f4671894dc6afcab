// A page joining a large room: how long the demo takes from opening the
// page to a finished catch-up (the progress bar at 100 %) and to the whole
// document in the editor, and how many bytes it received, for rooms of
// several sizes. One relay (release build if there is one) with an SQLite
// log; a Python writer types the document one character per transaction.
// Prints a Markdown table (BENCHMARKS.md, "The demo").
//
//   node web-demo/bench/catchup.mjs [sizes, default 10000,100000,300000]
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, launchChromium, waitFor } from "../../bindings-wasm/tests/helpers.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..", "..");
const DIST = path.join(ROOT, "web-demo", "dist");
const release = path.join(ROOT, "target", "release", "minidote-relay");
const RELAY = process.env.MINIDOTE_RELAY_BIN ?? (fs.existsSync(release) ? release : path.join(ROOT, "target", "debug", "minidote-relay"));
const PYTHON = path.join(ROOT, ".venv", "bin", "python");
const sizes = (process.argv[2] ?? "10000,100000,300000").split(",").map(Number);

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => { out += d; });
    p.on("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

const WRITER = `
import sys, minidote
doc = ("doc", "text", "demo")
n = int(sys.argv[2])
with minidote.Replica(room="big") as r:
    r.connect(sys.argv[1])
    assert r.catch_up(30)
    for i in range(n):
        r.update_objects([(doc, "insert", [i, "abcdefghij"[i % 10]])])
        if i % 5000 == 4999:
            assert r.flush(120)
    assert r.flush(120)
`;

const rows = [];
const browser = await launchChromium();
for (const n of sizes) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "minidote-catchup-"));
  const http = await freePort(), tcp = await freePort();
  const relay = spawn(RELAY, ["--listen", `127.0.0.1:${http}`, "--tcp-listen", `127.0.0.1:${tcp}`,
    "--static", DIST, "--data", path.join(tmp, "relay.db")], { stdio: "ignore" });
  try {
    await waitFor(async () => { try { return (await fetch(`http://127.0.0.1:${http}/healthz`)).ok; } catch { return false; } }, "relay");
    await run(PYTHON, ["-c", WRITER, `127.0.0.1:${tcp}`, String(n)]);
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(`http://127.0.0.1:${http}/?room=big`);
    await page.waitForFunction(() => document.getElementById("sync")?.dataset.state === "done", undefined, { timeout: 600000 });
    const tDone = performance.now() - t0;
    await page.waitForFunction((len) => window.demo?.view?.state.doc.length === len, n, { timeout: 600000 });
    const tDoc = performance.now() - t0;
    const last = await page.evaluate(() => window.demo.progress.at(-1));
    const events = await page.evaluate(() => window.demo.progress.length);
    rows.push({ n, tDone, tDoc, bytes: last.bytes, received: last.received, expected: last.expected, events });
    await ctx.close();
  } finally {
    relay.kill("SIGTERM");
    await new Promise((r) => relay.once("exit", r));
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
await browser.close();

console.log(`relay: ${path.relative(ROOT, RELAY)}; Chromium, a fresh page (IndexedDB) per size\n`);
console.log("| transactions | progress events | received / expected | bytes received | bytes per txn | page open → caught up | → whole document in the editor | txns/s |");
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.n.toLocaleString("en")} | ${r.events} | ${r.received.toLocaleString("en")} / ${r.expected.toLocaleString("en")} | ${r.bytes.toLocaleString("en")} | ${(r.bytes / r.n).toFixed(1)} | ${(r.tDone / 1000).toFixed(2)} s | ${(r.tDoc / 1000).toFixed(2)} s | ${Math.round(r.n / (r.tDoc / 1000)).toLocaleString("en")} |`);
}
