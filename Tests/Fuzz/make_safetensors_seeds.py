#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_safetensors (Tests/Fuzz/corpus/fuzz_safetensors): small valid
files covering every dtype, scalars, empty tensors and metadata, plus a few malformed ones.
Standard library only; deterministic. Run from anywhere: python3 Tests/Fuzz/make_safetensors_seeds.py
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_safetensors")

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
         "U32": 4, "I32": 4, "F32": 4, "U64": 8, "I64": 8, "F64": 8}


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), laid out in the order given."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def elements(dtype, count, start=1):
    if dtype == "BOOL":
        return bytes((start + i) % 2 for i in range(count))
    if dtype in ("F32", "F64"):
        return struct.pack("<%d%s" % (count, "f" if dtype == "F32" else "d"), *[(start + i) * 0.5 for i in range(count)])
    if dtype == "F16":
        return struct.pack("<%de" % count, *[(start + i) * 0.25 for i in range(count)])
    if dtype == "BF16":
        return b"".join(struct.pack("<f", (start + i) * 0.5)[2:] for i in range(count))
    fmt = {"U8": "B", "I8": "b", "U16": "H", "I16": "h", "U32": "I", "I32": "i", "U64": "Q", "I64": "q"}[dtype]
    return struct.pack("<%d%s" % (count, fmt), *[(start + i) for i in range(count)])


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {
        "empty_header": safetensors([]),
        "one_f32": safetensors([("w", "F32", [2, 3], elements("F32", 6))]),
        "metadata": safetensors([("bias", "F32", [3], elements("F32", 3))], {"format": "pt", "note": "seed"}),
        "scalar_and_empty": safetensors([("s", "F32", [], elements("F32", 1)), ("e", "F32", [0, 5], b""),
                                         ("z", "I64", [2, 0], b"")]),
        "every_dtype": safetensors([("t_" + d.lower(), d, [2], elements(d, 2)) for d in
                                    sorted(SIZES, key=lambda d: (-SIZES[d], d))]),
        "mask_and_lengths": safetensors([("key_lengths", "I64", [2], elements("I64", 2, 5)),
                                         ("mask", "BOOL", [2, 3], elements("BOOL", 6))]),
        "half_precision": safetensors([("h", "F16", [2, 2], elements("F16", 4)), ("b", "BF16", [3], elements("BF16", 3))]),
        "non_integer_floats": safetensors([("f", "F64", [3], elements("F64", 3))]),
        # Malformed: truncated data, header length past the end, not JSON, overlapping tensors.
        "truncated": safetensors([("w", "F32", [4], elements("F32", 4))])[:-3],
        "header_too_long": struct.pack("<Q", 1 << 40) + b"{}      ",
        "not_json": struct.pack("<Q", 8) + b"{\"a\":,}",
        "overlap": (lambda h: struct.pack("<Q", len(h)) + h + b"\0" * 8)(
            b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
            + b" " * 6),
    }
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), OUT))


if __name__ == "__main__":
    main()
