#!/usr/bin/env python3
"""Generate the reference fixtures used by the AttentionTests module tests.

Run by hand (not part of CI), with the venv of Tests/Fixtures/README.md:

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_fixtures.py

It writes one small safetensors file per case into
`Tests/AttentionTests/Fixtures/`, named `<module>_<case>.safetensors`.
See `Tests/Fixtures/README.md` for the naming convention and the list of cases.

Everything is deterministic: numpy inputs come from `np.random.default_rng(seed)`,
JAX parameters from `jax.random.PRNGKey(seed)`, torch parameters from
`torch.manual_seed(seed)`, with one fixed seed per case. Every case but the flax decode steps
also stores `input.outputGradient` (from `np.random.default_rng(seed + 7919)`, so the forward's
draws are unchanged) and the gradients of sum(out * outputGradient): `output.grad.<param>` and
`output.input_grad.<input>`, from torch autograd or jax.vjp through the library's own module.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from fixture_format import fixture_bytes, to_np  # this folder: the file format shared with the other scripts

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# torch's float32 results depend on the vector width its kernels dispatch to (ATen's own kernels,
# MKL's GEMM, oneDNN). The committed torch fixtures are reproduced byte for byte on an AVX-512
# x86_64 machine with all three capped at AVX2. ATen and MKL are torch's alone and are capped here,
# before torch is imported. oneDNN is also bundled by jaxlib, whose committed outputs need its
# native ISA: each copy reads ONEDNN_MAX_CPU_ISA once, at its first use, so main() runs every JAX
# case first and caps oneDNN (cap_torch_onednn) only before the first torch case.
IS_X86 = platform.machine().lower() in ("x86_64", "amd64")
if IS_X86:
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")


def cap_torch_onednn() -> None:
    if IS_X86:
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import equinox as eqx  # noqa: E402
import flax  # noqa: E402
import flax.linen as fnn  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import noxton.nn as nnx_nn  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "Tests" / "AttentionTests" / "Fixtures"

BIAS_STD = 0.3  # std of the random values written over zero-initialised biases
LN_STD = 0.2  # LayerNorm/LN scale: weight = 1 + LN_STD * N(0,1), bias = LN_STD * N(0,1)


def _ver(pkg: str) -> str:
    return importlib.metadata.version(pkg)


LIB_TORCH = f"torch {torch.__version__}"
LIB_EQX = f"equinox {_ver('equinox')} (jax {jax.__version__})"
LIB_FLAX = f"flax {_ver('flax')} (jax {jax.__version__})"
LIB_NOXTON = f"noxton {_ver('noxton')} (equinox {_ver('equinox')}, jax {jax.__version__})"
LIB_TUTORIAL = f"tutorial modules written in this script on torch {torch.__version__}"

WRITTEN: list[tuple[str, str]] = []


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def save(name: str, *, params: dict, inputs: dict, outputs: dict, config: dict,
         library: str, case: str) -> None:
    path = OUT_DIR / f"{name}.safetensors"
    path.write_bytes(fixture_bytes(params=params, inputs=inputs, outputs=outputs, config=config,
                                   library=library, case=case))
    WRITTEN.append((name, case))


def randn(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def eqx_params(module) -> dict[str, jax.Array]:
    """Array leaves of an equinox module keyed by their pytree path joined with dots."""
    return tree_named(eqx.filter(module, eqx.is_array))


def tree_named(tree) -> dict[str, jax.Array]:
    """The leaves of a pytree (None leaves dropped) keyed by their path joined with dots."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    out = {}
    for path, leaf in leaves:
        parts = []
        for p in path:
            if isinstance(p, jax.tree_util.GetAttrKey):
                parts.append(p.name)
            elif isinstance(p, jax.tree_util.SequenceKey):
                parts.append(str(p.idx))
            elif isinstance(p, jax.tree_util.DictKey):
                parts.append(str(p.key))
            else:
                raise TypeError(p)
        out[".".join(parts)] = leaf
    return out


def eqx_set(module, where_name: str, value):
    """Replace the leaf whose dotted path is `where_name`."""
    def getter(m):
        obj = m
        for part in where_name.split("."):
            obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
        return obj
    return eqx.tree_at(getter, module, jnp.asarray(value))


def flax_flat(params) -> dict[str, jax.Array]:
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    return {".".join(k): v for k, v in flat.items()}


def flax_randomize(params, rng: np.random.Generator):
    """Overwrite zero-initialised biases (and LN scales of ones) with random values."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    for k, v in list(flat.items()):
        if k[-1] == "bias":
            flat[k] = jnp.asarray(BIAS_STD * randn(rng, *v.shape))
        elif k[-1] == "scale":
            flat[k] = jnp.asarray(1.0 + LN_STD * randn(rng, *v.shape))
    return flax.traverse_util.unflatten_dict(flat)


def torch_params(module: tnn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@torch.no_grad()
def torch_randomize(module: tnn.Module, gen: torch.Generator) -> None:
    """Give non-zero values to torch's zero-initialised biases and to LayerNorm weight/bias."""
    for mod in module.modules():
        if isinstance(mod, tnn.MultiheadAttention):
            if mod.in_proj_bias is not None:
                mod.in_proj_bias.copy_(BIAS_STD * torch.randn(mod.in_proj_bias.shape, generator=gen))
            if mod.out_proj.bias is not None:
                mod.out_proj.bias.copy_(BIAS_STD * torch.randn(mod.out_proj.bias.shape, generator=gen))
        elif isinstance(mod, tnn.LayerNorm):
            if mod.weight is not None:
                mod.weight.copy_(1.0 + LN_STD * torch.randn(mod.weight.shape, generator=gen))
            if mod.bias is not None:
                mod.bias.copy_(LN_STD * torch.randn(mod.bias.shape, generator=gen))


def eqx_randomize_layernorms(module, rng: np.random.Generator):
    """equinox LayerNorm starts at weight 1, bias 0: overwrite with random values."""
    for name, leaf in eqx_params(module).items():
        parts = name.split(".")
        if len(parts) >= 2 and parts[-2].startswith("norm"):
            if parts[-1] == "weight":
                module = eqx_set(module, name, 1.0 + LN_STD * randn(rng, *leaf.shape))
            elif parts[-1] == "bias":
                module = eqx_set(module, name, LN_STD * randn(rng, *leaf.shape))
    return module


# --------------------------------------------------------------------------------------------
# gradients: output.grad.<param> and output.input_grad.<input> of sum(out * outputGradient)
# --------------------------------------------------------------------------------------------

GRAD_SEED_OFFSET = 7919  # outputGradient comes from its own generator, so the forward's draws are untouched
GRAD_NOTE = ("input.outputGradient ~ N(0,1) from np.random.default_rng(seed + 7919), shaped like output.out; "
             "output.grad.<param> and output.input_grad.<input> are the float32 gradients of "
             "sum(out * outputGradient) (attention weights, if returned, are not differentiated)")


def output_gradient(seed: int, shape) -> np.ndarray:
    return randn(np.random.default_rng(seed + GRAD_SEED_OFFSET), *shape)


def add_gradients(inputs: dict, outputs: dict, config: dict, g: np.ndarray,
                  param_grads: dict, input_grads: dict) -> None:
    """Store outputGradient and the gradients under the fixture names (one per parameter and float input)."""
    assert g.shape == to_np(outputs["out"]).shape
    inputs["outputGradient"] = g
    for n, v in param_grads.items():
        outputs[f"grad.{n}"] = to_np(v)
    for n, v in input_grads.items():
        assert to_np(v).shape == to_np(inputs[n]).shape, n
        outputs[f"input_grad.{n}"] = to_np(v)
    config["gradients"] = GRAD_NOTE


def torch_gradients(module: tnn.Module, fn, float_inputs: dict, g: np.ndarray, expect_out,
                    tol: float = 2e-6, what: str = ""):
    """Autograd of sum(fn(**leaves) * g) w.r.t. the module's parameters (state_dict names) and
    each float input as its own leaf tensor (self-attention's query, key and value separately)."""
    names = [n for n, _ in module.named_parameters()]
    assert names == list(module.state_dict().keys()), (what, names)
    params = [p for _, p in module.named_parameters()]
    leaves = {n: torch.from_numpy(np.array(a, dtype=np.float32)).requires_grad_(True)
              for n, a in float_inputs.items()}
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn(**leaves)
    assert_close(out.detach().numpy(), expect_out, tol, f"{what} gradient pass forward")
    grads = torch.autograd.grad(out, params + list(leaves.values()), grad_outputs=torch.from_numpy(g))
    return dict(zip(names, grads[:len(names)])), dict(zip(leaves, grads[len(names):]))


