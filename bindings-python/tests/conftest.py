import os
import socket
import subprocess
import sys
import time

import pytest

import minidote

HERE = os.path.dirname(os.path.abspath(__file__))


def wait_until(pred, timeout=10.0, interval=0.02, what="condition"):
    """Polls ``pred`` until it is true; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def link(a, b):
    """Connects replica ``b`` to a listener on ``a``; returns the address."""
    port = a.listen("127.0.0.1:0")
    addr = f"127.0.0.1:{port}"
    b.connect(addr)
    wait_until(lambda: any(p["connected"] for p in b.peers()), what="link up")
    return addr


def converged(*replicas):
    clocks = [r.read_objects([])[1] for r in replicas]
    return all(c == clocks[0] for c in clocks)


def spawn(*args):
    """Starts ``worker.py`` in a fresh Python process."""
    return subprocess.Popen(
        [sys.executable, os.path.join(HERE, "worker.py"), *map(str, args)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def mem():
    """Factory of in-memory replicas, closed after the test."""
    made = []

    def make(**kw):
        r = minidote.Replica(**kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def disk(tmp_path):
    """Factory of SQLite replicas in the test's temp dir."""
    made = []

    def make(name="r.db", **kw):
        r = minidote.Replica(str(tmp_path / name), **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
