// B4 (the automerge-paper trace, one awaited updateObjects per edit) for
// minidote alone, for profiling: `node --cpu-prof bench/b4-profile.mjs`,
// then `node bench/b4-profile.mjs --summary <file.cpuprofile>`.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";

if (process.argv[2] === "--summary") {
  const p = JSON.parse(readFileSync(process.argv[3], "utf8"));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas;
  let total = 0;
  p.samples.forEach((id, i) => {
    const n = byId.get(id);
    const f = n.callFrame;
    const name = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}`;
    self.set(name, (self.get(name) ?? 0) + (dt[i] ?? 0));
    total += dt[i] ?? 0;
  });
  const rows = [...self].sort((a, b) => b[1] - a[1]).slice(0, 30);
  for (const [name, us] of rows) console.log(`${(100 * us / total).toFixed(1).padStart(5)} %  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}`);
  process.exit(0);
}

const minidote = await import("../pkg/index.js");
await minidote.ready();
const t = JSON.parse(gunzipSync(readFileSync(new URL("../../benchmarks/traces/automerge-paper.json.gz", import.meta.url))).toString("utf8"));
const patches = t.txns.flatMap((x) => x.patches);
const T = ["t", "text", "b"];
const keep = [];
for (let i = 0; i < Number(process.env.B4_IDLE ?? 0); i++) keep.push(await minidote.Replica.open());
const r = await minidote.Replica.open();
const sync = process.argv.includes("--no-await");
const start = performance.now();
for (const [pos, del, ins] of patches) {
  if (sync) {
    if (del > 0) r.updateObjects([[T, "delete", [pos, del]]]);
    if (ins) r.updateObjects([[T, "insert", [pos, ins]]]);
  } else {
    if (del > 0) await r.updateObjects([[T, "delete", [pos, del]]]);
    if (ins) await r.updateObjects([[T, "insert", [pos, ins]]]);
  }
}
const ms = performance.now() - start;
const [[text]] = await r.readObjects([T]);
if (text !== t.endContent) throw new Error("B4 ends at the wrong text");
console.log(`B4 minidote: ${ms.toFixed(0)} ms (${sync ? "not awaited" : "each awaited"})`);
