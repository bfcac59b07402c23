#!/usr/bin/env python3
"""Generate the Llama fixtures of the AttentionModelsTests: two tiny random `LlamaForCausalLM`s
saved by `transformers`, with the logits and greedy generations `transformers` computes for them.

Run by hand (never by CI), from the repository root, in the project's virtual environment
(`~/.cache/swift-attention-venv`: torch, transformers, safetensors):

    ~/.cache/swift-attention-venv/bin/python Tests/AttentionModelsTests/Fixtures/generate_llama_fixtures.py

Writes into this folder:
  tiny-llama/        2 layers, hidden 32, 4 query heads over 2 key/value heads (grouped-query),
                     head_dim 8, SwiGLU 64, vocabulary 128, untied LM head, no attention bias;
                     float32, one model.safetensors
  tiny-llama-bf16/   the same weights rounded to bfloat16 and saved as bfloat16
  tiny-llama-bias/   2 layers, hidden 32, 4 query heads over 1 key/value head (multi-query),
                     head_dim 16 given explicitly (4 x 16 != 32), attention bias, LM head tied to
                     the embedding, rope_theta 500; float32, sharded in several
                     model-0000N-of-0000M.safetensors files with model.safetensors.index.json
  tiny_llama_outputs.json   under "models", for each model: the prompt, logits at every prompt position
                     (transformers' forward pass), the 32 ids of a greedy `generate`, and for the
                     bfloat16 model the gap between the two largest logits at each generated step
                     and the logits of its weights run with f32 activations;
                     a batch of two prompts of different lengths with each one's last logits and
                     greedy ids computed alone.

The weights are drawn from N(0, 0.25) rather than Llama's 0.02 and the norm weights from
U(0.5, 1.5), so the logits are far from uniform (greedy choices are decided by wide margins) and a
norm weight ignored by mistake changes the result.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = Path(__file__).resolve().parent
NEW_TOKENS = 32


def make_model(seed: int, **overrides) -> LlamaForCausalLM:
    settings = dict(
        vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=128, rms_norm_eps=1e-6, rope_theta=10000.0,
        attention_bias=False, tie_word_embeddings=False, hidden_act="silu",
        bos_token_id=None, eos_token_id=None, pad_token_id=None,
    )
    settings.update(overrides)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**settings)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)
            else:
                parameter.normal_(0.0, 0.25)
    return model


def prompt_logits(model: LlamaForCausalLM, ids: list[int]) -> list[list[float]]:
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    return logits.float().tolist()


def greedy(model: LlamaForCausalLM, ids: list[int]) -> tuple[list[int], list[float]]:
    """The ids of transformers' greedy generate, and the top-two gap of the logits at each step."""
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=NEW_TOKENS, do_sample=False, output_scores=True, return_dict_in_generate=True,
            eos_token_id=None, pad_token_id=0)
    generated = out.sequences[0, len(ids):].tolist()
    gaps = []
    for scores in out.scores:
        top = torch.topk(scores[0].float(), 2).values
        gaps.append(float(top[0] - top[1]))
    assert len(generated) == NEW_TOKENS
    return generated, gaps


def describe(model: LlamaForCausalLM, prompt: list[int], batch: list[list[int]]) -> dict:
    ids, gaps = greedy(model, prompt)
    return {
        "prompt": prompt,
        "logits": prompt_logits(model, prompt),
        "greedy_ids": ids,
        "greedy_top_two_gaps": gaps,
        "batch": [
            {"prompt": p, "last_logits": prompt_logits(model, p)[-1], "greedy_ids": greedy(model, p)[0]}
            for p in batch
        ],
    }


def save(model: LlamaForCausalLM, folder: Path, **options) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(folder, safe_serialization=True, **options)
    # generation_config.json is not needed (no EOS); keep the folders to config + weights.
    (folder / "generation_config.json").unlink(missing_ok=True)


def main() -> None:
    generator = torch.Generator().manual_seed(7)
    prompt = torch.randint(0, 128, (11,), generator=generator).tolist()
    batch = [torch.randint(0, 128, (n,), generator=generator).tolist() for n in (5, 9)]

    plain = make_model(seed=0)
    save(plain, HERE / "tiny-llama")
    save(make_model(seed=0).to(torch.bfloat16), HERE / "tiny-llama-bf16")
    # Run as a user loads it: `.to(bfloat16)` above also rounds the rotary frequencies (a buffer),
    # which from_pretrained computes in f32.
    bf16 = LlamaForCausalLM.from_pretrained(HERE / "tiny-llama-bf16", dtype=torch.bfloat16).eval()
    variant = make_model(
        seed=1, num_key_value_heads=1, head_dim=16, attention_bias=True, tie_word_embeddings=True, rope_theta=500.0)
    save(variant, HERE / "tiny-llama-bias", max_shard_size="40KB")

    bf16_outputs = describe(bf16, prompt, batch)
    # The same bf16 weights with f32 activations (as attention-generate computes): a tight reference.
    widened = LlamaForCausalLM.from_pretrained(HERE / "tiny-llama-bf16", dtype=torch.float32).eval()
    bf16_outputs["logits_f32_activations"] = prompt_logits(widened, prompt)

    outputs = {
        "versions": {name: importlib.metadata.version(name) for name in ("torch", "transformers")},
        "models": {
            "tiny-llama": describe(plain, prompt, batch),
            "tiny-llama-bf16": bf16_outputs,
            "tiny-llama-bias": describe(variant, prompt, batch),
        },
    }
    with open(HERE / "tiny_llama_outputs.json", "w") as file:
        json.dump(outputs, file, separators=(",", ":"))
        file.write("\n")


if __name__ == "__main__":
    main()
