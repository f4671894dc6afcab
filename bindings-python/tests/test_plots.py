"""The benchmark charts (scripts/plots.sh, scripts/plot.py) still draw from
the tables BENCHMARKS.md records: every chart's table is found, every
library of it is drawn, and a cell in each printed form reads as the number
it shows."""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import plot  # noqa: E402


def test_cells_read_as_the_numbers_they_show():
    assert plot.number("12,732,607") == 12732607
    assert plot.number("1.59×") == 1.59
    assert plot.number("445.0 ms (2.25 M/s)") == 2.25e6
    assert plot.number("1.28 s (8 k/s)") == 8000
    assert plot.number("0.61") == 0.61
    assert plot.number("57 %") == 57
    assert plot.number("—") is None
    assert plot.number("yes") is None


def test_every_chart_is_drawn_from_its_table(tmp_path):
    env = dict(os.environ, PY=sys.executable)
    out = subprocess.run(["bash", "-c", f"cp -r {ROOT}/scripts {ROOT}/BENCHMARKS.md {tmp_path}/ && mkdir {tmp_path}/docs"
                          f" && cd {tmp_path} && scripts/plots.sh"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    charts = {
        "bench-native.svg": ["minidote", "automerge", "yrs", "loro"],
        "bench-sizes.svg": ["minidote", "loro"],
        "bench-catchup.svg": ["bytes/op"],
        "bench-node.svg": ["minidote", "yjs", "automerge", "loro"],
        "bench-chromium.svg": ["minidote", "yjs", "automerge", "loro"],
        "bench-python.svg": ["minidote", "pycrdt (Yrs)", "loro"],
        "bench-relay.svg": ["minidote-relay", "y-websocket (Node)"],
    }
    for name, labels in charts.items():
        svg = open(tmp_path / "docs" / name, encoding="utf-8").read()
        for label in labels:
            assert label in svg, (name, label)
        assert "<dc:date>" not in svg, "no date: a redraw of the same table changes nothing"
