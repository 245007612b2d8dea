"""The baseline fit's products: bit for bit scipy's products of the float64 copy of X and of its transpose."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fmrec.evaluation.sparse_products import matvec, rmatvec


def _csr(rng: np.random.Generator, rows: int, cols: int, dtype: type) -> sp.csr_matrix:
    widths = rng.integers(0, 12, rows)  # empty rows too
    widths[0] = 0
    indices = np.concatenate([rng.choice(cols, w, replace=False) for w in widths]).astype(np.int32)
    indptr = np.concatenate(([0], np.cumsum(widths))).astype(np.int32)
    data: np.ndarray = rng.normal(0, 3, indices.size).astype(dtype)
    return sp.csr_matrix((data, indices, indptr), shape=(rows, cols))


def test_products_are_scipys_bits() -> None:
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        X = _csr(rng, 2_000, 300, dtype)
        X64 = sp.csr_matrix((X.data.astype(np.float64), X.indices, X.indptr), shape=X.shape)
        v = rng.normal(size=300) * 1e3
        r = rng.normal(size=2_000) * 1e-3
        got = matvec(X.indptr, X.indices, X.data, v)
        assert got.dtype == np.float64
        assert np.array_equal(got.view(np.uint64), (X64 @ v).view(np.uint64))
        assert np.array_equal(
            rmatvec(X.indptr, X.indices, X.data, r, 300).view(np.uint64),
            (X64.T.tocsr() @ r).view(np.uint64),
        )


def test_a_column_no_row_touches_is_zero() -> None:
    X = sp.csr_matrix(
        (np.array([2.0], np.float32), np.array([1], np.int32), np.array([0, 1, 1])), shape=(2, 4)
    )
    assert np.array_equal(rmatvec(X.indptr, X.indices, X.data, np.array([3.0, 5.0]), 4), [0.0, 6.0, 0.0, 0.0])
    assert np.array_equal(matvec(X.indptr, X.indices, X.data, np.arange(4.0)), [2.0, 0.0])
