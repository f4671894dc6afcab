// Type declarations of `minidote/codemirror`: a CodeMirror 6 binding for
// Minidote `text` objects (peer dependencies: @codemirror/state, @codemirror/view).
import type { Annotation, ChangeSet, Extension } from "@codemirror/state";
import type { DeltaOp, Key, Replica, Update } from "./index.js";

export interface PresenceOptions {
  /** A `map_rr` key that holds one `register_lww` field per replica. */
  key: Key;
  /** The name shown beside this editor's cursor elsewhere. */
  name: string;
  /** This editor's colour elsewhere, as `#rrggbb`. */
  color: string;
}

/** The editor extension that keeps the view and the text `key` of
 * `replica` in step (start the view with `replica.read([key])[0]` as its
 * document). With `presence`, this editor's cursor and selection are shared
 * and the other replicas' are shown, each with its name and colour. */
export function minidoteText(replica: Replica, key: Key, options?: { presence?: PresenceOptions }): Extension;

/** Marks the editor transactions that carry remote changes. */
export const remoteChange: Annotation<boolean>;

/** A subscriber delta as a ChangeSet over a document of `length`. */
export function deltaToChanges(delta: DeltaOp[], length: number): ChangeSet;

/** A ChangeSet as the text updates of `key` for one `updateObjects` call. */
export function changesToUpdates(changes: ChangeSet, key: Key): Update[];
