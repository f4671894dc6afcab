// The inspector: what this replica knows and why. Its clock, the last
// transactions as a small causal graph (a lane per origin, an edge per
// dependency), the causal buffer and what each entry waits for, the peers
// and their lag, the log and snapshots, and the shape of the document.
import { $, el, colorOf, short, bytes } from "./ui.js";

const SHOWN = 24;
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}

function row(label, value) {
  return el("tr", {}, el("th", { textContent: label }), el("td", { textContent: String(value) }));
}

function keyName(k) {
  return k[0].startsWith("todo:") ? "todo" : k[0];
}

/** The last transactions as lanes and edges. */
function graph(history, me) {
  const txns = history.slice(-SHOWN);
  const lanes = [...new Set(txns.map((t) => t.origin))];
  const at = new Map(txns.map((t, i) => [`${t.origin}:${t.seq}`, i]));
  const X = (o) => 16 + lanes.indexOf(o) * 26;
  const Y = (i) => 12 + i * 18;
  const width = 16 + lanes.length * 26 + 180;
  const out = svg("svg", { width, height: Y(txns.length), class: "graph", role: "img", "aria-label": "causal graph of the last transactions" });
  txns.forEach((t, i) => {
    const edges = [[t.origin, t.seq - 1]];
    for (const [r, s] of Object.entries(t.deps.toJSON())) if (r !== t.origin) edges.push([r, s]);
    for (const [r, s] of edges) {
      const j = at.get(`${r}:${s}`);
      if (j !== undefined) {
        out.append(svg("line", { x1: X(t.origin), y1: Y(i), x2: X(r), y2: Y(j), class: r === t.origin ? "edge own" : "edge dep" }));
      }
    }
  });
  txns.forEach((t, i) => {
    const keys = [...new Set(t.keys.map(keyName))].join(", ");
    const node = svg("circle", { cx: X(t.origin), cy: Y(i), r: 5, fill: colorOf(t.origin), class: t.origin === me ? "node me" : "node" });
    node.append(svg("title", {}, `${t.origin}:${t.seq} ${t.local ? "(local)" : "(remote)"}\ndeps ${JSON.stringify(t.deps.toJSON())}\nkeys ${t.keys.map((k) => k.join("/")).join(", ")}`));
    out.append(node);
    const label = svg("text", { x: 16 + lanes.length * 26, y: Y(i) + 4, class: "label" });
    label.textContent = `${short(t.origin)}:${t.seq} ${keys}`;
    out.append(label);
  });
  return out;
}

export function mountInspector(replica, { doc }) {
  replica.keepHistory(64);

  function render() {
    const s = replica.stats();
    const seen = replica.inspect({ buffered: 16 });
    const clock = s.clock.toJSON();
    $("insp-clock").replaceChildren(...Object.entries(clock).map(([id, seq]) =>
      el("tr", {}, el("th", {}, el("span", { className: "dot", style: `background: ${colorOf(id)}` }), id === replica.id ? `${short(id)} (me)` : short(id)),
        el("td", { textContent: String(seq) }))));
    $("insp-graph").replaceChildren(seen.history.length
      ? graph(seen.history, replica.id)
      : el("p", { className: "small", textContent: "no transactions since this page opened" }));
    $("insp-buffer").replaceChildren(
      el("p", { className: "small", textContent: `${s.buffered} waiting${s.buffer_dropped ? `, ${s.buffer_dropped} dropped (fetched again)` : ""}` }),
      ...seen.buffered.map((b) => el("div", { className: "small mono",
        textContent: `${short(b.origin)}:${b.seq} waits for ${Object.entries(b.waitsFor.toJSON()).map(([r, q]) => `${short(r)}:${q}`).join(", ")}` })));
    $("insp-peers").replaceChildren(
      ...s.peers.map((p) => row(p.id ? `relay ${short(p.id)}` : "relay (handshake…)", p.connected ? `lag ${p.lag}` : "connecting")),
      row("tabs answered", s.tab_answers),
      row("tab errors", s.tab_errors));
    if (s.peers.length === 0) $("insp-peers").prepend(row("relay", "not linked"));
    const shape = replica.seqStats(doc);
    $("insp-log").replaceChildren(
      row("local / remote txns", `${s.txns_local} / ${s.txns_remote}`),
      row("log entries", s.log_len),
      row("records since snapshot", s.log_records),
      row("snapshots taken / merged", `${s.snapshots} / ${s.snapshots_merged}`),
      row("sent / received", `${bytes(s.bytes_sent)} / ${bytes(s.bytes_received)}`),
      row("recovery", s.recovery_ms === null ? "—" : `${s.recovery_records} records in ${s.recovery_ms} ms`));
    $("insp-doc").replaceChildren(
      row("characters", shape.visible),
      row("runs", shape.runs),
      row("tombstones", shape.tombstones));
  }

  return { render };
}
