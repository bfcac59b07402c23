#!/usr/bin/env python3
"""Write the half-precision attention fixtures: PyTorch's scaled_dot_product_attention run on
bfloat16 and float16 tensors, for ScaledDotProductAttentionHalfTests.

Run by hand (the Swift tests never need Python):

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_half_fixtures.py

It writes `Tests/AttentionTests/Fixtures/half_torch_sdpa_bf16.safetensors` and
`half_torch_sdpa_f16.safetensors` (a few KB each). Each holds, per case `<case>`:
- `<case>.query`, `<case>.key`, `<case>.value`: (B, H, L, D) tensors (B 1, H 2 unless said) in the file's dtype (BF16 or
  F16), drawn as float32 normals and rounded by torch;
- `<case>.mask` (BOOL, True attends) or `<case>.bias` (F32: the additive mask torch got in the
  half dtype, widened exactly) when the case has one;
- `<case>.output`: torch.nn.functional.scaled_dot_product_attention on the half tensors, on CPU,
  in the same half dtype (torch computes in float32 and rounds once).
Cases: `plain` (Lq 7, Lk 13), `causal` (is_causal, Lq = Lk = 9), `bool_mask`, `float_mask`,
`gqa` (batch 2, 4 query heads over 2 key/value heads, enable_gqa), `dv` (Dv 24 != Dqk 16).
Everything is deterministic (torch.manual_seed per case); rerunning gives the same bytes.
"""

from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT_DIR = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures"


def case(name, dtype, seed, *, b=1, hq=2, hkv=2, lq=7, lk=13, d=16, dv=16, causal=False, mask=None):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, lq, d, generator=g).to(dtype)
    k = torch.randn(b, hkv, lk, d, generator=g).to(dtype)
    v = torch.randn(b, hkv, lk, dv, generator=g).to(dtype)
    tensors = {f"{name}.query": q, f"{name}.key": k, f"{name}.value": v}
    attn_mask = None
    if mask == "bool":
        allowed = torch.rand(b, 1, lq, lk, generator=g) < 0.7
        allowed[..., 0] = True  # every row sees a key: torch's NaN rows are not compared
        attn_mask = allowed
        tensors[f"{name}.mask"] = allowed
    elif mask == "float":
        bias = (torch.randn(b, 1, lq, lk, generator=g) * 0.5).to(dtype)
        attn_mask = bias
        tensors[f"{name}.bias"] = bias.to(torch.float32)
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, is_causal=causal, enable_gqa=hq != hkv)
    tensors[f"{name}.output"] = out
    return tensors


def main() -> None:
    torch.set_num_threads(1)
    for dtype, suffix in ((torch.bfloat16, "bf16"), (torch.float16, "f16")):
        tensors = {}
        tensors |= case("plain", dtype, 1)
        tensors |= case("causal", dtype, 2, lq=9, lk=9, causal=True)
        tensors |= case("bool_mask", dtype, 3, mask="bool")
        tensors |= case("float_mask", dtype, 4, mask="float")
        tensors |= case("gqa", dtype, 5, b=2, hq=4, hkv=2)
        tensors |= case("dv", dtype, 6, dv=24)
        path = OUT_DIR / f"half_torch_sdpa_{suffix}.safetensors"
        save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, str(path),
                  metadata={"generator": f"Tests/Fixtures/generate_half_fixtures.py, torch {torch.__version__}"})
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
