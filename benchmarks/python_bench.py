"""Side-by-side Python benchmark: minidote vs pycrdt (Yrs) and loro, in one run.

    make bench-python        # installs the peers into .venv, then runs this

Each row runs the same workload on each library in this process, best of 3.
Where a peer lacks a type, a stand-in is named in the table:
  * pycrdt has no counter: a Map entry that is read, incremented and written.
  * sets are maps from element to True in pycrdt and loro.
"Single-op" means one transaction (commit) per operation; "batch" means
1,000 operations per transaction.
"""
import os
import sys
import tempfile
import time

import minidote

N = 100_000
BATCH = 1000


def best_of(fn, runs=3):
    best = float("inf")
    for _ in range(runs):
        if getattr(fn, "timed", False):
            best = min(best, fn())
            continue
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


# ---------- minidote ----------

def md_counter_single(r=None):
    r = r or minidote.Replica()
    k = ("likes", "counter_pn", "b")
    for _ in range(N):
        r.update_objects([(k, "increment", 1)])


def md_counter_batch(r=None):
    r = r or minidote.Replica()
    k = ("likes", "counter_pn", "b")
    ops = [(k, "increment", 1)] * BATCH
    for _ in range(N // BATCH):
        r.update_objects(ops)


def md_set_batch(r=None):
    r = r or minidote.Replica()
    k = ("s", "set_aw", "b")
    for b in range(N // BATCH):
        r.update_objects([(k, "add", b * BATCH + i) for i in range(BATCH)])


def md_set_single(r=None):
    r = r or minidote.Replica()
    k = ("s", "set_aw", "b")
    for i in range(N):
        r.update_objects([(k, "add", i)])


def md_register_batch(r=None):
    r = r or minidote.Replica()
    for b in range(N // BATCH):
        r.update_objects([((f"k{i}", "register_lww", "b"), "assign", b) for i in range(BATCH)])


def md_register_single(r=None):
    r = r or minidote.Replica()
    for i in range(N):
        r.update_objects([((f"k{i % 1000}", "register_lww", "b"), "assign", i)])


def md_register_batch_10k(r=None):
    r = r or minidote.Replica()
    for b in range(N // BATCH):
        r.update_objects([((f"k{(b * BATCH + i) % 10_000}", "register_lww", "b"), "assign", b) for i in range(BATCH)])


def md_register_single_10k(r=None):
    r = r or minidote.Replica()
    for i in range(N):
        r.update_objects([((f"k{i % 10_000}", "register_lww", "b"), "assign", i)])


READ_KEYS = [(f"k{i}", "register_lww", "b") for i in range(1000)]
READ_SUM = (N // 1000) * (999 * 1000) // 2


def md_reads():
    r = minidote.Replica()
    r.update_objects([(k, "assign", i) for i, k in enumerate(READ_KEYS)])
    views = [READ_KEYS[v * 100:v * 100 + 100] for v in range(10)]
    t = time.perf_counter()
    total = 0
    for c in range(N // 100):
        total += sum(r.read_objects(views[c % 10])[0])
    assert total == READ_SUM, total
    return time.perf_counter() - t


def durable(fn):
    def run():
        with tempfile.TemporaryDirectory() as d:
            with minidote.Replica(os.path.join(d, "b.db"), durability="normal") as r:
                fn(r)
    return run


# ---------- pycrdt (Yrs) ----------

def yc_counter(batch):
    import pycrdt

    def run():
        doc = pycrdt.Doc()
        m = doc.get("m", type=pycrdt.Map)
        with doc.transaction():
            m["likes"] = 0
        for _ in range(N // batch):
            with doc.transaction():
                for _ in range(batch):
                    m["likes"] = m["likes"] + 1
    return run


def yc_map(batch, keys):
    import pycrdt

    def run():
        doc = pycrdt.Doc()
        m = doc.get("m", type=pycrdt.Map)
        i = 0
        for _ in range(N // batch):
            with doc.transaction():
                for _ in range(batch):
                    m[f"k{i % keys}"] = True if keys == N else i
                    i += 1
    return run


def yc_reads():
    import pycrdt
    doc = pycrdt.Doc()
    m = doc.get("m", type=pycrdt.Map)
    with doc.transaction():
        for i in range(1000):
            m[f"k{i}"] = i
    views = [[f"k{v * 100 + i}" for i in range(100)] for v in range(10)]
    t = time.perf_counter()
    total = 0
    for c in range(N // 100):
        total += sum(m[k] for k in views[c % 10])
    assert total == READ_SUM, total
    return time.perf_counter() - t


# ---------- loro ----------

def lo_counter(batch):
    import loro

    def run():
        doc = loro.LoroDoc()
        c = doc.get_counter("likes")
        for _ in range(N // batch):
            for _ in range(batch):
                c.increment(1)
            doc.commit()
    return run


def lo_map(batch, keys):
    import loro

    def run():
        doc = loro.LoroDoc()
        m = doc.get_map("m")
        i = 0
        for _ in range(N // batch):
            for _ in range(batch):
                m.insert(f"k{i % keys}", True if keys == N else i)
                i += 1
            doc.commit()
    return run


def lo_reads():
    import loro
    doc = loro.LoroDoc()
    m = doc.get_map("m")
    for i in range(1000):
        m.insert(f"k{i}", i)
    doc.commit()
    views = [[f"k{v * 100 + i}" for i in range(100)] for v in range(10)]
    t = time.perf_counter()
    total = 0
    for c in range(N // 100):
        total += sum(m.get(k).value for k in views[c % 10])
    assert total == READ_SUM, total
    return time.perf_counter() - t


def timed(fn):
    """A workload that times itself (its set-up is not counted)."""
    fn.timed = True
    return fn


def main():
    have = {}
    for name in ("pycrdt", "loro"):
        try:
            __import__(name)
            have[name] = True
        except ImportError:
            have[name] = False
            print(f"# {name} is not installed: pip install {name}", file=sys.stderr)
    rows = [
        ("100k counter increments, single-op txns", md_counter_single, yc_counter(1), lo_counter(1)),
        ("100k counter increments, 1,000-op batches", md_counter_batch, yc_counter(BATCH), lo_counter(BATCH)),
        ("100k set adds, single-op txns", md_set_single, yc_map(1, N), lo_map(1, N)),
        ("100k set adds, 1,000-op batches", md_set_batch, yc_map(BATCH, N), lo_map(BATCH, N)),
        ("100k register/map writes over 1k keys, single-op", md_register_single, yc_map(1, 1000), lo_map(1, 1000)),
        ("100k register/map writes over 1k keys, 1,000-op batches", md_register_batch, yc_map(BATCH, 1000), lo_map(BATCH, 1000)),
        ("100k register/map writes over 10k keys, single-op", md_register_single_10k, yc_map(1, 10_000), lo_map(1, 10_000)),
        ("100k register/map writes over 10k keys, 1,000-op batches", md_register_batch_10k, yc_map(BATCH, 10_000), lo_map(BATCH, 10_000)),
        ("100k register reads, 100 keys per call", timed(md_reads), timed(yc_reads), timed(lo_reads)),
        ("durable (SQLite, normal): 100k increments, 1,000-op batches", durable(md_counter_batch), None, None),
        ("durable (SQLite, normal): 100k set adds, 1,000-op batches", durable(md_set_batch), None, None),
        ("durable (SQLite, normal): 10k increments, single-op", durable(lambda r: [r.update_objects([(("c", "counter_pn", "b"), "increment", 1)]) for _ in range(10_000)]), None, None),
    ]
    print(f"Python {sys.version.split()[0]}, minidote {minidote.__name__}, best of 3, ops/s (ratio = minidote / peer)\n")
    print("| workload | minidote | pycrdt (Yrs) | ratio | loro | ratio |")
    print("|---|---|---|---|---|---|")
    for name, md, yc, lo in rows:
        n = 10_000 if "10k increments" in name else N
        t_md = best_of(md)
        cells = [f"{n / t_md:,.0f}"]
        for peer, fn in (("pycrdt", yc), ("loro", lo)):
            if fn is None or not have[peer]:
                cells += ["—", "—"]
                continue
            t = best_of(fn)
            cells += [f"{n / t:,.0f}", f"{t / t_md:.2f}×"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nStand-ins: pycrdt counter = Map entry read+incremented+written; sets = Map element→True (pycrdt, loro).")


if __name__ == "__main__":
    main()
