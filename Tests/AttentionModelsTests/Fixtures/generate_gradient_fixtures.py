#!/usr/bin/env python3
"""Generate the gradient fixtures of the tiny models: torch.autograd through transformers'
LlamaForCausalLM and BertModel.

Run by hand (not part of CI), with the venv that has torch and transformers, after
generate_llama_fixtures.py and generate_bert_fixtures.py wrote the model folders (this reads them, it does not change them):

    ~/.cache/swift-attention-venv/bin/python Tests/AttentionModelsTests/Fixtures/generate_gradient_fixtures.py

For each float32 tiny Llama it writes `<folder>-gradients.safetensors`: `input.tokens` (2, 7) as
float32 holding exact integers, `input.outputGradient` (2, 7, vocabulary), `output.logits`, and
`output.grad.<name>` for every parameter under transformers' names: the gradient of
sum(logits * outputGradient) (with tied embeddings, `model.embed_tokens.weight` only, the head's
share included), computed in float64 from the float32 weights and stored as float32.
For tiny-bert, `tiny-bert-gradients.safetensors`: two sequences of 7 and 4 token ids padded into
`input.tokens` (2, 7) with `input.lengths`, `input.outputGradient` (11, hidden) for the real
tokens packed end to end (the library's layout), `output.hidden` likewise, and the gradients of
sum(hidden * outputGradient) over the real tokens. Deterministic: fixed seeds, sorted keys.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import BertModel, LlamaForCausalLM

HERE = Path(__file__).resolve().parent


def serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """safetensors bytes with sorted keys, so regenerating gives an empty diff."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype=np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"))
    text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + b"".join(chunks)


def main() -> None:
    torch.manual_seed(0)
    for index, folder in enumerate(["tiny-llama", "tiny-llama-bias"]):
        # In float64 from the float32 weights: the reference is the exact gradient to float32 rounding.
        model = LlamaForCausalLM.from_pretrained(HERE / folder, dtype=torch.float32).eval().double()
        vocabulary = model.config.vocab_size
        rng = np.random.default_rng(100 + index)
        tokens = rng.integers(0, vocabulary, size=(2, 7))
        gradient = rng.standard_normal((2, 7, vocabulary)).astype(np.float32)
        logits = model(torch.from_numpy(tokens)).logits
        (logits * torch.from_numpy(gradient).double()).sum().backward()
        tensors = {
            "input.tokens": tokens.astype(np.float32),
            "input.outputGradient": gradient,
            "output.logits": logits.detach().float().numpy(),
        }
        for name, parameter in model.named_parameters():
            tensors[f"output.grad.{name}"] = parameter.grad.float().numpy()
        metadata = {"library": f"torch {torch.__version__}, transformers {transformers.__version__}", "model": folder}
        (HERE / f"{folder}-gradients.safetensors").write_bytes(serialize(tensors, metadata))
        print(folder, len(tensors), "tensors")

    bert_fixture()


def bert_fixture() -> None:
    """tiny-bert's gradients for a packed batch of two sequences."""
    model = BertModel.from_pretrained(HERE / "tiny-bert", dtype=torch.float32, add_pooling_layer=False).eval().double()
    rng = np.random.default_rng(200)
    lengths = [7, 4]
    tokens = rng.integers(1, model.config.vocab_size, size=(2, 7))
    mask = np.zeros((2, 7), dtype=np.int64)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
    tokens = tokens * mask
    hidden = model(input_ids=torch.from_numpy(tokens), attention_mask=torch.from_numpy(mask)).last_hidden_state
    packed = torch.cat([hidden[row, :length] for row, length in enumerate(lengths)])
    gradient = rng.standard_normal(tuple(packed.shape)).astype(np.float32)
    (packed * torch.from_numpy(gradient).double()).sum().backward()
    tensors = {
        "input.tokens": tokens.astype(np.float32),
        "input.lengths": np.array(lengths, dtype=np.float32),
        "input.outputGradient": gradient,
        "output.hidden": packed.detach().float().numpy(),
    }
    for name, parameter in model.named_parameters():
        tensors[f"output.grad.{name}"] = parameter.grad.float().numpy()
    metadata = {"library": f"torch {torch.__version__}, transformers {transformers.__version__}", "model": "tiny-bert"}
    (HERE / "tiny-bert-gradients.safetensors").write_bytes(serialize(tensors, metadata))
    print("tiny-bert", len(tensors), "tensors")


if __name__ == "__main__":
    main()
