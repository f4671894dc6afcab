"""What the demo's progress bar and inspector read from Python:
``on_progress`` during a catch-up through a real relay, ``keep_history`` /
``inspect`` and ``seq_stats``."""

import threading

import pytest

import minidote
from conftest import wait_until
from test_relay import mint, relay  # noqa: F401  (the fixture)

K = ("n", "counter_pn", "t")
T = ("doc", "text", "t")


def test_a_catch_up_through_the_relay_reports_progress_to_the_end(relay, mem):  # noqa: F811
    writer = mem(room="big")
    writer.connect(relay["tcp"], mint("big", "write"))
    # Linked first: a memory replica keeps 10,000 records of log, and the
    # relay takes no snapshot from a writer.
    assert writer.catch_up(10.0)
    for _ in range(20):
        for _ in range(1000):
            writer.update_objects([(K, "increment", 1)])
        # Paced: a debug relay reads slower than a loop writes.
        assert writer.flush(30.0)

    seen, done, thread = [], threading.Event(), []

    def on_progress(p):
        thread.append(threading.current_thread() is threading.main_thread())
        seen.append(p)
        if p["done"]:
            done.set()

    reader = mem(room="big")
    stop = reader.on_progress(on_progress)
    reader.connect(relay["tcp"], mint("big", "write"))
    assert done.wait(30), seen[-3:]
    assert reader.read_objects([K])[0] == [20_000]
    last = seen[-1]
    assert last == {"received": 20_000, "expected": 20_000, "bytes": last["bytes"], "done": True}
    assert last["bytes"] > 20_000 * 3
    assert all(p["expected"] == 20_000 for p in seen)
    assert [p["received"] for p in seen] == sorted(p["received"] for p in seen)
    assert not any(thread), "called off the caller's thread"
    stop()
    stop()  # idempotent


def test_no_catch_up_no_progress_and_a_bad_callback_is_refused(relay, mem):  # noqa: F811
    r = mem(room="quiet")
    seen = []
    r.on_progress(seen.append)
    r.connect(relay["tcp"], mint("quiet", "write"))
    wait_until(lambda: r.stats()["peers"] and r.stats()["peers"][0]["connected"], what="link up")
    r.update_objects([(K, "increment", 1)])
    assert r.flush(10.0)
    assert seen == [], "an empty room has nothing to catch up"
    with pytest.raises(minidote.InvalidOperation):
        r.on_progress(42)


def test_inspect_shows_the_last_transactions_with_deps_and_keys(mem):
    a, b = mem(), mem()
    assert b.inspect() == {"history": [], "buffered": []}
    b.keep_history(3)
    a.update_objects([(K, "increment", 1)])
    a.update_objects([(K, "increment", 1)])
    for f in a.export_since():
        b.apply_update(f)
    b.update_objects([(K, "increment", 5), (T, "insert", [0, "hi"])])
    got = b.inspect()
    assert [(t["origin"], t["seq"], t["local"]) for t in got["history"]] == [
        (a.id, 1, False), (a.id, 2, False), (b.id, 1, True)]
    assert got["history"][2]["keys"] == [K, T]
    assert got["history"][2]["deps"].to_dict() == {a.id: 2}
    assert got["buffered"] == []
    for _ in range(3):
        b.update_objects([(K, "increment", 1)])
    assert [t["seq"] for t in b.inspect()["history"]] == [2, 3, 4], "bounded, oldest first"
    b.keep_history(0)
    assert b.inspect()["history"] == []


def test_inspect_lists_a_held_transaction_with_what_it_waits_for(mem):
    a, held = mem(), mem()
    after_first = a.update_objects([(K, "increment", 1)])
    a.update_objects([(K, "increment", 1)])
    tail = a.export_since(after_first)
    assert len(tail) == 1
    st = held.apply_update(tail[0])
    assert (st["applied"], st["pending"]) == (0, 1)
    (w,) = held.inspect()["buffered"]
    assert (w["origin"], w["seq"], w["waits_for"].to_dict()) == (a.id, 2, {a.id: 1})
    assert held.inspect(buffered=0)["buffered"] == []


def test_seq_stats_count_tombstones(mem):
    r = mem()
    assert r.seq_stats(T) == {"runs": 0, "elements": 0, "visible": 0, "tombstones": 0}
    r.update_objects([(T, "insert", [0, "hello"])])
    r.update_objects([(T, "delete", [1, 2])])
    st = r.seq_stats(T)
    assert (st["elements"], st["visible"], st["tombstones"]) == (5, 3, 2)
    with pytest.raises(minidote.InvalidOperation):
        r.seq_stats(K)


def test_catch_up_waits_for_what_the_relay_had_at_the_handshake(relay, mem):  # noqa: F811
    chat = ("chat", "list", "t")
    writer = mem(room="append")
    writer.connect(relay["tcp"], mint("append", "write"))
    assert writer.catch_up(10.0)
    for i in range(3000):
        writer.update_objects([(chat, "insert", [i, f"m{i}"])])
        if i % 1000 == 999:
            assert writer.flush(30.0)
    joiner = mem(room="append")
    assert joiner.catch_up(0.2) is False, "no link yet"
    joiner.connect(relay["tcp"], mint("append", "write"))
    assert joiner.catch_up(30.0) is True
    (msgs,), _ = joiner.read_objects([chat])
    assert len(msgs) == 3000, "the whole room is here once it returns"
    joiner.update_objects([(chat, "insert", [len(msgs), "last"])])
    assert joiner.flush(10.0)
    writer.read_objects([chat], joiner.read_objects([])[1])
    assert writer.read_objects([chat])[0][0][-1] == "last"
