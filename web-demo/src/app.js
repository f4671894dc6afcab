// The Minidote demo: a shared document, an ordered to-do list and a chat,
// one replica per tab, persisted in IndexedDB, linked to the relay that
// serves this page and to the other tabs of this browser (BroadcastChannel).
// Every edit is a transaction; every change, local or remote, reaches the
// panels through `subscribe`. Built by scripts/build-demo.sh (esbuild
// bundles this file with CodeMirror; ./pkg/ is the npm package as is).
import { Replica, MinidoteError } from "./pkg/index.js";
import { $, bytes, coalesce, colorOf } from "./ui.js";
import { mountDocument } from "./doc.js";
import { mountTodos } from "./todos.js";
import { mountChat } from "./chat.js";
import { mountInspector } from "./inspector.js";

const params = new URLSearchParams(location.search);
const ROOM = params.get("room") || "demo";
const B = "demo";
const KEYS = {
  doc: ["doc", "text", B],
  presence: ["presence", "map_rr", B],
  todos: ["todos", "list", B],
  chat: ["chat", "list", B],
};

// Each tab is its own replica, kept across reloads of that tab.
let dbName = sessionStorage.getItem("minidote-demo-db");
if (!dbName) {
  dbName = `minidote-demo-${crypto.getRandomValues(new Uint32Array(2)).join("-")}`;
  sessionStorage.setItem("minidote-demo-db", dbName);
}

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("sw.js").catch((e) => console.warn("service worker:", e));
}

const r = await Replica.open({ name: dbName, room: ROOM });
const wsUrl = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/sync`;
let wantOnline = sessionStorage.getItem("minidote-demo-offline") !== "1";
const progressLog = [];
window.demo = { replica: r, keys: KEYS, ready: false, progress: progressLog };

// Sync progress: shown while a catch-up runs, and for a moment after.
let hideProgress = null;
r.onProgress((p) => {
  progressLog.push(p);
  const pct = p.expected > 0 ? Math.floor((100 * p.received) / p.expected) : 100;
  $("sync").hidden = false;
  $("sync-bar").value = pct;
  $("sync-text").textContent = `${p.received.toLocaleString()} / ${p.expected.toLocaleString()} transactions · ${bytes(p.bytes)}`
    + (p.done ? (p.received >= p.expected ? " · caught up" : " · link lost") : "");
  $("sync").dataset.state = p.done ? (p.received >= p.expected ? "done" : "stopped") : "running";
  clearTimeout(hideProgress);
  if (p.done) hideProgress = setTimeout(() => { $("sync").hidden = true; }, 8000);
});
if (wantOnline) r.connect(wsUrl);

// Who I am: a name (kept in this browser) and a colour (from the replica id).
let myName = localStorage.getItem("minidote-demo-name") || `guest-${r.id.slice(0, 4)}`;
const myColor = colorOf(r.id);
const me = () => ({ name: myName, color: myColor });
$("name").value = myName;
$("name").addEventListener("change", () => {
  myName = $("name").value.trim().slice(0, 40) || myName;
  localStorage.setItem("minidote-demo-name", myName);
});
$("me-dot").style.background = myColor;

async function write(updates) {
  try {
    await r.updateObjects(updates);
  } catch (e) {
    alert(e instanceof MinidoteError ? `${e.code}: ${e.message}` : String(e));
  }
}

const view = mountDocument(r, {
  doc: KEYS.doc,
  presence: { key: KEYS.presence, get name() { return myName; }, color: myColor },
  parent: $("editor"),
});
const todos = mountTodos(r, { order: KEYS.todos, bucket: B, write });
const chat = mountChat(r, { chat: KEYS.chat, write, me });
const inspector = mountInspector(r, { doc: KEYS.doc });
window.demo.view = view;

function renderStatus() {
  const s = r.stats();
  const online = r.connected;
  const pill = $("online");
  pill.textContent = online ? "online" : wantOnline ? "connecting…" : "offline";
  pill.className = `pill ${online ? "online" : "offline"}`;
  $("toggle-link").textContent = wantOnline ? "Go offline" : "Go online";
  $("replica-id").textContent = r.id;
  $("room").textContent = ROOM;
  const peers = s.peers.filter((p) => p.connected);
  $("lag").textContent = peers.length ? peers.map((p) => `lag ${p.lag}`).join(", ") : "—";
  $("buffered").textContent = String(s.buffered);
}

const renderTodos = coalesce(() => todos.render());
const renderChat = coalesce(() => chat.render());
const renderInspector = coalesce(() => { if (!$("inspector").hidden) inspector.render(); }, 200);
const TODO = JSON.stringify(KEYS.todos), CHAT = JSON.stringify(KEYS.chat);
// Called for every transaction (thousands in one task during a catch-up):
// it only marks panels for a coalesced render.
r.subscribe((keys) => {
  for (const k of keys) {
    if (k[0].startsWith("todo:") || JSON.stringify(k) === TODO) renderTodos();
    else if (JSON.stringify(k) === CHAT) renderChat();
  }
  renderInspector();
});

$("toggle-link").addEventListener("click", () => {
  wantOnline = !wantOnline;
  sessionStorage.setItem("minidote-demo-offline", wantOnline ? "0" : "1");
  if (wantOnline) r.connect(wsUrl);
  else r.disconnect();
  renderStatus();
});
$("toggle-inspector").addEventListener("click", () => {
  $("inspector").hidden = !$("inspector").hidden;
  $("toggle-inspector").setAttribute("aria-pressed", String(!$("inspector").hidden));
  if (!$("inspector").hidden) inspector.render();
});
const tcpHint = params.get("tcp") || "127.0.0.1:7070";
$("python-snippet").textContent = [
  "import time, minidote",
  `chat = ("chat", "list", "demo")`,
  `with minidote.Replica(room=${JSON.stringify(ROOM)}) as r:`,
  `    r.connect(${JSON.stringify(tcpHint)})`,
  "    r.catch_up()                     # the room as it is, so the append goes last",
  "    n = len(r.read_objects([chat])[0][0])",
  `    r.update_objects([(chat, "insert", [n, {"author": "Python", "text": "hello from Python", "time": int(time.time() * 1000)}])])`,
].join("\n");

todos.render();
chat.render();
renderStatus();
setInterval(renderStatus, 300);
setInterval(() => { if (!$("inspector").hidden) inspector.render(); }, 1000);
window.demo.ready = true;
