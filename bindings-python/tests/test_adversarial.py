"""Hostile and misconfigured peers against Python listeners and a relay
(SECURITY.md). Tokens here are minted with PyJWT, as an app's own server
would mint them: standard HS256 JWTs with room, scope, replica and exp."""

import time

import jwt
import pytest

import minidote
from conftest import wait_until
from test_relay import RELAY, SECRET, relay  # noqa: F401  (the relay fixture)

K = ("likes", "counter_pn", "b")


def token(scope, room="default", replica=None, ttl=60, secret=SECRET):
    claims = {"room": room, "scope": scope, "exp": int(time.time()) + ttl}
    if replica is not None:
        claims["replica"] = replica
    return jwt.encode(claims, secret, algorithm="HS256")


def value(r):
    return r.read_objects([K])[0][0]


def connected(r):
    return any(p["connected"] for p in r.peers())


def test_a_listener_with_a_secret_refuses_peers_without_a_valid_token(mem):
    a = mem()
    port = a.listen("127.0.0.1:0", auth_secret=SECRET)
    for tok in [None, "garbage", token("write", secret="another secret, also long enough for HS256"),
                token("write", room="elsewhere"), token("write", ttl=-10)]:
        b = mem()
        b.connect(f"127.0.0.1:{port}", token=tok)
        wait_until(lambda: b.stats()["last_protocol_error"], what="a refusal")
        assert "unauthorized" in b.stats()["last_protocol_error"]
        assert not connected(b)
        b.update_objects([(K, "increment", 1)])
        time.sleep(0.2)
        assert value(a) == 0


def test_a_pyjwt_token_admits_a_writer_that_speaks_for_itself(mem):
    a, b = mem(), mem()
    port = a.listen("127.0.0.1:0", auth_secret=SECRET)
    b.connect(f"127.0.0.1:{port}", token=token("write", replica=b.id))
    b.update_objects([(K, "increment", 2)])
    wait_until(lambda: value(a) == 2, what="b's write at a")


def test_a_token_bound_to_another_replica_is_refused(mem):
    a, b = mem(), mem()
    port = a.listen("127.0.0.1:0", auth_secret=SECRET)
    b.connect(f"127.0.0.1:{port}", token=token("write", replica="00000000000000aa"))
    wait_until(lambda: b.stats()["last_protocol_error"], what="a refusal")
    assert "replica" in b.stats()["last_protocol_error"]


def test_a_read_token_cannot_write(mem):
    a, b = mem(), mem()
    a.update_objects([(K, "increment", 5)])
    port = a.listen("127.0.0.1:0", auth_secret=SECRET)
    b.connect(f"127.0.0.1:{port}", token=token("read"))
    wait_until(lambda: value(b) == 5, what="the reader reads")
    b.update_objects([(K, "increment", 100)])
    wait_until(lambda: a.stats()["refused"] >= 1, what="the write refused")
    assert value(a) == 5


def test_forwarding_another_replicas_writes_needs_the_forward_scope(mem):
    for scope, reaches in [("write", False), ("forward", True)]:
        a, b, c = mem(), mem(), mem()
        port = a.listen("127.0.0.1:0", auth_secret=SECRET)
        # c writes to b (an open listener), b is linked to a with `scope`.
        b_port = b.listen("127.0.0.1:0")
        c.connect(f"127.0.0.1:{b_port}")
        c.update_objects([(K, "increment", 7)])
        wait_until(lambda: value(b) == 7, what="c's write at b")
        b.connect(f"127.0.0.1:{port}", token=token(scope, replica=b.id))
        if reaches:
            wait_until(lambda: value(a) == 7, what="c's write forwarded to a")
        else:
            # Dropped and counted at a, never applied; b's link stays up.
            wait_until(lambda: a.stats()["refused"] >= 1, what="the forward refused")
            assert value(a) == 0
            assert connected(b)


