#!/usr/bin/env python3
"""plot_training.py: draws attention-train's --log files as an SVG loss curve. Standard library only.

    python3 Benchmarks/training/plot_training.py f32=run-f32.jsonl bf16=run-bf16.jsonl -o docs/training_loss.svg

Each argument is LABEL=FILE, one JSON object per step (`step`, `loss`, and `eval_loss` on
evaluation steps). Drawn per run: the training loss (thin), its moving average over --smooth
steps (solid) and the held-out loss (dots). --title names the run.
"""
from __future__ import annotations

import argparse
import json
import math
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 900, 520
LEFT, RIGHT, TOP, BOTTOM = 80, 860, 70, 460
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]


def read_log(path: str) -> list[dict]:
    with open(path) as file:
        return [json.loads(line) for line in file if line.strip()]


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FILE")
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--title", default="attention-train")
    parser.add_argument("--smooth", type=int, default=20)
    args = parser.parse_args()
    runs = []
    for spec in args.runs:
        label, _, path = spec.partition("=")
        runs.append((label, read_log(path)))
    steps = max(record["step"] for _, log in runs for record in log) + 1
    losses = [record["loss"] for _, log in runs for record in log]
    low, high = min(losses), max(losses)
    low, high = low - 0.05 * (high - low), high + 0.05 * (high - low)

    def x(step: float) -> float:
        return LEFT + (RIGHT - LEFT) * step / max(steps - 1, 1)

    def y(loss: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (loss - low) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{WIDTH / 2}" y="30" text-anchor="middle" font-size="15">{escape(args.title)}</text>',
             f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="black"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="black"/>',
             f'<text x="{(LEFT + RIGHT) / 2}" y="{BOTTOM + 40}" text-anchor="middle">step</text>',
             f'<text x="20" y="{(TOP + BOTTOM) / 2}" text-anchor="middle" transform="rotate(-90 20 {(TOP + BOTTOM) / 2})">'
             'cross-entropy (nats per token)</text>']
    for tick in nice_ticks(0, steps - 1):
        parts.append(f'<line x1="{x(tick):.1f}" y1="{BOTTOM}" x2="{x(tick):.1f}" y2="{BOTTOM + 5}" stroke="black"/>')
        parts.append(f'<text x="{x(tick):.1f}" y="{BOTTOM + 20}" text-anchor="middle">{tick:g}</text>')
    for tick in nice_ticks(low, high):
        parts.append(f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{RIGHT}" y2="{y(tick):.1f}" stroke="#ddd"/>')
        parts.append(f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for index, (label, log) in enumerate(runs):
        color = COLORS[index % len(COLORS)]
        points = [(record["step"], record["loss"]) for record in log]
        raw = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in points)
        smooth = moving_average([v for _, v in points], args.smooth)
        line = " ".join(f"{x(s):.1f},{y(v):.1f}" for (s, _), v in zip(points, smooth))
        parts.append(f'<polyline points="{raw}" fill="none" stroke="{color}" stroke-opacity="0.25"/>')
        parts.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        for record in log:
            if "eval_loss" in record:
                parts.append(f'<circle cx="{x(record["step"]):.1f}" cy="{y(record["eval_loss"]):.1f}" r="4" fill="{color}"/>')
        last = smooth[-1]
        legend_y = TOP + 10 + 18 * index
        parts.append(f'<line x1="{RIGHT - 250}" y1="{legend_y}" x2="{RIGHT - 225}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>')
        parts.append(f'<text x="{RIGHT - 218}" y="{legend_y + 4}">{escape(label)}: {last:.3f} at the end '
                     f'(mean of {args.smooth}); dots: held out</text>')
    parts.append("</svg>")
    with open(args.output, "w") as file:
        file.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
