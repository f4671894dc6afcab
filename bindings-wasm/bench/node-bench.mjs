// minidote (wasm) side by side with yjs, @automerge/automerge and loro-crdt
// in Node, in memory. `make bench-wasm` runs it (and the Chromium one).
import * as minidote from "../pkg/index.js";
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge";
import * as Loro from "loro-crdt";
import { workloads, best, table } from "./peers.mjs";

await minidote.ready();
const rows = [];
for (const w of workloads({ minidote, Y, Automerge, Loro })) {
  const row = { name: w.name };
  for (const lib of ["minidote", "yjs", "automerge", "loro"]) {
    row[lib] = await best(w[lib]);
    process.stderr.write(`${w.name}: ${lib} ${Math.round(row[lib])}/s\n`);
  }
  rows.push(row);
}
console.log(`Node ${process.version}, ops/s, best of 3 (ratio = minidote / peer)\n`);
console.log(table(rows));
