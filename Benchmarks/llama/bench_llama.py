#!/usr/bin/env python3
"""Llama decoding: attention-generate (Swift) against transformers' `generate` on PyTorch, side by
side in one run, on a random-weight bf16 model of about half a billion parameters.

    python bench_llama.py --generate .build/release/attention-generate

(`make bench-llama` builds attention-generate in release mode and runs this in
~/.cache/swift-attention-venv.) The model (hidden 896, 24 layers, 14 query heads over 2 key/value
heads, head_dim 64, SwiGLU 4864, vocabulary 32000, untied head: 0.42 B parameters, random N(0, 0.02)
weights from a fixed seed) is created once with transformers and saved in bf16 under
~/.cache/swift-attention-models/llama-random-0.4b-bf16 (outside git). The workload: a 512-token
prompt (random ids, fixed seed), then 128 new tokens, greedy.

Each side runs in its own process with its thread count fixed; the two alternate, round by round.
Each process holds /tmp/swift-attention-bench.lock while it runs (the project's machine-wide
benchmark lock), so `make bench-llama` itself is not wrapped in flock.
In each process the model is loaded (never timed), a short generation warms up, then the workload
runs `--repeat` times:
  - PyTorch: one `generate(max_new_tokens=128)` with a streamer noting when each new token comes
    out: prefill = from the call to the first new token (the prompt through the model, one token
    out); decode rate = 127 / (time from the first new token to the last).
  - attention-generate: its own report, `prefill: X tokens/s, decode: Y tokens/s` (the prefill
    call over the prompt, then 127 one-token steps over a bf16 cache).
Prefill tokens/s counts the 512 prompt tokens. Reported: medians over rounds, their ratios, each
process's peak resident memory (ru_maxrss), and the rate the memory bandwidth allows:
bytes read per decoded token (every weight matrix once, the LM head included, plus the bf16 keys
and values of the average context, 512 + 64 positions) over the read bandwidth that attn_bench's
plain vector sum over 1 GiB reaches on the same threads, measured in the same run.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIG = dict(
    vocab_size=32000, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, head_dim=64, max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=10000.0,
    tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
)
DEFAULT_MODEL = Path.home() / ".cache" / "swift-attention-models" / "llama-random-0.4b-bf16"
PROMPT_LENGTH, NEW_TOKENS = 512, 128


def prompt_ids(length: int = PROMPT_LENGTH) -> list[int]:
    rng = random.Random(11)
    return [rng.randrange(CONFIG["vocab_size"]) for _ in range(length)]


def ensure_model(folder: Path) -> None:
    if (folder / "model.safetensors").exists() or (folder / "model.safetensors.index.json").exists():
        return
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    print(f"creating the random model in {folder} (once)", file=sys.stderr)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "generation_config.json").unlink(missing_ok=True)


def peak_megabytes(rusage) -> float:
    return rusage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


LOCK = "/tmp/swift-attention-bench.lock"


def run(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    """Runs a worker to completion, holding the machine-wide benchmark lock (so that no other
    benchmark runs meanwhile, and each locked stretch is one process): its stderr and its peak
    resident memory in MB."""
    with open(LOCK, "a") as lock, tempfile.TemporaryFile() as stderr:
        fcntl.flock(lock, fcntl.LOCK_EX)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        _, status, rusage = os.wait4(process.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        text = stderr.read().decode(errors="replace")
    if code != 0:
        raise SystemExit(f"{command[0]} failed ({code}):\n{text}")
    return text, peak_megabytes(rusage)


def torch_worker(model_dir: str, threads: int, repeats: int) -> None:
    """Runs in its own process: loads the model, warms up, prints the median rates."""
    import torch
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    ids = torch.tensor([prompt_ids()])

    class Clock:
        """A streamer that notes when generate hands out the prompt and then each new token."""

        def __init__(self) -> None:
            self.times: list[float] = []

        def put(self, value) -> None:
            self.times.append(time.perf_counter())

        def end(self) -> None:
            pass

    def generate(tokens: torch.Tensor, count: int) -> tuple[float, float]:
        """Seconds to the first new token (the prefill) and from it to the last (the decode)."""
        clock = Clock()
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=count,
                                 do_sample=False, pad_token_id=0, streamer=clock)
        assert out.shape[1] == tokens.shape[1] + count and len(clock.times) == count + 1
        return clock.times[1] - start, clock.times[-1] - clock.times[1]

    generate(ids[:, :16], 2)
    prefill, decode = [], []
    for _ in range(repeats):
        first, rest = generate(ids, NEW_TOKENS)
        prefill.append(PROMPT_LENGTH / first)
        decode.append((NEW_TOKENS - 1) / rest)
    print(f"prefill: {statistics.median(prefill):.1f} tokens/s, decode: {statistics.median(decode):.1f} tokens/s",
          file=sys.stderr)


def measure_bandwidth(attn_bench: str, threads: int) -> float:
    """GB/s of attn_bench's parallel vector sum over 1 GiB."""
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        out = subprocess.run([attn_bench, "--threads", str(threads), "--no-attention", "--no-matmul", "--no-decode"],
                             capture_output=True, text=True, check=True).stdout
    match = re.search(r"read bandwidth ([0-9.]+) GB/s", out)
    if not match:
        raise SystemExit(f"no bandwidth in attn_bench's output:\n{out}")
    return float(match.group(1))


