#!/usr/bin/env python3
"""Generate the fixtures of PyTorch's TransformerDecoderLayer, TransformerDecoder and Transformer.

Run by hand (not part of CI; the Swift tests never need Python), with the venv that has torch:

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_decoder_fixtures.py

It needs only torch, numpy and safetensors, and writes `torch_decoder_layer_*`, `torch_decoder_*`
and `torch_transformer_*` files into `Tests/AttentionTests/Fixtures/` in the format of
`generate_fixtures.py` (`fixture_format.py`; see Tests/Fixtures/README.md), which leaves these
files alone. The config of each file also records `state_dict_keys`, torch's `state_dict()` names
in torch's order. torch runs in eval mode under no_grad, on the slow path (the fast paths are
disabled and trapped, as in `generate_fixtures.py`). Deterministic: one seed per case.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as tnn
from safetensors.numpy import load_file

from fixture_format import fixture_bytes

OUT_DIR = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures"
LIBRARY = f"torch {torch.__version__}"
BIAS_STD = 0.3  # as generate_fixtures.py: std of the values written over zero-initialised biases
LN_STD = 0.2  # LayerNorm weight = 1 + LN_STD * N(0,1), bias = LN_STD * N(0,1)
PATH_NOTE = ("slow path: torch.backends.mha.set_fastpath_enabled(False) and the fast-path kernels "
             "(_native_multi_head_attention, _transformer_encoder_layer_fwd) replaced by traps that raise")
WRITTEN: list[tuple[str, str]] = []


def trap(name):
    def f(*a, **k):
        raise RuntimeError(f"torch fast path {name} was taken; fixtures must use the slow path")
    return f


def randn(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


@torch.no_grad()
def randomize(module: tnn.Module, gen: torch.Generator) -> None:
    """Non-zero values for torch's zero-initialised MHA biases and for the LayerNorms."""
    for mod in module.modules():
        if isinstance(mod, tnn.MultiheadAttention):
            for p in (mod.in_proj_bias, mod.out_proj.bias):
                if p is not None:
                    p.copy_(BIAS_STD * torch.randn(p.shape, generator=gen))
        elif isinstance(mod, tnn.LayerNorm):
            if mod.weight is not None:
                mod.weight.copy_(1.0 + LN_STD * torch.randn(mod.weight.shape, generator=gen))
            if mod.bias is not None:
                mod.bias.copy_(LN_STD * torch.randn(mod.bias.shape, generator=gen))


@torch.no_grad()
def redraw_layers(layers) -> None:
    """torch deep-copies the layer into every slot: give each its own parameters."""
    for layer in layers:
        for mod in layer.modules():
            if isinstance(mod, tnn.MultiheadAttention):
                mod._reset_parameters()
            elif isinstance(mod, tnn.Linear):
                mod.reset_parameters()


def describe(mask) -> str | None:
    if mask is None:
        return None
    kind = " (True = not allowed)" if mask.dtype == np.bool_ else " (added)"
    return f"{mask.dtype.name} {list(mask.shape)}{kind}"


def save(name: str, case: str, module: tnn.Module, inputs: dict, out: torch.Tensor, config: dict) -> None:
    state = module.state_dict()
    params = {k: v.detach().clone() for k, v in state.items()}
    config = {**config, "state_dict_keys": list(state.keys()), "training": False, "no_grad": True,
              "randomized_biases": True, "randomized_biases_std": BIAS_STD,
              "randomized_layernorm": True, "randomized_layernorm_std": LN_STD, "path": PATH_NOTE}
    config.update({k: describe(v) for k, v in inputs.items() if k.endswith("mask")})
    data = fixture_bytes(params=params, inputs=inputs, outputs={"out": out}, config=config,
                         library=LIBRARY, case=case)
    (OUT_DIR / f"{name}.safetensors").write_bytes(data)
    WRITTEN.append((name, case))


def shaped(rng, length, batch, width, batch_first):
    if batch is None:
        return randn(rng, length, width)
    return randn(rng, batch, length, width) if batch_first else randn(rng, length, batch, width)


# --------------------------------------------------------------------------------------------
# masks (each a function of the case's rng)
# --------------------------------------------------------------------------------------------


