#!/usr/bin/env python3
"""LlamaForCausalLM training tokens per second: attention-train (Swift) against PyTorch, side by side.

    ~/.cache/swift-attention-venv/bin/python Benchmarks/training/bench_llama_training.py \
        --train .build/release/attention-train

(run it with the venv that has torch, transformers, safetensors and numpy.) The model, by default:
vocabulary 8192, hidden 256, 4 layers, 4 heads of 64 with as many key/value heads, SwiGLU 688
(Llama's rule: int(8 * hidden / 3) rounded up to a multiple of 16, unless --intermediate is given),
untied head, rms_norm_eps 1e-6, rope_theta 10000, float32: 7.4 M parameters. The batch: 8 sequences
of 256 tokens (random ids, fixed seed), a new batch each step. A step is the forward pass, the mean
cross-entropy over all positions, the backward pass, clipping the gradients' norm to 1.0 and an
AdamW update (lr 1e-4, betas 0.9/0.999, eps 1e-8, weight decay 0.01: torch's defaults, passed to
attention-train explicitly); tokens per second = batch * length / the step's time.

The script writes config.json and token-batches.safetensors ((2 + --steps, batch, length + 1)
int64 ids) into a temporary folder. Each side runs in its own process with its thread count fixed,
holding the machine-wide benchmark lock /tmp/swift-attention-bench.lock (so do not wrap this in
flock); the two alternate, round by round, the first to go changing each round:
  - attention-train: `--config --token-batches --output --steps 2+N --threads --log` and the
    optimiser's flags; the round's result is the median of its log's `tokens_per_second` over the
    steps after the first two.
  - PyTorch: transformers' LlamaForCausalLM (its default attention, sdpa) from the same config,
    torch.set_num_threads(threads), set_num_interop_threads(1), use_cache=False; each step
    (forward, cross-entropy, backward, clip_grad_norm_, step, zero_grad) timed with perf_counter;
    the median over the steps after the first two.
With --precision bf16, torch runs its forward pass and loss under torch.autocast("cpu",
dtype=torch.bfloat16) (float32 weights, the backward outside it, as autocast asks) and
attention-train gets `--precision bf16`. Reported: the median over rounds of each side's median,
the ratio, and each process's peak resident memory.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LOCK = "/tmp/swift-attention-bench.lock"
WARMUP = 2
OPTIMISER = {"lr": 1e-4, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}
MAX_GRAD_NORM = 1.0


def intermediate_size(hidden: int) -> int:
    """Llama's feed-forward width: int(8 * hidden / 3) rounded up to a multiple of 16."""
    width = int(8 * hidden / 3)
    return 16 * -(-width // 16)


def llama_config(args: argparse.Namespace) -> dict:
    """config.json in the format transformers 5 saves (rope_parameters), f32, untied."""
    if args.hidden % args.heads:
        raise SystemExit(f"--hidden {args.hidden} is not a multiple of --heads {args.heads}")
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "dtype": "float32",
        "vocab_size": args.vocab, "hidden_size": args.hidden,
        "intermediate_size": args.intermediate or intermediate_size(args.hidden),
        "num_hidden_layers": args.layers, "num_attention_heads": args.heads, "num_key_value_heads": args.heads,
        "head_dim": args.hidden // args.heads, "max_position_embeddings": args.length,
        "rms_norm_eps": 1e-6, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "initializer_range": 0.02, "tie_word_embeddings": False, "use_cache": False,
        "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
    }


def write_token_batches(path: Path, steps: int, batch: int, length: int, vocabulary: int) -> None:
    """`input_ids`, int64 (steps, batch, length + 1), uniform random ids from a fixed seed, as
    safetensors with a sorted header."""
    import numpy as np
    ids = np.random.default_rng(0).integers(0, vocabulary, size=(steps, batch, length + 1), dtype=np.int64)
    data = ids.tobytes()
    header = json.dumps({"input_ids": {"dtype": "I64", "shape": list(ids.shape), "data_offsets": [0, len(data)]}},
                        separators=(",", ":"))
    header += " " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header.encode() + data)


def peak_megabytes(rusage) -> float:
    return rusage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


