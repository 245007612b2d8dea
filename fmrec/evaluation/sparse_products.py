"""EvaluateModel's CSR products: X @ v, X.T @ r (scipy's float64 bits), a block's column per row."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

try:  # the compiled loops (sparse_kernels.py: why they exist and how they keep scipy's bits)
    from fmrec.evaluation import sparse_kernels as _k
except ImportError:  # no numba: SageMaker's SKLearn image (fmrec.codec.wire.compiled_kernels)
    _k = None  # type: ignore[assignment]


def _csr(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, columns: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(data, np.float64), indices, indptr), shape=(indptr.size - 1, columns))


def row_hits(indptr: np.ndarray, indices: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Per row of the CSR, position[j] of its last column j with position[j] >= 0; -1 if none (int64)."""
    out = np.full(indptr.size - 1, -1, np.int64)
    position = np.ascontiguousarray(position, dtype=np.int64)
    if _k is not None:
        _k.row_hits_into(indptr, indices, position, out)
        return out
    at = position[indices]
    rows = np.repeat(np.arange(out.size), np.diff(indptr))[at >= 0]
    out[rows] = at[at >= 0]  # in row order, so a row's last such column wins, as in the loop
    return out


def matvec(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X @ v (float64) for the CSR (indptr, indices, data) and a float64 vector v of its column count."""
    v = np.ascontiguousarray(v, dtype=np.float64)
    if _k is None:
        return _csr(indptr, indices, data, v.size) @ v
    out = np.empty(indptr.size - 1, np.float64)
    _k.matvec_into(indptr, indices, data, v, out)
    return out


def rmatvec(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, r: np.ndarray, columns: int
) -> np.ndarray:
    """X.T @ r (float64, `columns` long) for the CSR (indptr, indices, data) and a float64 vector r of its
    row count."""
    r = np.ascontiguousarray(r, dtype=np.float64)
    if _k is None:
        return _csr(indptr, indices, data, columns).T.tocsr() @ r
    out = np.zeros(columns, np.float64)
    _k.rmatvec_into(indptr, indices, data, r, out)
    return out


def compile_kernels() -> None:
    """Compile the kernels into numba's cache, the products for both value types the fit meets (float32
    channel values, the float64 popularity feature): `make setup` calls it, so the first EvaluateModel after
    an install loads them instead of compiling them (~2 CPU-s). Without numba there is nothing to compile."""
    if _k is None:
        return
    indptr, indices = np.array([0, 1], np.int32), np.array([0], np.int32)
    for dtype in (np.float32, np.float64):
        data = np.ones(1, dtype)
        matvec(indptr, indices, data, np.ones(1))
        rmatvec(indptr, indices, data, np.ones(1), 1)
    row_hits(indptr, indices, np.zeros(1, np.int64))
