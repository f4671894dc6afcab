// The CodeMirror binding's two translations, checked in Node against a
// real replica with random edits: editor changes → text updates, and
// subscriber deltas → editor changes, plus the mapping of a local edit
// over remote changes still queued (the binding's lockstep rule). The
// binding in a real editor is tested in Chromium (web-demo e2e).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChangeSet, EditorState } from "@codemirror/state";
import { Replica } from "../pkg/index.js";
import { changesToUpdates, deltaToChanges } from "../pkg/codemirror.js";
import { rng } from "./rng.mjs";

const T = ["doc", "text", "t"];
const PIECES = ["a", "bc", "é", "日本", "😀", "\n", "xyz", " "];

/** Positions between code points (never inside a surrogate pair). */
function boundaries(text) {
  const out = [0];
  let i = 0;
  for (const ch of text) {
    i += ch.length;
    out.push(i);
  }
  return out;
}

/** 1–3 random non-overlapping changes over `text` (never none). */
function randomChanges(text, rand) {
  for (;;) {
    const cs = someChanges(text, rand);
    if (!cs.empty) return cs;
  }
}

function someChanges(text, rand) {
  const b = boundaries(text);
  const n = 1 + Math.floor(rand() * 3);
  const picks = Array.from({ length: n * 2 }, () => b[Math.floor(rand() * b.length)]).sort((x, y) => x - y);
  const specs = [];
  for (let i = 0; i < picks.length; i += 2) {
    const from = picks[i];
    const to = rand() < 0.5 ? from : picks[i + 1];
    const insert = rand() < 0.7 ? PIECES[Math.floor(rand() * PIECES.length)].repeat(1 + Math.floor(rand() * 3)) : "";
    if (from === to && insert === "") continue;
    specs.push({ from, to, insert });
  }
  return ChangeSet.of(specs, text.length);
}

test("editor changes become text updates that give the replica the editor's text", async () => {
  const rand = rng(11);
  const r = await Replica.open();
  let state = EditorState.create({ doc: "" });
  for (let i = 0; i < 400; i++) {
    const changes = randomChanges(state.doc.toString(), rand);
    state = state.update({ changes }).state;
    const updates = changesToUpdates(changes, T);
    if (updates.length > 0) await r.updateObjects(updates);
    assert.equal(r.read([T])[0], state.doc.toString(), `step ${i}`);
  }
  await r.close();
});

test("subscriber deltas become editor changes that give the editor the replica's text", async () => {
  const rand = rng(12);
  const a = await Replica.open();
  const b = await Replica.open();
  let mirror = EditorState.create({ doc: "" });
  b.subscribe((_keys, deltas) => {
    const d = deltas.get(JSON.stringify(T));
    if (d) mirror = mirror.update({ changes: deltaToChanges(d, mirror.doc.length) }).state;
  });
  a.onLocalUpdate((f) => { void b.applyUpdate(f); });
  let source = EditorState.create({ doc: "" });
  for (let i = 0; i < 300; i++) {
    const changes = randomChanges(source.doc.toString(), rand);
    source = source.update({ changes }).state;
    await a.updateObjects(changesToUpdates(changes, T));
  }
  await new Promise((res) => setTimeout(res, 0));
  assert.equal(b.read([T])[0], source.doc.toString());
  assert.equal(mirror.doc.toString(), source.doc.toString());
  await a.close();
  await b.close();
});

test("a local edit mapped over queued remote changes leaves the editor and the replica equal", async () => {
  const rand = rng(13);
  for (let round = 0; round < 200; round++) {
    const r = await Replica.open();
    const other = await Replica.open();
    const base = "hello world 😀 ab";
    await r.updateObjects([[T, "insert", [0, base]]]);
    for (const f of r.exportSince()) await other.applyUpdate(f);
    // A remote change reaches the replica; the editor has not seen it yet.
    const remote = randomChanges(base, rand);
    await other.updateObjects(changesToUpdates(remote, T));
    let queued = null;
    const stop = r.subscribe((_k, deltas) => {
      const d = deltas.get(JSON.stringify(T));
      if (d) queued = deltaToChanges(d, base.length);
    });
    for (const f of other.exportSince(r.stats().clock)) await r.applyUpdate(f);
    stop();
    assert.ok(queued, "the remote change was delivered");
    // Meanwhile the user edits the editor's (older) text.
    let editor = EditorState.create({ doc: base });
    const local = randomChanges(base, rand);
    editor = editor.update({ changes: local }).state;
    await r.updateObjects(changesToUpdates(local.map(queued), T));
    editor = editor.update({ changes: queued.map(local, true) }).state;
    assert.equal(editor.doc.toString(), r.read([T])[0], `round ${round}`);
    await r.close();
    await other.close();
  }
});
