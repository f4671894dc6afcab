// The Minidote demo: one replica per tab, persisted in IndexedDB, linked to
// the relay that serves this page. Every edit is a transaction; every
// change (local or remote) re-renders through `subscribe`.
import { Replica, MinidoteError } from "./pkg/index.js";

const params = new URLSearchParams(location.search);
const ROOM = params.get("room") || "demo";
const B = "demo";
const KEYS = {
  shopping: ["shopping", "set_aw", B],
  likes: ["likes", "counter_pn", B],
  maintenance: ["maintenance", "flag_ew", B],
  title: ["title", "register_mv", B],
  banned: ["banned", "set_2p", B],
};
const ORDER = Object.keys(KEYS);
const $ = (id) => document.getElementById(id);

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
if (wantOnline) r.connect(wsUrl);
window.demo = { replica: r, keys: KEYS, ready: false };

async function write(updates) {
  try {
    await r.updateObjects(updates);
  } catch (e) {
    alert(e instanceof MinidoteError ? `${e.code}: ${e.message}` : String(e));
  }
}

function el(tag, props = {}, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

async function render() {
  const [values] = await r.readObjects(ORDER.map((k) => KEYS[k]));
  const v = Object.fromEntries(ORDER.map((k, i) => [k, values[i]]));

  $("shopping").replaceChildren(...v.shopping.map((item) => el("li", {},
    el("span", { textContent: String(item) }),
    el("button", { className: "secondary", textContent: "remove", onclick: () => write([[KEYS.shopping, "remove", item]]) }))));

  $("likes").textContent = String(v.likes);

  $("maintenance").checked = v.maintenance;
  $("maintenance-label").textContent = v.maintenance ? "ON: the site is in maintenance" : "off";

  const titles = v.title;
  $("titles").replaceChildren(
    ...titles.map((t) => el("div", { className: "title" },
      el("span", { textContent: String(t) }),
      titles.length > 1 ? el("button", { textContent: "pick", onclick: () => write([[KEYS.title, "assign", t]]) }) : "")),
    titles.length > 1 ? el("div", { className: "conflict", textContent: `${titles.length} concurrent titles: pick one` }) : "",
    titles.length === 0 ? el("div", { className: "small", textContent: "no title yet" }) : "");
  document.title = titles.length === 1 ? `${titles[0]} · Minidote demo` : "Minidote demo";

  $("banned").replaceChildren(...v.banned.map((name) => el("li", {},
    el("span", { textContent: String(name) }),
    el("button", { className: "secondary", textContent: "unban for good", onclick: () => write([[KEYS.banned, "remove", name]]) }))));
}

function renderStatus() {
  const s = r.stats();
  const online = r.connected;
  const pill = $("online");
  pill.textContent = online ? "online" : wantOnline ? "connecting…" : "offline";
  pill.className = `pill ${online ? "online" : "offline"}`;
  $("toggle-link").textContent = wantOnline ? "Go offline" : "Go online";
  $("replica-id").textContent = r.id;
  $("room").textContent = ROOM;
  const clock = s.clock.toJSON();
  $("clock").textContent = JSON.stringify(Object.fromEntries(
    Object.entries(clock).map(([id, seq]) => [id === r.id ? `${id.slice(0, 6)}… (me)` : `${id.slice(0, 6)}…`, seq])));
  const peers = s.peers.filter((p) => p.connected);
  $("peers").textContent = peers.length
    ? peers.map((p) => `relay ${p.id ? p.id.slice(0, 6) + "…" : "?"} (lag ${p.lag})`).join(", ")
    : "none";
  $("buffered").textContent = String(s.buffered);
  $("pending").textContent = String(s.pending_requests);
}

$("shopping-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const item = $("shopping-input").value.trim();
  if (item) write([[KEYS.shopping, "add", item]]);
  $("shopping-input").value = "";
});
$("like").addEventListener("click", () => write([[KEYS.likes, "increment", 1]]));
$("unlike").addEventListener("click", () => write([[KEYS.likes, "decrement", 1]]));
$("maintenance").addEventListener("change", (e) => write([[KEYS.maintenance, e.target.checked ? "enable" : "disable"]]));
$("title-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const t = $("title-input").value.trim();
  if (t) write([[KEYS.title, "assign", t]]);
  $("title-input").value = "";
});
$("ban-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("ban-input").value.trim();
  if (name) write([[KEYS.banned, "add", name]]);
  $("ban-input").value = "";
});
$("toggle-link").addEventListener("click", () => {
  wantOnline = !wantOnline;
  sessionStorage.setItem("minidote-demo-offline", wantOnline ? "0" : "1");
  if (wantOnline) r.connect(wsUrl);
  else r.disconnect();
  renderStatus();
});
const tcpHint = params.get("tcp") || "127.0.0.1:7070";
$("python-snippet").textContent =
  `import minidote; r = minidote.Replica(room=${JSON.stringify(ROOM)}); r.connect(${JSON.stringify(tcpHint)}); ` +
  `r.update_objects([(("shopping", "set_aw", "demo"), "add", "from Python")])`;

r.subscribe(() => { render(); });
await render();
renderStatus();
setInterval(renderStatus, 300);
window.demo.ready = true;