@pytest.mark.parametrize("bad", [
    lambda s: [(("k", "set_aw", "b"), "add", s)],
    lambda s: [((s, "set_aw", "b"), "add", "x")],
    lambda s: [(("k", "set_aw", s), "add", "x")],
    lambda s: [(("k", "register_lww", "b"), "assign", {s: 1})],
])
def test_a_lone_surrogate_is_an_invalid_operation(mem, bad):
    r = mem()
    with pytest.raises(minidote.InvalidOperation, match="surrogate"):
        r.update_objects(bad("a\ud800b"))
    assert r.read_objects([])[1].to_dict() == {}


def test_a_relay_takes_pyjwt_tokens_and_refuses_another_replicas_binding(mem, relay):  # noqa: F811
    a, b = mem(), mem()
    a.connect(relay["tcp"], token=token("write", replica=a.id))
    b.connect(relay["tcp"], token=token("read"))
    a.update_objects([(K, "increment", 3)])
    wait_until(lambda: value(b) == 3, what="a's write through the relay")
    c = mem()
    c.connect(relay["tcp"], token=token("write", replica=a.id))
    wait_until(lambda: c.stats()["last_protocol_error"], what="a refusal")
    assert "replica" in c.stats()["last_protocol_error"]


def test_a_replica_restored_from_an_older_copy_loses_nothing(tmp_path, mem, relay):  # noqa: F811
    """Copy a replica's file, write, restore the copy, write offline and
    reconnect (SECURITY.md, restored backups): the restored replica finds
    its reused seqs at the relay, re-issues its offline writes under a new
    id, and every write from both lineages is everywhere."""
    import shutil

    notes, n = ("notes", "set_aw", "b"), ("n", "counter_pn", "b")
    path, backup = tmp_path / "a.db", tmp_path / "backup.db"
    reader = mem()
    reader.connect(relay["tcp"], token=token("read"))

    def seen():
        return reader.read_objects([notes, n])[0]

    a = minidote.Replica(str(path))
    a.connect(relay["tcp"], token=token("write"))
    a.update_objects([(notes, "add", "before the backup"), (n, "increment", 1)])
    wait_until(lambda: seen()[1] == 1, what="the first write at the reader")
    a.close()
    shutil.copy(path, backup)

    a = minidote.Replica(str(path))
    a.connect(relay["tcp"], token=token("write"))
    for i in range(2):
        a.update_objects([(notes, "add", f"after the backup {i}"), (n, "increment", 10)])
    wait_until(lambda: seen()[1] == 21, what="the later writes at the reader")
    old_id = a.id
    a.close()

    # The backup comes back; the replica writes offline, reusing seqs.
    for suffix in ["", "-wal", "-shm"]:
        p = tmp_path / f"a.db{suffix}"
        if p.exists():
            p.unlink()
    shutil.copy(backup, path)
    a = minidote.Replica(str(path))
    assert a.id == old_id
    for i in range(3):
        a.update_objects([(notes, "add", f"offline {i}"), (n, "increment", 100)])
    a.connect(relay["tcp"], token=token("write"))
    everything = sorted(["before the backup", "after the backup 0", "after the backup 1",
                         "offline 0", "offline 1", "offline 2"])
    wait_until(lambda: seen() == [everything, 321], what="both lineages at the reader")
    wait_until(lambda: a.read_objects([notes, n])[0] == [everything, 321],
               what="both lineages at the restored replica")
    s = a.stats()
    assert (s["restores"], s["reissued"], s["repair_pending"]) == (1, 3, False)
    assert a.id != old_id
    new_id = a.id
    assert "restored from an older copy" in (s["last_protocol_error"] or "") or s["protocol_errors"] >= 1

    # The repair is stored: reopened, it is the new replica, with everything.
    a.close()
    a = minidote.Replica(str(path))
    assert a.id == new_id
    assert a.read_objects([notes, n])[0] == [everything, 321]
    a.update_objects([(n, "increment", 1000)])
    a.connect(relay["tcp"], token=token("write"))
    wait_until(lambda: seen()[1] == 1321, what="a write under the new id")
    assert a.stats()["restores"] == 0
    a.close()
