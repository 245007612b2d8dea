"""SideTerms: one side's FM terms computed once; a user against every item is one matrix-vector product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import fmrec.model.fm as fm_module
from fmrec.model.fm import FMParams, predict, score_user_items, side_terms
from fmrec.serving.ranking import top_k_indices


def _params(d: int, k: int, seed: int = 0) -> FMParams:
    rng = np.random.default_rng(seed)
    return FMParams(
        w0=float(rng.normal()),
        w=rng.normal(0, 0.5, d).astype(np.float32),
        V=rng.normal(0, 0.5, (d, k)).astype(np.float32),
    )


@pytest.mark.parametrize("predictor", ["binary_classifier", "regressor"])
def test_a_user_with_weighted_keys_against_items_equals_the_full_fm(predictor: str) -> None:
    # users in columns 0..9 plus weighted history columns 10..19; items 20..39 plus aux columns 40..44
    d = 45
    params = _params(d, 6)
    items = sp.lil_matrix((20, d), dtype=np.float32)
    for i in range(20):
        items[i, 20 + i] = 1
        items[i, 40 + i % 5] = 1
    items = items.tocsr()
    user_cols, user_values = [3, 11, 12, 17], [1.0, 0.5, 0.25, 2.0]
    scores = score_user_items(params, side_terms(params, items), user_cols, predictor, user_values)
    full = sp.lil_matrix((20, d), dtype=np.float64)
    for i in range(20):
        for c, v in zip(user_cols, user_values, strict=True):
            full[i, c] = v
        full[i, 20 + i] = 1
        full[i, 40 + i % 5] = 1
    np.testing.assert_allclose(scores, predict(params, full.tocsr(), predictor), rtol=1e-6, atol=1e-9)


def test_side_terms_of_many_users_give_the_same_scores_as_one_at_a_time() -> None:
    d = 30
    params = _params(d, 4, seed=2)
    items = sp.csr_matrix((np.ones(15), np.arange(15, 30), np.arange(16)), shape=(15, d))
    users = sp.csr_matrix((np.ones(15), np.arange(15), np.arange(16)), shape=(15, d))
    it, us = side_terms(params, items), side_terms(params, users)
    block = params.w0 + us.const[:, None] + it.const[None, :] + us.factors @ it.factors.T
    for u in range(15):
        np.testing.assert_allclose(
            block[u], score_user_items(params, it, [u], "regressor"), rtol=1e-9, atol=1e-12
        )


def test_top_k_indices_is_a_stable_sort_with_exclusions_and_min_score() -> None:
    rng = np.random.default_rng(3)
    for _ in range(500):
        n = int(rng.integers(0, 40))
        s = rng.integers(0, 6, n).astype(np.float64)
        s[rng.random(n) < 0.25] = -np.inf
        k = int(rng.integers(0, 12))
        floor = None if rng.random() < 0.5 else float(rng.integers(0, 6))
        expected = [i for i in sorted(range(n), key=lambda i: (-s[i], i)) if s[i] > -np.inf][:k]
        if floor is not None:
            expected = [i for i in expected if s[i] >= floor]
        assert top_k_indices(s, k, floor).tolist() == expected


def test_compact_terms_score_within_float32_precision() -> None:
    d = 40
    params = _params(d, 8, seed=5)
    items = sp.csr_matrix((np.ones(20), np.arange(20, 40), np.arange(21)), shape=(20, d))
    full = side_terms(params, items)
    small = full.compact()
    assert small.factors.dtype == np.float32 and small.factors.flags.c_contiguous
    for user in range(20):
        exact = score_user_items(params, full, [user], "regressor")
        np.testing.assert_allclose(score_user_items(params, small, [user], "regressor"), exact, atol=1e-6)


@pytest.mark.parametrize("with_scipy", [True, False])
def test_compact_terms_by_blocks_are_bit_for_bit_the_compacted_terms(
    monkeypatch: pytest.MonkeyPatch, with_scipy: bool
) -> None:
    """side_terms(compact=True) (the Lambda's, by blocks of rows) equals side_terms().compact() exactly, over
    blocks of one-hot rows, of rows with several weighted keys, and with empty rows, on both sum paths."""
    monkeypatch.setattr(fm_module, "_HAVE_SCIPY", with_scipy)
    monkeypatch.setattr(fm_module, "_ROWS_PER_BLOCK", 64)  # blocks of 16 rows
    d, n = 400, 300
    params = _params(d, 9, seed=4)
    rng = np.random.default_rng(5)
    rows = sp.lil_matrix((n, d), dtype=np.float32)
    for i in range(n):
        if 290 <= i < 295:
            continue  # empty rows
        rows[i, i] = 1  # rows 0..99: one-hot, uniform blocks
        if 100 <= i < 280 and i % 37:  # then a varying number of weighted keys; every 37th row stays one-hot
            for c in rng.choice(np.arange(300, d), size=int(rng.integers(1, 12)), replace=False):
                rows[i, int(c)] = float(rng.uniform(0.1, 2.0))
    rows = rows.tocsr()
    got = side_terms(params, rows, compact=True)
    want = side_terms(params, rows).compact()
    assert got.factors.dtype == np.float32 and got.factors.flags.c_contiguous
    assert got.const.tobytes() == want.const.tobytes()
    assert got.factors.tobytes() == want.factors.tobytes()
