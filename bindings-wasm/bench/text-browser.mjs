// B1–B4 (bench/text.mjs) in headless Chromium: minidote (wasm) beside yjs,
// loro-crdt and @automerge/automerge, in one page. `make bench-wasm` runs it.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import { chromium } from "playwright-core";
import { importMap } from "./importmap.mjs";
import { textTable } from "./text.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WASM_DIR = path.resolve(HERE, "..");
const ROOT = path.resolve(WASM_DIR, "..");
const RELAY = process.env.MINIDOTE_RELAY_BIN ?? path.join(ROOT, "target", "debug", "minidote-relay");

fs.copyFileSync(path.join(ROOT, "benchmarks", "traces", "automerge-paper.json.gz"), path.join(HERE, ".trace.json.gz"));
const map = importMap(WASM_DIR, ["yjs", "loro-crdt/base64"], {
  "@automerge/automerge": "node_modules/@automerge/automerge/dist/mjs/entrypoints/fullfat_base64.js",
});
fs.writeFileSync(path.join(HERE, ".text.html"), `<!doctype html><meta charset="utf-8">
<script type="importmap">${JSON.stringify(map)}</script>
<script type="module">
  import * as minidote from "/pkg/index.js";
  import * as Y from "yjs";
  import * as Automerge from "@automerge/automerge";
  import * as Loro from "loro-crdt/base64";
  import { runAll } from "/bench/text.mjs";
  await minidote.ready();
  window.run = async (only) => {
    const res = await fetch("/bench/.trace.json.gz");
    const json = await new Response(res.body.pipeThrough(new DecompressionStream("gzip"))).json();
    const trace = { patches: json.txns.flatMap((x) => x.patches), end: json.endContent };
    return await runAll({ minidote, Y, Automerge, Loro }, { trace, only, log: (m) => console.log(m) });
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
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("console", (m) => process.stderr.write(m.text() + "\n"));
  await page.goto(`http://127.0.0.1:${port}/bench/.text.html`);
  await page.waitForFunction(() => window.ready === true, null, { timeout: 60000 });
  const rows = await page.evaluate((only) => window.run(only), process.argv[2]);
  console.log(`Chromium ${await browser.version()}, headless; one run each; ratios are the peer's figure over minidote's (above 1: minidote is faster or smaller). B4: automerge-paper, editing-traces by Joseph Gentle and contributors (CC BY 4.0).\n`);
  console.log(textTable(rows));
} finally {
  await browser.close();
  relay.kill("SIGKILL");
}
