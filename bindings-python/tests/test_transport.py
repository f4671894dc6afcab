"""Bring your own transport (``on_local_update``/``apply_update``/
``export_since``), ``flush`` and a flushing ``close``, subscriptions off the
caller's thread, asyncio calls, and ``ws://``/``wss://`` links to a real
relay process (TLS through a local terminator with a self-signed
certificate)."""

import asyncio
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

import minidote
from conftest import free_port, link, wait_until
from test_relay import RELAY, mint, relay  # noqa: F401  (the fixture)

K = ("n", "counter_pn", "t")
T = ("doc", "text", "t")


# ---- bring your own transport ----

def test_two_replicas_synced_only_by_a_shuffling_duplicating_channel_converge(mem):
    a, b = mem(), mem()
    chan = []  # (destination, frame)
    lock = threading.Lock()

    def to(dest):
        def cb(frame):
            assert isinstance(frame, bytes)
            with lock:
                chan.append((dest, frame))
        return cb

    a.on_local_update(to(b))
    b.on_local_update(to(a))
    rng = random.Random(7)
    for i in range(40):
        a.update_objects([(K, "increment", 1), (T, "insert", [0, "a"])])
        b.update_objects([(K, "increment", 10), (T, "insert", [0, "b"])])
    # Every local write arrives (from the callbacks' thread).
    wait_until(lambda: len(chan) == 80, what="80 local updates")
    with lock:
        frames = list(chan)
    # Shuffled, every frame twice: early ones wait in the causal buffer.
    frames = frames + frames
    rng.shuffle(frames)
    pending_seen = False
    for dest, f in frames:
        st = dest.apply_update(f)
        assert set(st) == {"applied", "pending", "missing"}
        assert isinstance(st["missing"], minidote.Clock)
        pending_seen |= st["pending"] > 0
    assert pending_seen, "the shuffle delivered some frames before their causes"
    (va, vt), ca = a.read_objects([K, T])
    (vb, vt2), cb = b.read_objects([K, T])
    assert ca == cb
    assert va == vb == 440
    assert vt == vt2 and sorted(vt) == sorted("a" * 40 + "b" * 40)
    # A frame applied again changes nothing.
    for dest, f in frames[:10]:
        st = dest.apply_update(f)
        assert st["applied"] == 0 and st["pending"] == 0
    assert a.read_objects([K, T])[0] == [va, vt]


def test_local_updates_are_only_this_replicas_and_unsubscribe_stops_them(mem):
    a, b = mem(), mem()
    got = []
    stop = a.on_local_update(got.append)
    b.update_objects([(K, "increment", 1)])
    for f in b.export_since():
        a.apply_update(f)
    a.update_objects([(K, "increment", 2)])
    wait_until(lambda: len(got) == 1, what="one local update")
    time.sleep(0.1)
    assert len(got) == 1, "a remote write is not a local update"
    stop()
    a.update_objects([(K, "increment", 3)])
    time.sleep(0.2)
    assert len(got) == 1
    with pytest.raises(minidote.InvalidOperation):
        a.on_local_update("not callable")


def test_a_durable_replica_hands_out_its_writes_once_stored(disk, mem):
    a = disk()
    got = []
    a.on_local_update(got.append)
    for i in range(5):
        a.update_objects([(K, "increment", 1)])
    wait_until(lambda: sum(1 for _ in got) >= 1, what="local updates")
    wait_until(lambda: _value_after(mem(), got) == 5, what="all five writes")


def _value_after(r, frames):
    for f in list(frames):
        r.apply_update(f)
    return r.read_objects([K])[0][0]


