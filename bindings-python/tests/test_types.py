"""Every type's semantics through the Python API. Concurrent updates are made
by cutting the link (disconnect), updating both sides, and reconnecting."""
import pytest

from conftest import converged, link, wait_until


@pytest.fixture
def pair(mem):
    a, b = mem(), mem()
    addr = link(a, b)
    return a, b, addr


def concurrently(pair, ops_a, ops_b):
    """Runs ops_a at a and ops_b at b while partitioned, then heals."""
    a, b, addr = pair
    b.disconnect(addr)
    wait_until(lambda: not any(p["connected"] for p in a.peers()), what="a sees the cut")
    a.update_objects(ops_a)
    b.update_objects(ops_b)
    b.connect(addr)
    wait_until(lambda: converged(a, b), what="convergence")


def values(pair, key):
    a, b, _ = pair
    va = a.read_objects([key])[0][0]
    vb = b.read_objects([key])[0][0]
    assert va == vb
    return va


def sync(pair):
    a, b, _ = pair
    wait_until(lambda: converged(a, b), what="convergence")


def test_counter_pn(pair):
    k = ("c", "counter_pn", "t")
    concurrently(pair, [(k, "increment", 5)], [(k, "decrement", 2), (k, "increment", -1)])
    assert values(pair, k) == 2


def test_counter_pn_sb(pair):
    k = ("c", "counter_pn_sb", "t")
    concurrently(pair, [(k, "increment", 5)], [(k, "decrement")])
    assert values(pair, k) == 4


def test_set_aw_concurrent_add_and_remove_keeps_the_element(pair):
    a, b, _ = pair
    k = ("s", "set_aw", "t")
    a.update_objects([(k, "add_all", ["x", "y"])])
    sync(pair)
    concurrently(pair, [(k, "remove", "x")], [(k, "add", "x")])
    assert values(pair, k) == ["x", "y"]
    concurrently(pair, [(k, "reset")], [(k, "add", "z")])
    assert values(pair, k) == ["z"]


def test_set_rw_concurrent_add_and_remove_drops_the_element(pair):
    a, b, _ = pair
    k = ("s", "set_rw", "t")
    a.update_objects([(k, "add_all", ["x", "y"])])
    sync(pair)
    concurrently(pair, [(k, "remove", "x")], [(k, "add", "x")])
    assert values(pair, k) == ["y"]
    concurrently(pair, [(k, "reset")], [(k, "add", "z")])
    assert values(pair, k) == ["z"]


def test_set_go_grows(pair):
    k = ("s", "set_go", "t")
    concurrently(pair, [(k, "add", 2)], [(k, "add_all", [1, 2])])
    assert values(pair, k) == [1, 2]


def test_set_2p_removal_is_permanent(pair):
    a, b, _ = pair
    k = ("bans", "set_2p", "t")
    concurrently(pair, [(k, "add", "eve"), (k, "add", "bob")], [(k, "remove", "eve")])
    assert values(pair, k) == ["bob"]
    a.update_objects([(k, "add", "eve")])
    sync(pair)
    assert values(pair, k) == ["bob"]


def test_register_mv_keeps_concurrent_values_until_one_assign_sees_both(pair):
    a, b, _ = pair
    k = ("title", "register_mv", "t")
    concurrently(pair, [(k, "assign", "a")], [(k, "assign", "b")])
    assert values(pair, k) == ["a", "b"]
    a.update_objects([(k, "assign", "c")])
    sync(pair)
    assert values(pair, k) == ["c"]


def test_register_lww_picks_one_winner_everywhere(pair):
    a, b, _ = pair
    k = ("r", "register_lww", "t")
    assert a.read_objects([k])[0] == [None]
    concurrently(pair, [(k, "assign", "from-a")], [(k, "assign", "from-b")])
    winner = values(pair, k)
    assert winner in ("from-a", "from-b")
    b.update_objects([(k, "assign", "later")])
    sync(pair)
    assert values(pair, k) == "later"


def test_flag_ew_enable_wins(pair):
    a, b, _ = pair
    k = ("f", "flag_ew", "t")
    a.update_objects([(k, "enable")])
    sync(pair)
    concurrently(pair, [(k, "disable")], [(k, "enable")])
    assert values(pair, k) is True


def test_flag_dw_disable_wins(pair):
    a, b, _ = pair
    k = ("f", "flag_dw", "t")
    a.update_objects([(k, "enable")])
    sync(pair)
    concurrently(pair, [(k, "disable")], [(k, "enable")])
    assert values(pair, k) is False


def test_a_chain_forwards_and_converges(mem):
    a, b, c = mem(), mem(), mem()
    link(a, b)
    link(b, c)
    k = ("s", "set_aw", "t")
    a.update_objects([(k, "add", "from-a")])
    c.update_objects([(k, "add", "from-c")])
    wait_until(lambda: converged(a, b, c), what="chain convergence")
    assert a.read_objects([k])[0] == c.read_objects([k])[0] == [["from-a", "from-c"]]