def jax_gradients(fn, params, float_inputs: dict, g: np.ndarray, expect_out, tol: float = 2e-6,
                  what: str = ""):
    """jax.vjp of fn(params, **inputs) with cotangent g: parameter gradients named like the
    parameters (tree_named) and one gradient per float input."""
    names = list(float_inputs)
    arrays = [jnp.asarray(float_inputs[n]) for n in names]
    out, vjp = jax.vjp(lambda p, *xs: fn(p, **dict(zip(names, xs))), params, *arrays)
    assert_close(np.asarray(out), expect_out, tol, f"{what} gradient pass forward")
    cot = vjp(jnp.asarray(g))
    return tree_named(cot[0]), {n: np.asarray(c) for n, c in zip(names, cot[1:])}


def assert_close(a, b, tol=1e-5, what=""):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    err = np.nanmax(np.abs(a - b)) if a.size else 0.0
    if not (err <= tol and np.array_equal(np.isnan(a), np.isnan(b))):
        raise AssertionError(f"{what}: max abs err {err} > {tol}")


# --------------------------------------------------------------------------------------------
# a/b. equinox.nn.MultiheadAttention and RotaryPositionalEmbedding
# --------------------------------------------------------------------------------------------


def rope_numpy(x: np.ndarray, theta: float) -> np.ndarray:
    """Half-split (GPT-NeoX) RoPE in float64, positions 0..T-1, used only as a self-check."""
    t, d = x.shape
    x = x.astype(np.float64)
    f = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.outer(np.arange(t, dtype=np.float64), f)
    cos = np.concatenate([np.cos(ang)] * 2, axis=-1)
    sin = np.concatenate([np.sin(ang)] * 2, axis=-1)
    rot = np.concatenate([-x[:, d // 2:], x[:, : d // 2]], axis=-1)
    return x * cos + rot * sin


def eqx_mha_case(name: str, case: str, *, seed: int, num_heads: int, query_size: int,
                 L: int, S: int, key_size=None, value_size=None, output_size=None,
                 qk_size=None, vo_size=None, biases=(False, False, False, False),
                 mask_kind=None, rope_theta=None, batch=None, self_attention=False):
    rng = np.random.default_rng(seed)
    ks = key_size if key_size is not None else query_size
    vs = value_size if value_size is not None else query_size
    os_ = output_size if output_size is not None else query_size
    qk = qk_size if qk_size is not None else query_size // num_heads
    vo = vo_size if vo_size is not None else query_size // num_heads
    mha = eqx.nn.MultiheadAttention(
        num_heads, query_size, key_size=key_size, value_size=value_size,
        output_size=output_size, qk_size=qk_size, vo_size=vo_size,
        use_query_bias=biases[0], use_key_bias=biases[1], use_value_bias=biases[2],
        use_output_bias=biases[3], dropout_p=0.0, inference=True,
        key=jax.random.PRNGKey(seed))

    lead = () if batch is None else (batch,)
    if self_attention:
        assert L == S and ks == query_size and vs == query_size
        q = randn(rng, *lead, L, query_size)
        k = v = q
    else:
        q = randn(rng, *lead, L, query_size)
        k = randn(rng, *lead, S, ks)
        v = randn(rng, *lead, S, vs)

    mask = None
    if mask_kind == "2d":
        mask = rng.random((*lead, L, S)) < 0.7
        if batch is None:
            mask[1, :] = False  # fully masked rows: equinox gives the mean of the values there
            mask[4, :] = False
        else:
            mask[0, 2, :] = False
    elif mask_kind == "3d":
        mask = rng.random((num_heads, L, S)) < 0.6
        mask[:, :, 0] = True
        mask[2, 3, :] = False  # head 2, row 3 fully masked
    elif mask_kind is not None:
        raise ValueError(mask_kind)

    process_heads = None
    rope = None
    if rope_theta is not None:
        eqx.clear_caches()  # equinox's RoPE cache key omits theta
        rope = eqx.nn.RotaryPositionalEmbedding(embedding_size=qk, theta=rope_theta)

        def process_heads(qh, kh, vh):
            qh = jax.vmap(rope, in_axes=1, out_axes=1)(qh)
            kh = jax.vmap(rope, in_axes=1, out_axes=1)(kh)
            return qh, kh, vh

    def call(q_, k_, v_, m_):
        return mha(q_, k_, v_, m_, process_heads=process_heads)

    if batch is None:
        out = call(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                   None if mask is None else jnp.asarray(mask))
    else:
        if mask is None:
            out = jax.vmap(lambda a, b, c: call(a, b, c, None))(q, k, v)
        else:
            out = jax.vmap(call)(q, k, v, mask)
    out = np.asarray(out)

    # self-checks of the documented semantics
    p = {n: np.asarray(a) for n, a in eqx_params(mha).items()}
    if mask_kind == "2d" and batch is None and rope_theta is None:
        vh = v @ p["value_proj.weight"].T + p.get("value_proj.bias", 0)
        expect = vh.mean(axis=0) @ p["output_proj.weight"].T + p.get("output_proj.bias", 0)
        assert_close(out[1], expect, 1e-5, f"{name} fully masked row")
        assert_close(out[4], expect, 1e-5, f"{name} fully masked row")
    if rope_theta is not None:
        qh = (q @ p["query_proj.weight"].T + p.get("query_proj.bias", 0)).reshape(L, num_heads, qk)
        got = np.asarray(jax.vmap(rope, in_axes=1, out_axes=1)(jnp.asarray(qh)))
        for h in range(num_heads):
            assert_close(got[:, h], rope_numpy(qh[:, h], rope_theta), 1e-5, f"{name} rope")

    config = {
        "num_heads": num_heads, "query_size": query_size, "key_size": ks, "value_size": vs,
        "output_size": os_, "qk_size": qk, "vo_size": vo,
        "use_query_bias": biases[0], "use_key_bias": biases[1], "use_value_bias": biases[2],
        "use_output_bias": biases[3], "dropout_p": 0.0, "inference": True,
        "init": "equinox default (weights and biases U(+-1/sqrt(fan_in)))",
        "randomized_biases": False, "seed": seed,
        "L": L, "S": S, "self_attention": self_attention,
    }
    if mask is None:
        config["mask"] = None
    elif batch is not None:
        config["mask"] = "bool (N,L,S), vmapped -> (L,S) per item, True = attend"
    elif mask_kind == "2d":
        config["mask"] = "bool (L,S), True = attend"
    else:
        config["mask"] = "bool (num_heads,L,S), per head, True = attend"
    if rope_theta is not None:
        config["process_heads"] = "RotaryPositionalEmbedding on query and key heads (vmap over head axis 1), values untouched"
        config["rope"] = {"embedding_size": qk, "theta": rope_theta}
        config["equinox_clear_caches_before"] = True
    if batch is not None:
        config["batched"] = f"jax.vmap over leading axis N={batch}"
    inputs = {"query": q, "key": k, "value": v}
    if mask is not None:
        inputs["mask"] = mask
    outputs = {"out": out}

    # gradients: query, key and value are three arguments even where they hold the same array
    diff, static = eqx.partition(mha, eqx.is_array)
    jmask = None if mask is None else jnp.asarray(mask)

    def fwd(pp, query, key, value):
        m = eqx.combine(pp, static)
        one = lambda a, b, c, mm: m(a, b, c, mm, process_heads=process_heads)  # noqa: E731
        if batch is None:
            return one(query, key, value, jmask)
        if jmask is None:
            return jax.vmap(lambda a, b, c: one(a, b, c, None))(query, key, value)
        return jax.vmap(one)(query, key, value, jmask)

    g = output_gradient(seed, out.shape)
    pg, ig = jax_gradients(fwd, diff, {"query": q, "key": k, "value": v}, g, out, what=name)
    assert list(pg) == list(eqx_params(mha)), name
    add_gradients(inputs, outputs, config, g, pg, ig)
    save(name, params=eqx_params(mha), inputs=inputs, outputs=outputs, config=config,
         library=LIB_EQX, case=case)


def gen_equinox():
    eqx_mha_case("eqx_mha_defaults", "equinox MHA, default options (no biases), H=2, size 8, L=S=6, distinct q/k/v",
                 seed=100, num_heads=2, query_size=8, L=6, S=6)
    eqx_mha_case("eqx_mha_all_biases", "equinox MHA with use_query/key/value/output_bias all True, H=2, size 8, L=S=5",
                 seed=101, num_heads=2, query_size=8, L=5, S=5, biases=(True, True, True, True))
    eqx_mha_case("eqx_mha_sizes", "equinox MHA with query 8, key 6, value 10, output 12, qk_size 4, vo_size 3, H=3, L=5, S=7, all biases",
                 seed=102, num_heads=3, query_size=8, key_size=6, value_size=10, output_size=12,
                 qk_size=4, vo_size=3, L=5, S=7, biases=(True, True, True, True))
    eqx_mha_case("eqx_mha_cross_lengths", "equinox MHA cross-attention with L=4 != S=9, H=3, size 12, no biases",
                 seed=103, num_heads=3, query_size=12, L=4, S=9)
    eqx_mha_case("eqx_mha_mask2d", "equinox MHA with 2-D bool mask (L=6,S=7), rows 1 and 4 fully masked (-> mean of values), all biases",
                 seed=104, num_heads=2, query_size=8, L=6, S=7, biases=(True, True, True, True), mask_kind="2d")
    eqx_mha_case("eqx_mha_mask3d", "equinox MHA with 3-D per-head bool mask (H=4,L=5,S=6), head 2 row 3 fully masked, all biases",
                 seed=105, num_heads=4, query_size=16, L=5, S=6, biases=(True, True, True, True), mask_kind="3d")
    eqx_mha_case("eqx_mha_rope_theta10000", "equinox MHA, process_heads = RoPE(qk_size=8, theta=10000) on q and k, H=2, size 16, L=6, S=7, all biases",
                 seed=106, num_heads=2, query_size=16, L=6, S=7, biases=(True, True, True, True), rope_theta=10000.0)
    eqx_mha_case("eqx_mha_rope_theta100", "equinox MHA, process_heads = RoPE(qk_size=8, theta=100) on q and k (caches cleared), H=2, size 16, L=6, S=7, all biases",
                 seed=107, num_heads=2, query_size=16, L=6, S=7, biases=(True, True, True, True), rope_theta=100.0)
    eqx_mha_case("eqx_mha_rope_self_attention", "equinox MHA self-attention (q=k=v=x, L=S=7) with RoPE(qk_size=4, theta=10000), H=2, size 8, all biases",
                 seed=108, num_heads=2, query_size=8, L=7, S=7, biases=(True, True, True, True), rope_theta=10000.0,
                 self_attention=True)
    eqx_mha_case("eqx_mha_batched", "equinox MHA vmapped over N=3, (N,L=5,8)/(N,S=6,8), bool mask (N,L,S) with one fully masked row, all biases",
                 seed=109, num_heads=2, query_size=8, L=5, S=6, biases=(True, True, True, True), mask_kind="2d", batch=3)

    # b. RotaryPositionalEmbedding alone
    seed = 120
    for e in (8, 16):
        for theta in (10000.0, 500.0):
            seed += 1
            rng = np.random.default_rng(seed)
            eqx.clear_caches()
            rope = eqx.nn.RotaryPositionalEmbedding(embedding_size=e, theta=theta)
            x = randn(rng, 7, e)
            y = np.asarray(rope(jnp.asarray(x)))
            assert_close(y, rope_numpy(x, theta), 1e-5, f"rope e={e} theta={theta}")
            inputs, outputs = {"x": x}, {"out": y}
            config = {"embedding_size": e, "theta": theta, "seq_len": 7, "seed": seed,
                      "equinox_clear_caches_before": True}
            g = output_gradient(seed, y.shape)
            _, ig = jax_gradients(lambda _p, x: rope(x), {}, {"x": x}, g, y, what=f"rope e={e}")
            add_gradients(inputs, outputs, config, g, {}, ig)
            save(f"eqx_rope_e{e}_theta{int(theta)}",
                 params={}, inputs=inputs, outputs=outputs, config=config,
                 library=LIB_EQX,
                 case=f"equinox RotaryPositionalEmbedding(embedding_size={e}, theta={int(theta)}) on (7,{e})")
    seed += 1
    rng = np.random.default_rng(seed)
    eqx.clear_caches()
    rope = eqx.nn.RotaryPositionalEmbedding(embedding_size=8, theta=10000.0)
    x = randn(rng, 3, 7, 8)
    y = np.asarray(jax.vmap(rope)(jnp.asarray(x)))
    for i in range(3):
        assert_close(y[i], rope_numpy(x[i], 10000.0), 1e-5, "rope batched")
    inputs, outputs = {"x": x}, {"out": y}
    config = {"embedding_size": 8, "theta": 10000.0, "seq_len": 7, "seed": seed,
              "batched": "jax.vmap over leading axis N=3", "equinox_clear_caches_before": True}
    g = output_gradient(seed, y.shape)
    _, ig = jax_gradients(lambda _p, x: jax.vmap(rope)(x), {}, {"x": x}, g, y, what="rope batched")
    add_gradients(inputs, outputs, config, g, {}, ig)
    save("eqx_rope_batched", params={}, inputs=inputs, outputs=outputs, config=config,
         library=LIB_EQX, case="equinox RotaryPositionalEmbedding(8, theta=10000) vmapped over N=3, (3,7,8)")


# --------------------------------------------------------------------------------------------
# c. torch.nn.MultiheadAttention
# --------------------------------------------------------------------------------------------


def _trap(name):
    def f(*a, **k):
        raise RuntimeError(f"torch fast path {name} was taken; fixtures must use the slow path")
    return f


def disable_torch_fastpath():
    torch.backends.mha.set_fastpath_enabled(False)
    # belt and braces: any fast-path kernel call fails loudly
    torch._native_multi_head_attention = _trap("_native_multi_head_attention")
    torch._transformer_encoder_layer_fwd = _trap("_transformer_encoder_layer_fwd")


TORCH_PATH_NOTE = ("slow path: torch.backends.mha.set_fastpath_enabled(False) and the fast-path kernels "
                   "(_native_multi_head_attention, _transformer_encoder_layer_fwd) replaced by traps that raise")


@torch.no_grad()
def torch_mha_case(name: str, case: str, *, seed: int, E: int, H: int, L: int, S: int,
                   kdim=None, vdim=None, bias=True, add_bias_kv=False, add_zero_attn=False,
                   batch_first=False, N=None, self_attention=False,
                   kpm=None, attn_mask=None, need_weights=True, average_attn_weights=True,
                   is_causal=False, expect=None):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    mha = tnn.MultiheadAttention(E, H, dropout=0.0, bias=bias, add_bias_kv=add_bias_kv,
                                 add_zero_attn=add_zero_attn, kdim=kdim, vdim=vdim,
                                 batch_first=batch_first)
    torch_randomize(mha, gen)
    mha.eval()
    kd = kdim if kdim is not None else E
    vd = vdim if vdim is not None else E

    def shape(T, F):
        if N is None:
            return (T, F)
        return (N, T, F) if batch_first else (T, N, F)

    q = randn(rng, *shape(L, E))
    if self_attention:
        assert L == S and kd == E and vd == E
        k = v = q
    else:
        k = randn(rng, *shape(S, kd))
        v = randn(rng, *shape(S, vd))
    tq = torch.from_numpy(q)
    tk = tq if self_attention else torch.from_numpy(k)
    tv = tq if self_attention else torch.from_numpy(v)

    inputs = {"query": q, "key": k, "value": v}
    kwargs = {}
    if kpm is not None:
        kpm = kpm(rng)
        inputs["key_padding_mask"] = kpm
        kwargs["key_padding_mask"] = torch.from_numpy(kpm)
    if attn_mask is not None:
        attn_mask = attn_mask(rng)
        inputs["attn_mask"] = attn_mask
        kwargs["attn_mask"] = torch.from_numpy(attn_mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, w = mha(tq, tk, tv, need_weights=need_weights,
                     average_attn_weights=average_attn_weights, is_causal=is_causal, **kwargs)
    outputs = {"out": out}
    if w is not None:
        outputs["weights"] = w
    params = torch_params(mha)
    if expect is not None:
        expect(params, inputs, {k_: to_np(v_) for k_, v_ in outputs.items()})

    config = {
        "embed_dim": E, "num_heads": H, "dropout": 0.0, "bias": bias,
        "add_bias_kv": add_bias_kv, "add_zero_attn": add_zero_attn,
        "kdim": kd, "vdim": vd, "batch_first": batch_first,
        "need_weights": need_weights, "average_attn_weights": average_attn_weights,
        "is_causal": is_causal, "training": False, "no_grad": True,
        "init": "torch default (_reset_parameters)",
        "randomized_biases": bias, "randomized_biases_std": BIAS_STD if bias else None,
        "seed": seed, "L": L, "S": S, "N": N, "self_attention": self_attention,
        "key_padding_mask": None if kpm is None else f"{kpm.dtype.name} {list(kpm.shape)}"
                            + (" (True = ignore)" if kpm.dtype == np.bool_ else " (added)"),
        "attn_mask": None if attn_mask is None else f"{attn_mask.dtype.name} {list(attn_mask.shape)}"
                     + (" (True = not allowed)" if attn_mask.dtype == np.bool_ else " (added)"),
        "path": TORCH_PATH_NOTE,
    }

    def fwd(query, key, value):
        return mha(query, key, value, need_weights=need_weights,
                   average_attn_weights=average_attn_weights, is_causal=is_causal, **kwargs)[0]

    out_np = to_np(out)
    g = output_gradient(seed, out_np.shape)
    pg, ig = torch_gradients(mha, fwd, {"query": q, "key": k, "value": v}, g, out_np, what=name)
    add_gradients(inputs, outputs, config, g, pg, ig)
    if self_attention:
        config["gradient_inputs"] = ("query, key and value passed as three separate leaf tensors "
                                     "(equal values), one gradient each")
    if np.isnan(out_np).any():
        config["gradients_nan"] = ("the fully masked row's NaN reaches the gradients through the "
                                   "softmax's backward: stored as torch gives them")
    save(name, params=params, inputs=inputs, outputs=outputs, config=config,
         library=LIB_TORCH, case=case)


def gen_torch_mha():
    def bool_kpm(S, masked, N=None):
        def f(rng):
            if N is None:
                m = np.zeros(S, dtype=bool)
                m[list(masked)] = True
            else:
                m = np.zeros((N, S), dtype=bool)
                for i, cols in enumerate(masked):
                    m[i, list(cols)] = True
            return m
        return f

    def bool_mask(L, S, p=0.3, full_rows=(), lead=()):
        def f(rng):
            m = rng.random((*lead, L, S)) < p
            m[..., :, 0] = False  # key 0 always allowed, so only `full_rows` are fully masked
            for r in full_rows:
                m[..., r, :] = True
            return m
        return f

    torch_mha_case("torch_mha_default", "torch MHA defaults (packed in_proj, E=8, H=2), unbatched L=5, S=6, need_weights averaged",
                   seed=200, E=8, H=2, L=5, S=6)
    torch_mha_case("torch_mha_weights_per_head", "torch MHA E=12, H=3, unbatched L=5, S=7, need_weights with average_attn_weights=False -> (H,L,S)",
                   seed=201, E=12, H=3, L=5, S=7, average_attn_weights=False)
    torch_mha_case("torch_mha_no_weights", "torch MHA E=8, H=2, unbatched L=5, S=6, need_weights=False (SDPA path)",
                   seed=202, E=8, H=2, L=5, S=6, need_weights=False)
    torch_mha_case("torch_mha_kdim_vdim", "torch MHA E=8, H=2, kdim=6, vdim=10 (separate q/k/v_proj_weight), L=5, S=7, per-head weights",
                   seed=203, E=8, H=2, kdim=6, vdim=10, L=5, S=7, average_attn_weights=False)
    torch_mha_case("torch_mha_no_bias", "torch MHA bias=False, E=8, H=2, unbatched L=6, S=5, averaged weights",
                   seed=204, E=8, H=2, L=6, S=5, bias=False)

    def bkv_kpm(rng):
        m = np.zeros(6, dtype=bool)
        m[[1, 4]] = True
        return m

    def bkv_mask(rng):
        m = rng.random((5, 6)) < 0.3
        m[0, :] = True  # every original key masked in row 0: only the appended bias_k / zero slots remain
        return m

    torch_mha_case("torch_mha_bias_kv_zero_attn", "torch MHA add_bias_kv + add_zero_attn with bool key_padding_mask (S) and bool attn_mask (L,S) (row 0 fully masked over the original keys), E=8, H=2, L=5, S=6, per-head weights (H,L,S+2)",
                   seed=205, E=8, H=2, L=5, S=6, add_bias_kv=True, add_zero_attn=True,
                   kpm=bkv_kpm, attn_mask=bkv_mask, average_attn_weights=False)
    torch_mha_case("torch_mha_bias_kv_zero_attn_no_weights", "torch MHA add_bias_kv + add_zero_attn with bool key_padding_mask and attn_mask, need_weights=False (SDPA path), E=8, H=2, L=5, S=6",
                   seed=206, E=8, H=2, L=5, S=6, add_bias_kv=True, add_zero_attn=True,
                   kpm=bkv_kpm, attn_mask=bkv_mask, need_weights=False)
    torch_mha_case("torch_mha_kpm_bool", "torch MHA bool key_padding_mask (S=7, True = ignore, keys 2 and 5), E=8, H=2, L=5, averaged weights",
                   seed=207, E=8, H=2, L=5, S=7, kpm=bool_kpm(7, [2, 5]))

    def float_kpm(rng):
        m = (1.5 * rng.standard_normal(7)).astype(np.float32)
        m[3] = -np.inf
        return m

    torch_mha_case("torch_mha_kpm_float", "torch MHA float key_padding_mask (S=7, added to the logits, one -inf), E=8, H=2, L=5, per-head weights",
                   seed=208, E=8, H=2, L=5, S=7, kpm=float_kpm, average_attn_weights=False)
    torch_mha_case("torch_mha_attn_mask_bool", "torch MHA bool attn_mask 2-D (L=5,S=6, True = not allowed, no fully masked row), E=8, H=2, averaged weights",
                   seed=209, E=8, H=2, L=5, S=6, attn_mask=bool_mask(5, 6, 0.35))

    def float_mask3d(rng):
        m = rng.standard_normal((2 * 2, 5, 6)).astype(np.float32)
        m[rng.random(m.shape) < 0.2] = -np.inf
        m[:, :, 0] = 0.0
        return m

    torch_mha_case("torch_mha_attn_mask_float_3d_batched", "torch MHA batch_first=True N=2, float attn_mask 3-D (N*H=4,L=5,S=6) added (some -inf), E=8, H=2, per-head weights (N,H,L,S)",
                   seed=210, E=8, H=2, L=5, S=6, N=2, batch_first=True, attn_mask=float_mask3d,
                   average_attn_weights=False)

    def causal_bool(rng):
        return np.triu(np.ones((6, 6), dtype=bool), k=1)

    torch_mha_case("torch_mha_is_causal", "torch MHA self-attention (query is key is value) L=S=6 with is_causal=True, bool causal attn_mask triu(1), need_weights=False (SDPA builds its own causal mask)",
                   seed=211, E=8, H=2, L=6, S=6, self_attention=True, attn_mask=causal_bool,
                   need_weights=False, is_causal=True)

    def nan_rows_expect(params, inputs, outputs):
        out = outputs["out"]
        assert np.isnan(out[2]).all() and not np.isnan(np.delete(out, 2, axis=0)).any(), "expected NaN row 2"
        assert np.isnan(outputs["weights"][2]).all()

    def zero_rows_expect(params, inputs, outputs):
        out = outputs["out"]
        assert_close(out[2], to_np(params["out_proj.bias"]), 0.0, "fully masked row must equal out_proj.bias")
        assert not np.isnan(out).any()

    torch_mha_case("torch_mha_masked_row_weights", "torch MHA bool attn_mask (L=5,S=6) with row 2 fully masked, need_weights=True: row 2 of out and weights is NaN",
                   seed=212, E=8, H=2, L=5, S=6, attn_mask=bool_mask(5, 6, 0.3, full_rows=(2,)),
                   expect=nan_rows_expect)
    torch_mha_case("torch_mha_masked_row_no_weights", "torch MHA bool attn_mask (L=5,S=6) with row 2 fully masked, need_weights=False: row 2 of out equals out_proj.bias exactly",
                   seed=212, E=8, H=2, L=5, S=6, attn_mask=bool_mask(5, 6, 0.3, full_rows=(2,)),
                   need_weights=False, expect=zero_rows_expect)
    torch_mha_case("torch_mha_batch_first", "torch MHA batch_first=True, self-attention (N=3,L=S=5,E=8), H=2, bool key_padding_mask (N,S), averaged weights (N,L,S)",
                   seed=213, E=8, H=2, L=5, S=5, N=3, batch_first=True, self_attention=True,
                   kpm=bool_kpm(5, [[], [4], [0, 3]], N=3))
    torch_mha_case("torch_mha_seq_first_batched", "torch MHA batch_first=False batched cross-attention, query (L=5,N=2,E=8), key/value (S=6,N=2,E), H=2, bool attn_mask (L,S), per-head weights (N,H,L,S)",
                   seed=214, E=8, H=2, L=5, S=6, N=2, batch_first=False,
                   attn_mask=bool_mask(5, 6, 0.3), average_attn_weights=False)


# --------------------------------------------------------------------------------------------
# e. torch.nn.TransformerEncoderLayer / TransformerEncoder
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def torch_encoder_case(name: str, case: str, *, seed: int, d_model=16, nhead=4, dim_feedforward=32,
                       activation="relu", norm_first=False, bias=True, batch_first=False,
                       N=None, L=6, src_mask=None, kpm=None, is_causal=False, num_layers=None):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    layer = tnn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.1,
                                        activation=activation, layer_norm_eps=1e-5,
                                        batch_first=batch_first, norm_first=norm_first, bias=bias)
    if num_layers is None:
        module = layer
        torch_randomize(module, gen)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = tnn.TransformerEncoder(layer, num_layers, norm=tnn.LayerNorm(d_model, eps=1e-5, bias=bias),
                                            enable_nested_tensor=False)
        # torch deep-copies the layer, so all layers start identical: re-draw each one
        for lyr in module.layers:
            lyr.self_attn._reset_parameters()
            lyr.linear1.reset_parameters()
            lyr.linear2.reset_parameters()
        torch_randomize(module, gen)
        sd = module.state_dict()
        assert not torch.equal(sd["layers.0.linear1.weight"], sd["layers.1.linear1.weight"])
        assert not torch.equal(sd["layers.0.self_attn.in_proj_weight"], sd["layers.1.self_attn.in_proj_weight"])
    module.eval()

    if N is None:
        x = randn(rng, L, d_model)
    else:
        x = randn(rng, N, L, d_model) if batch_first else randn(rng, L, N, d_model)
    inputs = {"x": x}
    kwargs = {}
    if src_mask is not None:
        src_mask = src_mask(rng)
        inputs["src_mask"] = src_mask
        kwargs["mask" if num_layers is not None else "src_mask"] = torch.from_numpy(src_mask)
    if kpm is not None:
        kpm = kpm(rng)
        inputs["src_key_padding_mask"] = kpm
        kwargs["src_key_padding_mask"] = torch.from_numpy(kpm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = module(torch.from_numpy(x), is_causal=is_causal, **kwargs)

    config = {
        "d_model": d_model, "nhead": nhead, "dim_feedforward": dim_feedforward, "dropout": 0.1,
        "activation": activation, "layer_norm_eps": 1e-5, "batch_first": batch_first,
        "norm_first": norm_first, "bias": bias, "is_causal": is_causal,
        "training": False, "no_grad": True,
        "init": "torch default (MHA _reset_parameters, Linear default)",
        "randomized_biases": bias, "randomized_biases_std": BIAS_STD if bias else None,
        "randomized_layernorm": True, "randomized_layernorm_std": LN_STD,
        "randomized_note": "MHA in_proj_bias/out_proj.bias ~ N(0, std^2); LayerNorm weight = 1 + N(0, ln_std^2), bias = N(0, ln_std^2)",
        "seed": seed, "L": L, "N": N,
        "src_mask": None if src_mask is None else f"{src_mask.dtype.name} {list(src_mask.shape)}"
                    + (" (True = not allowed)" if src_mask.dtype == np.bool_ else " (added)"),
        "src_key_padding_mask": None if kpm is None else f"{kpm.dtype.name} {list(kpm.shape)} (True = ignore)",
        "path": TORCH_PATH_NOTE,
    }
    if num_layers is not None:
        config.update({"num_layers": num_layers, "norm": f"LayerNorm({d_model}, eps=1e-5, bias={bias})",
                       "enable_nested_tensor": False, "mask_check": True,
                       "layers_redrawn": "each layer's self_attn._reset_parameters(), linear1/linear2.reset_parameters() after construction, then biases/LayerNorms randomized"})
    outputs = {"out": out}
    out_np = to_np(out)
    g = output_gradient(seed, out_np.shape)
    pg, ig = torch_gradients(module, lambda x: module(x, is_causal=is_causal, **kwargs), {"x": x}, g,
                             out_np, what=name)
    add_gradients(inputs, outputs, config, g, pg, ig)
    save(name, params=torch_params(module), inputs=inputs, outputs=outputs, config=config,
         library=LIB_TORCH, case=case)


def gen_torch_encoder():
    def bool_src_mask(L, p=0.35):
        def f(rng):
            m = rng.random((L, L)) < p
            np.fill_diagonal(m, False)
            return m
        return f

    def causal_float(L):
        def f(rng):
            return tnn.Transformer.generate_square_subsequent_mask(L).numpy().astype(np.float32)
        return f

    def kpm_batched(N, L, masked):
        def f(rng):
            m = np.zeros((N, L), dtype=bool)
            for i, cols in enumerate(masked):
                m[i, list(cols)] = True
            return m
        return f

    torch_encoder_case("torch_encoder_layer_postnorm_relu", "torch TransformerEncoderLayer post-norm relu, d_model 16, nhead 4, ff 32, unbatched (6,16)",
                       seed=300, nhead=4)
    torch_encoder_case("torch_encoder_layer_prenorm_gelu", "torch TransformerEncoderLayer norm_first=True, activation 'gelu' (exact erf), d_model 16, nhead 2, ff 32, unbatched (6,16)",
                       seed=301, nhead=2, activation="gelu", norm_first=True)
    torch_encoder_case("torch_encoder_layer_kpm", "torch TransformerEncoderLayer post-norm relu, batch_first=True (2,6,16), bool src_key_padding_mask (2,6), nhead 4",
                       seed=302, nhead=4, batch_first=True, N=2, kpm=kpm_batched(2, 6, [[5], [1, 4]]))
    torch_encoder_case("torch_encoder_layer_src_mask_bool", "torch TransformerEncoderLayer post-norm relu, bool src_mask (6,6) (True = not allowed, diagonal allowed), unbatched, nhead 4",
                       seed=303, nhead=4, src_mask=bool_src_mask(6))
    torch_encoder_case("torch_encoder_layer_causal", "torch TransformerEncoderLayer post-norm relu, is_causal=True with float causal src_mask (generate_square_subsequent_mask), unbatched, nhead 2",
                       seed=304, nhead=2, src_mask=causal_float(6), is_causal=True)
    torch_encoder_case("torch_encoder_layer_no_bias", "torch TransformerEncoderLayer bias=False (no Linear/MHA/LayerNorm biases), post-norm relu, unbatched, nhead 4",
                       seed=305, nhead=4, bias=False)
    torch_encoder_case("torch_encoder_layer_batch_first", "torch TransformerEncoderLayer batch_first=True batched (3,5,16), post-norm relu, nhead 4, no masks",
                       seed=306, nhead=4, batch_first=True, N=3, L=5)
    torch_encoder_case("torch_encoder_layer_seq_first", "torch TransformerEncoderLayer batch_first=False batched (L=5,N=2,16), pre-norm gelu, nhead 2",
                       seed=307, nhead=2, activation="gelu", norm_first=True, N=2, L=5)
    torch_encoder_case("torch_encoder_2layers_final_norm", "torch TransformerEncoder num_layers=2 (layers differ) + final LayerNorm, pre-norm gelu layers, nhead 2, batch_first (2,6,16) with src_key_padding_mask",
                       seed=308, nhead=2, activation="gelu", norm_first=True, batch_first=True, N=2,
                       kpm=kpm_batched(2, 6, [[], [3, 5]]), num_layers=2)


# --------------------------------------------------------------------------------------------
# d/f. noxton
# --------------------------------------------------------------------------------------------


def gen_noxton():
    # d. SqueezeExcitation
    def se_case(name, case, seed, activation, act_name, batch=None):
        rng = np.random.default_rng(seed)
        se = nnx_nn.SqueezeExcitation(8, 4, key=jax.random.PRNGKey(seed))
        lead = () if batch is None else (batch,)
        x = randn(rng, *lead, 8, 5, 6)
        f = lambda a: se(a, activation=activation, scale_activation=jax.nn.sigmoid)  # noqa: E731
        y = np.asarray(f(jnp.asarray(x)) if batch is None else jax.vmap(f)(jnp.asarray(x)))
        config = {"input_channels": 8, "squeeze_channels": 4, "activation": act_name,
                  "scale_activation": "sigmoid", "init": "equinox Conv2d default (weight and bias U(+-1/sqrt(fan_in)))",
                  "randomized_biases": False, "seed": seed, "C": 8, "H": 5, "W": 6}
        if batch is not None:
            config["batched"] = f"jax.vmap over leading axis N={batch}"
        inputs, outputs = {"x": x}, {"out": y}
        diff, static = eqx.partition(se, eqx.is_array)

        def fwd(pp, x):
            m = eqx.combine(pp, static)
            h = lambda a: m(a, activation=activation, scale_activation=jax.nn.sigmoid)  # noqa: E731
            return h(x) if batch is None else jax.vmap(h)(x)

        g = output_gradient(seed, y.shape)
        pg, ig = jax_gradients(fwd, diff, {"x": x}, g, y, what=name)
        assert list(pg) == list(eqx_params(se)), name
        add_gradients(inputs, outputs, config, g, pg, ig)
        save(name, params=eqx_params(se), inputs=inputs, outputs=outputs, config=config,
             library=LIB_NOXTON, case=case)

    se_case("noxton_se_default", "noxton SqueezeExcitation(8, 4), x (C=8,H=5,W=6), relu / sigmoid", 400, jax.nn.relu, "relu")
    se_case("noxton_se_silu", "noxton SqueezeExcitation(8, 4), x (8,5,6), activation=jax.nn.silu, scale_activation sigmoid", 401, jax.nn.silu, "silu")
    se_case("noxton_se_batched", "noxton SqueezeExcitation(8, 4) vmapped over N=2, x (2,8,5,6), relu / sigmoid", 402, jax.nn.relu, "relu", batch=2)

    # f. TransformerEncoderLayer / TransformerEncoder
    def enc_layer_case(name, case, seed, batch=None):
        rng = np.random.default_rng(seed)
        layer = nnx_nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout_p=0.1,
                                               activation=jax.nn.relu, layer_norm_eps=1e-5,
                                               norm_first=True, use_bias=True, inference=True,
                                               key=jax.random.PRNGKey(seed))
        layer = eqx_randomize_layernorms(layer, rng)
        lead = () if batch is None else (batch,)
        x = randn(rng, *lead, 6, 16)
        m = rng.random((*lead, 6, 6)) < 0.7
        m[..., np.arange(6), np.arange(6)] = True
        f = lambda a, b: layer(a, attn_mask=b, is_causal=False, inference=True)  # noqa: E731
        y = np.asarray(f(x, m) if batch is None else jax.vmap(f)(x, m))
        config = {"d_model": 16, "n_heads": 4, "dim_feedforward": 32, "dropout_p": 0.1,
                  "activation": "relu", "layer_norm_eps": 1e-5, "norm_first": True, "use_bias": True,
                  "inference": True, "is_causal": False,
                  "attn_mask": "bool (L,L), True = attend (equinox convention), diagonal True",
                  "init": "noxton/equinox default (eqx MHA with all biases, eqx Linear, eqx LayerNorm)",
                  "randomized_biases": False, "randomized_layernorm": True, "randomized_layernorm_std": LN_STD,
                  "seed": seed, "L": 6}
        if batch is not None:
            config["batched"] = f"jax.vmap over leading axis N={batch}"
        inputs, outputs = {"x": x, "attn_mask": m}, {"out": y}
        diff, static = eqx.partition(layer, eqx.is_array)
        jm = jnp.asarray(m)

        def fwd(pp, x):
            lyr = eqx.combine(pp, static)
            h = lambda a, b: lyr(a, attn_mask=b, is_causal=False, inference=True)  # noqa: E731
            return h(x, jm) if batch is None else jax.vmap(h)(x, jm)

        g = output_gradient(seed, y.shape)
        pg, ig = jax_gradients(fwd, diff, {"x": x}, g, y, what=name)
        assert list(pg) == list(eqx_params(layer)), name
        add_gradients(inputs, outputs, config, g, pg, ig)
        save(name, params=eqx_params(layer), inputs=inputs, outputs=outputs,
             config=config, library=LIB_NOXTON, case=case)

    enc_layer_case("noxton_encoder_layer", "noxton TransformerEncoderLayer (pre-norm default, relu), d_model 16, 4 heads, ff 32, inference, bool attn_mask (True = attend), x (6,16)", 410)
    enc_layer_case("noxton_encoder_layer_batched", "noxton TransformerEncoderLayer as noxton_encoder_layer, vmapped over N=2: x (2,6,16), attn_mask (2,6,6)", 411, batch=2)

    seed = 412
    rng = np.random.default_rng(seed)
    enc = nnx_nn.TransformerEncoder(16, 2, num_layers=2, dim_feedforward=32, dropout_p=0.1,
                                    activation=jax.nn.relu, layer_norm_eps=1e-5, norm_first=True,
                                    use_bias=True, use_final_norm=True, inference=True,
                                    key=jax.random.PRNGKey(seed))
    enc = eqx_randomize_layernorms(enc, rng)
    x = randn(rng, 7, 16)
    y = np.asarray(enc(jnp.asarray(x), mask=None, is_causal=True, inference=True))
    inputs, outputs = {"x": x}, {"out": y}
    diff, static = eqx.partition(enc, eqx.is_array)
    g = output_gradient(seed, y.shape)
    pg, ig = jax_gradients(lambda pp, x: eqx.combine(pp, static)(x, mask=None, is_causal=True, inference=True),
                           diff, {"x": x}, g, y, what="noxton_encoder")
    assert list(pg) == list(eqx_params(enc)), "noxton_encoder"
    config = {}
    add_gradients(inputs, outputs, config, g, pg, ig)
    save("noxton_encoder", params=eqx_params(enc), inputs=inputs, outputs=outputs,
         config={**config, "d_model": 16, "n_heads": 2, "num_layers": 2, "dim_feedforward": 32, "dropout_p": 0.1,
                 "activation": "relu", "layer_norm_eps": 1e-5, "norm_first": True, "use_bias": True,
                 "use_final_norm": True, "inference": True, "is_causal": True, "mask": None,
                 "causal": "noxton make_causal_mask: tril(ones(L,L)) bool, True = attend",
                 "init": "noxton default (each layer its own key; final eqx LayerNorm)",
                 "randomized_biases": False, "randomized_layernorm": True, "randomized_layernorm_std": LN_STD,
                 "seed": seed, "L": 7},
         library=LIB_NOXTON,
         case="noxton TransformerEncoder num_layers=2 + final LayerNorm (pre-norm, relu), d_model 16, 2 heads, ff 32, is_causal=True, x (7,16)")


# --------------------------------------------------------------------------------------------
# g. flax.linen.MultiHeadDotProductAttention
# --------------------------------------------------------------------------------------------


def flax_case(name, case, *, seed, attrs: dict, q_shape, k_shape=None, v_shape=None, mask=None,
              sow=True, extra_config=None):
    rng = np.random.default_rng(seed)
    module = fnn.MultiHeadDotProductAttention(**attrs)
    q = randn(rng, *q_shape)
    k = randn(rng, *k_shape) if k_shape is not None else None
    v = randn(rng, *v_shape) if v_shape is not None else None
    args = [jnp.asarray(q)]
    if k is not None:
        args.append(jnp.asarray(k))
    if v is not None:
        args.append(jnp.asarray(v))
    m = mask(rng) if mask is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variables = module.init(jax.random.PRNGKey(seed), *args, mask=m)
        params = flax_randomize(variables["params"], rng)
        out, state = module.apply({"params": params}, *args, mask=m, sow_weights=sow,
                                  mutable=["intermediates"])
    outputs = {"out": out}
    if sow:
        outputs["weights"] = state["intermediates"]["attention_weights"][0]
    inputs = {"query": q,
              "key": k if k is not None else q,
              "value": v if v is not None else (k if k is not None else q)}
    if m is not None:
        inputs["mask"] = m
    config = dict(attrs)
    config.update({
        "dtype": None, "param_dtype": "float32", "dropout_rate": attrs.get("dropout_rate", 0.0),
        "deterministic": True,
        "init": "flax default (lecun_normal kernels, zero biases, LN scale ones)",
        "randomized_biases": attrs.get("use_bias", True), "randomized_biases_std": BIAS_STD,
        "seed": seed,
        "call": "module(inputs_q" + (", inputs_k" if k is not None else "") + (", inputs_v" if v is not None else "")
                + (", mask=mask" if m is not None else "") + (", sow_weights=True" if sow else "") + ")",
        "self_attention": k is None,
        "weights": "sown intermediates/attention_weights, shape [batch..., H, L, S]" if sow else None,
    })
    if extra_config:
        config.update(extra_config)

    def fwd(pp, query, key, value):  # three arguments even for self-attention (flax's own k = v = q)
        return module.apply({"params": pp}, query, key, value, mask=m)

    out_np = np.asarray(out)
    g = output_gradient(seed, out_np.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pg, ig = jax_gradients(fwd, params, {n: inputs[n] for n in ("query", "key", "value")}, g, out_np,
                               what=name)
    assert set(pg) == set(flax_flat(params)), name
    add_gradients(inputs, outputs, config, g, pg, ig)
    if k is None:
        config["gradient_inputs"] = ("inputs_q, inputs_k and inputs_v passed as three arguments "
                                     "(equal values), one gradient each")
    save(name, params=flax_flat(params), inputs=inputs, outputs=outputs, config=config,
         library=LIB_FLAX, case=case)


def gen_flax():
    flax_case("flax_mhdpa_defaults", "flax MultiHeadDotProductAttention(num_heads=2) defaults, self-attention on (2,3,L=5,F=8) (two leading batch dims)",
              seed=500, attrs={"num_heads": 2}, q_shape=(2, 3, 5, 8))
    flax_case("flax_mhdpa_cross", "flax MHDPA cross-attention, q (2,5,6), k (2,7,10), v (2,7,12), num_heads 2, qkv_features 8, out_features 10",
              seed=501, attrs={"num_heads": 2, "qkv_features": 8, "out_features": 10},
              q_shape=(2, 5, 6), k_shape=(2, 7, 10), v_shape=(2, 7, 12))
    flax_case("flax_mhdpa_no_bias", "flax MHDPA use_bias=False, num_heads 4, self-attention on (2,6,16)",
              seed=502, attrs={"num_heads": 4, "use_bias": False}, q_shape=(2, 6, 16))

    def mask_fn(rng):
        m = rng.random((2, 1, 5, 6)) < 0.7
        m[..., 0] = True
        m[1, 0, 3, :] = False  # fully masked row -> uniform weights 1/S
        return m

    flax_case("flax_mhdpa_mask", "flax MHDPA num_heads 2, q (2,5,8), k/v (2,6,8), bool mask (B=2,1,L=5,S=6) True = attend, batch 1 row 3 fully masked (uniform 1/S)",
              seed=503, attrs={"num_heads": 2}, q_shape=(2, 5, 8), k_shape=(2, 6, 8), v_shape=(2, 6, 8),
              mask=mask_fn)
    flax_case("flax_mhdpa_normalize_qk", "flax MHDPA normalize_qk=True (query_ln/key_ln scale randomized), num_heads 2, q (2,5,8), k/v (2,6,8)",
              seed=504, attrs={"num_heads": 2, "normalize_qk": True}, q_shape=(2, 5, 8), k_shape=(2, 6, 8),
              v_shape=(2, 6, 8), extra_config={"randomized_ln_scale": True, "randomized_ln_scale_std": LN_STD,
                                               "ln": "LayerNorm(use_bias=False, epsilon=1e-6, use_fast_variance=True) over head_dim"})

    # decode
    seed = 505
    rng = np.random.default_rng(seed)
    B, max_len, F, H, steps = 2, 6, 8, 2, 4
    dec = fnn.MultiHeadDotProductAttention(num_heads=H, decode=True)
    x_init = jnp.asarray(randn(rng, B, max_len, F))
    variables = dec.init(jax.random.PRNGKey(seed), x_init)
    params = flax_randomize(variables["params"], rng)
    cache = variables["cache"]
    xs = randn(rng, B, steps, F)
    inputs, outputs = {}, {}
    step_outs = []
    for t in range(steps):
        xt = xs[:, t:t + 1]
        o, mut = dec.apply({"params": params, "cache": cache}, jnp.asarray(xt), mutable=["cache"])
        cache = mut["cache"]
        inputs[f"x_step{t}"] = xt
        outputs[f"out_step{t}"] = o
        step_outs.append(np.asarray(o))
    full = fnn.MultiHeadDotProductAttention(num_heads=H)
    full_out = full.apply({"params": params}, jnp.asarray(xs),
                          mask=fnn.make_causal_mask(jnp.ones((B, steps))))
    assert_close(np.concatenate(step_outs, axis=1), full_out, 1e-5, "flax decode vs full causal")
    inputs["x_full"] = xs
    outputs["full_causal"] = full_out
    outputs["cached_key"] = cache["cached_key"]
    outputs["cached_value"] = cache["cached_value"]
    assert int(cache["cache_index"]) == steps
    save("flax_mhdpa_decode", params=flax_flat(params), inputs=inputs, outputs=outputs,
         config={"num_heads": H, "decode": True, "max_len": max_len, "steps": steps,
                 "init_input_shape": [B, max_len, F],
                 "init": "module.init(PRNGKey(seed), x of shape (B, max_len, F)); flax default params, biases randomized",
                 "randomized_biases": True, "randomized_biases_std": BIAS_STD, "seed": seed,
                 "step_call": "module.apply({'params','cache'}, x_step_t (B,1,F), mutable=['cache'])",
                 "x_full": "concat of x_step0..x_step3 along axis 1, shape (B, steps, F)",
                 "full_causal": "non-decode module, same params, apply(x_full, mask=make_causal_mask(ones((B, steps)))) -> (B, steps, F)",
                 "cached_key/cached_value": "cache after the last step, (B, max_len, H, head_dim); unwritten slots are 0",
                 "cache_index_after": steps},
         library=LIB_FLAX,
         case="flax MHDPA decode=True: init with max_len 6 then 4 single-token steps (B=2, F=8, H=2); plus the full causal output")


def flax_dpa_case(name, case, *, seed, q_shape, k_shape, v_shape, bias_shape=None, mask=None):
    """flax.linen.dot_product_attention (deterministic, no dropout) on random heads."""
    rng = np.random.default_rng(seed)
    q, k, v = randn(rng, *q_shape), randn(rng, *k_shape), randn(rng, *v_shape)
    bias = randn(rng, *bias_shape) if bias_shape is not None else None
    m = mask(rng) if mask is not None else None
    out = fnn.dot_product_attention(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v),
                                    bias=None if bias is None else jnp.asarray(bias),
                                    mask=None if m is None else jnp.asarray(m), deterministic=True)
    inputs = {"query": q, "key": k, "value": v}
    if bias is not None:
        inputs["bias"] = bias
    if m is not None:
        inputs["mask"] = m
    config = {"seed": seed, "broadcast_dropout": True, "dropout_rate": 0.0, "deterministic": True,
              "call": "dot_product_attention(query, key, value" + (", bias=bias" if bias is not None else "")
                      + (", mask=mask" if m is not None else "") + ", deterministic=True)"}
    outputs = {"out": out}
    jb = None if bias is None else jnp.asarray(bias)
    jm = None if m is None else jnp.asarray(m)
    out_np = np.asarray(out)
    g = output_gradient(seed, out_np.shape)
    _, ig = jax_gradients(lambda _p, query, key, value: fnn.dot_product_attention(
        query, key, value, bias=jb, mask=jm, deterministic=True),
        {}, {"query": q, "key": k, "value": v}, g, out_np, what=name)
    add_gradients(inputs, outputs, config, g, {}, ig)
    if bias is not None:
        config["bias_gradient"] = "not stored (the bias is a float mask)"
    save(name, params={}, inputs=inputs, outputs=outputs, config=config, library=LIB_FLAX, case=case)


def gen_flax_dot_product_attention():
    def mixed_batch_mask(rng):
        m = rng.random((2, 1, 1, 5, 6)) < 0.7
        m[..., 0] = True
        m[1, 0, 0, 3, :] = False  # fully masked row -> the mean of the values
        return m

    flax_dpa_case("flax_dpa_bias_mask", "flax dot_product_attention, q (2,3,L=5,H=2,D=4), k (2,3,6,2,4), v (2,3,6,2,3), bias (3,2,1,6) and bool mask (2,1,1,5,6) both broadcast over mixed batch dimensions, batch (1, *) row 3 fully masked",
                  seed=520, q_shape=(2, 3, 5, 2, 4), k_shape=(2, 3, 6, 2, 4), v_shape=(2, 3, 6, 2, 3),
                  bias_shape=(3, 2, 1, 6), mask=mixed_batch_mask)
    flax_dpa_case("flax_dpa_unbatched", "flax dot_product_attention without batch dimensions, q (L=5,H=2,D=4), k (7,2,4), v (7,2,6), no bias or mask",
                  seed=521, q_shape=(5, 2, 4), k_shape=(7, 2, 4), v_shape=(7, 2, 6))


# --------------------------------------------------------------------------------------------
# h. tutorial modules (seed page 004), written exactly as shown there
# --------------------------------------------------------------------------------------------


class SelfAttention(tnn.Module):
    def __init__(self, d_in, d_out_kq, d_out_v):
        super().__init__()
        self.d_out_kq = d_out_kq
        self.W_query = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_key = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_value = tnn.Parameter(torch.rand(d_in, d_out_v))

    def forward(self, x):
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T  # unnormalized attention weights
        attn_weights = torch.softmax(attn_scores / self.d_out_kq**0.5, dim=-1)
        context_vec = attn_weights @ values
        return context_vec


class MultiHeadAttentionWrapper(tnn.Module):
    def __init__(self, d_in, d_out_kq, d_out_v, num_heads):
        super().__init__()
        self.heads = tnn.ModuleList([SelfAttention(d_in, d_out_kq, d_out_v) for _ in range(num_heads)])

    def forward(self, x):
        return torch.cat([head(x) for head in self.heads], dim=-1)


class CrossAttention(tnn.Module):
    def __init__(self, d_in, d_out_kq, d_out_v):
        super().__init__()
        self.d_out_kq = d_out_kq
        self.W_query = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_key = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_value = tnn.Parameter(torch.rand(d_in, d_out_v))

    def forward(self, x_1, x_2):  # x_2 is new
        queries_1 = x_1 @ self.W_query
        keys_2 = x_2 @ self.W_key  # new
        values_2 = x_2 @ self.W_value  # new
        attn_scores = queries_1 @ keys_2.T  # new
        attn_weights = torch.softmax(attn_scores / self.d_out_kq**0.5, dim=-1)
        context_vec = attn_weights @ values_2
        return context_vec


class CausalSelfAttention(tnn.Module):
    """Written from the tutorial's description: mask the future with -inf before the softmax."""

    def __init__(self, d_in, d_out_kq, d_out_v):
        super().__init__()
        self.d_out_kq = d_out_kq
        self.W_query = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_key = tnn.Parameter(torch.rand(d_in, d_out_kq))
        self.W_value = tnn.Parameter(torch.rand(d_in, d_out_v))

    def forward(self, x):
        keys = x @ self.W_key
        queries = x @ self.W_query
        values = x @ self.W_value
        attn_scores = queries @ keys.T
        T = attn_scores.shape[0]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        attn_scores = attn_scores.masked_fill(mask, -torch.inf)
        attn_weights = torch.softmax(attn_scores / self.d_out_kq**0.5, dim=-1)
        self.last_attn_weights = attn_weights
        context_vec = attn_weights @ values
        return context_vec


def tutorial_gradients(module: tnn.Module, inputs: dict, outputs: dict, config: dict, seed: int) -> None:
    """Gradients of a tutorial module's output w.r.t. its parameters and each input (after the forward,
    so the forward's draws are untouched)."""
    out_np = to_np(outputs["out"])
    g = output_gradient(seed, out_np.shape)
    pg, ig = torch_gradients(module, lambda **xs: module(*xs.values()), dict(inputs), g, out_np,
                             what=type(module).__name__)
    add_gradients(inputs, outputs, config, g, pg, ig)


@torch.no_grad()
def gen_tutorial():
    d_in, d_kq, d_v = 6, 4, 5
    base = {"d_in": d_in, "d_out_kq": d_kq, "d_out_v": d_v,
            "init": "torch.rand (U[0,1)) for W_query, W_key, W_value, drawn in that order",
            "randomized_biases": False}

    torch.manual_seed(600)
    rng = np.random.default_rng(600)
    sa = SelfAttention(d_in, d_kq, d_v)
    x = randn(rng, 6, d_in)
    out = sa(torch.from_numpy(x))
    inputs, outputs, config = {"x": x}, {"out": out}, {**base, "seed": 600, "T": 6}
    tutorial_gradients(sa, inputs, outputs, config, 600)
    save("tutorial_self_attention", params=torch_params(sa), inputs=inputs, outputs=outputs,
         config={**config,
                 "formula": "softmax((x W_query)(x W_key)^T / sqrt(d_out_kq), dim=-1) (x W_value)"},
         library=LIB_TUTORIAL, case="tutorial SelfAttention(d_in=6, d_out_kq=4, d_out_v=5) on x (6,6)")

    torch.manual_seed(601)
    rng = np.random.default_rng(601)
    ca = CrossAttention(d_in, d_kq, d_v)
    x1 = randn(rng, 5, d_in)
    x2 = randn(rng, 7, d_in)
    out = ca(torch.from_numpy(x1), torch.from_numpy(x2))
    inputs, outputs, config = {"x_1": x1, "x_2": x2}, {"out": out}, {**base, "seed": 601, "L": 5, "S": 7}
    tutorial_gradients(ca, inputs, outputs, config, 601)
    save("tutorial_cross_attention", params=torch_params(ca), inputs=inputs,
         outputs=outputs,
         config={**config,
                 "formula": "softmax((x_1 W_query)(x_2 W_key)^T / sqrt(d_out_kq), dim=-1) (x_2 W_value)"},
         library=LIB_TUTORIAL, case="tutorial CrossAttention(6, 4, 5), x_1 (5,6) queries, x_2 (7,6) keys/values")

    torch.manual_seed(602)
    rng = np.random.default_rng(602)
    csa = CausalSelfAttention(d_in, d_kq, d_v)
    x = randn(rng, 6, d_in)
    out = csa(torch.from_numpy(x))
    w = csa.last_attn_weights
    assert torch.all(torch.triu(w, diagonal=1) == 0)
    inputs, outputs, config = {"x": x}, {"out": out, "weights": w}, {**base, "seed": 602, "T": 6}
    tutorial_gradients(csa, inputs, outputs, config, 602)
    save("tutorial_causal_self_attention", params=torch_params(csa), inputs=inputs,
         outputs=outputs,
         config={**config,
                 "formula": "scores = (x W_query)(x W_key)^T; scores[i,j] = -inf for j > i "
                            "(masked_fill with triu(ones(T,T), diagonal=1)); "
                            "weights = softmax(scores / sqrt(d_out_kq), dim=-1); out = weights (x W_value)",
                 "note": "equal in exact arithmetic to the tutorial's softmax -> zero above diagonal -> renormalise form"},
         library=LIB_TUTORIAL,
         case="tutorial CausalSelfAttention(6, 4, 5) on x (6,6): -inf above the diagonal before softmax")

    torch.manual_seed(603)
    rng = np.random.default_rng(603)
    mw = MultiHeadAttentionWrapper(d_in, d_kq, d_v, num_heads=3)
    x = randn(rng, 6, d_in)
    out = mw(torch.from_numpy(x))
    inputs, outputs, config = {"x": x}, {"out": out}, {**base, "num_heads": 3, "seed": 603, "T": 6}
    tutorial_gradients(mw, inputs, outputs, config, 603)
    save("tutorial_mha_wrapper", params=torch_params(mw), inputs=inputs, outputs=outputs,
         config={**config,
                 "formula": "concat([SelfAttention_h(x) for h in heads], dim=-1) -> (T, num_heads*d_out_v)"},
         library=LIB_TUTORIAL,
         case="tutorial MultiHeadAttentionWrapper(6, 4, 5, num_heads=3) on x (6,6): concat of 3 SelfAttention heads")


# --------------------------------------------------------------------------------------------


def main() -> int:
    t0 = time.time()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # Only this script's files: interop_* and half_* come from generate_interop_safetensors.py and
    # generate_half_fixtures.py, torch_decoder* and torch_transformer* from generate_decoder_fixtures.py,
    # torch_sdpa_grad_* from generate_sdpa_gradient_fixtures.py, train_* from generate_training_fixtures.py.
    for p in OUT_DIR.glob("*.safetensors"):
        if not p.name.startswith(("interop_", "half_", "torch_decoder", "torch_transformer",
                                  "torch_sdpa_grad_", "train_")):
            p.unlink()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    disable_torch_fastpath()

    # JAX first, then torch (see cap_torch_onednn); every case seeds itself, so the order is free
    gen_equinox()
    gen_noxton()
    gen_flax()
    gen_flax_dot_product_attention()
    cap_torch_onednn()
    gen_torch_mha()
    gen_torch_encoder()
    gen_tutorial()

    # read everything back
    total = 0
    for name, _ in WRITTEN:
        path = OUT_DIR / f"{name}.safetensors"
        tensors = load_file(str(path))
        assert tensors, name
        for k, v in tensors.items():
            assert k.split(".", 1)[0] in ("param", "input", "output"), (name, k)
            assert v.dtype in (np.float32, np.bool_), (name, k, v.dtype)
        size = path.stat().st_size
        assert size < 200_000, (name, size)
        total += size
    assert total < 3_000_000, total
    for name, case in WRITTEN:
        print(f"{name}: {case}")
    print(f"{len(WRITTEN)} files, {total} bytes, {time.time() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
