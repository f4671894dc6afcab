"""The public API: values, clocks, errors, transactions, sessions."""
import threading
import time

import pytest

import minidote
from conftest import link, wait_until

C = ("likes", "counter_pn", "demo")
S = ("list", "set_aw", "demo")


def test_exceptions_subclass_the_builtins_that_fit():
    assert issubclass(minidote.InvalidOperation, minidote.MinidoteError)
    assert issubclass(minidote.InvalidOperation, ValueError)
    assert issubclass(minidote.ClockTimeout, TimeoutError)
    assert issubclass(minidote.StorageError, OSError)
    assert issubclass(minidote.ProtocolError, minidote.MinidoteError)


def test_ids_are_sixteen_hex_digits(mem):
    r = mem(room="r1")
    assert len(r.id) == 16 and int(r.id, 16) >= 0
    assert r.room == "r1"


def test_values_round_trip_through_a_set(mem):
    r = mem()
    k = ("v", "set_go", "b")
    values = [None, True, False, -5, 2**63 - 1, -(2**63), 1.5, "é", b"\x00\xff", [1, [2, "x"]], {"a": 1, "b": [None]}]
    r.update_objects([(k, "add_all", values)])
    (got,), _ = r.read_objects([k])
    # Sorted by the documented total order: kind rank, then value.
    assert got == [None, False, True, -(2**63), -5, 2**63 - 1, 1.5, "é", b"\x00\xff", [1, [2, "x"]], {"a": 1, "b": [None]}]
    r.update_objects([(("t", "register_lww", "b"), "assign", (1, 2))])
    assert r.read_objects([("t", "register_lww", "b")])[0] == [[1, 2]]


def test_bool_is_not_an_int_and_ints_beyond_64_bits_are_refused(mem):
    r = mem()
    k = ("v", "set_go", "b")
    r.update_objects([(k, "add", True), (k, "add", 1)])
    assert r.read_objects([k])[0] == [[True, 1]]
    with pytest.raises(minidote.InvalidOperation, match="64-bit"):
        r.update_objects([(k, "add", 2**63)])
    with pytest.raises(minidote.InvalidOperation, match="str"):
        r.update_objects([(k, "add", {1: 2})])
    with pytest.raises(minidote.InvalidOperation):
        r.update_objects([(k, "add", object())])


def test_an_invalid_batch_raises_and_changes_nothing(mem):
    r = mem()
    r.update_objects([(C, "increment", 1)])
    before = r.read_objects([C, S])
    bad_batches = [
        [(C, "increment", 5), (S, "frobnicate", 1)],
        [(C, "increment", 5), (("x", "no_such_type", "b"), "add", 1)],
        [(C, "increment", 5), (C, "increment", 1.5)],
        [(C, "increment", 5), (S, "add")],
        [(C, "increment", 5), (("x", "flag_ew", "b"), "enable", 3)],
        [(C, "increment", 5), ("not a tuple",)],
        [(C, "increment", 5), (S, "add", 2**64)],
    ]
    for batch in bad_batches:
        with pytest.raises(minidote.InvalidOperation):
            r.update_objects(batch)
        assert r.read_objects([C, S]) == before
    assert r.stats()["txns_local"] == 1


def test_a_batch_is_one_atomic_transaction_over_several_keys(mem):
    a, b = mem(), mem()
    link(a, b)
    clock = a.update_objects([(C, "increment", 3), (S, "add", "milk"), (("f", "flag_ew", "demo"), "enable")])
    assert clock.to_dict() == {a.id: 1}
    values, _ = b.read_objects([C, S, ("f", "flag_ew", "demo")], clock)
    assert values == [3, ["milk"], True]


def test_updates_to_one_key_apply_left_to_right(mem):
    r = mem()
    r.update_objects([(S, "add", "x"), (S, "remove", "x"), (S, "add", "y"), (C, "increment"), (C, "decrement", 3)])
    assert r.read_objects([S, C])[0] == [["y"], -2]


def test_read_with_no_keys_returns_the_clock(mem):
    r = mem()
    c = r.update_objects([(C, "increment", 1)])
    assert r.read_objects([]) == ([], c)


def test_clocks_compare_merge_and_travel_as_bytes(mem):
    a, b = mem(), mem()
    ca = a.update_objects([(C, "increment", 1)])
    cb = b.update_objects([(C, "increment", 1)])
    assert ca.concurrent(cb) and not ca <= cb
    m = ca.merge(cb)
    assert ca <= m and cb <= m and ca < m and m >= cb
    assert minidote.Clock.from_bytes(m.to_bytes()) == m
    assert m.to_dict() == {a.id: 1, b.id: 1}
    assert hash(minidote.Clock.from_bytes(m.to_bytes())) == hash(m)
    with pytest.raises(minidote.InvalidOperation):
        minidote.Clock.from_bytes(b"\x07garbage")


