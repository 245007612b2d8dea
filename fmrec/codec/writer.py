"""Vectorised recordIO-protobuf writer, byte-identical to SDK 2.x `write_spmatrix_to_sparse_tensor`."""

from __future__ import annotations

import io
import itertools
import os
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.wire import ITEMSIZE, NP_DTYPE, record_template, varint_len, varint_stream
from fmrec.io_utils import atomic_open

WRITE_CHUNK_ROWS = 131072


def _resolve_type(dtype: np.dtype[Any]) -> str:
    """SDK 2.x `_resolve_type`: int (int64) -> Int32, float (float64) -> Float64, float32 -> Float32.

    int32 arrays are also written as Int32 tensors (SDK 2.x rejects that dtype; the bytes would be the same).
    """
    if dtype == np.dtype(int) or dtype == np.dtype(np.int32):
        return "Int32"
    if dtype == np.dtype(float):
        return "Float64"
    if dtype == np.dtype("float32"):
        return "Float32"
    raise ValueError(f"Unsupported dtype {dtype} on array")


def _as_int32_varint_source(values: np.ndarray) -> np.ndarray:
    """int32 protobuf values are varints of the sign-extended 64-bit two's complement."""
    v = np.asarray(values).astype(np.int64, copy=False)
    if v.size and (v.min() < -(2**31) or v.max() > 2**31 - 1):
        raise ValueError("Value out of range for an Int32 tensor")
    return v.view(np.uint64)