def causal_float(length):
    return lambda rng: tnn.Transformer.generate_square_subsequent_mask(length).numpy().astype(np.float32)


def causal_bool(rows, columns):
    return lambda rng: np.triu(np.ones((rows, columns), dtype=bool), k=1)


def random_bool(rows, columns, p=0.35):
    def f(rng):
        m = rng.random((rows, columns)) < p
        m[:, 0] = False  # every query sees a key
        return m
    return f


def random_float(rows, columns, p=0.3):
    def f(rng):
        m = (0.5 * rng.standard_normal((rows, columns))).astype(np.float32)
        m[rng.random((rows, columns)) < p] = -np.inf
        m[:, 0] = 0.25
        return m
    return f


def padding_bool(batch, length, padded):
    def f(rng):
        m = np.zeros((batch, length), dtype=bool)
        for i, cols in enumerate(padded):
            m[i, list(cols)] = True
        return m
    return f


def padding_float(batch, length, padded):
    def f(rng):
        m = (0.3 * rng.standard_normal((batch, length))).astype(np.float32)
        for i, cols in enumerate(padded):
            m[i, list(cols)] = -np.inf
        return m
    return f


def masks(rng, specs: dict) -> tuple[dict, dict]:
    """The masks' numpy values (fixture inputs) and torch values (call arguments)."""
    inputs, kwargs = {}, {}
    for name, spec in specs.items():
        if spec is not None:
            value = spec(rng)
            inputs[name] = value
            kwargs[name] = torch.from_numpy(value)
    return inputs, kwargs


# --------------------------------------------------------------------------------------------
# TransformerDecoderLayer and TransformerDecoder
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def decoder_case(name, case, *, seed, d_model=16, nhead=4, dim_feedforward=32, activation="relu",
                 norm_first=False, bias=True, batch_first=False, N=None, L=5, S=7,
                 tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None, memory_key_padding_mask=None,
                 tgt_is_causal=False, memory_is_causal=False, num_layers=None):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    layer = tnn.TransformerDecoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.1,
                                        activation=activation, layer_norm_eps=1e-5, batch_first=batch_first,
                                        norm_first=norm_first, bias=bias)
    if num_layers is None:
        module = layer
    else:
        module = tnn.TransformerDecoder(layer, num_layers, norm=tnn.LayerNorm(d_model, eps=1e-5, bias=bias))
        redraw_layers(module.layers)
        sd = module.state_dict()
        assert not torch.equal(sd["layers.0.multihead_attn.in_proj_weight"], sd["layers.1.multihead_attn.in_proj_weight"])
    randomize(module, gen)
    module.eval()
    tgt = shaped(rng, L, N, d_model, batch_first)
    memory = shaped(rng, S, N, d_model, batch_first)
    inputs, kwargs = masks(rng, {"tgt_mask": tgt_mask, "memory_mask": memory_mask,
                                 "tgt_key_padding_mask": tgt_key_padding_mask,
                                 "memory_key_padding_mask": memory_key_padding_mask})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(torch.from_numpy(tgt), torch.from_numpy(memory), tgt_is_causal=tgt_is_causal,
                     memory_is_causal=memory_is_causal, **kwargs)
    config = {"d_model": d_model, "nhead": nhead, "dim_feedforward": dim_feedforward, "dropout": 0.1,
              "activation": activation, "layer_norm_eps": 1e-5, "batch_first": batch_first,
              "norm_first": norm_first, "bias": bias, "tgt_is_causal": tgt_is_causal,
              "memory_is_causal": memory_is_causal, "seed": seed, "L": L, "S": S, "N": N}
    if num_layers is not None:
        config.update({"num_layers": num_layers, "norm": f"LayerNorm({d_model}, eps=1e-5, bias={bias})",
                       "layers_redrawn": "each layer's attentions _reset_parameters(), Linears reset_parameters()"})
    save(name, case, module, {"tgt": tgt, "memory": memory, **inputs}, out, config)


