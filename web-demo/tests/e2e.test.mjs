// End-to-end: the demo app in headless Chromium, served by a real relay
// with an SQLite room log, as `make demo` runs it: the shared document in
// CodeMirror (concurrent typing, offline edits, remote cursors), the to-do
// list (conflicting titles, reordering), the chat with a Python replica,
// the sync progress bar on a large catch-up, the inspector, tabs linked
// with no relay, and a reload with the relay stopped. Screenshots of each
// step go to web-demo/test-output/.
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
    url: (room = "demo") => `http://127.0.0.1:${http}/?room=${room}&tcp=127.0.0.1:${tcp}`,
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

/** Runs a Python script against the relay; resolves with its stdout. */
function python(script, args, ms = 120000) {
  return new Promise((resolve, reject) => {
    const p = spawn(PYTHON, ["-c", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => { out += d; });
    p.stderr.on("data", (d) => { err += d; });
    const timer = setTimeout(() => { p.kill("SIGKILL"); reject(new Error(`python timed out: ${err}`)); }, ms);
    p.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`python exited ${code}: ${err}`));
    });
  });
}

async function open(ctx, url, { name } = {}) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(url);
  await page.waitForFunction(() => window.demo?.ready === true);
  if (name) {
    await page.fill("#name", name);
    await page.press("#name", "Enter");
  }
  return page;
}

const online = (page) => page.waitForFunction(() => document.getElementById("online").textContent === "online");
const docText = (page) => page.evaluate(() => window.demo.view.state.doc.toString());
const replicaText = (page) => page.evaluate(() => window.demo.replica.read([window.demo.keys.doc])[0]);
const todoTitles = (page) => page.locator("#todos .todo-text").allInnerTexts()
  .then((ts) => ts.map((t) => t.replace(/\s*pick$/, "").trim()));
const messages = (page) => page.locator("#messages .text").allInnerTexts();
const shot = (page, name) => page.screenshot({ path: path.join(OUT, `${name}.png`) });

/** Types at `pos` in the page's editor with real key presses. */
async function typeAt(page, pos, text) {
  await page.evaluate((p) => {
    const v = window.demo.view;
    v.focus();
    v.dispatch({ selection: { anchor: p } });
  }, pos);
  await page.keyboard.type(text, { delay: 5 });
}

async function toggleLink(page) {
  await page.click("#toggle-link");
}

/** Runs `body(a, b, rel)` with a fresh relay and two pages online in two
 * browser contexts (two replicas), closing everything whatever happens. */
async function twoPages(name, body, { names = [], viewport = { width: 1200, height: 800 } } = {}) {
  const rel = await relay(name);
  const c1 = await browser.newContext({ viewport });
  const c2 = await browser.newContext({ viewport });
  try {
    const a = await open(c1, rel.url(), { name: names[0] });
    const b = await open(c2, rel.url(), { name: names[1] });
    await online(a);
    await online(b);
    await body(a, b, rel);
  } finally {
    await c1.close();
    await c2.close();
    await rel.stop();
  }
}

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

test("two pages type into the document at the same place while offline: both runs survive whole", async () => {
  await twoPages("doc", async (a, b) => {
    await typeAt(a, 0, "Shared notes. ");
    await waitFor(async () => (await docText(b)) === "Shared notes. ", "b sees a's text");
    // Both offline, both type at the same place.
    await toggleLink(a);
    await toggleLink(b);
    await typeAt(a, 14, "Ada was here.");
    await typeAt(b, 14, "Bob too!");
    assert.equal(await docText(a), "Shared notes. Ada was here.");
    assert.equal(await docText(b), "Shared notes. Bob too!");
    await shot(a, "1-doc-offline-a");
    await toggleLink(a);
    await toggleLink(b);
    await waitFor(async () => (await docText(a)) === (await docText(b)) && (await docText(a)).length === 35, "converged", 20000);
    const text = await docText(a);
    assert.ok(text === "Shared notes. Ada was here.Bob too!" || text === "Shared notes. Bob too!Ada was here.",
      `no interleaving: ${JSON.stringify(text)}`);
    // The editor and the replica agree on both pages.
    assert.equal(await replicaText(a), text);
    assert.equal(await replicaText(b), text);
    // Live, concurrent typing at one spot converges too.
    await Promise.all([typeAt(a, 0, "[a]"), typeAt(b, 0, "{b}")]);
    await waitFor(async () => (await docText(a)) === (await docText(b)) && (await docText(a)).length === 41, "live typing converged", 20000);
    const live = (await docText(a)).slice(0, 6);
    assert.ok(live === "[a]{b}" || live === "{b}[a]", live);
    await shot(b, "2-doc-converged-b");
  }, { names: ["Ada", "Bob"] });
});

