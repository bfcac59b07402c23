#!/usr/bin/env python3
"""A training step of a TransformerEncoder: swift-attention (TrainingStepTiming) against PyTorch,
side by side in one run.

    python bench_training.py --timing Benchmarks/.build/release/TrainingStepTiming

(`make bench-training` builds the timing tool in release mode, installs torch in
~/.cache/swift-attention-venv when missing and runs this.) The model: 4 encoder layers
(d_model 256, 4 heads, feed-forward 1024, relu, post-norm, batch_first, no dropout), float32, a
batch of 8 sequences of 256 tokens. A step is the forward pass, the mean squared error against a
fixed target, the backward pass and an AdamW update (torch: `loss.backward()`, `opt.step()`,
`opt.zero_grad()`). Each side runs in its own process with its thread count fixed, holding the
machine-wide benchmark lock; the two alternate, round by round. Each process warms up with two
steps, then times `--steps` steps; the round's result is their median. Reported: the median over
rounds of each side's median, and the ratio.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
import time

LOCK = "/tmp/swift-attention-bench.lock"
SHAPE = {"layers": 4, "d_model": 256, "heads": 4, "ff": 1024, "batch": 8, "length": 256}


def run(command: list[str], env: dict[str, str]) -> dict:
    """Runs a worker holding the machine-wide benchmark lock; returns its JSON line."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def torch_worker(threads: int, steps: int) -> None:
    """Runs in its own process: builds the encoder, warms up, prints the median step in ms."""
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    s = SHAPE
    layer = torch.nn.TransformerEncoderLayer(
        s["d_model"], s["heads"], dim_feedforward=s["ff"], dropout=0.0, batch_first=True)
    encoder = torch.nn.TransformerEncoder(layer, s["layers"], enable_nested_tensor=False)
    x = torch.randn(s["batch"], s["length"], s["d_model"])
    target = torch.randn_like(x)
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)
    times, forwards = [], []
    for index in range(steps + 2):
        start = time.perf_counter()
        out = encoder(x)
        middle = time.perf_counter()
        loss = torch.nn.functional.mse_loss(out, target)
        loss.backward()
        opt.step()
        opt.zero_grad()
        end = time.perf_counter()
        if index >= 2:
            times.append(1e3 * (end - start))
            forwards.append(1e3 * (middle - start))
    print(json.dumps({"ms": statistics.median(times), "forward_ms": statistics.median(forwards)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timing", help="the TrainingStepTiming executable")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.threads, args.steps)
        return
    if not args.timing:
        parser.error("--timing is required")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    swift_command = [args.timing, "--json", "--threads", str(args.threads), "--steps", str(args.steps)]
    torch_command = [sys.executable, __file__, "--torch-worker", "--threads", str(args.threads), "--steps", str(args.steps)]
    rounds = {"swift-attention": [], "torch": []}
    for index in range(args.rounds):
        for name, command in (("swift-attention", swift_command), ("torch", torch_command)):
            rounds[name].append(run(command, env))
        print(f"round {index + 1}: " + ", ".join(f"{n} {r[-1]['ms']:.1f} ms" for n, r in rounds.items()), file=sys.stderr)
    ours = statistics.median(r["ms"] for r in rounds["swift-attention"])
    theirs = statistics.median(r["ms"] for r in rounds["torch"])
    ours_forward = statistics.median(r["forward_ms"] for r in rounds["swift-attention"])
    theirs_forward = statistics.median(r["forward_ms"] for r in rounds["torch"])
    print(f"TransformerEncoder training step ({SHAPE['layers']} layers, d_model {SHAPE['d_model']}, "
          f"{SHAPE['heads']} heads, ff {SHAPE['ff']}, batch {SHAPE['batch']} x {SHAPE['length']}, f32, "
          f"{args.threads} threads), median of {args.rounds} rounds of {args.steps} steps:")
    print(f"  swift-attention {ours:8.1f} ms   (forward {ours_forward:6.1f} ms)")
    print(f"  torch           {theirs:8.1f} ms   (forward {theirs_forward:6.1f} ms)")
    print(f"  speed-up        {theirs / ours:8.2f}x  (forward {theirs_forward / ours_forward:.2f}x)")


if __name__ == "__main__":
    main()