def _segment_sums(per_elem: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    cs = np.concatenate(([0], np.cumsum(per_elem, dtype=np.int64)))
    return cs[indptr[1:]] - cs[indptr[:-1]]


def _encode_chunk(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_cols: int,
    kind: str,
    labels: np.ndarray | None,
    label_kind: str | None,
) -> np.ndarray:
    """Bytes (uint8) of every record of one chunk of CSR rows; indptr is relative to indices/data."""
    n = indptr.size - 1
    nnz = np.diff(indptr).astype(np.int64)
    keys = indices.astype(np.uint64, copy=False)
    klen = varint_len(keys)
    key_bytes = _segment_sums(klen, indptr)
    if kind == "Int32":
        ivals = _as_int32_varint_source(data)
        val_bytes = _segment_sums(varint_len(ivals), indptr)
    else:
        ivals = None
        val_bytes = nnz * ITEMSIZE[kind]
    if labels is not None:
        if label_kind == "Int32":
            lvals = _as_int32_varint_source(labels)
            lab_bytes = varint_len(lvals)
        else:
            lvals = None
            lab_bytes = np.full(n, ITEMSIZE[str(label_kind)], dtype=np.int64)
    else:
        lvals = None
        lab_bytes = np.zeros(n, dtype=np.int64)

    # Rows with equal (nnz, value bytes, key bytes, label bytes) share every length field, so one template
    # per group covers them and only the payload bytes differ. Preprocess output is sorted by user, so equal
    # rows come in long runs that are filled in place; otherwise rows are grouped by class and scattered.
    sig = np.stack([nnz, val_bytes, key_bytes, lab_bytes])
    if n > 1:
        change = np.flatnonzero(np.any(sig[:, 1:] != sig[:, :-1], axis=0)) + 1
    else:
        change = np.empty(0, dtype=np.int64)
    row_starts = indptr[:-1]
    has_labels = labels is not None

    def fill(
        mat: np.ndarray, rows: Any, r0: int, layout: tuple[bytes, int, int, int], c: tuple[int, ...]
    ) -> None:
        template, vs, ks, ls = layout
        c_nnz, c_vb, c_kb, c_lb = c
        m = mat.shape[0]
        mat[:] = np.frombuffer(template, dtype=np.uint8)
        if c_nnz:
            if isinstance(rows, slice):
                eidx: Any = slice(int(indptr[rows.start]), int(indptr[rows.stop]))
            else:
                eidx = (row_starts[rows][:, None] + np.arange(c_nnz)).ravel()
            if ivals is None:
                vals = np.ascontiguousarray(data[eidx], dtype=NP_DTYPE[kind])
                mat[:, vs : vs + c_vb] = vals.view(np.uint8).reshape(m, c_vb)
            else:
                mat[:, vs : vs + c_vb] = varint_stream(ivals[eidx]).reshape(m, c_vb)
            mat[:, ks : ks + c_kb] = varint_stream(keys[eidx]).reshape(m, c_kb)
        if labels is not None:
            if lvals is None:
                lab = np.ascontiguousarray(labels[rows], dtype=NP_DTYPE[str(label_kind)])
                mat[:, ls : ls + c_lb] = lab.view(np.uint8).reshape(m, c_lb)
            else:
                mat[:, ls : ls + c_lb] = varint_stream(lvals[rows]).reshape(m, c_lb)

    def layout_of(r0: int) -> tuple[tuple[bytes, int, int, int], tuple[int, ...]]:
        c = (int(nnz[r0]), int(val_bytes[r0]), int(key_bytes[r0]), int(lab_bytes[r0]))
        return record_template(n_cols, kind, c[0], c[1], c[2], has_labels, label_kind, c[3]), c

    if change.size <= 8 or change.size * 64 <= n:
        bounds = np.concatenate(([0], change, [n])).tolist()
        runs = []
        total = 0
        for a, b in itertools.pairwise(bounds):
            layout, c = layout_of(a)
            runs.append((a, b, total, layout, c))
            total += (b - a) * len(layout[0])
        out = np.empty(total, dtype=np.uint8)
        for a, b, pos, layout, c in runs:
            width = len(layout[0])
            fill(out[pos : pos + (b - a) * width].reshape(b - a, width), slice(a, b), a, layout, c)
        return out

    widths = [max(int(x.max()).bit_length(), 1) for x in sig]
    if sum(widths) <= 62:
        packed = np.zeros(n, dtype=np.int64)
        for x, w in zip(sig, widths, strict=True):
            packed = (packed << w) | x
        order = np.argsort(packed.astype(np.uint16) if sum(widths) <= 16 else packed, kind="stable")
        sorted_sig = packed[order]
        cuts = np.flatnonzero(sorted_sig[1:] != sorted_sig[:-1]) + 1
    else:
        order = np.lexsort(sig[::-1])
        s_sorted = sig[:, order]
        cuts = np.flatnonzero(np.any(s_sorted[:, 1:] != s_sorted[:, :-1], axis=0)) + 1
    classes = []
    total_words = np.zeros(n, dtype=np.int64)
    for a, b in itertools.pairwise(np.concatenate(([0], cuts, [n])).tolist()):
        rows = order[a:b]
        layout, c = layout_of(int(rows[0]))
        total_words[rows] = len(layout[0]) // 4
        classes.append((rows, layout, c))
    word_starts = np.concatenate(([0], np.cumsum(total_words)))
    out32 = np.empty(int(word_starts[-1]), dtype="<u4")
    for rows, layout, c in classes:
        width = len(layout[0])
        mat = np.empty((rows.size, width), dtype=np.uint8)
        fill(mat, rows, int(rows[0]), layout, c)
        out32[(word_starts[rows][:, None] + np.arange(width // 4)).ravel()] = mat.view("<u4").ravel()
    return out32.view(np.uint8)


def write_spmatrix(
    fileobj: IO[bytes], csr: Any, labels: Any = None, chunk_rows: int = WRITE_CHUNK_ROWS
) -> int:
    """Write a sparse matrix (+ labels) as recordIO-protobuf records, exactly as SDK 2.x
    `write_spmatrix_to_sparse_tensor` does; returns the number of bytes written.

    Rows are encoded in chunks of `chunk_rows`, so memory stays bounded by the chunk.
    """
    if not sp.issparse(csr):
        raise TypeError("Array must be sparse")
    if len(csr.shape) != 2:
        raise ValueError("Array must be a Matrix")
    kind = _resolve_type(csr.dtype)
    label_arr: np.ndarray | None = None
    label_kind: str | None = None
    if labels is not None:
        label_arr = np.asarray(labels)
        if label_arr.ndim != 1:
            raise ValueError("Labels must be a Vector")
        if label_arr.shape[0] != csr.shape[0]:
            raise ValueError(f"Label shape {label_arr.shape} not compatible with array shape {csr.shape}")
        label_kind = _resolve_type(label_arr.dtype)
    mat = csr.tocsr()
    n_rows, n_cols = mat.shape
    indptr = mat.indptr.astype(np.int64, copy=False)
    written = 0
    for r0 in range(0, n_rows, max(1, chunk_rows)):
        r1 = min(n_rows, r0 + chunk_rows)
        lo, hi = int(indptr[r0]), int(indptr[r1])
        chunk = _encode_chunk(
            indptr[r0 : r1 + 1] - lo,
            mat.indices[lo:hi],
            mat.data[lo:hi],
            n_cols,
            kind,
            None if label_arr is None else label_arr[r0:r1],
            label_kind,
        )
        fileobj.write(chunk.data)
        written += chunk.size
    return written


def write_spmatrix_file(path: str | os.PathLike[str], csr: Any, labels: Any = None) -> int:
    """`write_spmatrix` into `path` atomically (a temporary sibling renamed on success)."""
    with atomic_open(path, "wb") as fh:
        return write_spmatrix(fh, csr, labels)


def encode_request(csr: Any) -> bytes:
    """What a client sends to an endpoint: one float32 sparse record per row, no label."""
    buf = io.BytesIO()
    write_spmatrix(buf, sp.csr_matrix(csr, dtype=np.float32))
    return buf.getvalue()
