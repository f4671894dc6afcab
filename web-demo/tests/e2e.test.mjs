// End-to-end: the demo app in headless Chromium, served by a real relay
// with an SQLite room log, as `make demo` runs it. Screenshots of each step
// go to web-demo/test-output/.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, launchChromium, waitFor } from "../../bindings-wasm/tests/helpers.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const DEMO = path.resolve(HERE, "..");
const ROOT = path.resolve(DEMO, "..");
const DIST = path.join(DEMO, "dist");
const OUT = path.join(DEMO, "test-output");
const RELAY = process.env.MINIDOTE_RELAY_BIN ?? path.join(ROOT, "target", "debug", "minidote-relay");
const PYTHON = process.env.MINIDOTE_PYTHON ?? path.join(ROOT, ".venv", "bin", "python");
fs.mkdirSync(OUT, { recursive: true });

let browser;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "minidote-e2e-"));


/** A relay like `make demo`'s: static demo, SQLite log. Restartable on the same ports. */
async function relay(name) {
  const http = await freePort();
  const tcp = await freePort();
  const data = path.join(tmp, `${name}.db`);
  let proc = null;
  const r = {
    http, tcp,
    url: `http://127.0.0.1:${http}/?tcp=127.0.0.1:${tcp}`,
    async start() {
      proc = spawn(RELAY, ["--listen", `127.0.0.1:${http}`, "--tcp-listen", `127.0.0.1:${tcp}`,
        "--static", DIST, "--data", data], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "error" } });
      await waitFor(async () => {
        try { return (await fetch(`http://127.0.0.1:${http}/healthz`)).ok; } catch { return false; }
      }, "relay up");
    },
    async stop() {
      if (!proc) return;
      proc.kill("SIGTERM");
      await new Promise((res) => proc.once("exit", res));
      proc = null;
    },
  };
  await r.start();
  return r;
}

async function open(ctx, rel) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  page.on("dialog", (d) => { console.error("dialog:", d.message()); d.dismiss(); });
  await page.goto(rel.url);
  await page.waitForFunction(() => window.demo?.ready === true);
  return page;
}

const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
const text = (page, sel) => page.locator(sel).innerText();
const items = (page, sel) => page.locator(`${sel} li span`).allInnerTexts();
const online = (page) => waitFor(async () => (await text(page, "#online")) === "online", "online");

async function addItem(page, item) {
  await page.fill("#shopping-input", item);
  await page.click("#shopping-form button");
}

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("two browser contexts converge; offline edits conflict on purpose and converge, with both titles shown", async () => {
  const rel = await relay("converge");
  const [c1, c2] = [await browser.newContext({ viewport: { width: 1100, height: 760 } }), await browser.newContext({ viewport: { width: 1100, height: 760 } })];
  try {
    const [a, b] = [await open(c1, rel), await open(c2, rel)];
    await online(a);
    await online(b);
    assert.notEqual(await text(a, "#replica-id"), await text(b, "#replica-id"));
    await addItem(a, "milk");
    await b.click("#like");
    await b.click("#like");
    await a.fill("#ban-input", "spammer");
    await a.click("#ban-form button");
    await a.check("#maintenance");
    await waitFor(async () => (await items(b, "#shopping")).includes("milk"), "milk reached b");
    await waitFor(async () => (await text(a, "#likes")) === "2", "likes reached a");
    await waitFor(async () => (await items(b, "#banned")).includes("spammer"), "ban reached b");
    await waitFor(async () => await b.isChecked("#maintenance"), "maintenance reached b");
    await shot(a, "1-two-contexts-converged");

    // Both go offline and edit concurrently.
    await a.click("#toggle-link");
    await b.click("#toggle-link");
    await waitFor(async () => (await text(a, "#online")) === "offline" && (await text(b, "#online")) === "offline", "offline");
    await a.fill("#title-input", "Plan A");
    await a.click("#title-form button");
    await b.fill("#title-input", "Plan B");
    await b.click("#title-form button");
    await addItem(a, "eggs");
    await b.locator("#shopping li", { hasText: "milk" }).locator("button").click(); // b removes milk
    await addItem(b, "bread");
    await a.click("#like");
    await waitFor(async () => (await items(a, "#shopping")).includes("eggs"), "local edit while offline");
    await waitFor(async () => (await items(b, "#shopping")).join() === "bread", "b's edits while offline");
    await shot(a, "2-offline-a");
    await shot(b, "2-offline-b");

    // Reconnect: everything converges; the concurrent titles show side by side.
    await a.click("#toggle-link");
    await b.click("#toggle-link");
    for (const p of [a, b]) {
      await waitFor(async () => (await p.locator("#titles .title").count()) === 2, "both titles");
      await waitFor(async () => (await text(p, "#likes")) === "3", "likes converged");
    }
    for (const p of [a, b]) {
      assert.deepEqual(await p.locator("#titles .title span").allInnerTexts(), ["Plan A", "Plan B"]);
      // milk was removed by b having seen it; eggs and bread were concurrent adds.
      assert.deepEqual(await items(p, "#shopping"), ["bread", "eggs"]);
    }
    await shot(a, "3-reconnected-conflict");
    // Pick one title: both converge to it.
    await a.locator("#titles .title", { hasText: "Plan B" }).locator("button").click();
    for (const p of [a, b]) {
      await waitFor(async () => (await p.locator("#titles .title span").allInnerTexts()).join() === "Plan B", "title resolved");
    }
    await shot(b, "4-title-picked");
    // Both show the same clock once everything has arrived (each marks its
    // own entry "(me)"). Compared with a wait: with a durable relay, a
    // transaction is forwarded only after its group commit.
    const clockOf = async (p) => (await text(p, "#clock")).replaceAll(" (me)", "");
    await waitFor(async () => (await clockOf(a)) === (await clockOf(b)), "clocks converged");
  } finally {
    await c1.close();
    await c2.close();
    await rel.stop();
  }
});

