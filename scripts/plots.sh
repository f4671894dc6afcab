#!/usr/bin/env bash
# Draws the charts of BENCHMARKS.md into docs/ (scripts/plot.py, matplotlib)
# from the tables recorded there, so each chart shows exactly the numbers
# of the table beside it. Every bench target runs it after its run; the
# tables `make bench` writes are found by the lines it prints before them,
# the others by a `<!-- chart: NAME -->` line just above the table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
"$PY" -c "import matplotlib" 2>/dev/null || "$PY" -m pip install -q "matplotlib>=3.8"
B=BENCHMARKS.md
plot() { "$PY" scripts/plot.py "$@"; }
plot bars "$B" docs/bench-native.svg --after "Ops per workload:" --log --unit "ops/s (log scale)" \
  --title "Native throughput per library and workload (make bench)"
plot bars "$B" docs/bench-sizes.svg --after "Encoded bytes of one op in its own transaction" --unit "bytes" \
  --title "Bytes of one op in its own transaction, as shipped to a peer (W6)"
plot bars "$B" docs/bench-catchup.svg --after "### W4, catch-up" --skip "(a) effects: bytes,time,(b) snapshot: bytes" \
  --unit "bytes per op" --title "Catch-up of a replica 1M ops behind: bytes per op shipped (W4)"
plot bars "$B" docs/bench-node.svg --after "<!-- chart: bench-node -->" --log --unit "ops/s (log scale)" \
  --title "npm package in Node, side by side (make bench-wasm)"
plot bars "$B" docs/bench-chromium.svg --after "<!-- chart: bench-chromium -->" --log --unit "ops/s (log scale)" \
  --title "npm package in Chromium, side by side (make bench-wasm)"
plot bars "$B" docs/bench-python.svg --after "<!-- chart: bench-python -->" --log --unit "ops/s (log scale)" \
  --title "Python package, side by side (make bench-python)"
plot lines "$B" docs/bench-relay.svg --after "<!-- chart: bench-relay -->" --x "offered deliveries/s" --y "p99 ms" \
  --series relay --log --title "Relay p99 latency against load, 100 clients in one room (make bench-relay)"
echo "plots: docs/bench-*.svg"
