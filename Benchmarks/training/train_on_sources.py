#!/usr/bin/env python3
"""train_on_sources.py: the README's training session. A small Llama learns the project's own
sources with attention-train, in f32 and with --precision bf16; the loss curves are drawn; the
f32 model generates text here (attention-generate) and in transformers.

    ~/.cache/swift-attention-venv/bin/python Benchmarks/training/train_on_sources.py \
        --bin "$(swift build -c release --show-bin-path)" --steps 400

The text: every Swift and C file under Sources/ and CKernels/ (git ls-files order), about 1.5 MB,
as plain bytes (attention-train's default tokenizer: ids 0-255). The model: hidden 256, 4 layers
of 4 heads (64 wide), SwiGLU 688, untied head, vocabulary 256. The run: batch 8 x 256 tokens,
AdamW lr 1e-3 (betas 0.9, 0.95, weight decay 0.1), 20 warm-up steps then cosine, clipping at 1,
the held-out last 5 % evaluated every 50 steps. Written under build/training-session/: the two
model folders and their logs; the chart goes to docs/training_loss.svg. Needs torch and
transformers (the last part) in the interpreter running it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CONFIG = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 256, "hidden_size": 256,
          "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
          "max_position_embeddings": 1024, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
          "initializer_range": 0.02}
PROMPT = "public func "


def sources(path: str) -> int:
    files = subprocess.run(["git", "ls-files", "Sources/*.swift", "CKernels/*.c", "CKernels/*.h"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    with open(path, "wb") as out:
        for name in files:
            with open(os.path.join(ROOT, name), "rb") as file:
                out.write(file.read())
    return os.path.getsize(path)


def train(binary: str, folder: str, data: str, precision: str, steps: int, threads: int) -> list[dict]:
    log = os.path.join(folder, f"{precision}.jsonl")
    subprocess.run([os.path.join(binary, "attention-train"), "--config", os.path.join(folder, "config.json"),
                    "--data", data, "--output", os.path.join(folder, precision), "--steps", str(steps),
                    "--batch-size", "8", "--sequence-length", "256", "--learning-rate", "1e-3", "--betas", "0.9,0.95",
                    "--weight-decay", "0.1", "--warmup-steps", "20", "--schedule", "cosine", "--max-grad-norm", "1",
                    "--eval-every", "50", "--eval-fraction", "0.05", "--threads", str(threads), "--seed", "0",
                    "--precision", precision, "--log", log], check=True)
    with open(log) as file:
        return [json.loads(line) for line in file]


def generate_here(binary: str, model: str, tokens: int) -> str:
    result = subprocess.run([os.path.join(binary, "attention-generate"), "--model", model, "--prompt", PROMPT,
                             "--max-new-tokens", str(tokens)], capture_output=True, text=True, check=True)
    return result.stdout.rstrip("\n")


def generate_transformers(model: str, tokens: int) -> str:
    import torch
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(model)
    llama = transformers.LlamaForCausalLM.from_pretrained(model)
    ids = torch.tensor([tokenizer(PROMPT).input_ids])
    out = llama.generate(ids, max_new_tokens=tokens, do_sample=False)
    return tokenizer.decode(out[0, ids.shape[1]:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the release build's bin folder (attention-train, attention-generate)")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=160, help="tokens generated after the prompt")
    args = parser.parse_args()
    folder = os.path.join(ROOT, "build", "training-session")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as file:
        json.dump(CONFIG, file, indent=1)
    data = os.path.join(folder, "sources.txt")
    print(f"data: {sources(data)} bytes of Swift and C", flush=True)
    logs = {precision: train(args.bin, folder, data, precision, args.steps, args.threads) for precision in ("f32", "bf16")}
    subprocess.run([sys.executable, os.path.join(ROOT, "Benchmarks", "training", "plot_training.py"),
                    f"f32={os.path.join(folder, 'f32.jsonl')}", f"bf16 products={os.path.join(folder, 'bf16.jsonl')}",
                    "-o", os.path.join(ROOT, "docs", "training_loss.svg"),
                    "--title", f"attention-train on its own sources: 4 layers, hidden 256, bytes, {args.steps} steps"], check=True)
    for precision, log in logs.items():
        rate = statistics.median(record["tokens_per_second"] for record in log[2:])
        evals = [(record["step"] + 1, round(record["eval_loss"], 4)) for record in log if "eval_loss" in record]
        print(f"{precision}: first loss {log[0]['loss']:.4f}, last {log[-1]['loss']:.4f}, "
              f"median {rate:.0f} tokens/s; held-out loss by step {evals}")
    window = [record["step"] for record in logs["f32"] if 190 <= record["step"] < 210]
    if window:
        mean = {p: statistics.mean(r["loss"] for r in logs[p] if r["step"] in window) for p in logs}
        print(f"steps 190-209, mean loss: f32 {mean['f32']:.4f}, bf16 {mean['bf16']:.4f} "
              f"({100 * (mean['bf16'] - mean['f32']) / mean['f32']:+.2f} %)")
    model = os.path.join(folder, "f32")
    print(f"\nattention-generate, greedy, after {PROMPT!r}:\n{generate_here(args.bin, model, args.tokens)}")
    print(f"\ntransformers' generate, greedy, same folder:\n{PROMPT}{generate_transformers(model, args.tokens)}")


if __name__ == "__main__":
    main()
