#!/usr/bin/env python3
"""Generate the torch training fixtures: `train_*.safetensors` in Tests/AttentionTests/Fixtures/.

Run by hand (not part of CI; the Swift tests never need Python), with the venv that has torch:

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_training_fixtures.py

The files use the format of `fixture_format.py` (see Tests/Fixtures/README.md): `param.*` are the
operation's parameters (or the optimiser's starting values), `input.*` its inputs, `output.*` what
torch computes, and `__metadata__` the config JSON. Integer data (token ids, class targets) is
stored as F32 holding exact integers, since the format has no integer tensors. Cases:

* leaf layers (`train_linear`, `train_layer_norm`, `train_relu`, `train_swiglu`, `train_embedding`,
  ...): `input.x` (or `input.indices`), `input.outputGradient`, `output.out`, and torch.autograd's
  gradients of sum(out * outputGradient): `output.grad.<state_dict name>` and `output.input_grad.x`;
* losses (`train_cross_entropy_*`, `train_mse_*`): `output.loss` and `output.grad.<input>` (the
  gradient of the loss, of loss.sum() for reduction 'none');
* optimisers (`train_optim_*`): `param.<name>` start values, `input.grad.<k>.<name>` the gradient
  given at update k (k = 0..4), `output.step<k>.<name>` the parameters after update k;
* `train_encoder_finetune`: 40 AdamW steps of a 2-layer TransformerEncoder with a linear head.

Everything is float32 on the CPU with one thread and deterministic algorithms, one seed per case,
so rerunning gives byte-identical files.
"""

from __future__ import annotations

import math
import os
import platform
import sys
import warnings
from pathlib import Path