def run(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Runs a worker holding the machine-wide benchmark lock; returns its standard output and its
    peak resident memory in MB."""
    with open(LOCK, "a") as lock, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env)
        _, status, rusage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{command[0]} failed ({code}):\n{err}")
    return out, peak_megabytes(rusage)


def torch_worker(config_path: str, batches_path: str, threads: int, steps: int, precision: str) -> None:
    """Runs in its own process: builds the model from the config, trains `WARMUP + steps` steps,
    prints the median tokens per second of the steps after the warm-up as a JSON line."""
    import contextlib

    import torch
    import torch.nn.functional as F
    from safetensors.numpy import load_file
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    config = LlamaConfig.from_json_file(config_path)
    model = LlamaForCausalLM(config).float().train()
    ids = torch.from_numpy(load_file(batches_path)["input_ids"])
    total, batch, length = ids.shape[0], ids.shape[1], ids.shape[2] - 1
    if total < WARMUP + steps:
        raise SystemExit(f"{batches_path} has {total} batches, {WARMUP + steps} needed")
    optimizer = torch.optim.AdamW(model.parameters(), **OPTIMISER)
    vocabulary = config.vocab_size
    rates, times = [], []
    for step in range(WARMUP + steps):
        inputs, targets = ids[step, :, :-1], ids[step, :, 1:]
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
        start = time.perf_counter()
        with autocast:
            logits = model(input_ids=inputs, use_cache=False).logits
            loss = F.cross_entropy(logits.reshape(-1, vocabulary), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad()
        seconds = time.perf_counter() - start
        if step >= WARMUP:
            rates.append(batch * length / seconds)
            times.append(1e3 * seconds)
    print(json.dumps({"tokens_per_second": statistics.median(rates), "ms": statistics.median(times),
                      "last_loss": loss.item()}))


def ours_rate(log: Path, steps: int) -> float:
    """The median `tokens_per_second` of attention-train's log over the steps after the warm-up."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    rates = [record["tokens_per_second"] for record in records if record["step"] >= WARMUP]
    if len(rates) != steps:
        raise SystemExit(f"{log}: {len(rates)} steps after the warm-up, {steps} expected")
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", help="the attention-train executable (release build)")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--intermediate", type=int, help="the SwiGLU width (default: Llama's rule from --hidden)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4, help="query heads, and as many key/value heads")
    parser.add_argument("--length", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process, after two warm-up steps")
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                        help="bf16: torch under autocast to bfloat16, attention-train with --precision bf16")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--token-batches", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.config, args.token_batches, args.threads, args.steps, args.precision)
        return
    if not args.train:
        parser.error("--train is required")

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    config = llama_config(args)
    total = WARMUP + args.steps
    results = {"swift": [], "torch": []}
    memory = {"swift": [], "torch": []}
    with tempfile.TemporaryDirectory(prefix="bench-llama-training-") as folder:
        folder = Path(folder)
        config_path, batches_path = folder / "config.json", folder / "token-batches.safetensors"
        config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        write_token_batches(batches_path, total, args.batch, args.length, args.vocab)
        torch_command = [sys.executable, __file__, "--torch-worker", "--config", str(config_path),
                         "--token-batches", str(batches_path), "--threads", str(args.threads),
                         "--steps", str(args.steps), "--precision", args.precision]
        for round_index in range(args.rounds):
            for side in (["swift", "torch"] if round_index % 2 == 0 else ["torch", "swift"]):
                if side == "torch":
                    out, peak = run(torch_command, env)
                    results["torch"].append(json.loads(out.strip().splitlines()[-1])["tokens_per_second"])
                else:
                    log, output = folder / f"log-{round_index}.jsonl", folder / f"output-{round_index}"
                    command = [args.train, "--config", str(config_path), "--token-batches", str(batches_path),
                               "--output", str(output), "--steps", str(total), "--threads", str(args.threads),
                               "--log", str(log), "--learning-rate", str(OPTIMISER["lr"]),
                               "--betas", ",".join(str(beta) for beta in OPTIMISER["betas"]),
                               "--epsilon", str(OPTIMISER["eps"]), "--weight-decay", str(OPTIMISER["weight_decay"]),
                               "--max-grad-norm", str(MAX_GRAD_NORM)]
                    if args.precision == "bf16":
                        command += ["--precision", "bf16"]
                    _, peak = run(command, env)
                    results["swift"].append(ours_rate(log, args.steps))
                memory[side].append(peak)
            print(f"  round {round_index + 1}: attention-train {results['swift'][-1]:.0f} tokens/s, "
                  f"torch {results['torch'][-1]:.0f} tokens/s", file=sys.stderr)

    import importlib.metadata as metadata
    ours, theirs = statistics.median(results["swift"]), statistics.median(results["torch"])
    print(f"\nLlamaForCausalLM training ({args.layers} layers, hidden {config['hidden_size']}, "
          f"{args.heads} heads of {config['head_dim']}, SwiGLU {config['intermediate_size']}, vocabulary "
          f"{args.vocab}, untied, batch {args.batch} x {args.length}, {args.precision}, {args.threads} threads), "
          f"median of {args.rounds} rounds of {args.steps} steps after {WARMUP} warm-up steps; "
          f"torch {metadata.version('torch')}, transformers {metadata.version('transformers')}\n")
    print("| | tokens/s | peak MB |")
    print("|---|---:|---:|")
    print(f"| attention-train | {ours:.0f} | {max(memory['swift']):.0f} |")
    print(f"| torch | {theirs:.0f} | {max(memory['torch']):.0f} |")
    print(f"| ratio (attention-train / torch) | {ours / theirs:.2f}x | |")


if __name__ == "__main__":
    main()
