// Type declarations of the `minidote` npm package (API.md, "JavaScript / TypeScript").

/** The object types: the ten of DESIGN.md §2.2, then the maps. */
export type CrdtType =
  | "counter_pn" | "counter_pn_sb"
  | "set_aw" | "set_rw" | "set_go" | "set_2p"
  | "register_mv" | "register_lww"
  | "flag_ew" | "flag_dw"
  | "map_rr" | "map_go"
  | "list" | "text";

/** A field of a map: `[name, type]`; any type, maps included. */
export type Field = [name: string, type: CrdtType];

/** The arguments of map ops: `update [field, op]` or `update [field, op,
 * arg]` (an op of the field's type), and for `map_rr` `remove field` and
 * `reset`. E.g. `[doc, "update", [["meta", "map_rr"], "update",
 * [["tags", "set_aw"], "add", "x"]]]`. A map reads as `{name: value}`; a
 * field back at its initial state is absent. `remove` and `reset` undo what
 * this replica had observed of a field, for every type; an update
 * concurrent with them survives. */
export type FieldUpdate = [field: Field, op: string] | [field: Field, op: string, arg: Value];

/** List and text ops: `insert [index, value]`, `insert_all [index,
 * [values]]`, `delete [index, count]` (lists); `insert [index, string]`,
 * `delete [index, count]`, `splice [index, count, string]` (text). Indexes
 * count UTF-16 units, as `string.length`; an index out of range (or inside
 * a surrogate pair) is `invalid_operation` and nothing is applied.
 * Concurrent inserts at one place never interleave. */
export type DeltaOp = { retain: number } | { insert: string | Value[] } | { delete: number };

/** What `applyUpdate` did. */
export interface ImportStatus {
  /** Transactions applied (with those it released from the buffer). */
  applied: number;
  /** Transactions waiting in the causal buffer. */
  pending: number;
  /** What the buffer waits for: fetch frames since this clock's entries. */
  missing: Clock;
}

/** A catch-up's progress (`onProgress`). */
export interface Progress {
  /** Transactions received of those the catch-up expects (a merged
   * snapshot counts what it covers). */
  received: number;
  /** Transactions the relay had that this replica lacked. */
  expected: number;
  /** Bytes received since the catch-up started. */
  bytes: number;
  /** The last event of this catch-up: complete, or the link dropped. */
  done: boolean;
}

/** What `inspect()` shows. */
export interface Inspection {
  /** The last delivered transactions (see `keepHistory`), oldest first. */
  history: { origin: string; seq: number; deps: Clock; keys: Key[]; local: boolean }[];
  /** Transactions waiting in the causal buffer, with the deps they lack. */
  buffered: { origin: string; seq: number; waitsFor: Clock }[];
}

/** A list's or text's shape in memory. */
export interface SeqStats {
  runs: number;
  /** Elements kept for ordering, deleted ones included. */
  elements: number;
  visible: number;
  tombstones: number;
  /** The visible length in UTF-16 units (as `string.length`), in O(1). */
  length: number;
}

/** What subscribers get with each change. */
export interface ChangeInfo {
  /** The `origin` of the `updateObjects` call that made the change
   * (undefined for remote changes and for updates that waited for a clock). */
  origin: unknown;
}

/** An object's address: `[key, type, bucket]`. */
export type Key = [key: string, type: CrdtType, bucket: string];

/** What can be stored. Ints are safe integral numbers or BigInts; other
 * numbers are floats. Read back, an int is a number when it is safe and a
 * BigInt otherwise. */
export type Value =
  | null | boolean | number | bigint | string | Uint8Array
  | Value[] | { [key: string]: Value };

/** `[key, op]` or `[key, op, arg]`, e.g. `[likes, "increment", 1]`. */
export type Update = [key: Key, op: string] | [key: Key, op: string, arg: Value];

export type ErrorCode = "invalid_operation" | "clock_timeout" | "storage" | "protocol";

export class MinidoteError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string);
}

/** An immutable vector clock; its bytes are the same in every binding. */
export class Clock {
  private constructor();
  static fromBytes(bytes: Uint8Array): Clock;
  toBytes(): Uint8Array;
  /** `{replicaId: seq}` */
  toJSON(): Record<string, number>;
  leq(other: Clock): boolean;
  equals(other: Clock): boolean;
  concurrent(other: Clock): boolean;
  merge(other: Clock): Clock;
  toString(): string;
  free(): void;
}

