#!/usr/bin/env python3
"""Sentence embeddings with all-MiniLM-L6-v2: attention-embed (Swift) against sentence-transformers
on PyTorch, side by side in one run.

    python bench_minilm.py --model models/all-MiniLM-L6-v2 --embed .build/release/attention-embed

(`make bench-minilm` builds attention-embed in release mode, installs what is missing in
~/.cache/swift-attention-venv and runs this.) Two workloads: a batch of 64 sentences of mixed
lengths (four of them longer than 256 tokens, so cut to max_seq_length) and one short sentence.
Each side runs in its own process with its thread count fixed; the two alternate, round by round.
In each process the model is loaded, the whole input encoded once as a warm-up, then encoded
`--repeat` times, and the median of those encode times is the round's result; process start and
model loading are never timed. PyTorch runs `SentenceTransformer.encode(sentences,
batch_size=32)` (which tokenizes, sorts by length, pads each batch, pools and normalises);
attention-embed runs `--repeat`, which tokenizes and encodes packed batches without padding.
Reported: the median over rounds of each side's median, tokens per second (the real tokens,
[CLS] and [SEP] included, after truncation) and each process's peak resident memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "the a of and to in is was for on with as by at from that this it an be are were which or "
    "model attention sentence embedding vector token layer network training data language query "
    "key value matrix kernel memory thread cache batch length small large fast slow exact result "
    "river mountain city morning evening music garden window library coffee journey ocean winter "
    "quickly carefully together always never often rarely almost nearly simply clearly quietly"
).split()


def sentences_mixed(count: int = 64, seed: int = 7) -> list[str]:
    """Sentences of 4 to 60 words, and four of about 300 words (over 256 tokens)."""
    rng = random.Random(seed)
    result = []
    for index in range(count):
        if index % 16 == 5:
            length = rng.randint(280, 340)
        elif index % 3 == 0:
            length = rng.randint(25, 60)
        else:
            length = rng.randint(4, 18)
        words = [rng.choice(WORDS) for _ in range(length)]
        words[0] = words[0].capitalize()
        result.append(" ".join(words) + rng.choice([".", "!", "?", "."]))
    return result


WORKLOADS = {
    "batch": ("batch of 64, mixed lengths", sentences_mixed()),
    "short": ("one short sentence", ["A man is eating a piece of bread."]),
}


def peak_megabytes(rusage) -> float:
    # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
    return rusage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Runs a worker to completion: its stderr and its peak resident memory in MB."""
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        _, status, rusage = os.wait4(process.pid, 0)  # reaped here, so its own rusage
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed ({process.returncode}):\n{text}")
    return text, peak_megabytes(rusage)


def torch_worker(model: str, input_path: str, threads: int, repeats: int) -> None:
    """Runs in its own process: loads the model, warms up, prints the median encode time."""
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from sentence_transformers import SentenceTransformer
    sentences = json.loads(Path(input_path).read_text())
    st = SentenceTransformer(model, device="cpu")
    st.encode(sentences, batch_size=32, show_progress_bar=False)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        st.encode(sentences, batch_size=32, show_progress_bar=False)
        times.append((time.perf_counter() - start) * 1e3)
    print(f"median encode time: {statistics.median(times):.3f} ms", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--embed", required=True, help="the attention-embed executable (release build)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=0, help="encodes per process (default: 10, 100 for one sentence)")
    parser.add_argument("--batch-size", type=int, default=32, help="attention-embed's --batch-size (32 as PyTorch's)")
    parser.add_argument("--workloads", default="batch,short", help="which of: batch, short (default both)")
    parser.add_argument("--torch-worker", nargs=2, metavar=("INPUT", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.model, args.torch_worker[0], args.threads, int(args.torch_worker[1]))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false")
    pattern = re.compile(r"median encode time: ([0-9.]+) ms")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for key in args.workloads.split(","):
            if key not in WORKLOADS:
                raise SystemExit(f"unknown workload {key!r}: choose from {', '.join(WORKLOADS)}")
            name, sentences = WORKLOADS[key]
            input_path = Path(folder) / "input.json"
            input_path.write_text(json.dumps(sentences))
            repeats = args.repeat or (100 if len(sentences) == 1 else 10)
            swift_command = [args.embed, "--model", args.model, "--input", str(input_path), "--threads",
                             str(args.threads), "--batch-size", str(args.batch_size), "--repeat", str(repeats)]
            torch_command = [sys.executable, __file__, "--model", args.model, "--embed", args.embed, "--threads",
                             str(args.threads), "--torch-worker", str(input_path), str(repeats)]
            swift_times, torch_times, swift_memory, torch_memory = [], [], [], []
            tokens = 0
            for round_index in range(args.rounds):
                for side in (["swift", "torch"] if round_index % 2 == 0 else ["torch", "swift"]):
                    command = swift_command if side == "swift" else torch_command
                    stderr, memory = run(command, env)
                    match = pattern.search(stderr)
                    if not match:
                        raise SystemExit(f"no 'median encode time' from {side}:\n{stderr}")
                    (swift_times if side == "swift" else torch_times).append(float(match.group(1)))
                    (swift_memory if side == "swift" else torch_memory).append(memory)
                    if side == "swift":
                        tokens = int(re.search(r"tokens: (\d+)", stderr).group(1))
                print(f"  {name}, round {round_index + 1}: attention-embed {swift_times[-1]:.2f} ms, "
                      f"sentence-transformers {torch_times[-1]:.2f} ms", file=sys.stderr)
            swift_ms, torch_ms = statistics.median(swift_times), statistics.median(torch_times)
            rows.append((name, len(sentences), tokens, swift_ms, torch_ms, max(swift_memory), max(torch_memory),
                         sorted(t / s for s, t in zip(swift_times, torch_times))))

    import importlib.metadata as metadata
    print(f"\n{args.threads} threads, {args.rounds} rounds alternating, medians; "
          f"sentence-transformers {metadata.version('sentence-transformers')}, torch {metadata.version('torch')}\n")
    print("| workload | sentences | tokens | attention-embed ms | sentence-transformers ms | speed-up "
          "| attention-embed tokens/s | PyTorch tokens/s | attention-embed peak MB | PyTorch peak MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, count, tokens, swift_ms, torch_ms, swift_mb, torch_mb, ratios in rows:
        print(f"| {name} | {count} | {tokens} | {swift_ms:.2f} | {torch_ms:.2f} | {torch_ms / swift_ms:.2f}× "
              f"| {tokens / swift_ms * 1e3:,.0f} | {tokens / torch_ms * 1e3:,.0f} | {swift_mb:.0f} | {torch_mb:.0f} |")
    print("\nper-round speed-ups (sentence-transformers ms / attention-embed ms, same round):")
    for name, *_, ratios in rows:
        print(f"  {name}: " + ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
