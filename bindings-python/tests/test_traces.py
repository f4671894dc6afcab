"""The real editing traces (``benchmarks/traces``, "editing-traces by Joseph
Gentle and contributors", CC BY 4.0) through the Python API: every
sequential trace, one transaction per trace transaction, ends at
``endContent``; the concurrent trace, one replica per agent forking and
merging as its ``parents`` say (frames carried by hand), ends at
``endContent`` on every replica. Positions are code points, as Python's."""
import gzip
import json
import os

import pytest

import minidote

TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "benchmarks", "traces")
K = ("doc", "text", "t")
SEQUENTIAL = [
    "automerge-paper",
    "seph-blog1",
    "rustcode",
    "sveltecomponent",
    "friendsforever_flat",
]


def load(name):
    with gzip.open(os.path.join(TRACES, name + ".json.gz"), "rt", encoding="utf-8") as f:
        return json.load(f)


def ops(patches):
    out = []
    for pos, dele, ins in patches:
        if dele:
            out.append((K, "delete", [pos, dele]))
        if ins:
            out.append((K, "insert", [pos, ins]))
    return out


@pytest.mark.parametrize("name", SEQUENTIAL)
def test_sequential_trace_replays_exactly(name):
    t = load(name)
    with minidote.Replica() as r:
        if t.get("startContent"):
            r.update_objects([(K, "insert", [0, t["startContent"]])])
        for txn in t["txns"]:
            u = ops(txn["patches"])
            if u:
                r.update_objects(u)
        assert r.read_objects([K])[0][0] == t["endContent"]
        with minidote.Replica() as fresh:
            for f in r.export_since():
                fresh.apply_update(f)
            assert fresh.read_objects([K])[0][0] == t["endContent"]


def test_concurrent_trace_converges_on_every_replica():
    t = load("friendsforever.concurrent")
    n = t["numAgents"]
    reps = [minidote.Replica() for _ in range(n)]
    try:
        frames = [[] for _ in range(n)]  # per agent, one frame per txn
        versions = []  # per trace txn: {agent: txns of that agent seen}
        have = [[0] * n for _ in range(n)]  # have[a][b]: b's txns at a
        for txn in t["txns"]:
            a = txn["agent"]
            want = [0] * n
            for p in txn["parents"]:
                want = [max(x, y) for x, y in zip(want, versions[p])]
            for b in range(n):
                if b != a:
                    for f in frames[b][have[a][b] : want[b]]:
                        reps[a].apply_update(f)
                    have[a][b] = max(have[a][b], want[b])
            _, before = reps[a].read_objects([])
            u = ops(txn["patches"])
            reps[a].update_objects(u)
            (f,) = reps[a].export_since(before)
            frames[a].append(f)
            have[a][a] += 1
            v = list(have[a])
            versions.append(v)
        for a in range(n):
            for b in range(n):
                if a != b:
                    for f in frames[b][have[a][b] :]:
                        reps[a].apply_update(f)
        for r in reps:
            assert r.read_objects([K])[0][0] == t["endContent"]
            assert r.stats()["buffered"] == 0
    finally:
        for r in reps:
            r.close()
