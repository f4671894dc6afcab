"""Python replicas and a raw WebSocket client through a real
``minidote-relay`` process (built by ``make test``)."""

import os
import struct
import subprocess
import threading
import time

import pytest
from websockets.sync.client import connect as ws_connect

import minidote
from conftest import free_port, wait_until

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELAY = os.environ.get(
    "MINIDOTE_RELAY_BIN", os.path.join(ROOT, "target", "debug", "minidote-relay")
)
SECRET = "pytest-secret, long enough for HS256 (32+ bytes)"
K = ("likes", "counter_pn", "b")


def mint(room, scope):
    out = subprocess.run(
        [RELAY, "token", "--auth-secret", SECRET, "--room", room, "--scope", scope],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


@pytest.fixture
def relay(tmp_path):
    if not os.path.exists(RELAY):
        pytest.fail(f"relay binary missing at {RELAY}: run `make test`")
    http, tcp = free_port(), free_port()
    proc = subprocess.Popen(
        [RELAY, "--listen", f"127.0.0.1:{http}", "--tcp-listen", f"127.0.0.1:{tcp}",
         "--data", str(tmp_path / "relay.db"), "--auth-secret", SECRET],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import socket

    def up():
        try:
            socket.create_connection(("127.0.0.1", tcp), timeout=0.2).close()
            return True
        except OSError:
            return False

    wait_until(up, what="relay up")
    yield {"http": http, "tcp": f"127.0.0.1:{tcp}"}
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def relay_metric(relay, name):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{relay['http']}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(f"minidote_relay_{name} "):
                return int(line.split()[1])
    raise AssertionError(f"no metric {name}")


# ---- a minimal hand-written protocol client (PROTOCOL.md) ----

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def s(text):
    b = text.encode()
    return varint(len(b)) + b


V = bytes([minidote.PROTOCOL_VERSION])


def hello(rid, room, token):
    tok = b"\x01" + s(token) if token else b"\x00"
    return V + b"\x00" + struct.pack("<Q", rid) + s(room) + b"\x00" + tok


def increment_txn(rid, seq, by):
    zig = (by << 1) ^ (by >> 63)
    # One effect: key (counter_pn, "likes", "b"), head 1 (a delta, no
    # floors), the zigzag delta (PROTOCOL.md §5).
    blob = b"\x01" + b"\x00" + s("likes") + s("b") + b"\x01" + varint(zig)
    return struct.pack("<Q", rid) + varint(seq) + b"\x00" + varint(len(blob)) + blob


def txns_headers(frame):
    """(origin hex, seq) of each transaction in a Txns frame."""
    n, i = read_varint(frame, 2)
    out = []
    for _ in range(n):
        origin = struct.unpack_from("<Q", frame, i)[0]
        i += 8
        seq, i = read_varint(frame, i)
        deps, i = read_varint(frame, i)
        if deps >= 3:  # packed clock: first id, two bit widths, bit stream
            _, i = read_varint(frame, i)
            gw, k = frame[i], frame[i + 1]
            i += 2 + (k + (deps - 1) * (gw + k) + 7) // 8
        for _ in range(deps if deps < 3 else 0):
            i += 8
            _, i = read_varint(frame, i)
        blob, i = read_varint(frame, i)
        i += blob
        out.append((f"{origin:016x}", seq))
    return out


def skip_clock(frame, i):
    n, i = read_varint(frame, i)
    if n >= 3:  # packed clock: first id, two bit widths, bit stream
        _, i = read_varint(frame, i)
        gw, k = frame[i], frame[i + 1]
        return i + 2 + (k + (n - 1) * (gw + k) + 7) // 8
    for _ in range(n):
        i += 8
        _, i = read_varint(frame, i)
    return i


def run_headers(frame):
    """(origin hex, seq) of each transaction in a Run frame (PROTOCOL.md,
    "Run"): the origin table, the key table, then one head per transaction;
    the bodies that follow are not needed for this. A packed run (tag 10)
    is `varint len` and the body as one LZ4 block."""
    if frame[1] == 10:
        import lz4.block

        size, i = read_varint(frame, 2)
        frame = b"\x00\x00" + lz4.block.decompress(frame[i:], uncompressed_size=size)
    n, i = read_varint(frame, 2)
    origins = [struct.unpack_from("<Q", frame, i + 8 * k)[0] for k in range(n)]
    i += 8 * n
    keys, i = read_varint(frame, i)
    for _ in range(keys):
        i += 1  # type
        for _ in range(2):  # key, bucket
            ln, i = read_varint(frame, i)
            i += ln
    count, i = read_varint(frame, i)
    last = [0] * len(origins)
    out = []
    for _ in range(count):
        head, i = read_varint(frame, i)
        o, kind = head >> 2, head & 3
        if kind in (0, 3):  # the origin's next seq, no new deps
            seq = last[o] + 1
            if kind == 3:
                _, i = read_varint(frame, i)  # key index
        else:
            seq, i = read_varint(frame, i)
            i = skip_clock(frame, i)
            if kind == 1:
                _, i = read_varint(frame, i)  # key index
            else:
                ln, i = read_varint(frame, i)
                i += ln  # the effects blob
        last[o] = seq
        out.append((f"{origins[o]:016x}", seq))
    return out


class RawClient:
    """A browser stand-in: raw frames over the relay's WebSocket."""

    def __init__(self, port, rid, room, token):
        self.ws = ws_connect(f"ws://127.0.0.1:{port}/sync").__enter__()
        self.rid = rid
        self.seen = {}
        self.errors = []
        self.runs = 0
        self.ws.send(hello(rid, room, token))
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for msg in self.ws:
                tag = msg[1]
                if tag in (1, 9, 10):  # Txns, or a batch as a Run (10: packed)
                    for origin, seq in (txns_headers if tag == 1 else run_headers)(msg):
                        self.seen[origin] = max(self.seen.get(origin, 0), seq)
                        self.runs += tag != 1
                elif tag == 4:
                    self.errors.append(msg)
                elif tag == 5:  # Ping -> Pong with the same nonce
                    self.ws.send(V + b"\x06" + msg[2:])
        except Exception:
            pass

    def increment(self, seq, by):
        self.ws.send(V + b"\x01\x01" + increment_txn(self.rid, seq, by))

    def close(self):
        self.ws.close()


def test_two_python_replicas_and_a_websocket_client_converge(relay):
    tok = mint("room1", "write")
    a = minidote.Replica(room="room1")
    b = minidote.Replica(room="room1")
    a.connect(relay["tcp"], token=tok)
    b.connect(relay["tcp"], token=tok)
    raw = RawClient(relay["http"], 0x5EED, "room1", tok)
    try:
        for _ in range(20):
            a.update_objects([(K, "increment", 1)])
            b.update_objects([(K, "increment", 10)])
        for seq in range(1, 6):
            raw.increment(seq, 100)
        total = 20 * 1 + 20 * 10 + 5 * 100
        wait_until(lambda: a.read_objects([K])[0] == [total], what="a converged")
        wait_until(lambda: b.read_objects([K])[0] == [total], what="b converged")
        assert a.read_objects([])[1] == b.read_objects([])[1]
        # The raw client saw every transaction of both Python replicas.
        want = {r.id: r.read_objects([])[1].to_dict()[r.id] for r in (a, b)}
        wait_until(lambda: all(raw.seen.get(i) == s for i, s in want.items()),
                   what="raw client has everything")
        assert a.read_objects([])[1].to_dict()[f"{0x5EED:016x}"] == 5
        assert raw.errors == []
    finally:
        raw.close()
        a.close()
        b.close()


def test_a_replica_that_joins_later_gets_everything_after_the_writer_left(relay, tmp_path):
    tok = mint("room2", "write")
    with minidote.Replica(str(tmp_path / "w.db"), room="room2") as w:
        w.connect(relay["tcp"], token=tok)
        wait_until(lambda: any(p["connected"] for p in w.peers()), what="linked")
        for i in range(100):
            w.update_objects([(K, "increment", 1), (("tags", "set_aw", "b"), "add", i)])
        clock = w.read_objects([])[1]
        # The relay has stored it all (its /metrics says so).
        wait_until(lambda: relay_metric(relay, "storage_records_total") >= 100,
                   what="relay stored the room log")
    # The writer is gone for good; a brand-new replica joins.
    with minidote.Replica(room="room2") as late:
        late.connect(relay["tcp"], token=tok)
        values, _ = late.read_objects([K], clock=clock, timeout=10.0)
        assert values == [100]
        assert late.read_objects([("tags", "set_aw", "b")])[0] == [list(range(100))]


def test_a_wrong_token_is_refused_and_the_replica_keeps_working(relay):
    with minidote.Replica(room="room3") as r:
        r.connect(relay["tcp"], token=mint("other-room", "write"))
        r.update_objects([(K, "increment", 1)])
        wait_until(lambda: relay_metric(relay, "auth_failures_total") >= 1,
                   what="the relay refused the token")
        assert not any(p["connected"] for p in r.peers())
        assert r.read_objects([K])[0] == [1]
        # A refusal is final: no reconnect loop hammers the relay (the
        # loop retried every 2 s before).
        time.sleep(3)
        assert relay_metric(relay, "auth_failures_total") == 1
        assert "not reconnecting" in (r.stats()["last_protocol_error"] or "")
        # Connecting again, with a good token, works.
        r.connect(relay["tcp"], token=mint("room3", "write"))
        wait_until(lambda: any(p["connected"] for p in r.peers()), what="linked")


def test_a_client_written_from_protocol_md_reads_a_catch_up_sent_as_a_run(relay):
    """A batch reaches a late joiner as a `Run` frame (tag 9); the
    hand-written client above reads its heads from PROTOCOL.md alone."""
    tok = mint("room-run", "write")
    a = minidote.Replica(room="room-run")
    a.connect(relay["tcp"], token=tok)
    try:
        for _ in range(200):
            a.update_objects([(K, "increment", 1)])
        assert a.flush(10.0)
        raw = RawClient(relay["http"], 0x7777, "room-run", tok)
        try:
            wait_until(lambda: raw.seen.get(a.id) == 200, what="the raw client caught up")
            assert raw.runs > 0, "the catch-up came in Run frames"
            assert raw.errors == []
        finally:
            raw.close()
    finally:
        a.close()
