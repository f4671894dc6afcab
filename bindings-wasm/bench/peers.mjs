// Workloads shared by the Node and Chromium benchmarks: each returns ops/s.
// `lib` holds the modules: { minidote, Y, Automerge, Loro }.
export const N = 100_000;
export const BATCH = 1_000;
/** Automerge runs a tenth of each workload: its change() costs far more
 * per op, and the rate is per op, so it stays comparable. */
const AM = N / 10;

/** Every read workload sums what it read: the same total for every peer. */
const READ_SUM = (N / 1000) * (999 * 1000) / 2;
function check(sum, r) {
  if (sum !== READ_SUM) throw new Error(`read the wrong values: ${sum}, not ${READ_SUM}`);
  return r;
}

function rate(n, t0) {
  return n / ((performance.now() - t0) / 1000);
}

/** minidote replicas here have no BroadcastChannel (`broadcast: false`):
 * the peers link no tabs either, and a replica left open by an earlier
 * workload would apply every later one's writes. browser-bench.mjs
 * measures the default (on) separately. */
export function workloads({ minidote, Y, Automerge, Loro }) {
  const K = ["likes", "counter_pn", "b"];
  const S = ["tags", "set_aw", "b"];
  return [
    {
      name: "100k counter increments, single-op txns",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const t0 = performance.now();
        for (let i = 0; i < N; i++) await r.updateObjects([[K, "increment", 1]]);
        return rate(N, t0);
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("m");
        const t0 = performance.now();
        for (let i = 0; i < N; i++) d.transact(() => m.set("c", (m.get("c") ?? 0) + 1));
        return rate(N, t0);
      },
      automerge: () => {
        let d = Automerge.from({ c: new Automerge.Counter() });
        const t0 = performance.now();
        for (let i = 0; i < AM; i++) d = Automerge.change(d, (x) => x.c.increment(1));
        return rate(AM, t0);
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const c = d.getCounter("c");
        const t0 = performance.now();
        for (let i = 0; i < N; i++) { c.increment(1); d.commit(); }
        return rate(N, t0);
      },
    },
    {
      name: "100k counter increments, 1,000-op batches",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const ops = Array.from({ length: BATCH }, () => [K, "increment", 1]);
        const t0 = performance.now();
        for (let i = 0; i < N / BATCH; i++) await r.updateObjects(ops);
        return rate(N, t0);
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("m");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) d.transact(() => { for (let i = 0; i < BATCH; i++) m.set("c", (m.get("c") ?? 0) + 1); });
        return rate(N, t0);
      },
      automerge: () => {
        let d = Automerge.from({ c: new Automerge.Counter() });
        const t0 = performance.now();
        for (let b = 0; b < AM / BATCH; b++) d = Automerge.change(d, (x) => { for (let i = 0; i < BATCH; i++) x.c.increment(1); });
        return rate(AM, t0);
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const c = d.getCounter("c");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) { for (let i = 0; i < BATCH; i++) c.increment(1); d.commit(); }
        return rate(N, t0);
      },
    },
    {
      name: "100k set adds, 1,000-op batches",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) {
          const ops = [];
          for (let i = 0; i < BATCH; i++) ops.push([S, "add", b * BATCH + i]);
          await r.updateObjects(ops);
        }
        return rate(N, t0);
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("s");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) d.transact(() => { for (let i = 0; i < BATCH; i++) m.set(String(b * BATCH + i), true); });
        return rate(N, t0);
      },
      automerge: () => {
        let d = Automerge.from({ s: {} });
        const t0 = performance.now();
        for (let b = 0; b < AM / BATCH; b++) d = Automerge.change(d, (x) => { for (let i = 0; i < BATCH; i++) x.s[String(b * BATCH + i)] = true; });
        return rate(AM, t0);
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const m = d.getMap("s");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) { for (let i = 0; i < BATCH; i++) m.set(String(b * BATCH + i), true); d.commit(); }
        return rate(N, t0);
      },
    },
    {
      name: "100k register/map writes over 1k keys, 1,000-op batches",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const keys = Array.from({ length: BATCH }, (_, i) => [`k${i}`, "register_lww", "b"]);
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) await r.updateObjects(keys.map((k) => [k, "assign", b]));
        return rate(N, t0);
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("r");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) d.transact(() => { for (let i = 0; i < BATCH; i++) m.set(`k${i}`, b); });
        return rate(N, t0);
      },
      automerge: () => {
        let d = Automerge.from({ r: {} });
        const t0 = performance.now();
        for (let b = 0; b < AM / BATCH; b++) d = Automerge.change(d, (x) => { for (let i = 0; i < BATCH; i++) x.r[`k${i}`] = b; });
        return rate(AM, t0);
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const m = d.getMap("r");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) { for (let i = 0; i < BATCH; i++) m.set(`k${i}`, b); d.commit(); }
        return rate(N, t0);
      },
    },
    {
      name: "100k register/map writes over 10k keys, 1,000-op batches",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const keys = Array.from({ length: 10 * BATCH }, (_, i) => [`k${i}`, "register_lww", "b"]);
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) {
          const ops = [];
          for (let i = 0; i < BATCH; i++) ops.push([keys[(b * BATCH + i) % keys.length], "assign", b]);
          await r.updateObjects(ops);
        }
        return rate(N, t0);
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("r");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) d.transact(() => { for (let i = 0; i < BATCH; i++) m.set(`k${(b * BATCH + i) % (10 * BATCH)}`, b); });
        return rate(N, t0);
      },
      automerge: () => {
        let d = Automerge.from({ r: {} });
        const t0 = performance.now();
        for (let b = 0; b < AM / BATCH; b++) d = Automerge.change(d, (x) => { for (let i = 0; i < BATCH; i++) x.r[`k${(b * BATCH + i) % (10 * BATCH)}`] = b; });
        return rate(AM, t0);
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const m = d.getMap("r");
        const t0 = performance.now();
        for (let b = 0; b < N / BATCH; b++) { for (let i = 0; i < BATCH; i++) m.set(`k${(b * BATCH + i) % (10 * BATCH)}`, b); d.commit(); }
        return rate(N, t0);
      },
    },
    {
      // Rendering: 1,000 calls, each reading 100 of 1,000 registers
      // (keys read per second). minidote's read is synchronous, like the
      // peers' getters.
      name: "100k register reads, 100 keys per call",
      minidote: async () => {
        const r = await minidote.Replica.open({ broadcast: false });
        const keys = Array.from({ length: BATCH }, (_, i) => [`k${i}`, "register_lww", "b"]);
        await r.updateObjects(keys.map((k, i) => [k, "assign", i]));
        const views = Array.from({ length: 10 }, (_, v) => keys.slice(v * 100, v * 100 + 100));
        let sum = 0;
        const t0 = performance.now();
        for (let c = 0; c < N / 100; c++) for (const x of r.read(views[c % 10])) sum += x;
        return check(sum, rate(N, t0));
      },
      yjs: () => {
        const d = new Y.Doc(); const m = d.getMap("r");
        d.transact(() => { for (let i = 0; i < BATCH; i++) m.set(`k${i}`, i); });
        const views = Array.from({ length: 10 }, (_, v) => Array.from({ length: 100 }, (_, i) => `k${v * 100 + i}`));
        let sum = 0;
        const t0 = performance.now();
        for (let c = 0; c < N / 100; c++) for (const k of views[c % 10]) sum += m.get(k);
        return check(sum, rate(N, t0));
      },
      automerge: () => {
        const d = Automerge.from({ r: Object.fromEntries(Array.from({ length: BATCH }, (_, i) => [`k${i}`, i])) });
        const views = Array.from({ length: 10 }, (_, v) => Array.from({ length: 100 }, (_, i) => `k${v * 100 + i}`));
        let sum = 0;
        const t0 = performance.now();
        for (let c = 0; c < N / 100; c++) { const r = d.r; for (const k of views[c % 10]) sum += r[k]; }
        return check(sum, rate(N, t0));
      },
      loro: () => {
        const d = new Loro.LoroDoc(); const m = d.getMap("r");
        for (let i = 0; i < BATCH; i++) m.set(`k${i}`, i);
        d.commit();
        const views = Array.from({ length: 10 }, (_, v) => Array.from({ length: 100 }, (_, i) => `k${v * 100 + i}`));
        let sum = 0;
        const t0 = performance.now();
        for (let c = 0; c < N / 100; c++) for (const k of views[c % 10]) sum += m.get(k);
        return check(sum, rate(N, t0));
      },
    },
  ];
}

/** Best of `runs`. */
export async function best(fn, runs = 3) {
  let top = 0;
  for (let i = 0; i < runs; i++) top = Math.max(top, await fn());
  return top;
}

export function table(rows) {
  const f = (x) => (x ? Math.round(x).toLocaleString("en-US") : "—");
  const r = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : "—");
  const out = ["| workload | minidote | yjs | ratio | automerge | ratio | loro | ratio |", "|---|---|---|---|---|---|---|---|"];
  for (const x of rows) {
    out.push(`| ${x.name} | ${f(x.minidote)} | ${f(x.yjs)} | ${r(x.minidote, x.yjs)} | ${f(x.automerge)} | ${r(x.minidote, x.automerge)} | ${f(x.loro)} | ${r(x.minidote, x.loro)} |`);
  }
  return out.join("\n");
}