# The same dispatch caps as generate_fixtures.py (torch's float32 results depend on the vector
# width of ATen's kernels, MKL's GEMM and oneDNN): set before torch is imported.
if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")
    os.environ.setdefault("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from fixture_format import fixture_bytes, to_np  # noqa: E402  (this folder)

OUT_DIR = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures"
LIBRARY = f"torch {torch.__version__}"
GRAD_SEED_OFFSET = 7919  # outputGradient from its own generator, as in generate_fixtures.py
LN_STD = 0.2
WRITTEN: list[tuple[str, str, int]] = []


def save(name: str, *, params: dict, inputs: dict, outputs: dict, config: dict, case: str) -> None:
    path = OUT_DIR / f"train_{name}.safetensors"
    path.write_bytes(fixture_bytes(params=params, inputs=inputs, outputs=outputs, config=config,
                                   library=LIBRARY, case=case))
    WRITTEN.append((f"train_{name}", case, path.stat().st_size))


def randn(rng: np.random.Generator, *shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def ints_as_f32(a) -> np.ndarray:
    """Integer data stored as F32 holding exact integers (checked)."""
    a = np.asarray(a)
    f = a.astype(np.float32)
    assert np.array_equal(f.astype(np.int64), a.astype(np.int64))
    return f


def state(module: tnn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --------------------------------------------------------------------------------------------
# 1. leaf layers
# --------------------------------------------------------------------------------------------


def autograd_case(name: str, case: str, *, seed: int, module: tnn.Module | None, fn, x: np.ndarray,
                  config: dict, x_name: str = "x", differentiable_x: bool = True) -> None:
    """out = fn(x); gradients of sum(out * outputGradient) w.r.t. the module's parameters and x."""
    params = {} if module is None else dict(module.named_parameters())
    if module is not None:
        assert list(params) == list(module.state_dict().keys()), name
    if differentiable_x:
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
    else:
        tx = torch.from_numpy(x.astype(np.int64))
    out = fn(tx)
    g = randn(np.random.default_rng(seed + GRAD_SEED_OFFSET), *out.shape)
    wrt = list(params.values()) + ([tx] if differentiable_x else [])
    grads = torch.autograd.grad(out, wrt, grad_outputs=torch.from_numpy(g))
    outputs = {"out": out}
    for n, gr in zip(params, grads):
        outputs[f"grad.{n}"] = gr
    if differentiable_x:
        outputs[f"input_grad.{x_name}"] = grads[-1]
    inputs = {x_name: x if differentiable_x else ints_as_f32(x), "outputGradient": g}
    config = {**config, "seed": seed,
              "gradients": "input.outputGradient ~ N(0,1) from np.random.default_rng(seed + 7919); "
                           "output.grad.<param> and output.input_grad.<input> are torch.autograd.grad "
                           "of sum(out * outputGradient)"}
    save(name, params={} if module is None else state(module), inputs=inputs, outputs=outputs,
         config=config, case=case)


@torch.no_grad()
def randomize_norm(mod: tnn.Module, gen: torch.Generator) -> None:
    """LayerNorm/RMSNorm start at weight 1, bias 0: give them 1 + N(0, 0.2^2) and N(0, 0.2^2)."""
    if getattr(mod, "weight", None) is not None:
        mod.weight.copy_(1.0 + LN_STD * torch.randn(mod.weight.shape, generator=gen))
    if getattr(mod, "bias", None) is not None:
        mod.bias.copy_(LN_STD * torch.randn(mod.bias.shape, generator=gen))


def gen_leaf_layers() -> None:
    seed = 3000
    for name, bias in (("linear", True), ("linear_no_bias", False)):
        seed += 1
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        lin = tnn.Linear(7, 5, bias=bias)
        autograd_case(name, f"torch.nn.Linear(7, 5, bias={bias}) on x (2,3,7)", seed=seed, module=lin,
                      fn=lin, x=randn(rng, 2, 3, 7),
                      config={"in_features": 7, "out_features": 5, "bias": bias,
                              "init": "torch default (kaiming-uniform weight, U(+-1/sqrt(in)) bias)",
                              "formula": "out = x weight^T + bias"})

    for name, kwargs in (("layer_norm", {}), ("layer_norm_no_bias", {"bias": False}),
                         ("layer_norm_no_affine", {"elementwise_affine": False})):
        seed += 1
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 1)
        rng = np.random.default_rng(seed)
        ln = tnn.LayerNorm(6, eps=1e-5, **kwargs)
        randomize_norm(ln, gen)
        autograd_case(name, f"torch.nn.LayerNorm(6{''.join(f', {k}={v}' for k, v in kwargs.items())}) on x (2,3,6)",
                      seed=seed, module=ln, fn=ln, x=randn(rng, 2, 3, 6),
                      config={"normalized_shape": [6], "eps": 1e-5,
                              "elementwise_affine": kwargs.get("elementwise_affine", True),
                              "bias": kwargs.get("bias", True) and kwargs.get("elementwise_affine", True),
                              "randomized_layernorm": True, "randomized_layernorm_std": LN_STD,
                              "formula": "(x - mean) / sqrt(biased var + eps) * weight + bias over the last axis"})

    seed += 1
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed)
    rms = tnn.RMSNorm(6, eps=1e-6)
    randomize_norm(rms, gen)
    autograd_case("rms_norm", "torch.nn.RMSNorm(6, eps=1e-6) on x (2,3,6)", seed=seed, module=rms, fn=rms,
                  x=randn(rng, 2, 3, 6),
                  config={"normalized_shape": [6], "eps": 1e-6, "elementwise_affine": True,
                          "randomized_weight": True, "randomized_weight_std": LN_STD,
                          "formula": "x / sqrt(mean(x^2) + eps) * weight over the last axis"})

    activations = {
        "relu": (F.relu, "max(x, 0); torch's gradient at exactly 0 is 0"),
        "gelu": (lambda t: F.gelu(t), "x * Phi(x) with the exact erf (approximate='none')"),
        "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                      "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh')"),
        "sigmoid": (torch.sigmoid, "1 / (1 + exp(-x))"),
        "silu": (F.silu, "x * sigmoid(x)"),
        "tanh": (torch.tanh, "tanh(x)"),
    }
    for name, (fn, formula) in activations.items():
        seed += 1
        rng = np.random.default_rng(seed)
        x = 2.0 * randn(rng, 2, 3, 7)
        x[0, 0, :3] = 0.0  # exact zeros (relu's kink)
        x[1, 2, 0], x[1, 2, 1] = np.float32(9.5), np.float32(-9.5)  # saturated tails
        autograd_case(name, f"activation {name} on x (2,3,7) (2 N(0,1), exact zeros at [0,0,:3], +-9.5 at [1,2,:2])",
                      seed=seed, module=None, fn=fn, x=x.astype(np.float32),
                      config={"activation": name, "formula": formula, "x_zeros": "x[0, 0, :3] = 0"})

    for name, act, formula in (("swiglu", F.silu, "silu(x[..., :w]) * x[..., w:]"),
                               ("geglu", F.gelu, "gelu(x[..., :w]) * x[..., w:], exact erf gelu")):
        seed += 1
        rng = np.random.default_rng(seed)
        w = 5
        autograd_case(name, f"{name}: {formula} with w = {w} on x (3,4,10) -> (3,4,5)", seed=seed, module=None,
                      fn=lambda t, act=act: act(t[..., :w]) * t[..., w:], x=randn(rng, 3, 4, 10),
                      config={"formula": formula, "w": w, "gate": "first half (x[..., :w]) goes through the activation"})

    seed += 1
    torch.manual_seed(seed)
    emb = tnn.Embedding(11, 4, padding_idx=2)
    idx = np.array([[2, 0, 7, 7, 10], [3, 2, 7, 1, 0]], dtype=np.int64)  # padding index, repeats, 0 and 10
    autograd_case("embedding", "torch.nn.Embedding(11, 4, padding_idx=2), indices (2,5) with the padding index and repeated ids",
                  seed=seed, module=emb, fn=emb, x=idx, x_name="indices", differentiable_x=False,
                  config={"num_embeddings": 11, "embedding_dim": 4, "padding_idx": 2,
                          "init": "torch default N(0,1), the padding row zeroed",
                          "indices": "F32 holding exact integers",
                          "grad_note": "gradient rows summed over repeated ids; the padding row's gradient is 0"})


# --------------------------------------------------------------------------------------------
# 2. losses
# --------------------------------------------------------------------------------------------


def loss_case(name: str, case: str, *, seed: int, fn, inputs: dict, wrt: str, config: dict) -> None:
    t = {k: torch.from_numpy(v.copy()) for k, v in inputs.items()}
    t[wrt].requires_grad_(True)
    loss = fn(**t)
    (grad,) = torch.autograd.grad(loss.sum() if loss.dim() else loss, [t[wrt]])
    stored = {k: (ints_as_f32(v) if v.dtype.kind in "iu" else v) for k, v in inputs.items()}
    save(name, params={}, inputs=stored, outputs={"loss": loss, f"grad.{wrt}": grad},
         config={**config, "seed": seed,
                 "gradient": f"output.grad.{wrt} = d loss / d {wrt}" + (" (of loss.sum())" if loss.dim() else "")},
         case=case)


def gen_losses() -> None:
    seed = 3100
    variants = [
        ("cross_entropy_mean", {"reduction": "mean"}, True),
        ("cross_entropy_sum", {"reduction": "sum"}, True),
        ("cross_entropy_none", {"reduction": "none"}, True),
        ("cross_entropy_label_smoothing", {"reduction": "mean", "label_smoothing": 0.1}, True),
        ("cross_entropy_ignore_index", {"reduction": "mean", "ignore_index": 3}, False),
    ]
    for name, kwargs, with_minus_100 in variants:
        seed += 1
        rng = np.random.default_rng(seed)
        logits = 1.5 * randn(rng, 6, 5)
        targets = np.array([0, 3, 4, 1, 3, 2], dtype=np.int64)
        if with_minus_100:
            targets[4] = -100  # torch's default ignore_index: the row adds nothing, and mean divides by 5
        full = {"ignore_index": -100, "label_smoothing": 0.0, **kwargs}
        loss_case(name, f"torch.nn.functional.cross_entropy logits (6,5), targets (6,) "
                        + ", ".join(f"{k}={v}" for k, v in kwargs.items())
                        + (", target -100 in row 4" if with_minus_100 else ", targets 3 in rows 1 and 4 ignored"),
                  seed=seed, fn=lambda logits, targets, kw=full: F.cross_entropy(logits, targets, **kw),
                  inputs={"logits": logits.astype(np.float32), "targets": targets}, wrt="logits",
                  config={**full, "weight": None, "targets": "F32 holding exact class indices (-100 = ignored)",
                          "mean": "over the rows whose target is not ignore_index"})

    for red in ("mean", "sum", "none"):
        seed += 1
        rng = np.random.default_rng(seed)
        loss_case(f"mse_{red}", f"torch.nn.functional.mse_loss prediction (3,4), target (3,4), reduction={red}",
                  seed=seed, fn=lambda prediction, target, r=red: F.mse_loss(prediction, target, reduction=r),
                  inputs={"prediction": randn(rng, 3, 4), "target": randn(rng, 3, 4)}, wrt="prediction",
                  config={"reduction": red, "formula": "(prediction - target)^2, then the reduction"})


# --------------------------------------------------------------------------------------------
# 3. optimisers
# --------------------------------------------------------------------------------------------

OPT_SHAPES = {"weight": (4, 3), "bias": (3,), "kernel": (2, 2, 2)}
OPT_STEPS = 5


def resolved_implementation(params) -> str:
    from torch.optim.optimizer import _default_to_fused_or_foreach
    _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
    return "foreach (multi-tensor)" if foreach else "single-tensor (for-loop)"


def optim_case(name: str, case: str, *, seed: int, make, hyper: dict, clip=None, schedule=None) -> None:
    rng = np.random.default_rng(seed)
    start = {n: randn(rng, *s) for n, s in OPT_SHAPES.items()}
    grads = []
    for k in range(OPT_STEPS):
        scale = 0.05 if (clip is not None and k == 3) else 1.0  # one step under the clipping norm
        grads.append({n: (scale * randn(rng, *s)).astype(np.float32) for n, s in OPT_SHAPES.items()})
    params = {n: tnn.Parameter(torch.from_numpy(v.copy())) for n, v in start.items()}
    opt = make(list(params.values()))
    scheduler = None
    if schedule is not None:
        scheduler = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    inputs, outputs = {}, {}
    for k in range(OPT_STEPS):
        for n, p in params.items():
            p.grad = torch.from_numpy(grads[k][n].copy())
            inputs[f"grad.{k}.{n}"] = grads[k][n]
        if clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm=clip)
            outputs[f"norm.{k}"] = norm.detach().clone().float()
        if scheduler is not None:
            outputs[f"lr.{k}"] = np.float32(opt.param_groups[0]["lr"])
        opt.step()
        if scheduler is not None:
            scheduler.step()
        for n, p in params.items():
            outputs[f"step{k}.{n}"] = p.detach().clone()
    config = {**hyper, "seed": seed, "steps": OPT_STEPS, "shapes": {n: list(s) for n, s in OPT_SHAPES.items()},
              "foreach": None,
              "implementation": f"torch's default (foreach=None), which on CPU tensors resolves to "
                                f"{resolved_implementation(list(params.values()))}",
              "layout": "param.<name> start; input.grad.<k>.<name> the gradient given to update k (k = 0..4); "
                        "output.step<k>.<name> the parameters after update k"}
    if clip is not None:
        config["clip"] = (f"torch.nn.utils.clip_grad_norm_(params, max_norm={clip}) (norm_type 2, all three tensors "
                          "together) before each update: grads *= min(1, max_norm / (total_norm + 1e-6)); "
                          "output.norm.<k> is the total norm it returns (before clipping); update 3's "
                          "gradients are scaled by 0.05 so that update is not clipped")
    save(f"optim_{name}", params=start, inputs=inputs, outputs=outputs, config=config, case=case)