def test_a_read_with_an_unseen_clock_waits_for_delivery(mem):
    a, b = mem(), mem()
    addr = link(a, b)
    b.disconnect(addr)
    clock = a.update_objects([(C, "increment", 7)])
    with pytest.raises(minidote.ClockTimeout):
        b.read_objects([C], clock, timeout=0.3)
    result = {}

    def reader():
        result["r"] = b.read_objects([C], clock, timeout=10)

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    assert t.is_alive(), "the read must wait for a's transaction"
    b.connect(addr)
    t.join(10)
    values, seen = result["r"]
    assert values == [7] and clock <= seen


def test_an_update_with_an_unseen_clock_times_out_and_applies_nothing(mem):
    a, b = mem(), mem()
    clock = a.update_objects([(S, "add", "x")])
    with pytest.raises(minidote.ClockTimeout):
        b.update_objects([(S, "remove", "x")], clock, timeout=0.2)
    assert b.stats()["txns_local"] == 0 and b.stats()["pending_requests"] == 0


def test_waiting_releases_the_gil(mem):
    a, b = mem(), mem()
    clock = a.update_objects([(C, "increment", 1)])
    ticks = []
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=spin)
    t.start()
    with pytest.raises(minidote.ClockTimeout):
        b.read_objects([C], clock, timeout=0.5)
    stop.set()
    t.join()
    assert len(ticks) > 50, "another Python thread ran while we waited"


def test_context_manager_closes(mem):
    with minidote.Replica() as r:
        r.update_objects([(C, "increment", 1)])
    assert r.closed
    with pytest.raises(minidote.MinidoteError):
        r.read_objects([C])
    r.close()  # idempotent


def test_stats_report_the_documented_fields(mem):
    a, b = mem(), mem()
    link(a, b)
    c = a.update_objects([(C, "increment", 1)])
    b.read_objects([C], c)
    s = b.stats()
    for field in ("id", "clock", "buffered", "pending_requests", "txns_local", "txns_remote",
                  "bytes_sent", "bytes_received", "log_records", "snapshots", "recovery_ms",
                  "recovery_records", "peers"):
        assert field in s, field
    assert s["txns_remote"] == 1 and s["bytes_received"] > 0
    wait_until(lambda: b.stats()["peers"] and b.stats()["peers"][0]["id"] == a.id)
    assert isinstance(s["clock"], minidote.Clock)


def test_bad_durability_is_a_value_error():
    with pytest.raises(ValueError):
        minidote.Replica(durability="sometimes")


# Keys are cached by content (a dict of exact tuples of exact str), update
# tuples repeated in a batch are converted once, and a memory transaction
# runs with the GIL held when the lock is free.

class Sneaky(str):
    """A str that claims to equal everything: must never hit the cache."""

    def __eq__(self, other):
        return True

    def __hash__(self):
        return hash("a")


def test_the_key_cache_never_confuses_two_keys():
    r = minidote.Replica()
    a = ("a", "counter_pn", "b")
    r.update_objects([(a, "increment", 1)])
    # Equal content, another tuple: the same object.
    r.update_objects([(("a", "counter_pn", "b"), "increment", 2)])
    # A str subclass that says it equals "a" is still its own key.
    r.update_objects([((Sneaky("z"), "counter_pn", "b"), "increment", 10)])

    class T(tuple):
        def __eq__(self, other):
            return True

        def __hash__(self):
            return hash(a)

    r.update_objects([(T(("y", "counter_pn", "b")), "increment", 100)])
    values, _ = r.read_objects([a, ("z", "counter_pn", "b"), ("y", "counter_pn", "b")])
    assert values == [3, 10, 100]
    # Many keys, past the cache's bound (16,384 entries): all still right.
    keys = [(f"k{i}", "counter_pn", "b") for i in range(20_000)]
    r.update_objects([(k, "increment", i) for i, k in enumerate(keys)])
    r.update_objects([((f"k{i}", "counter_pn", "b"), "increment", 1) for i in range(20_000)])
    values, _ = r.read_objects(keys)
    assert values == [i + 1 for i in range(20_000)]
    # A bad key is refused every time, cached or not.
    for _ in range(2):
        with pytest.raises(minidote.InvalidOperation):
            r.update_objects([(("x", "no_such_type", "b"), "increment", 1)])
    r.close()


def test_a_repeated_update_tuple_and_the_fast_path():
    r = minidote.Replica()
    c = ("c", "counter_pn", "b")
    r.update_objects([(c, "increment", 2)] * 1000)
    # A list is not an immutable update: each one is read as it is.
    u = [c, "increment", 1]
    ups = [u, u]
    assert r.read_objects([c])[0] == [2000]
    with pytest.raises(minidote.InvalidOperation):
        r.update_objects(ups)
    # Many single-op calls, each returning its clock.
    last = None
    for _ in range(1000):
        last = r.update_objects([(c, "increment", 1)])
    assert last.to_dict() == {r.id: 1001}
    r.close()
    with pytest.raises(minidote.MinidoteError):
        r.update_objects([(c, "increment", 1)])
