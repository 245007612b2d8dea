"""The benchmarks' neighbour experiment: an item-item score beside the FM, blended or as one more column."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.evaluation.ranking import K, ranking_metrics_at_k
from fmrec.evaluation.scorers import fm_scorer, lookup_rows
from fmrec.features.ease import ease_weights
from fmrec.model import fm

BLEND_WEIGHTS = (0.1, 0.2, 0.3, 0.5, 0.8, 1.2, 2.0)


@dataclass
class Neighbours:
    """Item-item scores of every (train user, movie): the sum over the user's train movies h of W[h, m], W cut
    by _cut (a sparse table a request can read at a bounded cost)."""

    full: np.ndarray  # (n_users, n_movies) float32: every train movie of the user counts
    own: np.ndarray | None  # (n_users, n_movies): the user's own co-occurrences' part (cosine only)
    user_scale: np.ndarray  # (n_users,) the user's multiplier, n_u ** -beta
    gamma: float = 1.0  # one global multiplier, so the values have unit RMS

    def served(self) -> np.ndarray:
        """The value of every (user, movie), as a scored row carries it."""
        return self.full * self.user_scale[:, None].astype(np.float32) * np.float32(self.gamma)


def item_weights(x: sp.csr_matrix, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(W, pair): binary-cosine item-kNN weights (`knn`; pair[h, m] = 1 / sqrt(n_h n_m), one co-occurrence's
    share, for the column's leave-one-out) or EASE's weights (`ease:LAMBDA`, Steck 2019; pair None)."""
    if source == "knn":
        co = (x.T @ x).toarray().astype(np.float64)
        n = np.diag(co).copy()
        inv = np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1)), 0.0)
        pair = inv[:, None] * inv[None, :]
        np.fill_diagonal(pair, 0.0)  # a movie is not its own neighbour
        return co * pair, pair
    if source.startswith("ease:"):
        return np.array(
            ease_weights(sp.csr_matrix(x, dtype=np.float64), float(source.split(":", 1)[1]))
        ), None
    raise ValueError(f"--neighbours-from: expected knn or ease:LAMBDA, got {source!r}")


def neighbours(seen: sp.csr_matrix, top: int, beta: float, source: str = "knn") -> Neighbours:
    """`seen` (users x movies, 1 where rated in train) scored by `source`'s weights (item_weights), cut by
    _cut(top) (0: no cut), values times n_u ** -beta."""
    return neighbour_sets(seen, [top], [source], beta)[f"{source}/{top}"]


def neighbour_sets(
    seen: sp.csr_matrix, tops: list[int], sources: list[str], beta: float
) -> dict[str, Neighbours]:
    """neighbours() of every source and cut, keyed `source/top`: each source's weights computed once."""
    x = sp.csr_matrix(seen, dtype=np.float32)
    x.data[:] = 1.0
    n_u = np.diff(x.indptr).astype(np.float64)
    scale = np.where(n_u > 0, np.maximum(n_u, 1) ** -beta, 0.0)
    out = {}
    for source in sources:
        full_weights, full_pair = item_weights(x, source)
        for top in tops:
            keep = _cut(full_weights, top)
            weights, pair = (full_weights, full_pair) if keep is None else (full_weights * keep, full_pair)
            if pair is not None and keep is not None:
                pair = pair * keep
            own = None if pair is None else np.asarray(x @ pair, np.float32)
            nb = Neighbours(np.asarray(x @ weights, np.float32), own, scale)
            nb.gamma = float(1.0 / max(np.sqrt(np.mean(nb.served().astype(np.float64) ** 2)), 1e-12))
            out[f"{source}/{top}"] = nb
    return out


def _cut(weights: np.ndarray, top: int) -> np.ndarray | None:
    """Which weights a sparse table keeps (None: all). top > 0: each movie m its `top` largest W[., m] (the
    movies that best predict it); top < 0: each history movie h its |top| largest W[h, .], so a request reads
    exactly |top| entries per history movie. Ties at the cut are all kept."""
    n = abs(top)
    if top == 0 or n >= weights.shape[0]:
        return None
    axis = 0 if top > 0 else 1
    nth = -np.partition(-weights, n - 1, axis=axis).take(n - 1, axis=axis)
    return weights >= (nth[None, :] if axis == 0 else nth[:, None])