def gen_optimizers() -> None:
    optim_case("sgd_plain", "torch.optim.SGD(lr=0.1), 5 updates of three tensors", seed=3201,
               make=lambda p: torch.optim.SGD(p, lr=0.1), hyper={"optimizer": "SGD", "lr": 0.1})
    optim_case("sgd_momentum", "torch.optim.SGD(lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01), 5 updates",
               seed=3202, make=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
               hyper={"optimizer": "SGD", "lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01,
                      "nesterov": False})
    optim_case("sgd_nesterov", "torch.optim.SGD(lr=0.1, momentum=0.9, nesterov=True), 5 updates", seed=3203,
               make=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
               hyper={"optimizer": "SGD", "lr": 0.1, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0,
                      "nesterov": True})
    adamw = {"optimizer": "AdamW", "lr": 1e-2, "betas": [0.9, 0.99], "eps": 1e-8, "weight_decay": 0.05}
    optim_case("adamw", "torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05), 5 updates",
               seed=3204, make=lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05),
               hyper={**adamw, "amsgrad": False})
    optim_case("adamw_amsgrad", "torch.optim.AdamW as train_optim_adamw with amsgrad=True, 5 updates", seed=3205,
               make=lambda p: torch.optim.AdamW(p, lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05,
                                                amsgrad=True),
               hyper={**adamw, "amsgrad": True})

    peak, warmup, total = 1e-2, 2, 5

    def lr_lambda(step: int) -> float:  # transformers' get_cosine_schedule_with_warmup (num_cycles 0.5)
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    optim_case("adamw_clip_schedule",
               "AdamW (as train_optim_adamw) with clip_grad_norm_(max_norm=0.5) before each update and a linear "
               "warm-up (2 steps) + cosine schedule, peak lr 1e-2, 5 updates",
               seed=3206, make=lambda p: torch.optim.AdamW(p, lr=peak, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05),
               hyper={**adamw, "amsgrad": False, "max_norm": 0.5,
                      "schedule": {"peak_lr": peak, "warmup_steps": warmup, "total_steps": total,
                                   "formula": "lr(k) = peak * k / warmup for k < warmup, else peak * 0.5 * "
                                              "(1 + cos(pi * (k - warmup) / (total - warmup))); k counts updates "
                                              "from 0, so update 0 has lr 0",
                                   "implementation": "torch.optim.lr_scheduler.LambdaLR(opt, lambda) with the "
                                                     "lambda of transformers' get_cosine_schedule_with_warmup; "
                                                     "scheduler.step() after each opt.step()",
                                   "stored": "output.lr.<k>: the lr update k used (F32 of torch's float64)"}},
               clip=0.5, schedule=lr_lambda)


