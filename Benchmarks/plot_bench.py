#!/usr/bin/env python3
"""plot_bench.py: draws attn_bench's CSV as an SVG chart: time and extra memory against sequence
length, fused vs unfused. Standard library only.

  build/attn_bench --format csv > bench.csv
  python3 Benchmarks/plot_bench.py bench.csv -o docs/bench.svg     (or read the CSV on stdin)
  python3 Benchmarks/plot_bench.py --backward bench.csv -o docs/bench_backward.svg
                                          (the backward table: attn_backward vs attn_backward_unfused)

Left panel: median time per call (log scale) for each (head dim, causal) of the chosen thread
count, fused solid and unfused dashed, the fused speed-up printed at the longest length. Right
panel: each path's extra memory (its workspace, log scale). The title names the CPU (from
/proc/cpuinfo), the core count and the date; --title-note adds to it.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import platform
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 1100, 560
PANEL_TOP, PANEL_BOTTOM = 92, 470
LEFT_PANEL = (80, 560)  # x extent of the time panel's plot area
RIGHT_PANEL = (700, 960)
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def read_rows(stream, backward: bool = False) -> list[dict]:
    """The forward table's rows, or (backward) the backward table's, as the same fields: the
    backward's attn_backward time as fused_ms, attn_backward_unfused's as unfused_ms (NaN where it
    was not timed)."""
    lines = [line for line in stream if line.strip() and not line.startswith("#")]
    if backward:
        start = next((i for i, line in enumerate(lines) if line.startswith("backward_length")), len(lines))
        lines = lines[start:]
    keys = ("backward_length", "backward_ms", "unfused_backward_ms") if backward else ("length", "fused_ms", "unfused_ms")
    rows = []
    for r in csv.DictReader(lines):
        try:
            rows.append({
                "length": int(r[keys[0]]), "dim": int(r["dim"]), "causal": int(r["causal"]),
                "threads": int(r["threads"]), "fused_ms": float(r[keys[1]]),
                "unfused_ms": float(r[keys[2]]), "fused_mb": float(r["fused_mem_mb"]),
                "unfused_mb": float(r["unfused_mem_mb"]),
            })
        except (KeyError, ValueError):
            continue
    return rows


class LogAxis:
    """Maps a positive value to a pixel on a log scale between two pixels."""

    def __init__(self, lo, hi, p0, p1, pad=0.0):
        self.lo, self.hi = math.log10(lo) - pad, math.log10(hi) + pad
        if self.hi - self.lo < 1e-9:
            self.lo, self.hi = self.lo - 0.5, self.hi + 0.5
        self.p0, self.p1 = p0, p1

    def __call__(self, value):
        return self.p0 + (math.log10(value) - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def fmt_ms(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def fmt_mb(v: float) -> str:
    if v >= 1024:
        return f"{v / 1024:.3g} GB"
    if v < 1:
        return f"{v * 1024:.3g} KB"
    return f"{v:.3g} MB"


def decade_ticks(axis: LogAxis, base2: bool = False):
    """(value, major) for 1-2-5 ticks inside the axis range; with base2, powers of two (of MB, so
    that the labels are whole KB, MB or GB), every 1, 2 or 4 octaves so there are at most 9."""
    ticks = []
    if base2:
        lo, hi = axis.lo / math.log10(2), axis.hi / math.log10(2)
        step = 1
        while (hi - lo) / step > 8:
            step *= 2
        for e in range(math.ceil(lo), math.floor(hi) + 1):
            if e % step == 0:
                ticks.append((2.0 ** e, (e % 10) == 0))
        return ticks
    for e in range(math.floor(axis.lo), math.ceil(axis.hi) + 1):
        for m in (1, 2, 5):
            v = m * 10.0 ** e
            if axis.lo - 1e-9 <= math.log10(v) <= axis.hi + 1e-9:
                ticks.append((v, m == 1))
    return ticks


def spread(labels, gap=13.0):
    """Labels [(y, colour, text)] sorted by y and pushed apart so that none overlaps the next."""
    out = []
    for y, color, text in sorted(labels):
        if out and y - out[-1][0] < gap:
            y = out[-1][0] + gap
        out.append((y, color, text))
    return out


class Svg:
    def __init__(self):
        self.parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">',
            f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        ]

    def add(self, text):
        self.parts.append(text)

    def text(self, x, y, s, size=12, anchor="start", weight="normal", color="#222", rotate=None):
        transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
                 f'font-weight="{weight}" fill="{color}"{transform}>{escape(s)}</text>')

    def line(self, x0, y0, x1, y1, color="#000", width=1.0, dash=None):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        self.add(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{color}" '
                 f'stroke-width="{width}"{d}/>')

    def polyline(self, points, color, width=2.2, dash=None, marker="circle"):
        d = f' stroke-dasharray="{dash}"' if dash else ""
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.add(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}" '
                 f'stroke-linejoin="round"{d}/>')
        for x, y in points:
            if marker == "circle":
                self.add(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}"/>')
            else:
                self.add(f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="white" '
                         f'stroke="{color}" stroke-width="1.8"/>')

    def render(self):
        return "\n".join(self.parts + ["</svg>"]) + "\n"


def panel(svg, x_range, lengths, ylo, yhi, yfmt, ylabel, title, base2=False):
    """Frame, grid and axes of one panel; returns (x axis, y axis)."""
    x0, x1 = x_range
    xa = LogAxis(min(lengths), max(lengths), x0 + 18, x1 - 18)
    ya = LogAxis(ylo, yhi, PANEL_BOTTOM, PANEL_TOP, pad=0.08)
    svg.add(f'<rect x="{x0}" y="{PANEL_TOP}" width="{x1 - x0}" height="{PANEL_BOTTOM - PANEL_TOP}" '
            f'fill="#fbfbfb" stroke="#888"/>')
    for v, major in decade_ticks(ya, base2):
        y = ya(v)
        svg.line(x0, y, x1, y, color="#d9d9d9" if major else "#eeeeee", width=1)
        svg.line(x0 - 5, y, x0, y, color="#555")
        svg.text(x0 - 8, y + 4, yfmt(v), size=11, anchor="end", color="#333" if major else "#777")
    for L in lengths:
        x = xa(L)
        svg.line(x, PANEL_TOP, x, PANEL_BOTTOM, color="#eeeeee")
        svg.line(x, PANEL_BOTTOM, x, PANEL_BOTTOM + 5, color="#555")
        svg.text(x, PANEL_BOTTOM + 19, str(L), size=11, anchor="middle")
    svg.text((x0 + x1) / 2, PANEL_BOTTOM + 38, "sequence length L (log scale)", size=12, anchor="middle")
    svg.text(x0 - 62, (PANEL_TOP + PANEL_BOTTOM) / 2, ylabel, size=12, anchor="middle", rotate=-90)
    svg.text((x0 + x1) / 2, PANEL_TOP - 10, title, size=14, anchor="middle", weight="bold")
    return xa, ya


def draw(rows, threads, title_note, date, machine, stage="forward") -> str:
    rows = [r for r in rows if r["threads"] == threads]
    lengths = sorted({r["length"] for r in rows})
    series = sorted({(r["dim"], r["causal"]) for r in rows})
    svg = Svg()
    heading = f"Attention {stage}, fused vs unfused: B = 1, H = 8, fp32, {threads} thread{'s' if threads > 1 else ''}"
    svg.text(WIDTH / 2, 30, heading, size=18, anchor="middle", weight="bold")
    sub = f"{machine} · {date}" + (f" · {title_note}" if title_note else "")
    svg.text(WIDTH / 2, 52, sub, size=13, anchor="middle", color="#444")

    # Time panel.
    times = [r[k] for r in rows for k in ("fused_ms", "unfused_ms") if r[k] > 0]
    xa, ya = panel(svg, LEFT_PANEL, lengths, min(times), max(times), fmt_ms, "time per call (log scale)",
                   "Time (median)")
    speedups = []
    for i, (dim, causal) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        pts = sorted((r["length"], r) for r in rows if (r["dim"], r["causal"]) == (dim, causal))
        svg.polyline([(xa(L), ya(r["fused_ms"])) for L, r in pts], color)
        unf = [(xa(L), ya(r["unfused_ms"])) for L, r in pts if r["unfused_ms"] > 0]
        if unf:
            svg.polyline(unf, color, dash="7 5", marker="square", width=1.8)
        timed = [r for _, r in pts if r["unfused_ms"] > 0]
        if timed:  # at the longest length both paths were timed
            speedups.append((ya(timed[-1]["fused_ms"]), color,
                             f"{timed[-1]['unfused_ms'] / timed[-1]['fused_ms']:.2f}×"))
    for y, color, label in spread(speedups):
        svg.text(LEFT_PANEL[1] + 6, y + 4, label, size=11, color=color, weight="bold")
    svg.text(LEFT_PANEL[1] + 6, PANEL_TOP - 10, "speed-up", size=10, color="#555")
    both = [r["length"] for r in rows if r["unfused_ms"] > 0]
    svg.text(LEFT_PANEL[1] + 6, PANEL_TOP + 2, f"at L={max(both) if both else lengths[-1]}", size=10, color="#555")

    # Memory panel: the workspace does not depend on the mask, so one series per head dim.
    mem_series = sorted({r["dim"] for r in rows})
    end_labels = {}  # y pixel at the longest length -> (colour, text); identical lines share a label
    mems = [r[k] for r in rows for k in ("fused_mb", "unfused_mb") if r[k] > 0]
    xm, ym = panel(svg, RIGHT_PANEL, lengths, min(mems), max(mems), fmt_mb, "extra memory (log scale)",
                   "Extra memory (workspace)", base2=True)
    for dim in mem_series:
        i = next(j for j, s in enumerate(series) if s[0] == dim)
        color = COLORS[i % len(COLORS)]
        pts = {}
        for r in rows:
            if r["dim"] == dim:
                pts.setdefault(r["length"], r)
        pts = sorted(pts.items())
        svg.polyline([(xm(L), ym(r["fused_mb"])) for L, r in pts if r["fused_mb"] > 0], color)
        svg.polyline([(xm(L), ym(r["unfused_mb"])) for L, r in pts if r["unfused_mb"] > 0], color,
                     dash="7 5", marker="square", width=1.8)
        last = pts[-1][1]
        for key, name in (("fused_mb", "fused"), ("unfused_mb", "unfused")):
            if last[key] > 0:
                y = round(ym(last[key]))
                previous = end_labels.get(y)
                end_labels[y] = ("#333" if previous else color,
                                 f"{previous[1]},{dim}" if previous else f"{name} D={dim}")
    for y, color, label in spread([(y, c, t) for y, (c, t) in end_labels.items()]):
        svg.text(RIGHT_PANEL[1] + 6, y + 4, label, size=11, color=color, weight="bold")

    # Legend, under the panels: colours are (D, causal), line style the path.
    y = HEIGHT - 30
    x = 80
    svg.line(x, y - 4, x + 34, y - 4, color="#333", width=2.2)
    svg.add(f'<circle cx="{x + 17}" cy="{y - 4}" r="3.5" fill="#333"/>')
    svg.text(x + 40, y, "fused", size=12)
    x += 95
    svg.line(x, y - 4, x + 34, y - 4, color="#333", width=1.8, dash="7 5")
    svg.add(f'<rect x="{x + 13.5}" y="{y - 7.5}" width="7" height="7" fill="white" stroke="#333" stroke-width="1.8"/>')
    svg.text(x + 40, y, "unfused", size=12)
    x += 115
    for i, (dim, causal) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        svg.add(f'<rect x="{x}" y="{y - 11}" width="14" height="14" fill="{color}"/>')
        label = f"D = {dim}, {'causal' if causal else 'no mask'}"
        svg.text(x + 20, y, label, size=12)
        x += 30 + 7 * len(label)
    return svg.render()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="attn_bench CSV -> SVG chart (time and memory vs length)")
    ap.add_argument("csv", nargs="?", help="attn_bench --format csv output (default: stdin)")
    ap.add_argument("-o", "--output", default="docs/bench.svg")
    ap.add_argument("--threads", type=int, help="thread count to plot (default: the largest in the CSV)")
    ap.add_argument("--title-note", default="", help="extra text for the subtitle, e.g. the ISA")
    ap.add_argument("--date", default=datetime.date.today().isoformat())
    ap.add_argument("--machine", help="machine description (default: CPU model and core count)")
    ap.add_argument("--backward", action="store_true", help="draw the backward table (attn_bench --backward)")
    args = ap.parse_args(argv)

    if args.csv:
        with open(args.csv) as f:
            rows = read_rows(f, args.backward)
    else:
        rows = read_rows(sys.stdin, args.backward)
    if not rows:
        print("plot_bench: no attn_bench CSV rows in the input", file=sys.stderr)
        return 1
    threads = args.threads or max(r["threads"] for r in rows)
    if not any(r["threads"] == threads for r in rows):
        print(f"plot_bench: no rows with {threads} thread(s)", file=sys.stderr)
        return 1
    machine = args.machine or f"{cpu_name()}, {os.cpu_count()} cores"
    svg = draw(rows, threads, args.title_note, args.date, machine, "backward" if args.backward else "forward")
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(svg)
    print(f"plot_bench: wrote {args.output} ({len([r for r in rows if r['threads'] == threads])} rows, "
          f"{threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
