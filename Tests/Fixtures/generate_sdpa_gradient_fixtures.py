#!/usr/bin/env python3
"""Generate the fixtures of PyTorch's autograd through scaled_dot_product_attention.

Run by hand (not part of CI; the Swift tests never need Python), with the venv that has torch:

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_sdpa_gradient_fixtures.py

It writes `torch_sdpa_grad_*` files into `Tests/AttentionTests/Fixtures/` in the format of
`fixture_format.py` (see Tests/Fixtures/README.md): inputs q, k, v, dout and the mask or bias;
outputs out and torch.autograd.grad of sum(out * dout) with respect to q, k, v and the bias.
torch computes in float64 from the float32 inputs, and the results are stored as float32, so the
reference is the exact gradient of the stored inputs to float32 rounding. Dropout is left out:
torch's random stream is not the library's hash. The config records each case's options
(`is_causal` is torch's top-left alignment; `enable_gqa` repeats the key/value heads;
`layout: sequence` means the tensors were transposed to (B, L, H, D) after the computation).
Deterministic: one seed per case.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fixture_format import fixture_bytes

OUT_DIR = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures"
LIBRARY = f"torch {torch.__version__}"

# name: (B, Hq, Hkv, Lq, Lk, Dqk, Dv, options)
CASES = {
    "plain": (2, 2, 2, 7, 9, 5, 3, {}),
    "causal": (1, 3, 3, 33, 33, 16, 16, {"is_causal": True}),
    "causal_lq_lt_lk": (1, 2, 2, 7, 20, 8, 8, {"is_causal": True}),
    "bool_mask": (2, 2, 2, 9, 13, 8, 4, {"mask": "bool"}),
    "bias_lq_lk": (2, 4, 4, 9, 13, 8, 8, {"mask": "bias", "bias_shape": [9, 13]}),
    "bias_heads": (2, 4, 4, 9, 13, 8, 8, {"mask": "bias", "bias_shape": [4, 1, 13]}),
    "gqa": (2, 4, 2, 11, 11, 8, 8, {"enable_gqa": True, "is_causal": True}),
    "scale": (1, 2, 1, 5, 6, 7, 7, {"enable_gqa": True, "scale": 0.3}),
    "length_one": (1, 1, 1, 1, 1, 5, 5, {}),
    "two_key_blocks_d64": (1, 1, 1, 72, 72, 64, 64, {"is_causal": True}),
    "sequence_layout": (1, 2, 2, 40, 70, 16, 16, {"mask": "bias", "bias_shape": [40, 70], "layout": "sequence"}),
}


def case(name: str, b: int, hq: int, hkv: int, lq: int, lk: int, dqk: int, dv: int, opts: dict, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((b, hq, lq, dqk), (b, hkv, lk, dqk), (b, hkv, lk, dv)))
    dout = rng.standard_normal((b, hq, lq, dv)).astype(np.float32)
    tq, tk, tv = (torch.from_numpy(x).double().requires_grad_(True) for x in (q, k, v))
    inputs = {"query": q, "key": k, "value": v, "outputGradient": dout}
    mask = None
    bias = None
    if opts.get("mask") == "bool":
        allowed = rng.random((lq, lk)) > 0.3
        allowed[:, 0] = True  # every row sees a key: torch gives NaN for a fully masked row
        mask = torch.from_numpy(allowed)
        inputs["mask"] = allowed
    elif opts.get("mask") == "bias":
        bias_np = (0.5 * rng.standard_normal(opts["bias_shape"])).astype(np.float32)
        bias = torch.from_numpy(bias_np).double().requires_grad_(True)
        mask = bias
        inputs["bias"] = bias_np
    out = F.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=mask, is_causal=opts.get("is_causal", False), scale=opts.get("scale"),
        enable_gqa=opts.get("enable_gqa", False))
    wrt = [tq, tk, tv] + ([bias] if bias is not None else [])
    grads = torch.autograd.grad(out, wrt, grad_outputs=torch.from_numpy(dout).double())
    outputs = {"out": out, "query": grads[0], "key": grads[1], "value": grads[2]}
    if bias is not None:
        outputs["bias"] = grads[3]
    outputs = {n: t.detach().float().numpy() for n, t in outputs.items()}
    if opts.get("layout") == "sequence":
        swap = lambda x: np.ascontiguousarray(np.swapaxes(x, 1, 2))  # (B, H, L, D) -> (B, L, H, D)
        for group in (inputs, outputs):
            for n in ("query", "key", "value", "outputGradient", "out"):
                if n in group:
                    group[n] = swap(group[n])
    config = {"is_causal": opts.get("is_causal", False), "enable_gqa": opts.get("enable_gqa", False),
              "scale": opts.get("scale"), "mask": opts.get("mask"), "layout": opts.get("layout", "heads")}
    return fixture_bytes(params={}, inputs=inputs, outputs=outputs, config=config, library=LIBRARY,
                         case=f"sdpa gradients {name}")


def main() -> int:
    for seed, (name, (b, hq, hkv, lq, lk, dqk, dv, opts)) in enumerate(CASES.items()):
        path = OUT_DIR / f"torch_sdpa_grad_{name}.safetensors"
        path.write_bytes(case(name, b, hq, hkv, lq, lk, dqk, dv, opts, seed=2100 + seed))
        print(f"wrote {path.relative_to(OUT_DIR.parents[1])} ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
