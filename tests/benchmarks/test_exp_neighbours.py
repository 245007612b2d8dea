"""The neighbour experiment's math (benchmarks/exp_neighbours.py): its docs/tuning.md figures rest on it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import exp_neighbours

from fmrec.evaluation.peers import fit_ease
from fmrec.model import fm


def _seen(n_users: int = 30, n_movies: int = 12, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_movies)) < 0.4).astype(np.float32)
    dense[:, 0] = 1.0  # every user has a history
    return sp.csr_matrix(dense)


def test_ease_source_without_a_cut_is_ease_itself() -> None:
    seen = _seen()
    nb = exp_neighbours.neighbours(seen, top=0, beta=0.0, source="ease:5")
    expected = fit_ease(seen, 0, 5.0)(np.arange(seen.shape[0]))
    np.testing.assert_allclose(nb.full, expected, rtol=1e-4, atol=1e-5)


def test_the_cut_keeps_each_movies_largest_weights() -> None:
    seen = _seen()
    x = seen.toarray().astype(np.float64)
    n = x.sum(axis=0)
    cosine = (x.T @ x) / np.sqrt(np.outer(n, n))
    np.fill_diagonal(cosine, 0.0)
    kept = np.zeros_like(cosine)
    for m in range(cosine.shape[1]):
        third = np.sort(cosine[:, m])[-3]
        top = cosine[:, m] >= third - 1e-9  # ties at the cut are all kept
        kept[top, m] = cosine[top, m]
    cut = exp_neighbours.neighbours(seen, top=3, beta=0.0)
    np.testing.assert_allclose(cut.full, x @ kept, rtol=1e-5, atol=1e-6)
    assert not np.allclose(cut.full, x @ cosine, atol=1e-3)  # the cut changed something
    # top < 0: each history movie keeps its 3 largest targets instead
    rows = np.zeros_like(cosine)
    for h in range(cosine.shape[0]):
        keep = cosine[h] >= np.sort(cosine[h])[-3] - 1e-9
        rows[h, keep] = cosine[h, keep]
    by_row = exp_neighbours.neighbours(seen, top=-3, beta=0.0)
    np.testing.assert_allclose(by_row.full, x @ rows, rtol=1e-5, atol=1e-6)


def test_the_column_leaves_the_users_own_co_occurrences_out() -> None:
    seen = _seen()
    n_users, n_movies = seen.shape
    nb = exp_neighbours.neighbours(seen, top=0, beta=0.5)
    user = np.repeat(np.arange(n_users), n_movies)
    movie = np.tile(np.arange(n_movies), n_users)
    rows = sp.csr_matrix(
        (
            np.ones(2 * user.size, np.float32),
            (np.repeat(np.arange(user.size), 2), np.c_[user, n_users + movie].ravel()),
        ),
        shape=(user.size, n_users + n_movies),
    )
    value = exp_neighbours.add_column(rows, nb, seen, n_users, n_movies)[:, -1].toarray().ravel()
    x = seen.toarray()
    n = x.sum(axis=0)
    for r in range(user.size):
        u, m = user[r], movie[r]
        others = np.delete(x, u, axis=0)  # every other user's co-occurrences: what a held-out m would see
        co = others.T @ others
        history = [h for h in np.flatnonzero(x[u]) if h != m]
        expected = sum(co[h, m] / np.sqrt(n[h] * n[m]) for h in history) * x[u].sum() ** -0.5 * nb.gamma
        if x[u, m] == 0:  # not rated: the user's own pairs with m do not exist, nothing to leave out
            expected = (
                sum((x.T @ x)[h, m] / np.sqrt(n[h] * n[m]) for h in history) * x[u].sum() ** -0.5 * nb.gamma
            )
        assert abs(value[r] - expected) < 1e-4, (u, m)


def test_the_column_scorer_is_the_fms_own_score_of_the_row() -> None:
    seen = _seen()
    n_users, n_movies = seen.shape
    nb = exp_neighbours.neighbours(seen, top=4, beta=0.5)
    users = sp.csr_matrix(np.eye(n_users, n_users + n_movies, dtype=np.float32))
    items = sp.csr_matrix(np.eye(n_movies, n_users + n_movies, k=n_users, dtype=np.float32))
    rng = np.random.default_rng(1)
    dim = n_users + n_movies + 1
    params = fm.FMParams(
        0.2, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, 4)).astype(np.float32)
    )
    scores = exp_neighbours.column_scorer(params, users, items, nb)(np.arange(n_users))
    served = nb.served()
    for u, m in [(0, 0), (3, 7), (29, 11)]:
        row = np.append((users[u] + items[m]).toarray().ravel(), served[u, m])
        expected = fm.raw_scores(params, sp.csr_matrix(row[None, :].astype(np.float32)))[0]
        assert abs(scores[u, m] - expected) < 1e-4


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ease:200,-10", "not enough values"),
        ("ease:200,ten,0.2", "invalid literal"),
        ("cosine,10,0.2", "knn or ease"),
    ],
)
def test_a_bad_blend_flag_names_the_flag_and_the_form(spec: str, expected: str) -> None:
    with pytest.raises(SystemExit, match=rf"--blend '{spec}': expected SOURCE,TOP,WEIGHT .*{expected}"):
        exp_neighbours.blend_from_spec(spec, _seen(), None, None)
