"""Ranking metrics on tiny cases computed by hand: NDCG, MAP, ties, fewer relevant than k, coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.evaluation.ranking import ranking_metrics_at_k, ranking_task, top_k


def _task(held: list[tuple[int, int, float]], seen: list[list[int]], n_items: int, **kw: object):
    """Users 1..len(seen) and movies 10, 20, ... (position p has id 10 * (p + 1))."""
    user_ids = np.arange(1, len(seen) + 1)
    movie_ids = 10 * np.arange(1, n_items + 1)
    rows = [u for u, cols in enumerate(seen) for _ in cols]
    cols = [c for r in seen for c in r]
    train = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(seen), n_items))
    u, m, r = (np.array(x) for x in zip(*held, strict=True))
    return ranking_task(u, m, r, 4.0, user_ids, movie_ids, train, **kw)  # type: ignore[arg-type]


def _fixed(scores: list[list[float]]):
    table = np.array(scores, dtype=np.float64)
    return lambda users: table[users]


def test_ndcg_map_precision_recall_by_hand() -> None:
    # User 1 rated movie 0 in train; liked 1 and 3 in the held-out set, rated 2 a 3 (not relevant).
    task = _task([(1, 20, 5), (1, 40, 4), (1, 30, 3)], [[0]], n_items=5)
    # Candidates 1..4 ranked by score: 3 (0.9), 2 (0.8), 4 (0.5), 1 (0.1); k = 3 -> hits at ranks 1 only.
    m = ranking_metrics_at_k(_fixed([[9.0, 0.1, 0.8, 0.9, 0.5]]), task, k=3)
    assert m["precision_at_3"] == pytest.approx(1 / 3)
    assert m["recall_at_3"] == pytest.approx(1 / 2)
    assert m["ndcg_at_3"] == pytest.approx(1.0 / (1.0 + 1.0 / math.log2(3)))
    assert m["map_at_3"] == pytest.approx((1 / 1) / 2)  # P@1 at the one hit, over min(2 relevant, 3)
    assert m["coverage"] == pytest.approx(3 / 5)  # movies 3, 2, 4 shown; movie 0 was seen


def test_fewer_relevant_than_k_and_a_hit_further_down() -> None:
    # One relevant movie (position 2) ranked second of k = 5.
    task = _task([(1, 30, 5)], [[]], n_items=6)
    m = ranking_metrics_at_k(_fixed([[6.0, 1.0, 5.0, 0.0, 0.0, 0.0]]), task, k=5)
    assert m["precision_at_5"] == pytest.approx(1 / 5)
    assert m["recall_at_5"] == pytest.approx(1.0)
    assert m["ndcg_at_5"] == pytest.approx(1 / math.log2(3))  # ideal: one hit at rank 1
    assert m["map_at_5"] == pytest.approx(1 / 2)  # P@2 over min(1, 5)


def test_map_with_two_hits_and_more_relevant_than_k() -> None:
    # Relevant: positions 0, 2, 4, 5 (4 of them); k = 3; ranking 0, 1, 2 -> hits at ranks 1 and 3.
    task = _task([(1, 10, 5), (1, 30, 5), (1, 50, 4), (1, 60, 4)], [[]], n_items=6)
    m = ranking_metrics_at_k(_fixed([[6.0, 5.0, 4.0, 3.0, 2.0, 1.0]]), task, k=3)
    assert m["map_at_3"] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert m["ndcg_at_3"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert m["recall_at_3"] == pytest.approx(2 / 4)


def test_ties_rank_the_lower_position_first() -> None:
    # All scores equal: the top 2 are positions 0 and 1, so only the hit at position 1 counts, at rank 2.
    task = _task([(1, 20, 5), (1, 40, 5)], [[]], n_items=4)
    m = ranking_metrics_at_k(_fixed([[1.0, 1.0, 1.0, 1.0]]), task, k=2)
    assert m["precision_at_2"] == pytest.approx(1 / 2)
    assert m["map_at_2"] == pytest.approx((1 / 2) / 2)
    assert m["ndcg_at_2"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["coverage"] == pytest.approx(2 / 4)


def test_top_k_is_exact_with_ties_at_the_boundary() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float64)  # many ties
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    assert np.array_equal(top_k(scores, 7), expected)
    assert np.array_equal(top_k(scores, 30), np.argsort(-scores, axis=1, kind="stable"))


def test_a_relevant_movie_unknown_to_the_model_stays_relevant_but_cannot_be_ranked() -> None:
    # Movie 999 is not in the catalog: the user has 2 relevant movies, one rankable.
    task = _task([(1, 20, 5), (1, 999, 5)], [[]], n_items=3)
    assert task.relevant_total.tolist() == [2] and task.relevant.nnz == 1
    assert task.summary()["relevant_outside_catalog"] == 1
    m = ranking_metrics_at_k(_fixed([[0.0, 1.0, 0.0]]), task, k=2)  # the known one ranked first
    assert m["recall_at_2"] == pytest.approx(1 / 2)
    assert m["ndcg_at_2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))  # the ideal counts both
    assert m["map_at_2"] == pytest.approx(1 / 2)


def test_two_unknown_movies_of_one_user_both_count() -> None:
    task = _task([(1, 998, 5), (1, 999, 5), (1, 10, 5)], [[]], n_items=2)
    assert task.relevant_total.tolist() == [3]


def test_users_without_relevant_movies_are_not_ranked_and_unknown_users_are() -> None:
    # User 2 liked nothing; user 7 is not in train (position -1) and is ranked with no exclusions.
    task = _task([(1, 10, 5), (2, 10, 2), (7, 20, 4)], [[1], [0]], n_items=3)
    assert task.users.tolist() == [0, -1] and task.users_total == 2
    assert task.seen[1].nnz == 0 and task.seen[0].indices.tolist() == [1]


def test_seen_movies_are_never_candidates_and_short_lists_are_not_padded() -> None:
    # 3 movies, 2 seen: one candidate for k = 3; the seen (high-scored) movies never count.
    task = _task([(1, 30, 5), (1, 10, 5)], [[0, 1]], n_items=3)
    m = ranking_metrics_at_k(_fixed([[9.0, 9.0, 0.0]]), task, k=3)
    assert m["precision_at_3"] == pytest.approx(1 / 3)
    assert m["coverage"] == pytest.approx(1 / 3)


def test_users_are_sampled_only_above_the_size_limit() -> None:
    held = [(u, 10, 5.0) for u in range(1, 21)]
    full = _task(held, [[]] * 20, n_items=4)
    assert not full.sampled and full.users.size == 20
    small = _task(held, [[]] * 20, n_items=4, max_cells=40, seed=3)  # 40 cells / 4 movies = 10 users
    assert small.sampled and small.users.size == 10 and small.users_total == 20
    assert small.summary()["sampled"] is True
    again = _task(held, [[]] * 20, n_items=4, max_cells=40, seed=3)
    assert np.array_equal(small.users, again.users)


def test_blocks_do_not_change_the_figures() -> None:
    rng = np.random.default_rng(1)
    n_users, n_items = 40, 25
    held = [
        (u, 10 * (m + 1), float(rng.integers(1, 6))) for u in range(1, n_users + 1) for m in range(0, 25, 3)
    ]
    seen = [sorted(rng.choice(n_items, 5, replace=False).tolist()) for _ in range(n_users)]
    task = _task(held, seen, n_items)
    table = rng.normal(size=(n_users, n_items))
    one = ranking_metrics_at_k(_fixed(table.tolist()), task, k=5, block_cells=n_items)  # one user a block
    many = ranking_metrics_at_k(_fixed(table.tolist()), task, k=5)
    assert one == pytest.approx(many)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="no held-out rating >= 4"):
        _task([(1, 10, 3.0)], [[]], n_items=2)
    task = _task([(1, 10, 5.0)], [[]], n_items=2)
    with pytest.raises(InputError, match="NaN"):
        ranking_metrics_at_k(lambda users: np.full((users.size, 2), np.nan), task)
    with pytest.raises(InputError, match="shape"):
        ranking_metrics_at_k(lambda users: np.zeros((users.size, 3)), task)
