// B1–B4 (bench/text.mjs) in Node: minidote (wasm) beside yjs, loro-crdt and
// @automerge/automerge, in one run. `make bench-wasm` runs it.
import { readFileSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import * as minidote from "../pkg/index.js";
import * as Y from "yjs";
import * as Automerge from "@automerge/automerge";
import * as Loro from "loro-crdt";
import { runAll, textTable } from "./text.mjs";

await minidote.ready();
const t = JSON.parse(gunzipSync(readFileSync(new URL("../../benchmarks/traces/automerge-paper.json.gz", import.meta.url))).toString("utf8"));
const trace = { patches: t.txns.flatMap((x) => x.patches), end: t.endContent };
const rows = await runAll({ minidote, Y, Automerge, Loro }, {
  trace,
  only: process.argv[2],
  log: (m) => process.stderr.write(m + "\n"),
});
console.log(`Node ${process.version}; one run each; ratios are the peer's figure over minidote's (above 1: minidote is faster or smaller). B4: automerge-paper, editing-traces by Joseph Gentle and contributors (CC BY 4.0).\n`);
console.log(textTable(rows));
