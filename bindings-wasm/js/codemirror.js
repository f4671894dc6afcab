// minidote/codemirror: binds a Minidote `text` object to a CodeMirror 6
// editor, with the remote cursors and selections of other replicas.
//
//   import { minidoteText } from "minidote/codemirror";
//   const view = new EditorView({
//     doc: replica.read([key])[0],
//     extensions: [minidoteText(replica, key, { presence: { key: who, name, color } })],
//     parent,
//   });
//
// How the editor and the replica stay in step:
// * A local edit becomes one `updateObjects` call (one transaction, its
//   changes as splices left to right), made with this binding as `origin`,
//   so its echo to subscribers is recognised and skipped.
// * Remote changes reach subscribers before the call that applied them
//   returns (index.js), as deltas against the replica's text. They are
//   queued as one CodeMirror ChangeSet and dispatched from a microtask (a
//   subscriber may run while the editor is mid-update, where dispatching
//   is not allowed), or, once a burst passes BURST deltas (a catch-up,
//   frame after frame), from a timer every BURST_MS, so the editor redraws
//   a few times a second instead of once per frame. A local edit made
//   while some are queued is mapped over them before it is sent (the
//   replica applied them first), and the queue is mapped over the edit, so
//   both sides end equal.
// * Past MAX_QUEUED queued deltas the document is replaced with the
//   replica's text once instead (edits typed in that moment are lost; it
//   takes a catch-up of thousands of changes); so is any mismatch of the
//   lengths the check after each dispatch finds (`seqStats`, O(1)).
// * Cursors travel as a `map_rr` of presence: one `register_lww` field per
//   replica with `{name, color, anchor, head, at}`, where anchor and head
//   are `replica.cursor()` bytes. Causal delivery means a cursor never
//   arrives before the text it points into, so it always resolves.
import { Annotation, ChangeSet, StateEffect, Transaction } from "@codemirror/state";
import { Decoration, EditorView, ViewPlugin, WidgetType } from "@codemirror/view";

/** Marks the transactions this binding dispatches from remote changes. */
export const remoteChange = Annotation.define();
const refresh = StateEffect.define();

/** Above this many queued deltas, dispatches wait for a timer. */
const BURST = 64;
const BURST_MS = 100;
/** Above this many queued deltas, the document is replaced in one go. */
const MAX_QUEUED = 20000;
/** Own presence is written at most this often (ms). */
const PRESENCE_MS = 100;
/** Presence older than this (ms, by the writer's clock) is not shown. */
const PRESENCE_TTL = 10 * 60 * 1000;
/** Presence claiming a time further ahead than this is not shown. */
const PRESENCE_SKEW = 60 * 1000;
/** At most this many other cursors are drawn. */
const MAX_CURSORS = 64;

/** A subscriber delta (`[{retain}, {insert}, {delete}]`, UTF-16 units) as
 * a ChangeSet over a document of `length`. */
export function deltaToChanges(delta, length) {
  const specs = [];
  let pos = 0;
  for (const op of delta) {
    if (op.retain !== undefined) pos += op.retain;
    else if (op.delete !== undefined) {
      specs.push({ from: pos, to: pos + op.delete });
      pos += op.delete;
    } else if (op.insert !== undefined) specs.push({ from: pos, insert: String(op.insert) });
  }
  return ChangeSet.of(specs, length);
}

/** A ChangeSet as text updates of `key`, applied left to right in one
 * transaction: each index accounts for the changes before it. */
export function changesToUpdates(changes, key) {
  const out = [];
  let shift = 0;
  changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
    const at = fromA + shift, count = toA - fromA, text = inserted.toString();
    if (count > 0 && text.length > 0) out.push([key, "splice", [at, count, text]]);
    else if (count > 0) out.push([key, "delete", [at, count]]);
    else if (text.length > 0) out.push([key, "insert", [at, text]]);
    shift += text.length - count;
  });
  return out;
}

class Caret extends WidgetType {
  constructor(id, name, color) {
    super();
    this.id = id;
    this.name = name;
    this.color = color;
  }

  eq(other) {
    return other.id === this.id && other.name === this.name && other.color === this.color;
  }

  toDOM() {
    const caret = document.createElement("span");
    caret.className = "cm-minidote-caret";
    caret.dataset.replica = this.id;
    caret.title = this.name;
    caret.style.borderLeftColor = this.color;
    const label = document.createElement("span");
    label.className = "cm-minidote-name";
    label.textContent = this.name;
    label.style.backgroundColor = this.color;
    caret.append(label);
    return caret;
  }

