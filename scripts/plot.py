#!/usr/bin/env python3
"""Draws a benchmark table as an SVG chart (matplotlib).

The benchmark scripts print Markdown tables (the ones BENCHMARKS.md
records); this reads one of them and draws it, so a chart always shows
exactly the numbers of the table beside it.

    plot.py bars  TABLE OUT.svg [--after HEADING] [--title T] [--unit U] [--log] [--skip COL,COL]
    plot.py lines TABLE OUT.svg --x COL --y COL --series COL [--after HEADING] [--title T] [--log]

TABLE is a file holding Markdown; the first table in it is drawn, or the
first after a line that contains HEADING. `bars`: one group per row (the
first column names it), one bar per other column (a library), columns whose
header is in --skip (or starts with "ratio" or contains "÷") left out.
`lines`: one line per distinct value of --series, --y against --x.

A cell is read as a number in any of the forms the scripts print: `12,732,607`,
`1.59×`, `26`, `0.61`, `445.0 ms (2.25 M/s)` (the rate in brackets), `8 k/s`,
`48 k/s`, `3.2 MiB`; `—` and empty cells are gaps.
"""

import argparse
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SUFFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def number(cell):
    """The number a table cell shows, or None."""
    cell = cell.strip().strip("*`")
    if not cell or cell in ("—", "-", "n/a"):
        return None
    m = re.search(r"\(([\d.,]+)\s*([kKMG]?)/s\)", cell)
    if m:
        return float(m.group(1).replace(",", "")) * SUFFIX[m.group(2)]
    m = re.match(r"^([\d.,]+)\s*([kKMG]?)(?:/s|×|x| ?ms| ?s| ?MiB| ?KB| ?B| ?%|\b)", cell)
    if not m:
        return None
    try:
        return float(m.group(1).replace(",", "")) * SUFFIX[m.group(2)]
    except ValueError:
        return None


def read_table(path, after=None):
    """The header and rows of the first Markdown table (after `after`)."""
    lines = open(path, encoding="utf-8").read().splitlines()
    start = 0
    if after is not None:
        hits = [i for i, ln in enumerate(lines) if after in ln]
        if not hits:
            sys.exit(f"plot.py: no line containing {after!r} in {path}")
        start = hits[0]
    rows = []
    for ln in lines[start:]:
        if ln.startswith("|"):
            cells = [c.strip() for c in ln.strip().strip("|").split("|")]
            if all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                continue
            rows.append(cells)
        elif rows:
            break
    if len(rows) < 2:
        sys.exit(f"plot.py: no table in {path}" + (f" after {after!r}" if after else ""))
    return rows[0], rows[1:]


def save(fig, out):
    """SVG (or PNG, to look at) with no date in it, so a redraw of the
    same table changes nothing."""
    if out.endswith(".png"):
        fig.savefig(out, format="png")
    else:
        fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)


def skipped(header, skip):
    h = header.lower()
    return header in skip or h.startswith("ratio") or "÷" in h


def bars(args):
    header, rows = read_table(args.table, args.after)
    skip = set(filter(None, (args.skip or "").split(",")))
    cols = [i for i, h in enumerate(header) if i > 0 and not skipped(h, skip)]
    groups = [r[0] for r in rows]
    n = len(cols)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.22 * n * len(groups)))
    for k, c in enumerate(cols):
        ys = [i + (k - (n - 1) / 2) * height for i in range(len(groups))]
        vals = [number(r[c]) if c < len(r) else None for r in rows]
        ax.barh([y for y, v in zip(ys, vals) if v is not None], [v for v in vals if v is not None],
                height=height, label=header[c])
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels([g if len(g) <= 64 else g[:62] + "…" for g in groups], fontsize=8)
    ax.invert_yaxis()
    if args.log:
        ax.set_xscale("log")
    ax.set_xlabel(args.unit or "")
    ax.set_title(args.title or "", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save(fig, args.out)


def lines(args):
    header, rows = read_table(args.table, args.after)
    idx = {h: i for i, h in enumerate(header)}
    for col in (args.x, args.y, args.series):
        if col not in idx:
            sys.exit(f"plot.py: no column {col!r} in {header}")
    series = {}
    for r in rows:
        x, y = number(r[idx[args.x]]), number(r[idx[args.y]])
        if x is not None and y is not None:
            series.setdefault(r[idx[args.series]], []).append((x, y))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, pts in series.items():
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name)
    if args.log:
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel(args.x)
    ax.set_ylabel(args.y)
    ax.set_title(args.title or "", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save(fig, args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["bars", "lines"])
    p.add_argument("table")
    p.add_argument("out")
    p.add_argument("--after")
    p.add_argument("--title")
    p.add_argument("--unit")
    p.add_argument("--log", action="store_true")
    p.add_argument("--skip")
    p.add_argument("--x")
    p.add_argument("--y")
    p.add_argument("--series")
    args = p.parse_args()
    # Reproducible SVGs: no timestamps, fixed ids.
    plt.rcParams["svg.hashsalt"] = "minidote"
    plt.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["svg.hashsalt"] = "minidote"
    (bars if args.kind == "bars" else lines)(args)


if __name__ == "__main__":
    main()