def gen_decoder_layers():
    decoder_case("torch_decoder_layer_postnorm_causal",
                 "torch TransformerDecoderLayer post-norm relu, (L=5,N=2,16) seq-first, memory (S=7,N=2,16), "
                 "float causal tgt_mask with tgt_is_causal=True, nhead 4",
                 seed=700, N=2, tgt_mask=causal_float(5), tgt_is_causal=True)
    decoder_case("torch_decoder_layer_prenorm_gelu_masks",
                 "torch TransformerDecoderLayer norm_first gelu, batch_first (2,4,16), memory (2,6,16), "
                 "bool tgt_mask (4,4), float memory_mask (4,6) with -inf entries, nhead 2",
                 seed=701, nhead=2, activation="gelu", norm_first=True, batch_first=True, N=2, L=4, S=6,
                 tgt_mask=random_bool(4, 4), memory_mask=random_float(4, 6))
    decoder_case("torch_decoder_layer_padding",
                 "torch TransformerDecoderLayer post-norm relu, batch_first (3,5,16), memory (3,7,16), "
                 "bool causal tgt_mask (tgt_is_causal=True), bool tgt_key_padding_mask (3,5), "
                 "bool memory_key_padding_mask (3,7), nhead 4",
                 seed=702, batch_first=True, N=3, tgt_mask=causal_bool(5, 5), tgt_is_causal=True,
                 tgt_key_padding_mask=padding_bool(3, 5, [[], [4], [2, 3]]),
                 memory_key_padding_mask=padding_bool(3, 7, [[6], [], [0, 5, 6]]))
    decoder_case("torch_decoder_layer_float_padding",
                 "torch TransformerDecoderLayer norm_first relu, seq-first (L=6,N=2,16), memory (S=4,N=2,16), "
                 "float tgt_key_padding_mask and memory_key_padding_mask (added, some -inf), float causal tgt_mask, nhead 2",
                 seed=703, nhead=2, norm_first=True, N=2, L=6, S=4, tgt_mask=causal_float(6),
                 tgt_key_padding_mask=padding_float(2, 6, [[5], [1]]),
                 memory_key_padding_mask=padding_float(2, 4, [[], [3]]))
    decoder_case("torch_decoder_layer_memory_causal",
                 "torch TransformerDecoderLayer post-norm gelu, unbatched tgt (5,16), memory (3,16) (Lq > Lk), "
                 "memory_is_causal=True with bool memory_mask triu(ones(5,3), 1): SDPA's top-left causal mask, nhead 4",
                 seed=704, activation="gelu", L=5, S=3, memory_mask=causal_bool(5, 3), memory_is_causal=True)
    decoder_case("torch_decoder_layer_length1",
                 "torch TransformerDecoderLayer post-norm relu, a length-1 target (1,N=3,16) seq-first, "
                 "memory (S=5,3,16), bool memory_key_padding_mask (3,5), causal (1,1) tgt_mask, nhead 4",
                 seed=705, N=3, L=1, S=5, tgt_mask=causal_float(1), tgt_is_causal=True,
                 memory_key_padding_mask=padding_bool(3, 5, [[4], [], [1, 2]]))
    decoder_case("torch_decoder_layer_no_bias",
                 "torch TransformerDecoderLayer bias=False (no Linear/MHA/LayerNorm biases), norm_first relu, "
                 "batch_first (2,5,16), memory (2,7,16), nhead 4",
                 seed=706, bias=False, norm_first=True, batch_first=True, N=2)
    decoder_case("torch_decoder_2layers_final_norm",
                 "torch TransformerDecoder num_layers=2 (layers differ) + final LayerNorm, post-norm gelu, "
                 "batch_first (2,5,16), memory (2,6,16), float causal tgt_mask (tgt_is_causal None: detected), "
                 "bool memory_key_padding_mask, nhead 2",
                 seed=707, nhead=2, activation="gelu", batch_first=True, N=2, S=6, tgt_mask=causal_float(5),
                 tgt_is_causal=None, memory_key_padding_mask=padding_bool(2, 6, [[5], [0, 2]]), num_layers=2)