  ignoreEvent() {
    return true;
  }
}

const theme = EditorView.baseTheme({
  ".cm-minidote-caret": {
    position: "relative",
    borderLeft: "2px solid",
    marginLeft: "-1px",
    marginRight: "-1px",
  },
  ".cm-minidote-name": {
    position: "absolute",
    top: "-1.3em",
    left: "-2px",
    fontSize: "11px",
    lineHeight: "1.2",
    color: "white",
    padding: "0 3px",
    borderRadius: "3px 3px 3px 0",
    whiteSpace: "nowrap",
    pointerEvents: "none",
    userSelect: "none",
  },
});

function isColor(c) {
  return typeof c === "string" && /^#[0-9a-fA-F]{6}$/.test(c);
}

/** The editor extension that keeps the view and the text `key` of
 * `replica` in step. `presence: { key, name, color }` (a `map_rr` key, a
 * display name, a `#rrggbb` colour) also shares this editor's cursor and
 * shows the other replicas'. */
export function minidoteText(replica, key, { presence } = {}) {
  if (!Array.isArray(key) || key[1] !== "text") {
    throw new TypeError("minidoteText binds a text object: a key [name, \"text\", bucket]");
  }
  const docKey = JSON.stringify(key);
  const presenceKey = presence ? JSON.stringify(presence.key) : null;
  const plugin = ViewPlugin.fromClass(class {
    constructor(view) {
      this.view = view;
      /** Remote changes not yet in the editor, as one ChangeSet. */
      this.queued = null;
      this.count = 0;
      this.replaceAll = false;
      this.scheduled = false;
      this.timer = null;
      this.presenceTimer = null;
      this.destroyed = false;
      /** Remote cursors as decorations. */
      this.decorations = Decoration.none;
      this.unsubscribe = replica.subscribe((_keys, deltas, info) => this.onChange(_keys, deltas, info));
      if (view.state.doc.toString() !== replica.read([key])[0]) {
        this.replaceAll = true;
        this.schedule();
      }
      this.decorations = this.cursors();
      this.onHide = () => this.leave();
      globalThis.addEventListener?.("pagehide", this.onHide);
    }

    onChange(keys, deltas, info) {
      if (this.destroyed) return;
      if (presenceKey !== null && info.origin !== this
        && keys.some((k) => JSON.stringify(k) === presenceKey)) {
        this.schedule();
      }
      const delta = deltas.get(docKey);
      if (delta === undefined || info.origin === this) return;
      if (!this.replaceAll) {
        const base = this.queued ? this.queued.newLength : this.view.state.doc.length;
        try {
          const cs = deltaToChanges(delta, base);
          this.queued = this.queued ? this.queued.compose(cs) : cs;
          this.count += 1;
        } catch {
          this.replaceAll = true;
        }
        if (this.count > MAX_QUEUED) this.replaceAll = true;
      }
      if (this.replaceAll) this.queued = null;
      this.schedule();
    }

    schedule() {
      if (this.count >= BURST || this.replaceAll) {
        // A burst: redraw a few times a second, not once per frame.
        if (this.timer === null) {
          this.timer = setTimeout(() => {
            this.timer = null;
            if (!this.destroyed) this.flush();
          }, BURST_MS);
        }
        return;
      }
      if (this.scheduled) return;
      this.scheduled = true;
      queueMicrotask(() => {
        this.scheduled = false;
        if (!this.destroyed && this.timer === null) this.flush();
      });
    }

    /** Dispatches what is queued (or the whole text), then checks. */
    flush() {
      const annotations = [remoteChange.of(true), Transaction.addToHistory.of(false)];
      if (this.replaceAll) {
        this.replaceAll = false;
        this.queued = null;
        this.count = 0;
        const text = replica.read([key])[0];
        const doc = this.view.state.doc;
        if (doc.toString() !== text) {
          this.view.dispatch({ changes: { from: 0, to: doc.length, insert: text }, annotations });
        } else {
          this.view.dispatch({ effects: refresh.of(null) });
        }
        return;
      }
      const queued = this.queued;
      this.queued = null;
      this.count = 0;
      if (queued && !queued.empty) this.view.dispatch({ changes: queued, annotations });
      else this.view.dispatch({ effects: refresh.of(null) });
      // The safety net: a length that differs means the two drifted.
      if (queued && this.view.state.doc.length !== replica.seqStats(key).length) {
        this.replaceAll = true;
        this.schedule();
      }
    }

    update(update) {
      let moved = update.focusChanged;
      for (const tr of update.transactions) {
        if (tr.annotation(remoteChange)) continue;
        if (tr.docChanged) this.send(tr.changes);
        // Only this editor's own edits and moves are shared: a remote
        // change moves no cursor's element, so it costs no write.
        if (tr.docChanged || tr.selection) moved = true;
      }
      if (moved) this.sharePresence();
      this.decorations = this.cursors();
    }

    /** A local edit to the replica, mapped over what is queued. */
    send(changes) {
      let local = changes;
      if (this.queued) {
        // The replica applied the queued changes first.
        local = changes.map(this.queued);
        this.queued = this.queued.map(changes, true);
      } else if (this.replaceAll) {
        // Positions are unknown until the document is replaced.
        return;
      }
      const updates = changesToUpdates(local, key);
      if (updates.length === 0) return;
      replica.updateObjects(updates, undefined, { origin: this }).catch((e) => {
        console.warn("minidote/codemirror: an edit was refused, reloading the text:", e);
        this.replaceAll = true;
        this.queued = null;
        this.schedule();
      });
    }

    sharePresence() {
      if (!presence || this.presenceTimer !== null) return;
      this.presenceTimer = setTimeout(() => {
        this.presenceTimer = null;
        if (this.destroyed) return;
        const sel = this.view.state.selection.main;
        try {
          const value = {
            name: String(presence.name),
            color: String(presence.color),
            anchor: replica.cursor(key, sel.anchor),
            head: replica.cursor(key, sel.head),
            at: Date.now(),
          };
          replica.updateObjects([[presence.key, "update", [[replica.id, "register_lww"], "assign", value]]],
            undefined, { origin: this }).catch(() => {});
        } catch {
          // The editor is ahead of the replica for a moment: next time.
        }
      }, PRESENCE_MS);
    }

    /** The other replicas' carets and selections. */
    cursors() {
      if (!presence) return Decoration.none;
      let entries;
      try {
        entries = replica.read([presence.key])[0];
      } catch {
        return Decoration.none;
      }
      const len = this.view.state.doc.length;
      const now = Date.now();
      const marks = [];
      let shown = 0;
      for (const [id, p] of Object.entries(entries && typeof entries === "object" ? entries : {})) {
        if (shown >= MAX_CURSORS) break;
        if (id === replica.id || !p || typeof p !== "object") continue;
        if (!(p.anchor instanceof Uint8Array) || !(p.head instanceof Uint8Array)) continue;
        if (typeof p.at !== "number" || now - p.at > PRESENCE_TTL || p.at - now > PRESENCE_SKEW) continue;
        let anchor, head;
        try {
          anchor = Math.min(replica.resolve(p.anchor), len);
          head = Math.min(replica.resolve(p.head), len);
        } catch {
          continue;
        }
        const color = isColor(p.color) ? p.color : "#888888";
        const name = typeof p.name === "string" ? p.name.slice(0, 40) : id.slice(0, 6);
        const from = Math.min(anchor, head), to = Math.max(anchor, head);
        if (from < to) {
          marks.push(Decoration.mark({
            class: "cm-minidote-selection",
            attributes: { style: `background-color: ${color}33`, "data-replica": id },
          }).range(from, to));
        }
        marks.push(Decoration.widget({ widget: new Caret(id, name, color), side: 1 }).range(head));
        shown += 1;
      }
      return Decoration.set(marks, true);
    }

    /** Takes this editor's cursor out of the presence map. */
    leave() {
      if (!presence || this.destroyed) return;
      replica.updateObjects([[presence.key, "remove", [replica.id, "register_lww"]]]).catch(() => {});
    }

    destroy() {
      this.leave();
      this.destroyed = true;
      this.unsubscribe();
      if (this.presenceTimer !== null) clearTimeout(this.presenceTimer);
      if (this.timer !== null) clearTimeout(this.timer);
      globalThis.removeEventListener?.("pagehide", this.onHide);
    }
  }, { decorations: (v) => v.decorations });
  return [plugin, theme];
}
