#!/usr/bin/env python3
"""Write Tests/AttentionTests/Fixtures/interop_safetensors.safetensors with the real `safetensors`
library, for SafeTensorsTests to prove that the Swift reader agrees with the reference one.

Run by hand (the Swift tests never need Python):

    /work/venv/bin/python Tests/Fixtures/generate_interop_safetensors.py

Contents (all little-endian, as the format requires):
- every dtype the Swift reader supports (BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16,
  F32, F64), integers at the limits of their type;
- `f32_source`: float32 values chosen to stress rounding (ties to even, subnormals, overflow,
  infinities, NaN) plus random bit patterns across the half-precision range, with
  `f16_numpy` = its numpy float16 conversion and `bf16_ml_dtypes` = its ml_dtypes bfloat16 one,
  so the test can compare the Swift Float -> F16/BF16 rounding with NumPy's and ml_dtypes';
- `f64` and `f64_as_f32` (numpy's float32 rounding of it);
- `f16_bits` (F16) and `bf16_bits` (BF16): 16-bit patterns a half-precision reader must keep
  exactly (signed zeros, subnormals, the largest finite values, infinities, quiet and signalling
  NaNs with payloads, plus random patterns), with the same patterns as `U16` in `f16_bits_u16`
  and `bf16_bits_u16`, so the test can check that F16/BF16 load without widening and save back
  bit for bit;
- a rank-0 tensor, an empty tensor, and a name with quotes and non-ASCII characters;
- `__metadata__` with a few strings.
"""

from pathlib import Path

import ml_dtypes
import numpy as np
import safetensors
from safetensors import TensorSpec, serialize_file

OUT = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures" / "interop_safetensors.safetensors"


KEEP_ALIVE: list = []  # TensorSpec holds raw pointers: keep the arrays alive until written


def spec(array: np.ndarray, dtype: str) -> TensorSpec:
    """`dtype` is the library's name (\"float32\", \"bfloat16\"); the file records the format's (F32, BF16)."""
    array = np.ascontiguousarray(array).reshape(np.shape(array))  # ascontiguousarray makes 0-d arrays 1-d
    assert array.dtype.byteorder in "=|<"
    KEEP_ALIVE.append(array)
    return TensorSpec(dtype=dtype, shape=array.shape, data_ptr=array.ctypes.data, data_len=array.nbytes)


def tricky_float32() -> np.ndarray:
    f = np.float32
    special = [
        0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, -2.5, 1e-8, -1e-8, 6e-5,
        65504.0, 65519.99, 65520.0, -65520.0, 65536.0, 1e10, -1e10,
        2.0**-14, 2.0**-24, 2.0**-25, 1.5 * 2.0**-25, 3 * 2.0**-25, 2.0**-14 - 2.0**-25,
        2.0**-26, -(2.0**-25), 1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8,
        1e-45, 3.4028235e38, -3.4028235e38, 1.1754944e-38,
        float("inf"), float("-inf"), float("nan"),
    ]
    values = np.array(special, dtype=f)
    rng = np.random.default_rng(20241125)
    # Random bit patterns with exponents from 2^-30 to 2^17 (around the binary16 range).
    exponents = rng.integers(127 - 30, 127 + 17, size=1500, dtype=np.uint32)
    fractions = rng.integers(0, 1 << 23, size=1500, dtype=np.uint32)
    signs = rng.integers(0, 2, size=1500, dtype=np.uint32)
    random = ((signs << 31) | (exponents << 23) | fractions).view(np.float32)
    # Exact ties for binary16 and bfloat16: the dropped bits are exactly one half.
    ties16 = (((exponents[:200] << 23) | (fractions[:200] & ~np.uint32(0x1FFF)) | np.uint32(0x1000))).view(np.float32)
    ties_bf = (((exponents[:200] << 23) | (fractions[:200] & ~np.uint32(0xFFFF)) | np.uint32(0x8000))).view(np.float32)
    return np.concatenate([values, random, ties16, ties_bf]).astype(f)


def half_bit_patterns() -> np.ndarray:
    special = [
        0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
        0x7C01, 0x7E00, 0xFE55, 0x7D2A, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0xFF80, 0x7F81,
        0x7FC0, 0xFFAA,
    ]
    rng = np.random.default_rng(20261203)
    random = rng.integers(0, 1 << 16, size=40, dtype=np.uint16)
    return np.concatenate([np.array(special, dtype=np.uint16), random])


def main() -> None:
    source = tricky_float32()
    bits = half_bit_patterns()
    with np.errstate(over="ignore"):
        f16 = source.astype(np.float16)
    bf16 = source.astype(ml_dtypes.bfloat16)
    f64 = np.array([1.0 / 3.0, -2.5, 1e300, -1e300, 5e-324, 0.1, 2.0**60 + 1.0, float("inf")], dtype=np.float64)
    with np.errstate(over="ignore"):
        f64_as_f32 = f64.astype(np.float32)

    tensors = {
        "bool": spec(np.array([[True, False, True], [False, False, True]]), "bool"),
        "u8": spec(np.array([0, 1, 127, 128, 255], dtype=np.uint8), "uint8"),
        "i8": spec(np.array([-128, -1, 0, 1, 127], dtype=np.int8), "int8"),
        "u16": spec(np.array([0, 1, 65535], dtype=np.uint16), "uint16"),
        "i16": spec(np.array([-32768, -1, 0, 32767], dtype=np.int16), "int16"),
        "u32": spec(np.array([0, 1, 2**32 - 1], dtype=np.uint32), "uint32"),
        "i32": spec(np.array([-(2**31), -1, 0, 2**31 - 1], dtype=np.int32), "int32"),
        "u64": spec(np.array([0, 1, 2**63 - 1], dtype=np.uint64), "uint64"),
        "i64": spec(np.array([[-(2**63), -1], [0, 2**63 - 1]], dtype=np.int64), "int64"),
        "f32_source": spec(source, "float32"),
        "f16_numpy": spec(f16, "float16"),
        "bf16_ml_dtypes": spec(bf16.view(np.uint16), "bfloat16"),
        "f16_bits": spec(bits.view(np.float16), "float16"),
        "f16_bits_u16": spec(bits, "uint16"),
        "bf16_bits": spec(bits.view(ml_dtypes.bfloat16), "bfloat16"),
        "bf16_bits_u16": spec(bits.copy(), "uint16"),
        "f64": spec(f64, "float64"),
        "f64_as_f32": spec(f64_as_f32, "float32"),
        "scalar": spec(np.array(3.5, dtype=np.float32), "float32"),
        "empty": spec(np.zeros((0, 3), dtype=np.float32), "float32"),
        'name with "quotes", é and ✓': spec(np.array([1.0, 2.0], dtype=np.float32), "float32"),
    }
    metadata = {
        "format": "np",
        "generator": f"Tests/Fixtures/generate_interop_safetensors.py, safetensors {safetensors.__version__}, "
        f"numpy {np.__version__}, ml_dtypes {ml_dtypes.__version__}",
        "note": 'quotes " backslash \\ newline \n unicode é',
    }
    serialize_file(tensors, str(OUT), metadata=metadata)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
