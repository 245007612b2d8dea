"""EvaluateModel's compiled CSR loops: X @ v, X.T @ r (scipy's float64 bits), a block's column per row."""

from __future__ import annotations

import numba
import numpy as np

# The biases-only baseline's L-BFGS fit takes ~80 products with the train channel (64M entries at the
# ml-100k shape). Through scipy each needed a float64 copy of the values and a transposed copy of the matrix
# (1.3 GB of fresh memory, which this machine pays ~3 s a GB to page in), and ran on one core. Here:
# - `matvec`: each row's sum runs over its entries in order from 0.0, as scipy's csr_matvec does; rows are
#   split between threads (a row is summed by one thread, so the bits do not depend on the thread count);
# - `rmatvec`: out[j] gathers x_ij * r_i over the rows i in increasing order from 0.0, which is the order of
#   scipy's csr_matvec on X.T.tocsr() (the transpose keeps each column's entries in row order).
# No fastmath: the products are rounded as numpy rounds them (a multiply, then an add).

# Unsigned positions: numba wraps negative indices, and the check on every entry made a product 1.5x slower.
U = np.uint64


@numba.njit(cache=True, nogil=True, parallel=True)
def _matvec(indptr, indices, data, v, out):  # pragma: no cover - compiled
    for i in numba.prange(out.size):
        acc = 0.0
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            acc += np.float64(data[p]) * v[U(indices[p])]
        out[i] = acc


@numba.njit(cache=True, nogil=True)
def _rmatvec(indptr, indices, data, r, out):  # pragma: no cover - compiled
    for i in range(indptr.size - 1):
        ri = r[i]
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            out[U(indices[p])] += np.float64(data[p]) * ri


@numba.njit(cache=True, nogil=True)
def _row_hits(indptr, indices, position, out):  # pragma: no cover - compiled
    for i in range(out.size):
        for p in range(U(indptr[i]), U(indptr[i + 1])):
            at = position[U(indices[p])]
            if at >= 0:
                out[i] = at


def row_hits(indptr: np.ndarray, indices: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Per row of the CSR, position[j] of its last column j with position[j] >= 0; -1 if none (int64)."""
    out = np.full(indptr.size - 1, -1, np.int64)
    _row_hits(indptr, indices, np.ascontiguousarray(position, dtype=np.int64), out)
    return out


def matvec(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, v: np.ndarray) -> np.ndarray:
    """X @ v (float64) for the CSR (indptr, indices, data) and a float64 vector v of its column count."""
    out = np.empty(indptr.size - 1, np.float64)
    _matvec(indptr, indices, data, np.ascontiguousarray(v, dtype=np.float64), out)
    return out


def rmatvec(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, r: np.ndarray, columns: int
) -> np.ndarray:
    """X.T @ r (float64, `columns` long) for the CSR (indptr, indices, data) and a float64 vector r of its
    row count."""
    out = np.zeros(columns, np.float64)
    _rmatvec(indptr, indices, data, np.ascontiguousarray(r, dtype=np.float64), out)
    return out


def compile_kernels() -> None:
    """Compile the kernels into numba's cache, the products for both value types the fit meets (float32
    channel values, the float64 popularity feature): `make setup` calls it, so the first EvaluateModel after
    an install loads them instead of compiling them (~2 CPU-s)."""
    indptr, indices = np.array([0, 1], np.int32), np.array([0], np.int32)
    for dtype in (np.float32, np.float64):
        data = np.ones(1, dtype)
        matvec(indptr, indices, data, np.ones(1))
        rmatvec(indptr, indices, data, np.ones(1), 1)
    row_hits(indptr, indices, np.zeros(1, np.int64))
