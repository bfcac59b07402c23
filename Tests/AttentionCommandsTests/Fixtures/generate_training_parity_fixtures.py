#!/usr/bin/env python3
"""Generate the training parity fixtures of attention-train: two tiny LlamaForCausalLMs, a file of
token batches, and the trajectory torch trains each model along on them.

Run by hand (never by CI), from the repository root, in the project's virtual environment
(`~/.cache/swift-attention-venv`: torch, transformers, safetensors, numpy); it takes a few seconds:

    ~/.cache/swift-attention-venv/bin/python Tests/AttentionCommandsTests/Fixtures/generate_training_parity_fixtures.py

Writes into `training-parity/` beside this file:
  tiny-llama-tied/, tiny-llama-untied/   config.json and model.safetensors of a 2-layer Llama
                     (vocabulary 256, hidden 64, SwiGLU 128, 4 query heads over 2 key/value heads,
                     head_dim 16, rope_theta 10000), transformers' own initialisation (normal 0.02,
                     RMSNorm weights 1) from torch.manual_seed 0 and 1; the head tied to the
                     embedding in the first, not in the second; float32
  token-batches.safetensors        `input_ids`, int64, (20 steps, 4 sequences, 33 ids)
  token-batches-int32.safetensors  the same ids as int32
  expected-<variant>.json          `arguments`: the attention-train flags of the run (besides
                     --model, --token-batches, --output); `steps`: per step its loss, gradient norm
                     (before clipping) and learning rate; the versions of torch and transformers
  final-<variant>.safetensors      every parameter after the 20 steps, as save_pretrained stores it

A step s trains on input_ids[s, :, :-1] predicting input_ids[s, :, 1:]: the float32 forward pass
(eager attention), the mean cross-entropy over all 128 positions, backward, clip_grad_norm_,
AdamW's update with the scheduler's rate, then scheduler.step() and zero_grad(); torch runs on one
thread so that the numbers do not depend on the machine's core count. Each trajectory is also run
in float64 from the same weights, and the largest differences printed: the float32 reference is
that far from exact.

The ids are marginally uniform in 0..255 but not independent: each sequence starts with a uniform
id, and each next id is, with probability 3/4, a fixed random permutation of the one before it,
otherwise a fresh uniform id. Independent uniform ids leave nothing to learn (the loss stays at
ln 256 = 5.545 over the 20 steps); with this structure the loss falls visibly, which the script
checks. Deterministic: fixed seeds, sorted keys; regenerating gives an empty diff.
"""

from __future__ import annotations

import json
import math
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

FOLDER = Path(__file__).resolve().parent / "training-parity"
STEPS, BATCH, LENGTH, VOCABULARY = 20, 4, 32, 256
FOLLOW_PROBABILITY = 0.75

# Each variant's attention-train flags; the torch settings are read from these strings, so the two
# cannot disagree.
VARIANTS = {
    "tied": {
        "seed": 0,
        "tie_word_embeddings": True,
        "arguments": [
            "--steps", "20", "--learning-rate", "0.003", "--betas", "0.9,0.95", "--epsilon", "1e-8",
            "--weight-decay", "0.1", "--max-grad-norm", "1.0", "--schedule", "cosine", "--warmup-steps", "5",
        ],
    },
    "untied": {
        "seed": 1,
        "tie_word_embeddings": False,
        "arguments": [
            "--steps", "20", "--learning-rate", "0.002", "--betas", "0.9,0.999", "--epsilon", "1e-8",
            "--weight-decay", "0.01", "--max-grad-norm", "0.5", "--schedule", "constant", "--warmup-steps", "3",
        ],
    },
}

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.int32): "I32"}


def serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with sorted keys, so regenerating gives an empty diff."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        data = array.tobytes()
        header[name] = {"dtype": DTYPES[array.dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b"".join(chunks)


def write_json(path: Path, value: dict) -> None:
    """JSON with sorted keys, indented, ending in a newline."""
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


def saved_weights(model: LlamaForCausalLM) -> dict[str, np.ndarray]:
    """The tensors save_pretrained stores for the model (for a tied head, no lm_head.weight)."""
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder, safe_serialization=True)
        with safe_open(Path(folder) / "model.safetensors", "np") as file:
            return {name: file.get_tensor(name) for name in file.keys()}


def token_batches() -> np.ndarray:
    """(STEPS, BATCH, LENGTH + 1) int64 ids: uniform, each following its predecessor's permutation
    with probability FOLLOW_PROBABILITY."""
    rng = np.random.default_rng(2024)
    permutation = rng.permutation(VOCABULARY)
    ids = rng.integers(0, VOCABULARY, size=(STEPS, BATCH, LENGTH + 1), dtype=np.int64)
    for position in range(1, LENGTH + 1):
        follow = rng.random((STEPS, BATCH)) < FOLLOW_PROBABILITY
        ids[:, :, position] = np.where(follow, permutation[ids[:, :, position - 1]], ids[:, :, position])
    return ids


def write_model(name: str, variant: dict) -> Path:
    """The variant's model folder: config.json with sorted keys and a sorted model.safetensors."""
    config = LlamaConfig(
        vocab_size=VOCABULARY, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
        initializer_range=0.02, tie_word_embeddings=variant["tie_word_embeddings"], hidden_act="silu",
    )
    torch.manual_seed(variant["seed"])
    model = LlamaForCausalLM(config)
    folder = FOLDER / f"tiny-llama-{name}"
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True)
    # generation_config.json only repeats the config's token ids; training does not read it.
    (folder / "generation_config.json").unlink()
    write_json(folder / "config.json", json.loads((folder / "config.json").read_text()))
    weights = saved_weights(model)
    assert ("lm_head.weight" in weights) != variant["tie_word_embeddings"], sorted(weights)
    # Written anew rather than over transformers' file, which it creates readable by its owner only.
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors").write_bytes(serialize(weights, {"format": "pt"}))
    return folder


