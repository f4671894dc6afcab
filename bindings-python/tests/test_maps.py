"""Maps (``map_rr``, ``map_go``) through the Python API: remove-resets
against a concurrent update for every embedded type, two-deep nesting,
atomic batches over several maps, values and typed errors. Concurrency as in
``test_types.py``: cut the link, update both sides, reconnect."""
import pytest

import minidote
from conftest import converged, link, wait_until
from test_types import concurrently, sync, values

# Per embedded type: the op the base state holds, and the op that races a
# remove of the field; then what the field reads afterwards.
RACES = {
    "counter_pn": (("increment", 7), ("increment", 5), 5),
    "counter_pn_sb": (("increment", 7), ("increment", 5), 5),
    "set_aw": (("add", "old"), ("add", "new"), ["new"]),
    "set_rw": (("add", "old"), ("add", "new"), ["new"]),
    "set_go": (("add", "old"), ("add", "new"), ["new"]),
    "set_2p": (("add", "old"), ("add", "new"), ["new"]),
    "register_mv": (("assign", "old"), ("assign", "new"), ["new"]),
    "register_lww": (("assign", "old"), ("assign", "new"), "new"),
    "flag_ew": (("enable",), ("enable",), True),
    "flag_dw": (("enable",), ("disable",), False),
    "map_rr": (
        ("update", [["x", "counter_pn"], "increment", 7]),
        ("update", [["y", "set_aw"], "add", "new"]),
        {"y": ["new"]},
    ),
    "map_go": (
        ("update", [["x", "counter_pn"], "increment", 7]),
        ("update", [["y", "set_aw"], "add", "new"]),
        {"y": ["new"]},
    ),
}


@pytest.fixture
def pair(mem):
    a, b = mem(), mem()
    addr = link(a, b)
    return a, b, addr


def up(key, field, op):
    return (key, "update", [list(field), *op])


@pytest.mark.parametrize("ty", sorted(RACES))
def test_a_remove_concurrent_with_an_update_keeps_only_the_update(pair, ty):
    a, b, _ = pair
    base, racing, want = RACES[ty]
    doc = ("doc-" + ty, "map_rr", "t")
    field = ("f", ty)
    a.update_objects([up(doc, field, base)])
    sync(pair)
    concurrently(pair, [(doc, "remove", list(field))], [up(doc, field, racing)])
    assert values(pair, doc) == {"f": want}


def test_reset_keeps_only_concurrent_updates(pair):
    a, b, _ = pair
    doc = ("profile", "map_rr", "t")
    a.update_objects(
        [
            up(doc, ("visits", "counter_pn"), ("increment", 7)),
            up(doc, ("name", "register_lww"), ("assign", "ann")),
            up(doc, ("tags", "set_aw"), ("add", "old")),
        ]
    )
    sync(pair)
    assert values(pair, doc) == {"visits": 7, "name": "ann", "tags": ["old"]}
    concurrently(
        pair,
        [(doc, "reset")],
        [up(doc, ("visits", "counter_pn"), ("increment", 2)), up(doc, ("name", "register_lww"), ("assign", "bo"))],
    )
    assert values(pair, doc) == {"visits": 2, "name": "bo"}


def test_two_deep_nesting_with_a_remove_racing_a_nested_update(pair):
    a, b, _ = pair
    doc = ("doc", "map_rr", "t")
    # API.md's own example, two deep.
    a.update_objects(
        [
            (doc, "update", [["meta", "map_rr"], "update", [["tags", "set_aw"], "add", "x"]]),
            (doc, "update", [["meta", "map_rr"], "update", [["views", "counter_pn"], "increment", 3]]),
            (doc, "update", [["done", "flag_ew"], "enable"]),
        ]
    )
    sync(pair)
    assert values(pair, doc) == {"done": True, "meta": {"tags": ["x"], "views": 3}}
    concurrently(
        pair,
        [(doc, "remove", ["meta", "map_rr"])],
        [(doc, "update", [["meta", "map_rr"], "update", [["tags", "set_aw"], "add", "y"]])],
    )
    assert values(pair, doc) == {"done": True, "meta": {"tags": ["y"]}}


def test_one_batch_over_several_maps_is_atomic(mem):
    a = mem()
    m1, m2 = ("m1", "map_rr", "t"), ("m2", "map_go", "t")
    c1 = a.update_objects(
        [up(m1, ("x", "set_aw"), ("add", 1)), up(m2, ("y", "flag_ew"), ("enable",))]
    )
    assert len(c1) == 1 and list(c1.to_dict().values()) == [1], "one transaction, one dot"
    a.update_objects([up(m1, ("n", "counter_pn_sb"), ("increment", 2**62))])
    with pytest.raises(minidote.InvalidOperation):
        a.update_objects(
            [
                up(m2, ("z", "set_aw"), ("add", 2)),
                up(m1, ("n", "counter_pn_sb"), ("increment", 2**62)),
            ]
        )
    vals, _ = a.read_objects([m1, m2])
    assert vals == [{"x": [1], "n": 2**62}, {"y": True}], "nothing of the refused batch"


def test_a_name_with_two_types_reads_the_first_type_and_both_stay_addressable(mem):
    a = mem()
    m = ("m", "map_rr", "t")
    a.update_objects([up(m, ("x", "flag_ew"), ("enable",)), up(m, ("x", "counter_pn"), ("increment", 2))])
    assert a.read_objects([m])[0] == [{"x": 2}]
    a.update_objects([(m, "remove", ["x", "counter_pn"])])
    assert a.read_objects([m])[0] == [{"x": True}]


def test_bad_map_ops_raise_invalid_operation_and_change_nothing(mem):
    a = mem()
    m, g = ("m", "map_rr", "t"), ("g", "map_go", "t")
    a.update_objects([up(m, ("x", "counter_pn"), ("increment",))])
    before = a.read_objects([m, g])[0]
    bad = [
        (m, "update", [["x", "sett"], "add", 1]),  # unknown field type
        (m, "update", ["x", "add"]),  # field not [name, type]
        (m, "update", [["x", "counter_pn"], "add", 1]),  # not an op of the field
        (m, "remove", "x"),
        (g, "remove", ["x", "counter_pn"]),  # map_go has no remove
        (g, "reset"),
        (m, "update"),
    ]
    for u in bad:
        with pytest.raises(minidote.InvalidOperation):
            a.update_objects([up(m, ("y", "set_aw"), ("add", 1)), u])
    assert a.read_objects([m, g])[0] == before


def test_map_values_survive_a_restart(disk):
    a = disk()
    doc = ("doc", "map_rr", "t")
    a.update_objects([(doc, "update", [["meta", "map_go"], "update", [["n", "counter_pn"], "increment", 4]])])
    a.close()
    b = disk()
    assert b.read_objects([doc])[0] == [{"meta": {"n": 4}}]