def add_column(X: Any, nb: Neighbours, seen: sp.csr_matrix, n_users: int, n_movies: int) -> sp.csr_matrix:
    """X with one more column: the row's user's score of its movie, leave-one-out where the user rated it (the
    held-out movies the model is judged on never count themselves either); gamma rescaled to unit RMS here."""
    if nb.own is None:
        raise ValueError("--neighbours-column needs --neighbours-from knn (its leave-one-out is exact)")
    X = sp.csr_matrix(X)
    user = _block_index(X, 0, n_users)
    movie = _block_index(X, n_users, n_users + n_movies) - n_users
    rated = np.asarray(seen[user, movie]).ravel() > 0
    value = (nb.full[user, movie] - np.where(rated, nb.own[user, movie], 0.0)) * nb.user_scale[user]
    nb.gamma = float(1.0 / max(np.sqrt(np.mean(value.astype(np.float64) ** 2)), 1e-12))
    rows = np.arange(X.shape[0])
    col = sp.csr_matrix(((value * nb.gamma).astype(np.float32), (rows, np.zeros_like(rows))), (X.shape[0], 1))
    out = sp.hstack([X, col], format="csr", dtype=np.float32)
    out.eliminate_zeros()
    return out


def _block_index(X: sp.csr_matrix, lo: int, hi: int) -> np.ndarray:
    block = X[:, lo:hi].tocsr()
    if not np.all(np.diff(block.indptr) == 1):
        raise ValueError(f"expected one column in [{lo}, {hi}) per row")
    return block.indices.astype(np.int64) + lo


def _rows(values: np.ndarray, u: np.ndarray) -> np.ndarray:
    return np.where((u >= 0)[:, None], values[np.maximum(u, 0)], 0.0)


def column_scorer(params: fm.FMParams, users: Any, items: Any, nb: Neighbours) -> Any:
    """Raw FM scores with the neighbour column c: base + c (w_c + <v_c, s_u + s_m>), exactly the FM's."""
    users_p = sp.hstack([users, sp.csr_matrix((users.shape[0], 1), dtype=np.float32)], format="csr")
    items_p = sp.hstack([items, sp.csr_matrix((items.shape[0], 1), dtype=np.float32)], format="csr")
    base = fm_scorer(params, users_p, items_p)
    w_c, v_c = float(params.w[-1]), np.asarray(params.V[-1], dtype=np.float64)
    su = fm.side_terms(params, users_p).factors @ v_c
    sm = fm.side_terms(params, items_p).factors @ v_c
    gain = nb.served()

    def score(u: np.ndarray) -> np.ndarray:
        s_u = np.where(u >= 0, su[np.maximum(u, 0)], 0.0)
        return base(u) + _rows(gain, u) * (w_c + s_u[:, None] + sm[None, :])

    return score


def blended_scorer(params: fm.FMParams, users: Any, items: Any, nb: Neighbours, a: float) -> Any:
    """The FM's raw score plus a * the neighbour value of every (user, movie)."""
    return _blended(fm_scorer(params, users, items), nb.served(), a)


def _blended(base: Any, gain: np.ndarray, a: float) -> Any:
    def score(u: np.ndarray) -> np.ndarray:
        return base(u) + a * _rows(gain, u)

    return score


def blend_from_spec(spec: str, train: sp.csr_matrix, params: fm.FMParams, lookup: Any) -> Any:
    """blended_scorer of a `SOURCE,TOP,WEIGHT` flag (the benchmarks' --blend), values n_u ** -0.5."""
    try:
        source, top, weight = spec.split(",")
        nb = neighbours(train, int(top), 0.5, source)
        users, items = lookup_rows(lookup)
        return blended_scorer(params, users, items, nb, float(weight))
    except (ValueError, InputError) as exc:  # a malformed flag, or EASE over its dense limit of movies
        expected = "expected SOURCE,TOP,WEIGHT such as ease:200,-10,0.2"
        raise SystemExit(f"--blend {spec!r}: {expected} ({exc})") from exc


def blend_curve(params: fm.FMParams, users: Any, items: Any, nb: Neighbours, task: Any) -> dict[str, float]:
    """NDCG@10 of blended_scorer for each a of BLEND_WEIGHTS (the FM's item side and g computed once)."""
    base, gain = fm_scorer(params, users, items), nb.served()
    out = {}
    for a in BLEND_WEIGHTS:
        metrics = ranking_metrics_at_k(_blended(base, gain, a), task, K)
        out[f"{a:g}"] = round(metrics[f"ndcg_at_{K}"], 4)
    return out