def train(folder: Path, batches: np.ndarray, flags: dict[str, str], dtype: torch.dtype) -> tuple[list[dict], LlamaForCausalLM]:
    """The model of `folder` trained on `batches` as `flags` say; returns the steps and the model."""
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").to(dtype).train()
    steps = int(flags["--steps"])
    warmup = int(flags["--warmup-steps"])
    max_norm = float(flags["--max-grad-norm"])
    beta1, beta2 = (float(beta) for beta in flags["--betas"].split(","))
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=float(flags["--learning-rate"]), betas=(beta1, beta2),
        eps=float(flags["--epsilon"]), weight_decay=float(flags["--weight-decay"]))
    if flags["--schedule"] == "cosine":
        scheduler = transformers.get_cosine_schedule_with_warmup(optimizer, warmup, steps)
    else:
        scheduler = transformers.get_constant_schedule_with_warmup(optimizer, warmup)
    ids = torch.from_numpy(batches)
    records = []
    for step in range(steps):
        inputs, targets = ids[step, :, :-1], ids[step, :, 1:]
        logits = model(input_ids=inputs).logits
        loss = F.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        learning_rate = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        records.append({"step": step, "loss": loss.item(), "grad_norm": norm.item(), "learning_rate": learning_rate})
    return records, model


def check_learns(name: str, records: list[dict]) -> None:
    """The loss must fall visibly: otherwise the fixture would not show that training trains."""
    losses = [record["loss"] for record in records]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.3 and losses[-1] < losses[0] - 0.3, (name, losses)


def float64_spread(folder: Path, batches: np.ndarray, flags: dict[str, str], records: list[dict], model: LlamaForCausalLM) -> str:
    """How far the float32 trajectory is from the same run in float64."""
    exact_records, exact_model = train(folder, batches, flags, torch.float64)
    loss = max(abs(a["loss"] - b["loss"]) / b["loss"] for a, b in zip(records, exact_records))
    norm = max(abs(a["grad_norm"] - b["grad_norm"]) / b["grad_norm"] for a, b in zip(records, exact_records))
    exact = dict(exact_model.named_parameters())
    weight = max(float((parameter.detach().double() - exact[name].detach()).abs().max())
                 for name, parameter in model.named_parameters())
    return f"float32 against float64: loss {loss:.1e}, grad_norm {norm:.1e} (relative), weights {weight:.1e} (absolute)"


def main() -> None:
    torch.set_num_threads(1)
    transformers.utils.logging.disable_progress_bar()
    FOLDER.mkdir(exist_ok=True)
    batches = token_batches()
    (FOLDER / "token-batches.safetensors").write_bytes(serialize({"input_ids": batches}, {}))
    (FOLDER / "token-batches-int32.safetensors").write_bytes(serialize({"input_ids": batches.astype(np.int32)}, {}))
    versions = {"torch": torch.__version__.split("+")[0], "transformers": transformers.__version__}

    for name, variant in VARIANTS.items():
        folder = write_model(name, variant)
        initial = saved_weights(LlamaForCausalLM.from_pretrained(folder))
        arguments = variant["arguments"]
        flags = dict(zip(arguments[::2], arguments[1::2]))
        records, model = train(folder, batches, flags, torch.float32)
        check_learns(name, records)
        assert records[0]["learning_rate"] == 0.0 and all(math.isfinite(r["grad_norm"]) for r in records)

        final = saved_weights(model)
        assert sorted(final) == sorted(initial)
        assert all(not np.array_equal(final[key], initial[key]) for key in final), "a parameter did not move"
        (FOLDER / f"final-{name}.safetensors").write_bytes(serialize(final, {"format": "pt"}))
        write_json(FOLDER / f"expected-{name}.json", {
            "arguments": arguments, "model": folder.name, "token_batches": "token-batches.safetensors",
            "steps": records, "versions": versions,
        })
        print(f"{name}: loss {records[0]['loss']:.4f} at step 0, {records[-1]['loss']:.4f} at step {len(records) - 1}; "
              f"{sum(value.size for value in final.values())} parameters saved")
        print("  " + float64_spread(folder, batches, flags, records, model))


if __name__ == "__main__":
    main()
