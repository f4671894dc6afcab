"""Lists and text (``list``, ``text``) through the Python API: ops and
their errors (nothing applied), concurrent typing on three replicas synced
by hand through ``export_since``/``apply_update`` (no interleaving, forward
and backward), deltas in ``subscribe``, cursors."""
import threading

import pytest

import minidote
from conftest import wait_until

T = ("doc", "text", "b")
L = ("items", "list", "b")


def value(r, k):
    return r.read_objects([k])[0][0]


def sync(a, b):
    """Delivers to ``b`` everything ``a`` has that ``b`` lacks."""
    _, clock = b.read_objects([])
    for f in a.export_since(clock):
        b.apply_update(f)


def test_list_ops(mem):
    r = mem()
    r.update_objects([(L, "insert", [0, "b"]), (L, "insert", [0, "a"])])
    r.update_objects([(L, "insert_all", [2, [1, {"x": 2}, [3]]])])
    assert value(r, L) == ["a", "b", 1, {"x": 2}, [3]]
    r.update_objects([(L, "delete", [1, 3])])
    assert value(r, L) == ["a", [3]]


def test_text_ops_count_code_points(mem):
    r = mem()
    r.update_objects([(T, "insert", [0, "héllo 😀"])])
    assert len(value(r, T)) == 7
    r.update_objects([(T, "insert", [7, "!"]), (T, "splice", [0, 1, "H"])])
    r.update_objects([(T, "delete", [6, 1])])
    assert value(r, T) == "Héllo !"


@pytest.mark.parametrize(
    "update",
    [
        (T, "insert", [5, "x"]),
        (T, "insert", [-1, "x"]),
        (T, "insert", [0, 5]),
        (T, "insert", ["0", "x"]),
        (T, "insert", "x"),
        (T, "insert"),
        (T, "delete", [2, 3]),
        (T, "splice", [0, 1]),
        (T, "insert_all", [0, ["x"]]),
        (L, "insert", [2, 1]),
        (L, "delete", [0, 2]),
        (L, "insert_all", [0, 1]),
        (L, "splice", [0, 0, "x"]),
    ],
)
def test_bad_indexes_and_arguments_raise_and_apply_nothing(mem, update):
    r = mem()
    r.update_objects([(T, "insert", [0, "abcd"]), (L, "insert", [0, 1])])
    c = ("c", "counter_pn", "b")
    before = r.read_objects([T, L, c])
    with pytest.raises(minidote.InvalidOperation):
        # With a valid update first: the batch is refused whole.
        r.update_objects([(c, "increment", 1), update])
    assert r.read_objects([T, L, c]) == before


def test_three_replicas_typing_at_one_place_never_interleave(mem):
    rs = [mem() for _ in range(3)]
    rs[0].update_objects([(T, "insert", [0, "<>"])])
    for r in rs[1:]:
        sync(rs[0], r)
    words = ["alpha", "bravo", "charlie"]
    for i, w in enumerate(words):
        for n, c in enumerate(w):
            if i == 1:  # backward: every character at index 1
                rs[i].update_objects([(T, "insert", [1, w[len(w) - 1 - n]])])
            else:
                rs[i].update_objects([(T, "insert", [1 + n, c])])
    for a in rs:
        for b in rs:
            if a is not b:
                sync(a, b)
    got = {value(r, T) for r in rs}
    assert len(got) == 1
    inner = got.pop()[1:-1]
    for w in words:
        assert w in inner
    assert len(inner) == sum(map(len, words))


def test_subscribers_get_keys_and_deltas(mem):
    a, b = mem(), mem()
    seen = []
    done = threading.Event()

    def on_change(keys, deltas):
        seen.append((keys, deltas))
        if T in deltas and any("delete" in d for d in deltas[T]):
            done.set()

    unsubscribe = b.subscribe(on_change)
    a.update_objects([(T, "insert", [0, "a😀c"]), (L, "insert", [0, 1])])
    sync(a, b)
    a.update_objects([(T, "splice", [2, 1, "d"])])
    sync(a, b)
    assert done.wait(10)
    keys, deltas = seen[0]
    assert set(keys) == {T, L}
    assert deltas[T] == [{"insert": "a😀c"}]
    assert deltas[L] == [{"insert": [1]}]
    assert seen[-1][1][T] == [{"retain": 2}, {"delete": 1}, {"insert": "d"}]
    # Local changes too; after unsubscribing, nothing.
    b.update_objects([(T, "insert", [0, "x"])])
    wait_until(lambda: seen[-1][1].get(T) == [{"insert": "x"}], what="local delta")
    unsubscribe()
    n = len(seen)
    b.update_objects([(T, "insert", [0, "y"])])
    b.read_objects([T])
    assert len(seen) == n
    with pytest.raises(minidote.InvalidOperation):
        b.subscribe(42)


def test_cursors_stay_with_their_element(mem):
    a, b = mem(), mem()
    a.update_objects([(T, "insert", [0, "hello world"])])
    sync(a, b)
    c = a.cursor(T, 6)
    end = a.cursor(T, 11)
    assert isinstance(c, bytes)
    b.update_objects([(T, "insert", [0, "😀 "])])
    a.update_objects([(T, "delete", [0, 6])])
    sync(b, a)
    sync(a, b)
    assert value(a, T) == "😀 world"
    for r in (a, b):
        assert r.resolve(c) == 2
        assert r.resolve(end) == 7
    with pytest.raises(minidote.InvalidOperation):
        a.cursor(T, 99)
    with pytest.raises(minidote.InvalidOperation):
        a.resolve(b"garbage")
    with pytest.raises(minidote.InvalidOperation):
        mem().resolve(c)  # a replica that has not seen the element


def test_apply_update_refuses_garbage_and_is_idempotent(mem):
    a, b = mem(), mem()
    a.update_objects([(T, "insert", [0, "abc"])])
    frames = a.export_since()
    for f in frames + frames:
        st = b.apply_update(f)
        assert set(st) == {"applied", "pending", "missing"}
    assert value(b, T) == "abc"
    for bad in [b"", b"\x00\x01", frames[0][:-1], b"\xff" * 40]:
        with pytest.raises(minidote.ProtocolError):
            b.apply_update(bad)
    assert value(b, T) == "abc"