def bytes_per_token() -> tuple[float, float]:
    """Bytes read per decoded token: (weights, bf16 K/V of the average context)."""
    c = CONFIG
    hidden, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    q, kv = c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"]
    per_layer = hidden * q * 2 + hidden * kv * 2 + 3 * hidden * inter
    weights = 2.0 * (layers * per_layer + c["vocab_size"] * hidden)  # bf16, the LM head included
    context = PROMPT_LENGTH + NEW_TOKENS / 2
    cache = 2.0 * layers * 2 * kv * context
    return weights, cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generate", required=True, help="the attention-generate executable (release build)")
    parser.add_argument("--attn-bench", help="attn_bench, to measure the read bandwidth")
    parser.add_argument("--model", default=str(DEFAULT_MODEL))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1, help="workload runs per process (median)")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        torch_worker(args.model, args.threads, args.repeat)
        return
    ensure_model(Path(args.model))

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    pattern = re.compile(r"prefill: ([0-9.]+) tokens/s, decode: ([0-9.]+) tokens/s")
    swift_command = [args.generate, "--model", args.model, "--prompt-ids", ",".join(map(str, prompt_ids())),
                     "--max-new-tokens", str(NEW_TOKENS), "--threads", str(args.threads),
                     "--repeat", str(args.repeat)]
    torch_command = [sys.executable, __file__, "--generate", args.generate, "--model", args.model,
                     "--threads", str(args.threads), "--repeat", str(args.repeat), "--torch-worker"]
    results = {"swift": [], "torch": []}
    memory = {"swift": [], "torch": []}
    for round_index in range(args.rounds):
        for side in (["swift", "torch"] if round_index % 2 == 0 else ["torch", "swift"]):
            stderr, peak = run(swift_command if side == "swift" else torch_command, env)
            match = pattern.search(stderr)
            if not match:
                raise SystemExit(f"no rates from {side}:\n{stderr}")
            results[side].append((float(match.group(1)), float(match.group(2))))
            memory[side].append(peak)
        print(f"  round {round_index + 1}: attention-generate prefill {results['swift'][-1][0]:.1f} tok/s, "
              f"decode {results['swift'][-1][1]:.2f} tok/s; transformers prefill {results['torch'][-1][0]:.1f}, "
              f"decode {results['torch'][-1][1]:.2f}", file=sys.stderr)

    import importlib.metadata as metadata
    med = {side: tuple(statistics.median(r[i] for r in results[side]) for i in (0, 1)) for side in results}
    print(f"\n{args.threads} threads, {args.rounds} rounds alternating, medians; prompt {PROMPT_LENGTH}, "
          f"{NEW_TOKENS} new tokens, greedy, bf16 weights; transformers {metadata.version('transformers')}, "
          f"torch {metadata.version('torch')}\n")
    print("| | prefill tokens/s | decode tokens/s | peak MB |")
    print("|---|---:|---:|---:|")
    for side, name in (("swift", "attention-generate"), ("torch", "transformers generate")):
        print(f"| {name} | {med[side][0]:.1f} | {med[side][1]:.2f} | {max(memory[side]):.0f} |")
    print(f"| ratio | {med['swift'][0] / med['torch'][0]:.2f}x | {med['swift'][1] / med['torch'][1]:.2f}x | |")
    if args.attn_bench:
        bandwidth = measure_bandwidth(args.attn_bench, args.threads)
        weights, cache = bytes_per_token()
        bound = bandwidth * 1e9 / (weights + cache)
        print(f"\nbytes per decoded token: {weights / 1e6:.1f} MB of weights + {cache / 1e6:.1f} MB of bf16 K/V; "
              f"read bandwidth (attn_bench vector sum, {args.threads} threads) {bandwidth:.1f} GB/s -> bound "
              f"{bound:.2f} tokens/s; attention-generate decode at {100 * med['swift'][1] / bound:.0f} % of it")


if __name__ == "__main__":
    main()
