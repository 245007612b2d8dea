"""The biases-only baseline's fit: float64 values once give the bits scipy's per-product upcast gave."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fmrec.evaluation import pointwise


def _channel(n: int = 400, d: int = 60) -> tuple[sp.csr_matrix, np.ndarray]:
    rng = np.random.default_rng(5)
    X = sp.random(n, d, density=0.15, random_state=2, format="csr", dtype=np.float32)
    X.data = rng.uniform(0.05, 1.5, X.nnz).astype(np.float32)
    y = (rng.random(n) < 0.4).astype(np.float64)
    return X, y


def test_products_on_float64_values_are_the_upcast_products_bit_for_bit() -> None:
    X, _ = _channel()
    X64 = sp.csr_matrix((X.data.astype(np.float64), X.indices, X.indptr), shape=X.shape)
    theta = np.random.default_rng(0).normal(size=X.shape[1])
    r = np.random.default_rng(1).normal(size=X.shape[0])
    np.testing.assert_array_equal(X @ theta, X64 @ theta)
    np.testing.assert_array_equal(X.T.tocsr() @ r, X64.T.tocsr() @ r)


def test_the_fit_is_the_same_from_float32_or_float64_values() -> None:
    X, y = _channel()
    X64 = sp.csr_matrix((X.data.astype(np.float64), X.indices, X.indptr), shape=X.shape)
    for binary in (True, False):
        w0_a, w_a = pointwise._fit_linear(X, y, binary, pointwise.BIAS_L2)
        w0_b, w_b = pointwise._fit_linear(X64, y, binary, pointwise.BIAS_L2)
        assert w0_a == w0_b
        np.testing.assert_array_equal(w_a, w_b)


def test_row_positions_are_those_of_a_row_by_row_loop() -> None:
    X, _ = _channel()
    X = sp.csr_matrix(X[:, :40])  # rows with none, one or several columns of the block
    cols = np.array([3, 7, 11, 20, 33])
    expected = np.full(X.shape[0], -1)
    for i in range(X.shape[0]):
        for j in X.indices[X.indptr[i] : X.indptr[i + 1]]:
            if j in cols:
                expected[i] = int(np.flatnonzero(cols == j)[0])  # the last one in the row wins
    got = pointwise.row_positions(X, cols)
    assert (got >= 0).any() and (got < 0).any()
    np.testing.assert_array_equal(got, expected)
