"""RecordIO-protobuf wire primitives shared by the writer and the readers: constants, error, varints."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from fmrec.errors import InputError

# The channel and request content type of this format (SageMaker FM, "Input/Output Interface"):
# https://docs.aws.amazon.com/sagemaker/latest/dg/fact-machines.html
CONTENT_TYPE = "application/x-recordio-protobuf"
MAGIC = 0xCED7230A
MAGIC_LE = struct.pack("<I", MAGIC)
VALUES_KEY = b"\x0a\x06values"  # map entry field 1 (key) = "values"

# Value.oneof field numbers (wire type 2): Float32Tensor 2, Float64Tensor 3, Int32Tensor 7.
TENSOR_TAG = {"Float32": 0x12, "Float64": 0x1A, "Int32": 0x3A}
TAG_KIND = {v: k for k, v in TENSOR_TAG.items()}
ITEMSIZE = {"Float32": 4, "Float64": 8}
NP_DTYPE: dict[str, Any] = {"Float32": np.dtype("<f4"), "Float64": np.dtype("<f8")}

# Shapes are kept as int64: a declared dimension above this is refused, not wrapped to a negative number.
MAX_DIM = 2**63 - 1


class RecordIOError(InputError):
    """Malformed recordIO-protobuf; the message names the file, record number and byte offset."""

    def __init__(self, source: str, record: int, offset: int, problem: str) -> None:
        self.source, self.record, self.offset, self.problem = source, record, offset, problem
        where = f"record {record} at byte offset {offset}" if offset >= 0 else f"record {record}"
        super().__init__(f"{source}: {where}: {problem}")


def varint_len(values: np.ndarray) -> np.ndarray:
    """Bytes each uint64 takes as a protobuf varint (1..10)."""
    v = values.astype(np.uint64, copy=False)
    n = np.ones(v.shape, dtype=np.int64)
    top = int(v.max()) if v.size else 0
    for k in range(1, 10):
        if top < 1 << (7 * k):
            break
        n += v >= np.uint64(1 << (7 * k))
    return n


def vbytes(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def varint_stream(values: np.ndarray) -> np.ndarray:
    """Concatenated protobuf varints of `values` (uint64) as one uint8 array."""
    v = values.astype(np.uint64, copy=False).ravel()
    if v.size == 0:
        return np.empty(0, dtype=np.uint8)
    lens = varint_len(v)
    lo, hi = int(lens.min()), int(lens.max())
    if lo == hi:  # every varint the same width: fill columns, no scatter
        out2 = np.empty((v.size, hi), dtype=np.uint8)
        for k in range(hi):
            byte = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
            if k < hi - 1:
                byte |= np.uint64(0x80)
            out2[:, k] = byte
        return out2.ravel()
    ends = np.cumsum(lens)
    starts = ends - lens
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(hi):
        mask = lens > k if k >= lo else None
        vv = v if mask is None else v[mask]
        byte = (vv >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lens > k + 1) if mask is None else (lens[mask] > k + 1)
        byte |= more.astype(np.uint64) << np.uint64(7)
        pos = (starts if mask is None else starts[mask]) + k
        out[pos] = byte
    return out


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def compiled_kernels() -> Any:
    """fmrec.codec.fast_kernels, or None where numba is not installed: SageMaker's SKLearn processing image
    (the evaluate step's; https://github.com/aws/sagemaker-scikit-learn-container, docker/1.4-2) has numpy,
    scipy, pandas and scikit-learn but no numba, so channel-sized blocks take the numpy paths there."""
    try:
        # local import: numba stays off the endpoint's and CLI's start-up (only channel-sized blocks get here)
        from fmrec.codec import fast_kernels
    except ImportError:
        return None
    return fast_kernels


def decode_varints(data: bytes) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    kernels = compiled_kernels() if arr.size >= 1 << 16 else None
    if kernels is not None:
        out, n = kernels.varints(arr)
        if n < 0:
            raise ValueError("truncated packed varints" if n == -1 else "overlong varint")
        return out[:n]
    term = arr < 0x80
    if not term[-1]:
        raise ValueError("truncated packed varints")
    ends = np.flatnonzero(term)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lens = ends - starts + 1
    if lens.max() > 10:
        raise ValueError("overlong varint")
    pos_in = np.arange(arr.size) - np.repeat(starts, lens)
    contrib = (arr & 0x7F).astype(np.uint64) << (7 * pos_in).astype(np.uint64)
    return np.add.reduceat(contrib, starts)


def record_template(
    n_cols: int,
    kind: str,
    nnz: int,
    val_bytes: int,
    key_bytes: int,
    has_label: bool,
    label_kind: str | None,
    label_bytes: int,
) -> tuple[bytes, int, int, int]:
    """One record with zeroed payload, and the offsets of its values, keys and label bytes."""
    tensor = bytearray()
    vs = ks = ls = -1
    if nnz:
        tensor += b"\x0a" + vbytes(val_bytes)
        vs = len(tensor)
        tensor += bytes(val_bytes) + b"\x12" + vbytes(key_bytes)
        ks = len(tensor)
        tensor += bytes(key_bytes)
    shape = vbytes(n_cols)
    tensor += b"\x1a" + vbytes(len(shape)) + shape
    value = bytes([TENSOR_TAG[kind]]) + vbytes(len(tensor))
    entry = VALUES_KEY + b"\x12" + vbytes(len(value) + len(tensor))
    head = b"\x0a" + vbytes(len(entry) + len(value) + len(tensor)) + entry + value
    record = bytearray(head) + tensor
    shift = 8 + len(head)
    vs, ks = (vs + shift, ks + shift) if nnz else (vs, ks)
    if has_label:
        ltensor = b"\x0a" + vbytes(label_bytes)
        lvalue_len = len(ltensor) + label_bytes
        lvalue = bytes([TENSOR_TAG[str(label_kind)]]) + vbytes(lvalue_len)
        lentry = VALUES_KEY + b"\x12" + vbytes(len(lvalue) + lvalue_len)
        lhead = b"\x12" + vbytes(len(lentry) + len(lvalue) + lvalue_len) + lentry + lvalue + ltensor
        ls = 8 + len(record) + len(lhead)
        record += lhead + bytes(label_bytes)
    length = len(record)
    pad = (-length) % 4
    return MAGIC_LE + struct.pack("<I", length) + bytes(record) + bytes(pad), vs, ks, ls
