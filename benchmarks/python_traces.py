"""Text on the automerge-paper trace through the Python API: minidote beside
pycrdt (Yrs) and loro, in one run ("editing-traces by Joseph Gentle and
contributors", CC BY 4.0).

    make bench-python        # installs the peers into .venv, then runs this

Each edit is one transaction (one ``update_objects`` call, one pycrdt
transaction, one loro commit). "Remote apply" is a fresh document taking the
whole history (minidote: the frames of ``export_since()``; pycrdt:
``get_update()``; loro: ``export`` of all updates). Best of 3.
"""
import gzip
import json
import os
import time

import minidote

HERE = os.path.dirname(os.path.abspath(__file__))
K = ("doc", "text", "b")


def load():
    with gzip.open(os.path.join(HERE, "traces", "automerge-paper.json.gz"), "rt", encoding="utf-8") as f:
        t = json.load(f)
    return [p for txn in t["txns"] for p in txn["patches"]], t["endContent"]


def best(fn, runs=3):
    top = float("inf")
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        top = min(top, time.perf_counter() - t)
    return top * 1e3, out


def minidote_replay(patches):
    r = minidote.Replica()
    up = r.update_objects
    for pos, dele, ins in patches:
        if dele and ins:
            up([(K, "splice", [pos, dele, ins])])
        elif dele:
            up([(K, "delete", [pos, dele])])
        else:
            up([(K, "insert", [pos, ins])])
    return r


def minidote_remote(frames):
    r = minidote.Replica()
    for f in frames:
        r.apply_update(f)
    return r


def md_text(r):
    return r.read_objects([K])[0][0]


def pycrdt_replay(patches):
    import pycrdt

    d = pycrdt.Doc()
    t = d.get("t", type=pycrdt.Text)
    for pos, dele, ins in patches:
        with d.transaction():
            if dele:
                del t[pos : pos + dele]
            if ins:
                t.insert(pos, ins)
    return d


def pycrdt_remote(update):
    import pycrdt

    d = pycrdt.Doc()
    d.get("t", type=pycrdt.Text)
    d.apply_update(update)
    return d


def loro_replay(patches):
    import loro

    d = loro.LoroDoc()
    t = d.get_text("t")
    for pos, dele, ins in patches:
        if dele:
            t.delete(pos, dele)
        if ins:
            t.insert(pos, ins)
        d.commit()
    return d


def loro_remote(update):
    import loro

    d = loro.LoroDoc()
    d.import_(update)
    return d


def main():
    import loro
    import pycrdt

    patches, end = load()
    rows = []
    ms, r = best(lambda: minidote_replay(patches))
    assert md_text(r) == end
    frames = r.export_since()
    rms, r2 = best(lambda: minidote_remote(frames))
    assert md_text(r2) == end
    rows.append(("minidote", ms, rms, sum(len(f) for f in frames)))

    ms, d = best(lambda: pycrdt_replay(patches))
    assert str(d.get("t", type=pycrdt.Text)) == end
    u = d.get_update()
    rms, d2 = best(lambda: pycrdt_remote(u))
    assert str(d2.get("t", type=pycrdt.Text)) == end
    rows.append(("pycrdt", ms, rms, len(u)))

    ms, d = best(lambda: loro_replay(patches))
    assert d.get_text("t").to_string() == end
    u = d.export(loro.ExportMode.Updates(loro.VersionVector()))
    rms, d2 = best(lambda: loro_remote(u))
    assert d2.get_text("t").to_string() == end
    rows.append(("loro", ms, rms, len(u)))

    m = rows[0]
    print(f"automerge-paper, {len(patches):,} edits, one transaction each; best of 3; ratio = peer / minidote (above 1: minidote faster or smaller)\n")
    print("| library | local replay ms | ratio | remote apply ms | ratio | history bytes | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, ms, rms, size in rows:
        if name == "minidote":
            print(f"| {name} | {ms:.0f} | | {rms:.0f} | | {size:,} | |")
        else:
            print(f"| {name} | {ms:.0f} | {ms / m[1]:.2f}× | {rms:.0f} | {rms / m[2]:.2f}× | {size:,} | {size / m[3]:.2f}× |")


if __name__ == "__main__":
    main()
