"""The fixture file format shared by the fixture scripts (see Tests/Fixtures/README.md).

A fixture is one safetensors file of `param.<name>`, `input.<name>` and `output.<name>` tensors
(F32 or BOOL) with `__metadata__` holding `config` (a JSON object, sorted keys), `library` and
`case`. `serialize` writes it byte for byte deterministically, so regenerating gives an empty
`git diff`. Only numpy is needed here, so a script that runs one library imports just this.
"""

from __future__ import annotations

import json

import numpy as np


def to_np(x) -> np.ndarray:
    """A contiguous F32 or BOOL numpy array of a numpy, JAX or torch array (torch detached).
    A scalar stays rank 0 (shape [] in the file)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.dtype == np.bool_:
        return _contiguous(x)
    if x.dtype.kind in "fiu":
        if x.dtype.kind == "f" and x.dtype != np.float32:
            raise TypeError(f"unexpected float dtype {x.dtype}")
        if x.dtype.kind in "iu":
            raise TypeError(f"integer tensors are not used in fixtures (got {x.dtype})")
        return _contiguous(x)
    raise TypeError(f"unsupported dtype {x.dtype}")


def _contiguous(x: np.ndarray) -> np.ndarray:
    # np.ascontiguousarray returns at least rank 1, which would store a scalar as shape [1]
    return x if x.flags.c_contiguous else np.ascontiguousarray(x)


def fixture_bytes(*, params: dict, inputs: dict, outputs: dict, config: dict, library: str, case: str) -> bytes:
    """The bytes of one fixture file."""
    tensors: dict[str, np.ndarray] = {}
    for prefix, group in (("param", params), ("input", inputs), ("output", outputs)):
        for k, v in group.items():
            key = f"{prefix}.{k}"
            if key in tensors:
                raise KeyError(key)
            tensors[key] = to_np(v)
    metadata = {
        "config": json.dumps(config, sort_keys=True),
        "library": library,
        "case": case,
    }
    return serialize(tensors, metadata)


def serialize(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Byte-for-byte deterministic safetensors writer.

    `safetensors.numpy.save_file` orders the `__metadata__` keys differently from run to
    run, so regenerating would churn every file. This writes the same format (8-byte
    little-endian header length, JSON header padded with spaces to a multiple of 8,
    then the raw little-endian data) with sorted keys. The scripts read the files back
    with `safetensors.numpy.load_file`.
    """
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    chunks, offset = [], 0
    for k in sorted(tensors):
        a = tensors[k]
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.bool_): "BOOL"}[a.dtype]
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[k] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)
    return len(hb).to_bytes(8, "little") + hb + b"".join(chunks)