# --------------------------------------------------------------------------------------------
# 4. fine-tuning: TransformerEncoder + linear head, AdamW on cross-entropy
# --------------------------------------------------------------------------------------------


class Classifier(tnn.Module):
    def __init__(self, d_model=32, nhead=4, dim_feedforward=64, num_layers=2, classes=4):
        super().__init__()
        layer = tnn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=dim_feedforward, dropout=0.0,
                                            activation="relu", layer_norm_eps=1e-5, batch_first=True,
                                            norm_first=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.encoder = tnn.TransformerEncoder(layer, num_layers, norm=tnn.LayerNorm(d_model, eps=1e-5),
                                                  enable_nested_tensor=False)
        # torch deep-copies the layer, so the layers start identical: re-draw each one
        for lyr in self.encoder.layers:
            lyr.self_attn._reset_parameters()
            lyr.linear1.reset_parameters()
            lyr.linear2.reset_parameters()
        self.head = tnn.Linear(d_model, classes)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=1))


def _trap(name):
    def f(*a, **k):
        raise RuntimeError(f"torch fast path {name} was taken")
    return f


def gen_finetune() -> None:
    seed = 3300
    B, L, D, C, STEPS = 8, 12, 32, 4, 40
    torch.manual_seed(seed)
    model = Classifier(D, 4, 64, 2, C)
    sd = model.state_dict()
    assert not torch.equal(sd["encoder.layers.0.linear1.weight"], sd["encoder.layers.1.linear1.weight"])
    names = [n for n, _ in model.named_parameters()]
    assert names == list(sd.keys())
    params = {k: v.detach().clone() for k, v in sd.items()}
    model.train()  # dropout is 0.0: train mode only keeps torch off its inference fast path
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)

    rng = np.random.default_rng(seed)
    teacher = randn(rng, D, C)  # the task: label = argmax(mean over the sequence of x @ teacher)
    inputs, outputs = {}, {}
    for step in range(STEPS):
        x = randn(rng, B, L, D) + randn(rng, B, 1, D)  # token noise + a per-sequence offset
        y = np.argmax(x.mean(axis=1, dtype=np.float64) @ teacher.astype(np.float64), axis=1)
        inputs[f"x.{step}"] = x
        inputs[f"targets.{step}"] = ints_as_f32(y)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y.astype(np.int64)))
        loss.backward()
        opt.step()
        outputs[f"loss.{step}"] = loss.detach().clone()
    for k, v in model.state_dict().items():
        outputs[f"final.{k}"] = v.detach().clone()
    losses = [float(outputs[f"loss.{s}"]) for s in range(STEPS)]
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5]), losses  # the loss falls
    config = {
        "model": "head(encoder(x).mean(dim=1)); encoder = TransformerEncoder(TransformerEncoderLayer(d_model=32, "
                 "nhead=4, dim_feedforward=64, dropout=0.0, activation='relu', layer_norm_eps=1e-5, "
                 "batch_first=True, norm_first=False), num_layers=2, norm=LayerNorm(32), "
                 "enable_nested_tensor=False); head = Linear(32, 4)",
        "d_model": D, "nhead": 4, "dim_feedforward": 64, "num_layers": 2, "classes": C, "dropout": 0.0,
        "activation": "relu", "norm_first": False, "batch_first": True, "layer_norm_eps": 1e-5,
        "init": "torch default after torch.manual_seed(seed); each layer's self_attn._reset_parameters() and "
                "linear1/linear2.reset_parameters() after construction, then head = Linear(32, 4)",
        "training": True, "fast_path": "not taken (training mode; the fast-path kernels are traps)",
        "optimizer": {"name": "AdamW", "lr": 3e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01,
                      "amsgrad": False, "foreach": None,
                      "implementation": "torch's default, on CPU " + resolved_implementation(list(model.parameters()))},
        "loss": "cross_entropy(logits, targets), reduction mean",
        "steps": STEPS, "batch": B, "seq_len": L, "seed": seed,
        "task": "x.<step> = z + u, z ~ N(0,1) (B,L,32) and a per-sequence offset u ~ N(0,1) (B,1,32), both float32 "
                "from np.random.default_rng(seed) after a (32,4) teacher matrix T ~ N(0,1); "
                "targets.<step> = argmax(mean over L of x @ T) (float64), stored as F32 class indices",
        "loop": "per step: zero_grad(set_to_none=True); loss = cross_entropy(model(x), targets); loss.backward(); "
                "opt.step(); output.loss.<step> is that loss (before the update)",
        "names": "param.<state_dict name> (encoder.* and head.*) at the start, output.final.<name> after the last step",
    }
    save("encoder_finetune", params=params, inputs=inputs, outputs=outputs, config=config,
         case=f"TransformerEncoder (2 x d_model 32, 4 heads, ff 64, post-norm relu, final LayerNorm) + Linear(32, 4) "
              f"on the sequence mean, {STEPS} AdamW steps (lr 3e-3, wd 0.01) on cross-entropy, batch {B} x {L}")
    print(f"finetune losses: {losses[0]:.4f} -> {losses[-1]:.4f}", file=sys.stderr)


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for p in OUT_DIR.glob("train_*.safetensors"):
        p.unlink()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.backends.mha.set_fastpath_enabled(False)
    torch._native_multi_head_attention = _trap("_native_multi_head_attention")
    torch._transformer_encoder_layer_fwd = _trap("_transformer_encoder_layer_fwd")

    gen_leaf_layers()
    gen_losses()
    gen_optimizers()
    gen_finetune()

    total = 0
    for name, case, size in WRITTEN:
        tensors = load_file(str(OUT_DIR / f"{name}.safetensors"))
        assert tensors, name
        for k, v in tensors.items():
            assert k.split(".", 1)[0] in ("param", "input", "output"), (name, k)
            assert v.dtype in (np.float32, np.bool_), (name, k, v.dtype)
        assert size < (1_000_000 if name == "train_encoder_finetune" else 200_000), (name, size)
        total += size
        print(f"{name}: {case}")
    print(f"{len(WRITTEN)} files, {total} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