test("a remote cursor shows with its name and moves when text is inserted before it", async () => {
  await twoPages("cursor", async (a, b) => {
    await typeAt(a, 0, "hello world");
    await waitFor(async () => (await docText(b)) === "hello world", "text shared");
    // Ada puts her cursor after "hello".
    await a.evaluate(() => { window.demo.view.focus(); window.demo.view.dispatch({ selection: { anchor: 5 } }); });
    const aId = await a.evaluate(() => window.demo.replica.id);
    const caretPos = () => b.evaluate((id) => {
      const caret = document.querySelector(`.cm-minidote-caret[data-replica="${id}"]`);
      return caret ? window.demo.view.posAtDOM(caret) : null;
    }, aId);
    await waitFor(async () => (await caretPos()) === 5, "Ada's caret at 5 on Bob's page");
    assert.equal(await b.locator(`.cm-minidote-caret[data-replica="${aId}"] .cm-minidote-name`).innerText(), "Ada");
    await shot(b, "3-remote-cursor");
    // Bob inserts before it: the caret moves with its character.
    await typeAt(b, 0, ">> ");
    await waitFor(async () => (await caretPos()) === 8, "Ada's caret moved to 8");
    await waitFor(async () => (await docText(a)) === ">> hello world", "a has b's text");
    // Ada's own cursor moved with the text too, and her caret on Bob's page follows a selection.
    await a.evaluate(() => window.demo.view.dispatch({ selection: { anchor: 3, head: 8 } }));
    await waitFor(() => b.evaluate((id) => !!document.querySelector(`.cm-minidote-selection[data-replica="${id}"]`), aId), "selection shown");
  }, { names: ["Ada", "Bob"] });
});

test("to-dos: offline renames conflict and are picked, done wins, tags merge, reordering converges", async () => {
  await twoPages("todos", async (a, b) => {
    for (const t of ["buy milk", "write report", "call Ada"]) {
      await a.fill("#todo-input", t);
      await a.click("#todo-form button");
    }
    await waitFor(async () => (await todoTitles(b)).join() === "buy milk,write report,call Ada", "b sees the list");
    // Offline: both rename the first item, a ticks it, b tags it.
    await toggleLink(a);
    await toggleLink(b);
    a.once("dialog", (d) => d.accept("buy oat milk"));
    await a.locator("#todos li").first().locator("button[title=rename]").click();
    b.once("dialog", (d) => d.accept("buy milk and eggs"));
    await b.locator("#todos li").first().locator("button[title=rename]").click();
    await a.locator("#todos li").first().locator("input[type=checkbox]").check();
    b.once("dialog", (d) => d.accept("shop"));
    await b.locator("#todos li").first().locator("button[title='add a tag']").click();
    // b moves "call Ada" to the top.
    await b.locator("#todos li").nth(2).locator("button.up").click();
    await b.locator("#todos li").nth(1).locator("button.up").click();
    await waitFor(async () => (await todoTitles(b))[0] === "call Ada", "b reordered");
    await toggleLink(a);
    await toggleLink(b);
    await waitFor(async () => (await a.locator("#todos .conflict").count()) === 1
      && (await b.locator("#todos .conflict").count()) === 1, "both titles kept side by side", 20000);
    await shot(a, "4-todo-conflict");
    for (const p of [a, b]) {
      const titles = await todoTitles(p);
      assert.deepEqual(titles, ["call Ada", "buy milk and eggs", "buy oat milk", "write report"]);
      assert.equal(await p.locator("#todos li").nth(1).locator("input[type=checkbox]").isChecked(), true);
      assert.deepEqual(await p.locator("#todos li").nth(1).locator(".tag").allInnerTexts(), ["#shop"]);
    }
    // Pick one title: the conflict is gone everywhere.
    await a.locator("#todos li").nth(1).locator(".todo-text", { hasText: "buy oat milk" }).locator("button.pick").click();
    await waitFor(async () => (await todoTitles(b)).join() === "call Ada,buy oat milk,write report", "picked");
    // Delete one.
    await b.locator("#todos li").nth(2).locator("button.delete").click();
    await waitFor(async () => (await todoTitles(a)).join() === "call Ada,buy oat milk", "deleted");
  });
});

