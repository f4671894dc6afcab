"""Real OS processes over real sockets: kill -9 of a writer, a three-process
cluster under random partitions, and hostile clients."""
import json
import os
import queue
import signal
import socket
import struct
import threading
import time

import minidote
from conftest import converged, free_port, link, spawn, wait_until

C = ("hits", "counter_pn", "t")
S = ("seen", "set_aw", "t")


def test_kill_9_loses_no_acknowledged_update_and_the_cluster_converges(tmp_path, mem):
    hub = mem()
    port = hub.listen("127.0.0.1:0")
    p = str(tmp_path / "w.db")
    proc = spawn("writer", p, f"127.0.0.1:{port}")
    acked = -1
    try:
        while acked < 200:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            acked = int(line.split()[1])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # Lines already printed but not read yet are acknowledged too.
    for line in proc.stdout.read().splitlines():
        acked = max(acked, int(line.split()[1]))
    with minidote.Replica(p) as w:
        (count, seen), _ = w.read_objects([C, S])
        assert count >= acked + 1, f"acknowledged {acked + 1} increments, found {count}"
        assert set(range(acked + 1)) <= set(seen)
        w.connect(f"127.0.0.1:{port}")
        wait_until(lambda: converged(hub, w), timeout=20, what="hub and restarted writer converge")
        assert hub.read_objects([C])[0] == [count]


def _reader(proc, q):
    for line in proc.stdout:
        q.put(line)


def test_three_processes_under_random_partitions_converge(tmp_path):
    ports = [free_port() for _ in range(3)]
    procs = []
    for i in range(3):
        peers = ports[i + 1:]  # each pair linked once
        procs.append(spawn("cluster", str(tmp_path / f"n{i}.db"), 1000 + i, ports[i], 3, *peers))
    queues = [queue.Queue() for _ in procs]
    for p, q in zip(procs, queues):
        threading.Thread(target=_reader, args=(p, q), daemon=True).start()
    latest = [None] * 3
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            for i, q in enumerate(queues):
                while not q.empty():
                    line = q.get()
                    if line.startswith("STATE "):
                        latest[i] = line.split(" ", 2)[1:]
            if all(latest) and all(s == latest[0] for s in latest):
                break
            time.sleep(0.05)
        assert all(latest), "every process reported"
        assert all(s == latest[0] for s in latest), f"not converged: {latest}"
        clock = minidote.Clock.from_bytes(bytes.fromhex(latest[0][0]))
        assert len(clock.to_dict()) == 3, "all three wrote"
        values = json.loads(latest[0][1])
        assert values[0] > 0
    finally:
        for p in procs:
            if p.stdin:
                p.stdin.close()
            p.terminate()
            p.wait(10)


def _frame(payload):
    return struct.pack(">I", len(payload)) + payload


def _read_frame(sock):
    hdr = b""
    while len(hdr) < 4:
        chunk = sock.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (n,) = struct.unpack(">I", hdr)
    body = b""
    while len(body) < n:
        chunk = sock.recv(n - len(body))
        if not chunk:
            return None
        body += chunk
    return body


def test_garbage_bytes_end_only_that_link(mem, caplog):
    a, b = mem(), mem()
    link(a, b)
    port = a.listen("127.0.0.1:0")
    # An HTTP client: its first 4 bytes read as a huge length.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5)
        while s.recv(4096):
            pass
    # A peer speaking another protocol version gets an Error frame back.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(_frame(bytes([minidote.PROTOCOL_VERSION + 1, 0]) + b"\x00" * 20))
        frames = []
        while (f := _read_frame(s)) is not None:
            frames.append(f)
        assert any(f[:2] == bytes([minidote.PROTOCOL_VERSION, 4]) for f in frames), frames
    # Random bytes in a valid length prefix.
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(_frame(os.urandom(64)))
        while _read_frame(s) is not None:
            pass
    wait_until(lambda: a.stats()["protocol_errors"] >= 3, what="three protocol errors")
    # The replica and its good link carry on.
    c = a.update_objects([(C, "increment", 1)])
    assert b.read_objects([C], c, timeout=10)[0] == [1]
    assert any("minidote link" in r.getMessage() for r in caplog.records)


def test_a_room_mismatch_ends_the_link_with_a_logged_protocol_error(mem, caplog):
    a, b = mem(room="one"), mem(room="two")
    port = a.listen("127.0.0.1:0")
    b.connect(f"127.0.0.1:{port}")
    wait_until(lambda: a.stats()["protocol_errors"] >= 1 and b.stats()["protocol_errors"] >= 1,
               what="both sides refuse")
    assert "room" in (a.stats()["last_protocol_error"] or "")
    a.update_objects([(C, "increment", 1)])
    assert b.read_objects([C])[0] == [0], "nothing crossed rooms"


def test_a_large_frame_before_hello_is_refused_without_allocating_it(mem):
    a = mem()
    port = a.listen("127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        s.sendall(struct.pack(">I", 2 << 20))  # 2 MiB, before any Hello
        while s.recv(4096):
            pass
    wait_until(lambda: a.stats()["protocol_errors"] >= 1, what="refusal")
    assert "1048576-byte limit" in a.stats()["last_protocol_error"]
