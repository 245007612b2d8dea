"""Peer recommenders for the quality benchmark: EASE (closed form), implicit's ALS and BPR, LightFM WARP.

Each trains on the same binary train matrix (users x catalog, 1 = rated in train: every rating is a positive)
and returns a Scorer for fmrec.evaluation.ranking. implicit and lightfm are optional (requirements-bench.txt);
`available()` says which peers can run here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fmrec.evaluation.ranking import Scorer
from fmrec.features.ease import ease_weights


@dataclass(frozen=True)
class Peer:
    name: str
    needs: str | None  # the optional module it imports, if any
    fit: Callable[[sp.csr_matrix, int], Scorer]  # (train matrix, seed) -> scorer


def _factor_scorer(user_factors: np.ndarray, item_scores: Callable[[np.ndarray], np.ndarray]) -> Scorer:
    """Scores of known users from their factors; an unknown user (-1) gets the item-only part (or zeros)."""

    def score(users: np.ndarray) -> np.ndarray:
        known = users >= 0
        U = np.zeros((users.size, user_factors.shape[1]), dtype=np.float64)
        U[known] = user_factors[users[known]]
        return item_scores(U)

    return score


def fit_ease(train: sp.csr_matrix, seed: int = 0, l2: float = 500.0) -> Scorer:
    """EASE (Steck 2019): scores = X_u B (see ease_weights)."""
    X = sp.csr_matrix(train, dtype=np.float64)
    B = ease_weights(X, l2)

    def score(users: np.ndarray) -> np.ndarray:
        # an unknown user has no history: a zero row, so every movie scores 0
        rows = sp.diags((users >= 0).astype(np.float64)) @ X[np.maximum(users, 0)]
        return np.asarray(rows @ B)

    return score


def fit_als(train: sp.csr_matrix, seed: int = 0, factors: int = 64, iterations: int = 15) -> Scorer:
    """implicit's AlternatingLeastSquares (Hu, Koren, Volinsky 2008), CPU, one thread."""
    # local import: implicit is an optional benchmark dependency (requirements-bench.txt)
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits  # an implicit dependency

    # implicit asks for a single-threaded BLAS (it warns otherwise): its own solver threads over users
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=factors, regularization=0.05, iterations=iterations, num_threads=1, random_state=seed
        )
        model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False)
    items = np.asarray(model.item_factors, dtype=np.float64)
    return _factor_scorer(np.asarray(model.user_factors, dtype=np.float64), lambda U: U @ items.T)


def fit_bpr(train: sp.csr_matrix, seed: int = 0, factors: int = 64, iterations: int = 100) -> Scorer:
    """implicit's BayesianPersonalizedRanking (Rendle et al. 2009), CPU, one thread."""
    # local import: implicit is an optional benchmark dependency (requirements-bench.txt)
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    model = BayesianPersonalizedRanking(
        factors=factors,
        learning_rate=0.01,
        regularization=0.01,
        iterations=iterations,
        num_threads=1,
        random_state=seed,
    )
    model.fit(sp.csr_matrix(train, dtype=np.float32), show_progress=False)
    items = np.asarray(model.item_factors, dtype=np.float64)  # its last column is the item bias
    users = np.asarray(model.user_factors, dtype=np.float64)  # ... matched by a constant 1 here
    unknown = np.zeros(users.shape[1])
    unknown[-1] = 1.0  # an unknown user still gets the item biases

    def item_scores(U: np.ndarray) -> np.ndarray:
        U = U.copy()
        U[~U.any(axis=1)] = unknown
        return U @ items.T

    return _factor_scorer(users, item_scores)


def fit_lightfm_warp(train: sp.csr_matrix, seed: int = 0, components: int = 64, epochs: int = 30) -> Scorer:
    """LightFM with the WARP loss (Weston et al. 2011), one thread; no user bias (it cannot change a rank)."""
    # local import: LightFM is an optional benchmark dependency (built by hand: requirements-bench.txt)
    from lightfm import LightFM

    model = LightFM(no_components=components, loss="warp", random_state=seed)
    model.fit(sp.coo_matrix(train, dtype=np.float32), epochs=epochs, num_threads=1)
    items = np.asarray(model.item_embeddings, dtype=np.float64)
    bias = np.asarray(model.item_biases, dtype=np.float64)
    return _factor_scorer(np.asarray(model.user_embeddings, dtype=np.float64), lambda U: U @ items.T + bias)


PEERS = (
    Peer("EASE (lambda 500)", None, fit_ease),
    Peer("implicit ALS (64 factors)", "implicit", fit_als),
    Peer("implicit BPR (64 factors)", "implicit", fit_bpr),
    Peer("LightFM WARP (64 components)", "lightfm", fit_lightfm_warp),
)


def available(peer: Peer) -> bool:
    return peer.needs is None or importlib.util.find_spec(peer.needs) is not None