def test_garbage_frames_are_refused_and_apply_nothing(mem):
    a, b = mem(), mem()
    a.update_objects([(K, "increment", 4)])
    (good,) = a.export_since()
    before = b.read_objects([K])
    for bad in [b"", b"\x00", b"garbage" * 10, good[:-1], good[: len(good) // 2]]:
        with pytest.raises(minidote.ProtocolError):
            b.apply_update(bad)
    assert b.read_objects([K]) == before
    assert b.apply_update(good)["applied"] == 1


# ---- flush and close ----

WRITER = r"""
import sys, minidote
addr, n, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = minidote.Replica(room="flush")
r.connect(addr, token)
r.update_objects([(("hits", "counter_pn", "t"), "increment", n)])
r.close()
"""


@pytest.mark.parametrize("scheme", ["tcp", "ws"])
def test_twenty_connect_write_close_scripts_all_reach_the_relay(relay, mem, scheme):  # noqa: F811
    token = mint("flush", "write")
    addr = relay["tcp"] if scheme == "tcp" else f"ws://127.0.0.1:{relay['http']}/sync"
    for i in range(20):
        out = subprocess.run(
            [sys.executable, "-c", WRITER, addr, "1", token],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "without every peer confirming" not in out.stderr, out.stderr
    later = mem(room="flush")
    later.connect(relay["tcp"], mint("flush", "read"))
    key = ("hits", "counter_pn", "t")
    wait_until(lambda: later.read_objects([key])[0][0] == 20, what="20 of 20 writes")


def test_flush_says_true_once_the_relay_stored_the_writes(relay, mem):  # noqa: F811
    r = mem(room="flush")
    assert r.flush(0.1) is True, "nothing to deliver, no link"
    r.update_objects([(K, "increment", 1)])
    assert r.flush(0.1) is False, "no link at all"
    r.connect(relay["tcp"], mint("flush", "write"))
    assert r.flush(10.0) is True
    r.update_objects([(K, "increment", 1)])
    assert r.flush(10.0) is True
    assert r.stats()["peers"][0]["connected"]


def test_flush_returns_false_not_hangs_when_the_relay_is_down(mem):
    r = mem()
    r.connect(f"127.0.0.1:{free_port()}")  # nothing listens there
    r.update_objects([(K, "increment", 1)])
    t = time.monotonic()
    assert r.flush(0.5) is False
    assert time.monotonic() - t < 3.0


def test_close_with_a_dead_relay_is_bounded_and_says_what_it_lost(mem):
    code = r"""
import sys, time, minidote
r = minidote.Replica()
r.connect(sys.argv[1])
r.update_objects([(("n", "counter_pn", "t"), "increment", 1)])
t = time.monotonic()
r.close(flush_timeout=0.5)
print(time.monotonic() - t)
"""
    out = subprocess.run(
        [sys.executable, "-c", code, f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 3.0
    assert "without every peer confirming this replica's 1 writes" in out.stderr
    assert "loses them" in out.stderr


def test_flush_between_peer_replicas(mem, disk):
    a, b = mem(), disk()
    link(b, a)  # a dials b's listener
    a.update_objects([(K, "increment", 1)])
    assert a.flush(10.0) is True, "a durable peer reports what it stored"
    b.update_objects([(K, "increment", 1)])
    assert b.flush(10.0) is True, "a memory peer reports what it holds"


# ---- subscriptions ----

def test_subscribers_run_off_the_callers_thread_and_may_call_back(mem):
    a = mem()
    seen = []
    done = threading.Event()
    main = threading.get_ident()

    def cb(keys, deltas):
        # Calling back into the replica from a callback must not deadlock.
        value = a.read_objects([K])[0][0]
        seen.append((threading.get_ident(), keys, value))
        done.set()

    a.subscribe(cb)
    a.update_objects([(K, "increment", 5)])
    assert done.wait(10)
    tid, keys, value = seen[0]
    assert tid != main
    assert keys == [K] and value == 5


# ---- asyncio ----

def test_async_calls_never_block_the_event_loop(mem):
    a, b = mem(), mem()

    async def main():
        ticks = 0
        stop = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        t = asyncio.create_task(ticker())
        clock = await b.aupdate_objects([(K, "increment", 7)])
        assert isinstance(clock, minidote.Clock)
        # a waits for b's clock, which arrives only after half a second.
        loop = asyncio.get_running_loop()

        def later():
            time.sleep(0.5)
            for f in b.export_since():
                a.apply_update(f)

        loop.run_in_executor(None, later)
        before = ticks
        values, c2 = await a.aread_objects([K], clock, timeout=10)
        assert values == [7] and clock <= c2
        assert ticks - before >= 10, "the loop kept running while a waited"
        with pytest.raises(minidote.ClockTimeout):
            await a.aread_objects([K], c2.merge(_future_clock()), timeout=0.2)
        with pytest.raises(minidote.InvalidOperation):
            await a.aupdate_objects([(K, "no_such_op", 1)])
        stop.set()
        await t

    asyncio.run(main())


def _future_clock():
    # A clock naming a replica nobody has heard of.
    other = minidote.Replica()
    c = other.update_objects([(K, "increment", 1)])
    other.close()
    return c


def test_async_calls_need_a_running_loop(mem):
    a = mem()
    with pytest.raises(RuntimeError):
        a.aread_objects([K])


# ---- ws:// and wss:// ----

def test_ws_link_to_the_relay(relay, mem):  # noqa: F811
    a, b = mem(room="ws"), mem(room="ws")
    url = f"ws://127.0.0.1:{relay['http']}/sync"
    a.connect(url, mint("ws", "write"))
    b.connect(relay["tcp"], mint("ws", "write"))
    a.update_objects([(K, "increment", 2)])
    b.update_objects([(K, "increment", 3)])
    wait_until(lambda: a.read_objects([K])[0] == [5] and b.read_objects([K])[0] == [5],
               what="ws and tcp replicas converge")
    assert a.peers()[0]["addr"] == url


def test_bad_addresses_are_refused(mem):
    a = mem()
    for bad in ["http://x/sync", "ws://", "wss://"]:
        with pytest.raises(minidote.InvalidOperation):
            a.connect(bad)
    with pytest.raises(minidote.InvalidOperation):
        a.connect("127.0.0.1:1", ca_file="/nonexistent.pem")
    with pytest.raises(minidote.InvalidOperation):
        a.connect("wss://127.0.0.1:1/sync", ca_file="/nonexistent.pem")


@pytest.fixture
def tls_terminator(relay, tmp_path):  # noqa: F811
    """A TLS listener with a self-signed certificate for 127.0.0.1 that
    forwards to the relay's HTTP port (as a reverse proxy would)."""
    # A private CA, and a certificate for 127.0.0.1 it signed.
    ca, ca_key = tmp_path / "ca.pem", tmp_path / "ca-key.pem"
    cert, key, csr = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "cert.csr"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")

    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=minidote test CA", "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except OSError:
                continue
            try:
                tls = ctx.wrap_socket(raw, server_side=True)
            except (OSError, ssl.SSLError):
                raw.close()
                continue
            up = socket.create_connection(("127.0.0.1", relay["http"]))
            threading.Thread(target=pipe, args=(tls, up), daemon=True).start()
            threading.Thread(target=pipe, args=(up, tls), daemon=True).start()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    yield {"url": f"wss://127.0.0.1:{port}/sync", "ca": str(ca)}
    stop.set()
    th.join()
    listener.close()


def test_wss_with_a_ca_file_carries_the_token_encrypted(tls_terminator, relay, mem):  # noqa: F811
    a = mem(room="tls")
    a.connect(tls_terminator["url"], mint("tls", "write"), ca_file=tls_terminator["ca"])
    a.update_objects([(K, "increment", 9)])
    assert a.flush(10.0) is True
    b = mem(room="tls")
    b.connect(relay["tcp"], mint("tls", "read"))
    wait_until(lambda: b.read_objects([K])[0] == [9], what="the write through TLS")


def test_wss_refuses_a_certificate_it_cannot_verify(tls_terminator, mem):
    a = mem(room="tls")
    a.connect(tls_terminator["url"], mint("tls", "write"))  # system roots only
    a.update_objects([(K, "increment", 1)])
    assert a.flush(1.0) is False
    wait_until(lambda: "certificate" in (a.stats()["last_protocol_error"] or "").lower(),
               what="a certificate error in stats")


def test_the_make_demo_python_snippet_needs_no_sleep(tmp_path, mem):
    """The line `make demo` prints, run as printed against an open relay
    whose chat already holds a browser's message: each run appends its
    message after everything there, with no sleep."""
    import re

    makefile = open(os.path.join(os.path.dirname(__file__), "..", "..", "Makefile")).read()
    line = next(ln for ln in makefile.splitlines() if "from Python" in ln and "-c '" in ln)
    code = re.search(r"-c '(.*)'\"$", line).group(1).replace('\\"', '"')
    assert "sleep" not in code
    http, tcp = free_port(), free_port()
    proc = subprocess.Popen(
        [RELAY, "--listen", f"127.0.0.1:{http}", "--tcp-listen", f"127.0.0.1:{tcp}", "--memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    chat = ("chat", "list", "demo")
    try:
        addr = f"127.0.0.1:{tcp}"
        wait_until(lambda: _can_connect(addr), what="relay up")
        browser = mem(room="demo")
        browser.connect(f"ws://127.0.0.1:{http}/sync")
        browser.update_objects([(chat, "insert", [0, {"author": "tab", "text": "from a tab"}])])
        assert browser.flush(10.0)
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", code.replace("$(DEMO_TCP)", addr)],
                capture_output=True, text=True, timeout=60,
            )
            assert out.returncode == 0, out.stderr
        wait_until(lambda: len(browser.read_objects([chat])[0][0]) == 4, what="three appends")
        texts = [m["text"] for m in browser.read_objects([chat])[0][0]]
        assert texts == ["from a tab"] + ["hello from Python"] * 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _can_connect(addr):
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=0.2).close()
        return True
    except OSError:
        return False


def test_flush_waits_for_every_target_to_finish_its_handshake(relay, mem):  # noqa: F811
    # A listener that accepts and never says Hello: flush must not count it.
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        r = mem(room="flush")
        r.connect(relay["tcp"], mint("flush", "write"))
        r.connect(f"127.0.0.1:{silent.getsockname()[1]}")
        r.update_objects([(K, "increment", 1)])
        assert r.flush(1.0) is False
        r.disconnect(f"127.0.0.1:{silent.getsockname()[1]}")
        assert r.flush(10.0) is True
    finally:
        silent.close()


def test_odd_timeouts_neither_panic_nor_hang(mem):
    r = mem()
    assert r.flush(float("inf")) is True, "nothing to deliver"
    r.update_objects([(K, "increment", 1)])
    t = time.monotonic()
    assert r.flush(float("nan")) is False
    assert r.flush(-5) is False
    assert time.monotonic() - t < 2
    r.close(flush_timeout=float("nan"))


def test_a_blocked_callback_holds_at_most_64_mib_of_notices_and_says_what_it_dropped(caplog):
    """A callback that blocks must not let writes pile up without bound:
    past 64 MiB queued, notices are dropped with a warning; the replica
    keeps working, and the callback gets what was queued once it runs."""
    r = minidote.Replica()
    gate = threading.Event()
    got = []

    def slow(frame):
        gate.wait(30)
        got.append(len(frame))

    stop = r.on_local_update(slow)
    reg = ("big", "register_lww", "b")
    blob = b"x" * ((1 << 20) - 4096)
    with caplog.at_level("WARNING", logger="minidote"):
        for _ in range(80):
            r.update_objects([(reg, "assign", blob)])
    assert any("notices dropped" in rec.getMessage() for rec in caplog.records)
    gate.set()
    assert wait_until(lambda: len(got) >= 60, 30)
    time.sleep(0.2)
    assert 60 <= len(got) < 80, len(got)
    # The last one gone: later writes make no frames at all.
    stop()
    r.update_objects([(reg, "assign", 1)])
    time.sleep(0.2)
    assert len(got) < 80
    assert r.read_objects([reg])[0] == [1]
    r.close()


def test_writes_made_before_the_first_link_all_reach_the_relay(relay, mem):  # noqa: F811
    """More writes than `snapshot_every` before the first link: the log
    keeps them until the relay confirms them (it takes no snapshot from a
    writer), so a script that writes offline and then syncs loses none."""
    r = mem(room="offline-burst")
    for _ in range(25_000):
        r.update_objects([(K, "increment", 1)])
    r.connect(relay["tcp"], mint("offline-burst", "write"))
    assert r.flush(60.0)
    later = mem(room="offline-burst")
    later.connect(relay["tcp"], mint("offline-burst", "write"))
    assert later.catch_up(60.0)
    assert later.read_objects([K])[0] == [25_000]
