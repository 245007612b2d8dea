"""FM scoring: the O(kn) formula against the naive pairwise sum, and the user-candidates fast path."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp

import fmrec.model.fm as fm_module
from fmrec.errors import InputError
from fmrec.model.fm import FMParams, predict, raw_scores, score_user_candidates, sigmoid


def _params(rng: np.random.Generator, d: int, k: int) -> FMParams:
    return FMParams(
        w0=float(rng.normal()),
        w=rng.normal(0, 0.5, d).astype(np.float32),
        V=rng.normal(0, 0.5, (d, k)).astype(np.float32),
    )


def _naive(params: FMParams, X: sp.csr_matrix) -> np.ndarray:
    dense = X.toarray().astype(np.float64)
    V = params.V.astype(np.float64)
    out = np.empty(dense.shape[0])
    for r, x in enumerate(dense):
        total = params.w0 + float(x @ params.w.astype(np.float64))
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                total += float(V[i] @ V[j]) * x[i] * x[j]
        out[r] = total
    return out


def test_raw_scores_match_naive_pairwise_sum() -> None:
    rng = np.random.default_rng(0)
    params = _params(rng, 12, 5)
    X = sp.random(30, 12, density=0.4, random_state=1, format="csr", dtype=np.float32)
    X.data = rng.normal(size=X.nnz).astype(np.float32)
    np.testing.assert_allclose(raw_scores(params, X), _naive(params, X), rtol=1e-5, atol=1e-5)


def test_predict_applies_sigmoid_only_for_binary_classifier() -> None:
    rng = np.random.default_rng(1)
    params = _params(rng, 6, 3)
    X = sp.random(10, 6, density=0.5, random_state=2, format="csr", dtype=np.float32)
    raw = raw_scores(params, X)
    np.testing.assert_allclose(predict(params, X, "binary_classifier"), 1 / (1 + np.exp(-raw)))
    np.testing.assert_allclose(predict(params, X, "regressor"), raw)
    with pytest.raises(InputError, match="predictor_type"):
        predict(params, X, "multiclass")


def test_sigmoid_is_stable_at_extremes() -> None:
    out = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
    assert np.all(np.isfinite(out))


def test_score_user_candidates_matches_raw_scores() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, k = 7, 9, 4
    d = n_users + n_items + 3  # three auxiliary item columns
    params = _params(rng, d, k)
    user_cols = [2, n_users + n_items]  # a user column and an auxiliary column on the user side
    rows, cols = [], []
    for i in range(n_items):
        rows += [i, i]
        cols += [n_users + i, n_users + n_items + 1 + (i % 2)]
    items = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_items, d))
    full = sp.lil_matrix((n_items, d), dtype=np.float32)
    for i in range(n_items):
        for c in user_cols:
            full[i, c] = 1.0
    full = (full.tocsr() + items).tocsr()
    for ptype in ("binary_classifier", "regressor"):
        fast = score_user_candidates(params, user_cols, items, ptype)
        np.testing.assert_allclose(fast, predict(params, full, ptype), rtol=1e-6, atol=1e-6)


def test_score_user_candidates_with_user_values() -> None:
    rng = np.random.default_rng(4)
    params = _params(rng, 8, 3)
    items = sp.csr_matrix(([1.0, 1.0], ([0, 1], [5, 6])), shape=(2, 8), dtype=np.float32)
    full = items.toarray()
    full[:, 1] = 0.5
    full[:, 2] = 2.0
    fast = score_user_candidates(params, [1, 2], items, "regressor", user_values=[0.5, 2.0])
    np.testing.assert_allclose(fast, raw_scores(params, sp.csr_matrix(full)), rtol=1e-6)


def test_bad_columns_are_rejected() -> None:
    params = _params(np.random.default_rng(5), 4, 2)
    with pytest.raises(InputError, match="feature_dim 4"):
        raw_scores(params, sp.csr_matrix(np.ones((1, 5), np.float32)))
    with pytest.raises(InputError, match="user_cols"):
        score_user_candidates(params, [4], sp.csr_matrix((1, 4), dtype=np.float32), "regressor")
    # a request narrower than the model is padded, not rejected
    assert raw_scores(params, sp.csr_matrix(np.ones((1, 3), np.float32))).shape == (1,)


def test_params_shape_mismatch() -> None:
    with pytest.raises(InputError, match="shape"):
        FMParams(0.0, np.zeros(3, np.float32), np.zeros((4, 2), np.float32))


def test_blocks_empty_rows_and_duplicate_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    params = _params(rng, 10, 3)
    X = sp.random(50, 10, density=0.2, random_state=4, format="csr", dtype=np.float32)
    X = X.tolil()
    X[[0, 7, 8, 49], :] = 0  # empty rows, including the first and the last
    X = X.tocsr()
    X.eliminate_zeros()
    expected = _naive(params, X)
    np.testing.assert_allclose(raw_scores(params, X), expected, rtol=1e-5, atol=1e-5)
    # the numpy-only path (no scipy installed), in small blocks, with and without equal keys per row
    monkeypatch.setattr(fm_module, "_HAVE_SCIPY", False)
    monkeypatch.setattr(fm_module, "_ROWS_PER_BLOCK", 7)
    np.testing.assert_allclose(raw_scores(params, X), expected, rtol=1e-5, atol=1e-5)
    one_hot = sp.csr_matrix((np.ones(6, np.float32), [0, 4, 1, 5, 2, 9], [0, 2, 4, 6]), shape=(3, 10))
    np.testing.assert_allclose(raw_scores(params, one_hot), _naive(params, one_hot), rtol=1e-5, atol=1e-5)
    items = sp.csr_matrix((np.ones(3, np.float32), [4, 5, 9], [0, 1, 2, 3]), shape=(3, 10))
    fast = score_user_candidates(params, [0], items, "regressor")
    np.testing.assert_allclose(
        fast,
        _naive(params, (items + sp.csr_matrix(([1.0] * 3, ([0, 1, 2], [0] * 3)), (3, 10))).tocsr()),
        rtol=1e-5,
    )
    # a repeated key in one row is one feature with the summed value, as scipy's matrix product treats it
    dup = sp.csr_matrix((np.array([1.0, 2.0], np.float32), np.array([3, 3]), np.array([0, 2])), shape=(1, 10))
    single = sp.csr_matrix((np.array([3.0], np.float32), np.array([3]), np.array([0, 1])), shape=(1, 10))
    np.testing.assert_allclose(raw_scores(params, dup), raw_scores(params, single))


def test_repeated_and_unsorted_keys_without_scipy_canonical_form() -> None:
    """A CSR-like object (no tocsr, so not canonicalised first) with a repeated key: x_i is the sum before
    it is squared, the same as the canonical matrix; sorted and unsorted rows score alike."""
    rng = np.random.default_rng(3)
    params = _params(rng, 10, 4)
    raw = SimpleNamespace(
        shape=(2, 10),
        indptr=np.array([0, 3, 5]),
        indices=np.array([7, 3, 3, 9, 1]),
        data=np.array([0.5, 1.0, 2.0, 1.5, -1.0], np.float32),
    )
    canonical = sp.csr_matrix(
        (np.array([3.0, 0.5, -1.0, 1.5], np.float32), [3, 7, 1, 9], [0, 2, 4]), shape=(2, 10)
    )
    np.testing.assert_allclose(raw_scores(params, raw), raw_scores(params, canonical), rtol=1e-6)
    np.testing.assert_allclose(raw_scores(params, canonical), _naive(params, canonical), rtol=1e-5, atol=1e-5)
    V = params.V.astype(np.float64)
    np.testing.assert_allclose(params.v_squared_norms, (V * V).sum(axis=1), rtol=1e-12)


def test_scoring_module_needs_numpy_only() -> None:
    code = "import sys, fmrec.model.fm; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
