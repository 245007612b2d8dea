"""Top-k ranking metrics over every test user: P@k, recall@k, NDCG@k, MAP@k and catalog coverage.

Protocol (one for the evaluate step, the tuner and the benchmark):
- relevant movies of a user: their held-out ratings >= the threshold. A relevant movie outside the catalog
  (never rated in train, so unknown to the model) stays relevant: it counts in recall's and NDCG's
  denominators but can never be ranked.
- candidates of a user: every catalog movie they did not rate in train.
- users: every held-out user with at least one relevant movie, known to the model or not (an unknown user is
  scored with the movie side only, as SageMaker scores a request holding only known columns). Only when
  users x catalog exceeds MAX_SCORE_CELLS is a seeded sample of users ranked; `sampled` says so.
- ties: equal scores rank the lower catalog position first, so every figure is deterministic.

Definitions (binary relevance, k fixed): P@k = hits / k; recall@k = hits / relevant; NDCG@k = DCG / ideal
DCG, discount 1/log2(rank + 1), ideal over min(relevant, k) hits; MAP@k = mean over users of
sum_{hit ranks r} P@r / min(relevant, k); coverage = distinct movies in any top-k list / catalog size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.errors import InputError

K = 10
RANKED = ("model", "popularity")  # the scorers of the ranking block
# Above this many (users x catalog) scores a seeded user sample is ranked: ml-100k (1e6) and ml-1m (2.2e7)
# always rank every user; ml-10m (7e8) and larger rank floor(MAX_SCORE_CELLS / catalog) users.
MAX_SCORE_CELLS = 200_000_000
# Scores held at once (users per block = this / catalog): bounds each block's arrays to tens of MB.
BLOCK_CELLS = 2_000_000

# A scorer maps a block of user positions (-1 = unknown to the model) to a (block, catalog) score matrix.
Scorer = Callable[[np.ndarray], np.ndarray]
METRIC_NAMES = ("precision", "recall", "ndcg", "map")


def metric_keys(k: int = K) -> tuple[str, ...]:
    return (*(f"{name}_at_{k}" for name in METRIC_NAMES), "coverage")


@dataclass(frozen=True)
class RankingTask:
    """Who is ranked, what they may not be shown, and what counts as a hit."""

    users: np.ndarray  # (n,) position in the model's user table; -1 = not in train
    seen: sp.csr_matrix  # (n, catalog) movies rated in train: never candidates
    relevant: sp.csr_matrix  # (n, catalog) relevant held-out movies of the catalog
    relevant_total: np.ndarray  # (n,) relevant held-out movies, those outside the catalog included
    users_total: int  # users with a relevant movie, before any sampling
    threshold: float

    @property
    def n_items(self) -> int:
        return int(self.seen.shape[1])

    @property
    def sampled(self) -> bool:
        return int(self.users.size) < self.users_total

    def summary(self) -> dict[str, Any]:
        return {
            "users": int(self.users.size),
            "users_total": self.users_total,
            "sampled": self.sampled,
            "relevant_threshold": self.threshold,
            "catalog": self.n_items,
            "relevant_outside_catalog": int(self.relevant_total.sum() - self.relevant.nnz),
            "users_unknown_to_model": int((self.users < 0).sum()),
        }


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each id in `sorted_ids`, -1 where absent."""
    sorted_ids = np.asarray(sorted_ids, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if sorted_ids.size == 0:
        return np.full(ids.size, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1).astype(np.int64)


def ranking_task(
    held_user: np.ndarray,
    held_movie: np.ndarray,
    held_rating: np.ndarray,
    threshold: float,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    train_seen: sp.csr_matrix,
    *,
    max_cells: int = MAX_SCORE_CELLS,
    seed: int = 0,
) -> RankingTask:
    """The task for held-out ratings (ids), the model's sorted user/movie ids and its train matrix.

    `train_seen` is (len(user_ids), len(movie_ids)), nonzero where the user rated the movie in train.
    """
    user_ids = np.asarray(user_ids, dtype=np.int64)
    movie_ids = np.asarray(movie_ids, dtype=np.int64)
    if np.any(np.diff(user_ids) <= 0) or np.any(np.diff(movie_ids) <= 0):
        raise InputError("ranking_task: user_ids and movie_ids must be sorted and unique")
    if train_seen.shape != (user_ids.size, movie_ids.size):
        raise InputError(
            f"ranking_task: train matrix {train_seen.shape}; expected ({user_ids.size}, {movie_ids.size})"
        )
    liked = np.asarray(held_rating, dtype=np.float64) >= threshold
    pairs = np.stack(
        [np.asarray(held_user, dtype=np.int64)[liked], np.asarray(held_movie, dtype=np.int64)[liked]]
    )
    # One (user, movie) pair counts once, even if the held-out file repeats it.
    pairs = np.unique(pairs, axis=1) if pairs.shape[1] else pairs
    ranked_ids, row, per_user = np.unique(pairs[0], return_inverse=True, return_counts=True)
    movie_pos = _positions(movie_ids, pairs[1])
    users_total = int(ranked_ids.size)
    if users_total == 0:
        raise InputError(
            f"ranking: no held-out rating >= {threshold:g}; there is no user to rank (check the threshold)"
        )
    n_items = int(movie_ids.size)
    keep = np.arange(users_total)
    cap = max(1, max_cells // max(n_items, 1))
    if users_total > cap:
        keep = np.sort(np.random.default_rng(seed).choice(users_total, size=cap, replace=False))
    relevant_total = per_user[keep].astype(np.int64)
    remap = np.full(users_total, -1, dtype=np.int64)
    remap[keep] = np.arange(keep.size)
    in_catalog = (movie_pos >= 0) & (remap[row] >= 0)
    relevant = sp.csr_matrix(
        (np.ones(int(in_catalog.sum()), dtype=np.float32), (remap[row[in_catalog]], movie_pos[in_catalog])),
        shape=(keep.size, n_items),
    )
    users = _positions(user_ids, ranked_ids[keep])
    seen_rows = sp.csr_matrix(train_seen)[np.maximum(users, 0)]
    seen = sp.csr_matrix(sp.diags((users >= 0).astype(np.float32)) @ seen_rows)
    seen.eliminate_zeros()
    return RankingTask(users, seen, relevant, relevant_total, users_total, float(threshold))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(rows, min(k, cols)) column indices of each row's best scores, best first; ties: lower index first."""
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        return np.empty((scores.shape[0], 0), dtype=np.int64)
    if k == n:
        return np.argsort(-scores, axis=1, kind="stable")
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
    above = scores > kth
    tie = scores == kth
    need = k - above.sum(axis=1, keepdims=True)
    # Exactly k per row: all scores above the k-th best, then the lowest-index ones equal to it.
    take = above | (tie & (np.cumsum(tie, axis=1) <= need))
    cols = np.nonzero(take)[1].reshape(-1, k)
    order = np.argsort(-np.take_along_axis(scores, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def ranking_metrics_at_k(
    score: Scorer, task: RankingTask, k: int = K, *, block_cells: int = BLOCK_CELLS
) -> dict[str, float]:
    """Mean P@k, recall@k, NDCG@k, MAP@k over the task's users, and catalog coverage, for one scorer."""
    if k < 1:
        raise InputError(f"k: expected a positive integer, got {k}")
    n_users, n_items = task.users.size, task.n_items
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    totals = dict.fromkeys(METRIC_NAMES, 0.0)
    shown = np.zeros(n_items, dtype=bool)
    step = max(1, block_cells // max(n_items, 1))
    for a in range(0, n_users, step):
        b = min(n_users, a + step)
        s = np.array(score(task.users[a:b]), dtype=np.float64, copy=True)
        if s.shape != (b - a, n_items):
            raise InputError(f"scorer returned shape {s.shape}; expected ({b - a}, {n_items})")
        if np.isnan(s).any():
            raise InputError("scorer returned NaN scores; every candidate needs a number to be ranked")
        seen = task.seen[a:b]
        s[np.repeat(np.arange(b - a), np.diff(seen.indptr)), seen.indices] = -np.inf
        top = top_k(s, k)
        real = np.take_along_axis(s, top, axis=1) > -np.inf  # fewer candidates than k: no padding
        hits = np.take_along_axis(task.relevant[a:b].toarray() > 0, top, axis=1) & real
        n_hits = hits.sum(axis=1)
        n_rel = task.relevant_total[a:b]
        cut = np.minimum(n_rel, k)
        totals["precision"] += float((n_hits / k).sum())
        totals["recall"] += float((n_hits / n_rel).sum())
        totals["ndcg"] += float(((hits @ discounts[: top.shape[1]]) / ideal[cut - 1]).sum())
        precision_at = np.cumsum(hits, axis=1) / np.arange(1, top.shape[1] + 1)
        totals["map"] += float(((precision_at * hits).sum(axis=1) / cut).sum())
        shown[top[real]] = True
    out = {f"{name}_at_{k}": totals[name] / max(n_users, 1) for name in METRIC_NAMES}
    out["coverage"] = float(shown.sum()) / max(n_items, 1)
    return out