test("a Python replica appends to the chat and both pages show it live, after theirs", async () => {
  await twoPages("chat", async (a, b) => {
    await a.fill("#chat-input", "hi from the browser");
    await a.click("#chat-form button");
    await waitFor(async () => (await messages(b)).join() === "hi from the browser", "b sees a's message");
    // The snippet the page shows, as a user would paste it.
    const snippet = await a.locator("#python-snippet").textContent();
    await python(snippet, []);
    for (const p of [a, b]) {
      await waitFor(async () => (await messages(p)).join("|") === "hi from the browser|hello from Python",
        async () => `Python's message, last: ${JSON.stringify(await messages(p))}`);
    }
    assert.deepEqual(await a.locator("#messages .author").allInnerTexts(), ["Ada", "Python"]);
    await shot(b, "5-chat-with-python");
  }, { names: ["Ada", "Bob"] });
});

test("values of any shape from a peer render as text and break no panel", async () => {
  const rel = await relay("hostile");
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const page = await open(ctx, rel.url());
    await online(page);
    await python(`
import sys, minidote
chat, todos = ("chat", "list", "demo"), ("todos", "list", "demo")
with minidote.Replica(room="demo") as r:
    r.connect(sys.argv[1])
    assert r.catch_up(30)
    r.update_objects([
        (chat, "insert", [0, {"author": {"toString": 0}, "text": b"\\x00\\x01", "color": "red;background:url(x)"}]),
        (chat, "insert", [1, "<img src=x onerror=alert(1)>"]),
        (chat, "insert", [2, 2**62]),
        (todos, "insert", [0, 42]),
        (todos, "insert", [1, "t1"]),
        (("todo:t1", "map_rr", "demo"), "update", [["title", "register_mv"], "assign", {"toString": 0, "valueOf": 1}]),
        (("todo:t1", "map_rr", "demo"), "update", [["tags", "set_aw"], "add", {"toString": 0}]),
    ])
    assert r.flush(10)
`, [`127.0.0.1:${rel.tcp}`]);
    await waitFor(async () => (await messages(page)).length === 3, "three odd messages shown");
    const shown = await messages(page);
    assert.equal(shown[1], "<img src=x onerror=alert(1)>", "as text, not HTML");
    assert.equal(await page.locator("#messages img").count(), 0);
    assert.deepEqual(await todoTitles(page), ['{"toString":0,"valueOf":1}']);
    // The panels still work.
    await page.fill("#chat-input", "still fine");
    await page.click("#chat-form button");
    await waitFor(async () => (await messages(page)).at(-1) === "still fine", "a new message after the odd ones");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("joining a room of 100,000 transactions: the progress bar reaches 100 % and the document is there", async () => {
  const rel = await relay("big");
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    // A Python writer types 100,000 characters, one transaction each.
    await python(`
import sys, minidote
doc = ("doc", "text", "demo")
with minidote.Replica(room="big") as r:
    r.connect(sys.argv[1])
    assert r.catch_up(30)
    for i in range(100_000):
        r.update_objects([(doc, "insert", [i, "abcdefghij"[i % 10]])])
        if i % 5000 == 4999:
            assert r.flush(60), "stored"
    assert r.flush(60)
`, [`127.0.0.1:${rel.tcp}`], 300000);
    const page = await open(ctx, rel.url("big"));
    await page.waitForFunction(() => document.getElementById("sync").dataset.state === "done", undefined, { timeout: 120000 });
    const progress = await page.evaluate(() => window.demo.progress);
    const last = progress.at(-1);
    assert.equal(last.expected, 100000, JSON.stringify(last));
    assert.equal(last.received, 100000);
    assert.equal(await page.locator("#sync-bar").evaluate((e) => e.value), 100);
    assert.match(await page.locator("#sync-text").innerText(), /100,000 \/ 100,000 transactions .* caught up/);
    await waitFor(async () => (await docText(page)).length === 100000, "the whole document in the editor", 30000);
    assert.equal((await docText(page)).slice(0, 12), "abcdefghijab");
    await shot(page, "6-catch-up-100k");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("the inspector shows the clock, the last transactions as a graph, peers, log and document shape", async () => {
  const rel = await relay("inspect");
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 1000 } });
  try {
    const a = await open(ctx, rel.url(), { name: "Ada" });
    await online(a);
    await typeAt(a, 0, "abc");
    await a.fill("#chat-input", "hello");
    await a.click("#chat-form button");
    await a.click("#toggle-inspector");
    await a.evaluate(() => { window.demo.view.focus(); window.demo.view.dispatch({ selection: { anchor: 3 } }); });
    await a.keyboard.press("Backspace");
    const id = await a.evaluate(() => window.demo.replica.id);
    await waitFor(async () => (await a.locator("#insp-graph circle").count()) >= 3, "graph nodes");
    assert.match(await a.locator("#insp-clock").innerText(), new RegExp(`${id.slice(0, 6)}… \\(me\\)`));
    assert.match(await a.locator("#insp-peers").innerText(), /relay \S+\s+lag \d+/);
    await waitFor(async () => /tombstones\s+1/.test(await a.locator("#insp-doc").innerText()), "one tombstone after a backspace");
    assert.match(await a.locator("#insp-doc").innerText(), /characters\s+2/);
    assert.match(await a.locator("#insp-graph").innerText(), /chat/);
    await shot(a, "7-inspector");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("tabs of one browser sync through a BroadcastChannel with no relay at all", async () => {
  const rel = await relay("tabs");
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const a = await open(ctx, rel.url("tabs"));
    await a.evaluate(() => navigator.serviceWorker.ready);
    await rel.stop();
    // A second tab opens from the service worker's cache, never online.
    const b = await open(ctx, rel.url("tabs"));
    assert.notEqual(await b.locator("#online").innerText(), "online");
    await typeAt(a, 0, "tab to tab");
    await waitFor(async () => (await docText(b)) === "tab to tab", "b sees a's typing with no relay");
    await b.fill("#todo-input", "from tab b");
    await b.click("#todo-form button");
    await waitFor(async () => (await todoTitles(a)).join() === "from tab b", "a sees b's to-do");
    await shot(b, "8-tabs-no-relay");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("a reload with the relay stopped restores the app and its state; offline edits sync when it returns", async () => {
  const rel = await relay("reload");
  const ctx = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  try {
    const page = await open(ctx, rel.url());
    await online(page);
    await page.evaluate(() => navigator.serviceWorker.ready);
    await waitFor(() => page.evaluate(async () => (await caches.keys()).length > 0 && !!(await caches.match("/pkg/wasm/minidote_wasm_bg.wasm"))
      && !!(await caches.match("/app.js"))), "shell cached");
    await typeAt(page, 0, "kept");
    await page.fill("#todo-input", "survive a reload");
    await page.click("#todo-form button");
    const id = await page.evaluate(() => window.demo.replica.id);
    await waitFor(async () => (await todoTitles(page)).join() === "survive a reload", "write");
    await rel.stop();
    await page.reload();
    await page.waitForFunction(() => window.demo?.ready === true);
    assert.equal(await page.evaluate(() => window.demo.replica.id), id, "same replica after reload");
    assert.equal(await docText(page), "kept");
    assert.deepEqual(await todoTitles(page), ["survive a reload"]);
    assert.notEqual(await page.locator("#online").innerText(), "online");
    await typeAt(page, 4, " offline");
    await shot(page, "9-reloaded-with-relay-down");
    await rel.start();
    await online(page);
    const other = await open(await browser.newContext(), rel.url());
    await waitFor(async () => (await docText(other)) === "kept offline", "offline edit synced");
  } finally {
    await ctx.close();
    await rel.stop();
  }
});

test("the README's screenshot: the app with two people in the room", async () => {
  await twoPages("readme", async (a, b) => {
    await typeAt(a, 0, "# Trip to Lisbon\n\nFlights: book by Friday.\nHotel: near Alfama, 3 nights.\n\nIdeas: tram 28, pastéis de nata, Sintra day trip.");
    for (const t of ["Book flights", "Reserve hotel", "Buy travel insurance"]) {
      await b.fill("#todo-input", t);
      await b.click("#todo-form button");
    }
    await waitFor(async () => (await todoTitles(a)).length === 3, "to-dos shared");
    await a.locator("#todos li").first().locator("input[type=checkbox]").check();
    await b.fill("#chat-input", "I can do the hotel tonight");
    await b.click("#chat-form button");
    await a.fill("#chat-input", "Great, I'll take the flights");
    await a.click("#chat-form button");
    await b.evaluate(() => { window.demo.view.focus(); window.demo.view.dispatch({ selection: { anchor: 40, head: 62 } }); });
    const bId = await b.evaluate(() => window.demo.replica.id);
    await waitFor(() => a.evaluate((id) => !!document.querySelector(`.cm-minidote-caret[data-replica="${id}"]`), bId), "Bob's cursor on Ada's page");
    await waitFor(async () => (await messages(a)).length === 2, "chat shared");
    await a.click("#toggle-inspector");
    await a.waitForTimeout(300);
    await a.screenshot({ path: path.join(OUT, "0-app.png"), fullPage: true });
    // `make demo-screenshot` puts it in the README.
    if (process.env.MINIDOTE_README_SHOT === "1") fs.copyFileSync(path.join(OUT, "0-app.png"), path.join(ROOT, "docs", "demo.png"));
  }, { names: ["Ada", "Bob"], viewport: { width: 1280, height: 860 } });
});
