#!/usr/bin/env python3
"""Write Tests/AttentionTests/Fixtures/half_written_bytes.safetensors with the real `safetensors`
library: half-precision tensors (F16, BF16, empty ones, rank 0) next to an F32 one, no metadata.

HalfPrecisionAuditTests builds the same tensors in Swift and checks that `SafeTensors.serialized()`
gives exactly these bytes, so a file Swift writes is the file the reference library writes, and
the reference library reads it as it reads its own (this script reads the file back to check that).
Run by hand (the Swift tests never need Python):

    ~/.cache/swift-attention-venv/bin/python Tests/Fixtures/generate_half_written_bytes.py

The bit patterns come from a formula the Swift test repeats: special values (signed zeros,
subnormals, the largest finite values, infinities, quiet and signalling NaNs with payloads), then
`(i * 40503 + 12345) mod 2^16` for i in 0..<40.
"""

from pathlib import Path

import ml_dtypes
import numpy as np
from safetensors import TensorSpec, serialize_file
from safetensors.numpy import load_file

OUT = Path(__file__).resolve().parents[1] / "AttentionTests" / "Fixtures" / "half_written_bytes.safetensors"

SPECIAL = [
    0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00,
    0x7C01, 0x7E00, 0xFE55, 0x007F, 0x0080, 0x3F80, 0x7F7F, 0x7F80, 0xFF80, 0x7F81, 0x7FC0,
    0xFFAA, 0xBF80,
]

KEEP_ALIVE: list = []  # TensorSpec holds raw pointers: keep the arrays alive until written


def spec(array: np.ndarray, dtype: str) -> TensorSpec:
    array = np.ascontiguousarray(array).reshape(np.shape(array))  # ascontiguousarray makes 0-d arrays 1-d
    KEEP_ALIVE.append(array)
    return TensorSpec(dtype=dtype, shape=array.shape, data_ptr=array.ctypes.data, data_len=array.nbytes)


def main() -> None:
    bits = np.array(SPECIAL + [(i * 40503 + 12345) % 65536 for i in range(40)], dtype=np.uint16)
    arrays = {
        "f16": (bits.reshape(4, 16).view(np.float16), "float16"),
        "bf16": (bits.view(ml_dtypes.bfloat16), "bfloat16"),
        "f16_empty": (np.zeros((0, 3), dtype=np.float16), "float16"),
        "bf16_empty": (np.zeros((2, 0), dtype=ml_dtypes.bfloat16), "bfloat16"),
        "f16_scalar": (np.array(0x3C00, dtype=np.uint16).view(np.float16), "float16"),
        "bf16_scalar": (np.array(0xBF80, dtype=np.uint16).view(ml_dtypes.bfloat16), "bfloat16"),
        "f32": (np.array([1.0, -0.0, 2.5], dtype=np.float32), "float32"),
    }
    serialize_file({name: spec(array, dtype) for name, (array, dtype) in arrays.items()}, str(OUT))

    # The reference library reads back every tensor bit for bit, with its shape.
    loaded = load_file(str(OUT))
    for name, (array, _) in arrays.items():
        got = loaded[name]
        assert got.shape == array.shape, (name, got.shape, array.shape)
        assert got.tobytes() == array.tobytes(), name
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes); read back identically")


if __name__ == "__main__":
    main()
