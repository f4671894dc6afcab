// Type-checked by `tsc --noEmit` in make test: the declarations describe the API.
import {
  Replica, Clock, MinidoteError, type ChangeInfo, type DeltaOp, type Field, type FieldUpdate, type Inspection,
  type Key, type Progress, type SeqStats, type Value,
} from "../pkg/index.js";
import { minidoteText, deltaToChanges, changesToUpdates } from "../pkg/codemirror.js";
import type { Extension } from "@codemirror/state";

async function usage(): Promise<number> {
  const r: Replica = await Replica.open({ name: "notes", room: "team" });
  const likes: Key = ["likes", "counter_pn", "demo"];
  const clock: Clock = await r.updateObjects([[likes, "increment", 1], [["tags", "set_aw", "demo"], "add", "x"]]);
  const [values, after]: [Value[], Clock] = await r.readObjects([likes], clock, { timeoutMs: 500 });
  const doc: Key = ["doc", "map_rr", "demo"];
  const tag: FieldUpdate = [["tags", "set_aw"], "add", "x"];
  const nested: FieldUpdate = [["meta", "map_rr"], "update", tag];
  await r.updateObjects([[doc, "update", nested], [doc, "remove", ["old", "counter_pn"] as Field]]);
  r.connect("ws://127.0.0.1:8080/sync", { token: "t" });
  const off: () => void = r.subscribe((keys: Key[]) => console.log(keys.length));
  off();
  const stats = r.stats();
  const lag: number = stats.peers.reduce((n, p) => n + p.lag, 0);
  const same: boolean = Clock.fromBytes(after.toBytes()).equals(after) && clock.leq(after);
  try {
    await r.updateObjects([[likes, "frobnicate"]]);
  } catch (e) {
    if (e instanceof MinidoteError && e.code === "invalid_operation") console.log(e.message);
  }
  // Bring your own transport, synchronous reads, flush, tabs.
  const peer = await Replica.open({ room: "demo", broadcast: false });
  const stop: () => void = r.onLocalUpdate((frame: Uint8Array) => {
    void peer.applyUpdate(frame);
  });
  for (const f of peer.exportSince(r.stats().clock)) await r.applyUpdate(f);
  const now: Value[] = r.read([likes]);
  const delivered: boolean = await r.flush({ timeoutMs: 1000 });
  const tabErrors: number = r.stats().tab_errors;
  stop();
  // Origins, progress and the inspector.
  const unsub = r.subscribe((keys: Key[], deltas: Map<string, DeltaOp[]>, info: ChangeInfo) => {
    if (info.origin === "me") console.log(keys.length, deltas.size);
  });
  await r.updateObjects([[likes, "increment", 1]], undefined, { origin: "me" });
  unsub();
  const offProgress: () => void = r.onProgress((p: Progress) => {
    if (p.done) console.log(p.received, p.expected, p.bytes);
  });
  offProgress();
  r.keepHistory(50);
  const seen: Inspection = r.inspect({ buffered: 10 });
  const firstKeys: Key[] = seen.history[0]?.keys ?? [];
  const waits: Clock | undefined = seen.buffered[0]?.waitsFor;
  const shape: SeqStats = r.seqStats(["doc", "text", "demo"]);
  console.log(firstKeys.length, waits?.toJSON(), shape.tombstones);
  // The CodeMirror binding.
  const text: Key = ["doc", "text", "demo"];
  const editor: Extension = minidoteText(r, text, {
    presence: { key: ["presence", "map_rr", "demo"], name: "Ada", color: "#3366ff" },
  });
  const ups = changesToUpdates(deltaToChanges([{ retain: 1 }, { insert: "x" }], 3), text);
  console.log(editor, ups.length);
  await peer.close({ flushTimeoutMs: 0 });
  r.disconnect();
  await r.close();
  return (values[0] as number) + lag + (same ? 1 : 0) + now.length + (delivered ? 1 : 0) + tabErrors;
}
void usage;