export interface OpenOptions {
  /** IndexedDB database; omitted = memory only (the only mode in Node). */
  name?: string;
  /** Replication group (default "default"). */
  room?: string;
  /** Records between snapshots (default 10,000). */
  snapshotEvery?: number;
  /** Link same-origin tabs of this room through a BroadcastChannel, with
   * or without a relay (default true in browsers, false in Node). */
  broadcast?: boolean;
}

export interface PeerStats {
  addr: string | null;
  id: string | null;
  connected: boolean;
  clock: Clock;
  lag: number;
}

export interface Stats {
  id: string;
  room: string;
  clock: Clock;
  buffered: number;
  pending_requests: number;
  txns_local: number;
  txns_remote: number;
  duplicates: number;
  /** Second copies of a transaction with other bytes (the first is kept, the link closed). */
  integrity_conflicts: number;
  /** Times this replica found it was restored from an older copy of its database and re-issued its writes under a new id. */
  restores: number;
  /** Transactions re-issued by those repairs. */
  reissued: number;
  /** True while such a repair waits (links are refused meanwhile). */
  repair_pending: boolean;
  /** Transactions and snapshots refused because their link may not send them. */
  refused: number;
  /** Transactions dropped because the causal buffer was full. */
  buffer_dropped: number;
  bytes_sent: number;
  bytes_received: number;
  log_records: number;
  log_len: number;
  snapshots: number;
  snapshots_merged: number;
  recovery_ms: number | null;
  recovery_records: number;
  storage_commits: number;
  protocol_errors: number;
  last_protocol_error: string | null;
  /** Messages from other tabs refused (not frames, or frames that failed). */
  tab_errors: number;
  /** Other tabs' requests for what they lacked that this tab answered. */
  tab_answers: number;
  peers: PeerStats[];
}

export class Replica {
  private constructor();
  static open(options?: OpenOptions): Promise<Replica>;
  readonly id: string;
  readonly room: string;
  readonly connected: boolean;
  updateObjects(updates: Update[], clock?: Clock, options?: { timeoutMs?: number; origin?: unknown }): Promise<Clock>;
  readObjects(keys: Key[], clock?: Clock, options?: { timeoutMs?: number }): Promise<[Value[], Clock]>;
  /** The current local values, synchronously (no clock, no Promise). */
  read(keys: Key[]): Value[];
  connect(url: string, options?: { token?: string }): void;
  disconnect(): void;
  /** `callback(changedKeys, deltas, info)`; `deltas` maps a changed list's
   * or text's `JSON.stringify(key)` to its delta (UTF-16 units). Called in
   * the order changes applied, before the call that applied them returns. */
  subscribe(callback: (changedKeys: Key[], deltas: Map<string, DeltaOp[]>, info: ChangeInfo) => void): () => void;
  /** True once linked and everything the relay had at the handshake arrived. */
  catchUp(options?: { timeoutMs?: number }): Promise<boolean>;
  /** `callback(progress)` while a catch-up from the relay moves. */
  onProgress(callback: (progress: Progress) => void): () => void;
  /** Keep the last `n` delivered transactions for `inspect()` (0: off). */
  keepHistory(n: number): void;
  inspect(options?: { buffered?: number }): Inspection;
  seqStats(key: Key): SeqStats;
  /** An opaque position that stays with its element (index in UTF-16 units). */
  cursor(key: Key, index: number): Uint8Array;
  /** The index (UTF-16 units) a cursor points at now. */
  resolve(cursor: Uint8Array): number;
  /** The wire frames a replica at `clock` lacks (everything without one). */
  exportSince(clock?: Clock): Uint8Array[];
  /** Applies a frame from any channel; garbage rejects with code "protocol". */
  applyUpdate(frame: Uint8Array): Promise<ImportStatus>;
  /** `callback(frame)` with each `Txns` frame of own writes once durable;
   * returns the function that stops it. */
  onLocalUpdate(callback: (frame: Uint8Array) => void): () => void;
  /** True once the relay reported every own write stored; false after `timeoutMs`. */
  flush(options?: { timeoutMs?: number }): Promise<boolean>;
  stats(): Stats;
  snapshot(): void;
  /** Flushes first (up to `flushTimeoutMs`, default 2000), then closes. */
  close(options?: { flushTimeoutMs?: number }): Promise<void>;
}

/** Loads the .wasm (Replica.open does it on first use). */
export function ready(): Promise<void>;