test("a reload with the relay stopped restores the app shell and the state", async () => {
  const rel = await relay("reload");
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  try {
    const page = await open(ctx, rel);
    await online(page);
    // The service worker has installed and cached the shell.
    await page.evaluate(() => navigator.serviceWorker.ready);
    await waitFor(() => page.evaluate(async () => (await caches.keys()).length > 0 && !!(await caches.match("/pkg/wasm/minidote_wasm_bg.wasm"))), "shell cached");
    await addItem(page, "coffee");
    await page.fill("#title-input", "Offline-first");
    await page.click("#title-form button");
    await page.click("#like");
    const id = await text(page, "#replica-id");
    await waitFor(async () => (await items(page, "#shopping")).includes("coffee"), "write");
    await rel.stop();
    await page.reload();
    await page.waitForFunction(() => window.demo?.ready === true);
    assert.equal(await text(page, "#replica-id"), id, "same replica after reload");
    assert.deepEqual(await items(page, "#shopping"), ["coffee"]);
    assert.equal(await text(page, "#likes"), "1");
    assert.deepEqual(await page.locator("#titles .title span").allInnerTexts(), ["Offline-first"]);
    assert.notEqual(await text(page, "#online"), "online");
    // Offline edits sync when the relay returns.
    await addItem(page, "tea");
    await shot(page, "5-reloaded-with-relay-down");
    await rel.start();
    await online(page);
    const other = await open(await browser.newContext(), rel);
    await waitFor(async () => (await items(other, "#shopping")).join() === "coffee,tea", "offline edit synced");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("a Python replica writes and the page updates live, and the reverse", async () => {
  const rel = await relay("python");
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  const script = `
import sys, time, minidote
S = ("shopping", "set_aw", "demo")
L = ("likes", "counter_pn", "demo")
with minidote.Replica(room="demo") as r:
    r.connect(sys.argv[1])
    r.update_objects([(S, "add", "from Python"), (L, "increment", 40)])
    deadline = time.time() + 20
    while time.time() < deadline:
        items = r.read_objects([S])[0][0]
        if "from the browser" in items:
            print("python sees", items, flush=True)
            sys.exit(0)
        time.sleep(0.05)
    sys.exit(1)
`;
  try {
    const page = await open(ctx, rel);
    await online(page);
    const py = spawn(PYTHON, ["-c", script, `127.0.0.1:${rel.tcp}`], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    py.stdout.on("data", (d) => { out += d; });
    // No reload, no polling by the test: the page re-renders via subscribe.
    await waitFor(async () => (await items(page, "#shopping")).includes("from Python"), "python's write on the page");
    assert.equal(await text(page, "#likes"), "40");
    await shot(page, "6-python-write-live");
    await addItem(page, "from the browser");
    const code = await new Promise((r) => py.once("exit", r));
    assert.equal(code, 0, out);
    assert.match(out, /from the browser/);
  } finally {
    await ctx.close();
    await rel.stop();
  }
});
