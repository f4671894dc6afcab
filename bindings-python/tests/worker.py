"""Helper process for the multi-process tests. Modes:

  writer PATH PEER_ADDR      write forever, print "ACK i" after each returned update
  try_open PATH              print "OPENED" or "STORAGE_ERROR <msg>"
  cluster PATH SEED PORT SECONDS PEER_PORT...
                             listen on PORT, link to the peers, write and cut/heal
                             links at random for SECONDS, then heal and print
                             "STATE <clock hex> <values>" every 100 ms until stdin closes
"""
import json
import random
import sys
import threading
import time

import minidote

C = ("hits", "counter_pn", "t")
S = ("seen", "set_aw", "t")
M = ("title", "register_mv", "t")


def writer(path, peer):
    r = minidote.Replica(path)
    if peer != "-":
        r.connect(peer)
    i = 0
    while True:
        r.update_objects([(C, "increment", 1), (S, "add", i)])
        print(f"ACK {i}", flush=True)
        i += 1


def try_open(path):
    try:
        minidote.Replica(path)
        print("OPENED", flush=True)
    except minidote.StorageError as e:
        print(f"STORAGE_ERROR {e}", flush=True)


def cluster(path, seed, port, seconds, peers):
    rnd = random.Random(int(seed))
    r = minidote.Replica(path, snapshot_every=20)
    r.listen(f"127.0.0.1:{port}")
    addrs = [f"127.0.0.1:{p}" for p in peers]
    for a in addrs:
        r.connect(a)
    linked = set(addrs)
    end = time.monotonic() + float(seconds)
    while time.monotonic() < end:
        x = rnd.random()
        if x < 0.6:
            r.update_objects([(C, "increment", rnd.randint(1, 3)), (S, "add", rnd.randint(0, 30))])
        elif x < 0.75:
            r.update_objects([(S, "remove", rnd.randint(0, 30)), (M, "assign", f"{r.id}:{rnd.random():.3f}")])
        elif x < 0.85 and linked:
            a = rnd.choice(sorted(linked))
            r.disconnect(a)
            linked.discard(a)
        elif addrs:
            a = rnd.choice(addrs)
            if a not in linked:
                r.connect(a)
                linked.add(a)
        time.sleep(rnd.random() * 0.01)
    for a in addrs:
        if a not in linked:
            r.connect(a)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        values, clock = r.read_objects([C, S, M])
        print(f"STATE {clock.to_bytes().hex()} {json.dumps(values, sort_keys=True)}", flush=True)
        time.sleep(0.1)
    r.close()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "writer":
        writer(*args)
    elif mode == "try_open":
        try_open(*args)
    elif mode == "cluster":
        cluster(args[0], args[1], args[2], args[3], args[4:])
    else:
        raise SystemExit(f"unknown mode {mode}")