# --------------------------------------------------------------------------------------------
# Transformer
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def transformer_case(name, case, *, seed, d_model=8, nhead=2, encoder_layers=2, decoder_layers=2,
                     dim_feedforward=16, activation="relu", norm_first=False, batch_first=True, N=2, S=6, L=5,
                     src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                     tgt_key_padding_mask=None, memory_key_padding_mask=None,
                     src_is_causal=None, tgt_is_causal=None, memory_is_causal=False):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = tnn.Transformer(d_model, nhead, encoder_layers, decoder_layers, dim_feedforward, dropout=0.1,
                                 activation=activation, layer_norm_eps=1e-5, batch_first=batch_first,
                                 norm_first=norm_first)
    module.encoder.enable_nested_tensor = False
    randomize(module, gen)
    module.eval()
    src = shaped(rng, S, N, d_model, batch_first)
    tgt = shaped(rng, L, N, d_model, batch_first)
    inputs, kwargs = masks(rng, {"src_mask": src_mask, "tgt_mask": tgt_mask, "memory_mask": memory_mask,
                                 "src_key_padding_mask": src_key_padding_mask,
                                 "tgt_key_padding_mask": tgt_key_padding_mask,
                                 "memory_key_padding_mask": memory_key_padding_mask})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(torch.from_numpy(src), torch.from_numpy(tgt), src_is_causal=src_is_causal,
                     tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal, **kwargs)
    config = {"d_model": d_model, "nhead": nhead, "num_encoder_layers": encoder_layers,
              "num_decoder_layers": decoder_layers, "dim_feedforward": dim_feedforward, "dropout": 0.1,
              "activation": activation, "layer_norm_eps": 1e-5, "batch_first": batch_first,
              "norm_first": norm_first, "bias": True, "src_is_causal": src_is_causal,
              "tgt_is_causal": tgt_is_causal, "memory_is_causal": memory_is_causal,
              "init": "nn.Transformer._reset_parameters (xavier_uniform_ on every parameter of dim > 1)",
              "enable_nested_tensor": False, "seed": seed, "L": L, "S": S, "N": N}
    save(name, case, module, {"src": src, "tgt": tgt, **inputs}, out, config)


def gen_transformers():
    transformer_case("torch_transformer_small",
                     "torch Transformer d_model 8, nhead 2, 2 encoder + 2 decoder layers, ff 16, post-norm relu, "
                     "batch_first, src (2,6,8), tgt (2,5,8), float causal tgt_mask (detected), "
                     "bool src_key_padding_mask = memory_key_padding_mask (2,6)",
                     seed=720, tgt_mask=causal_float(5), src_key_padding_mask=padding_bool(2, 6, [[5], [3, 4]]),
                     memory_key_padding_mask=padding_bool(2, 6, [[5], [3, 4]]))
    transformer_case("torch_transformer_prenorm_seq_first",
                     "torch Transformer d_model 8, nhead 2, 1 encoder + 2 decoder layers, ff 16, norm_first gelu, "
                     "seq-first src (S=4,N=2,8), tgt (L=6,N=2,8) (L > S), bool src_mask (4,4), bool causal tgt_mask, "
                     "float memory_mask (6,4), bool tgt_key_padding_mask",
                     seed=721, encoder_layers=1, activation="gelu", norm_first=True, batch_first=False, S=4, L=6,
                     src_mask=random_bool(4, 4), tgt_mask=causal_bool(6, 6), memory_mask=random_float(6, 4),
                     tgt_key_padding_mask=padding_bool(2, 6, [[], [5]]))


def main() -> int:
    t0 = time.time()
    for p in OUT_DIR.glob("*.safetensors"):
        if p.name.startswith(("torch_decoder", "torch_transformer")):
            p.unlink()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mha.set_fastpath_enabled(False)
    torch._native_multi_head_attention = trap("_native_multi_head_attention")
    torch._transformer_encoder_layer_fwd = trap("_transformer_encoder_layer_fwd")
    gen_decoder_layers()
    gen_transformers()
    total = 0
    for name, case in WRITTEN:
        path = OUT_DIR / f"{name}.safetensors"
        tensors = load_file(str(path))
        assert tensors and all(v.dtype in (np.float32, np.bool_) for v in tensors.values()), name
        assert not np.isnan(tensors["output.out"]).any(), name
        size = path.stat().st_size
        assert size < 60_000, (name, size)
        total += size
        print(f"{name}: {case} ({size} bytes)")
    print(f"{len(WRITTEN)} files, {total} bytes, {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
