"""Tiny synthetic one-hot user/item data with a planted FM structure, for trainer tests."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

Data = tuple[sp.csr_matrix, np.ndarray]


def planted(
    n: int, n_users: int = 40, n_items: int = 60, k: int = 3, seed: int = 0, regression: bool = False
) -> Data:
    """Rows [user one-hot | item one-hot]; labels from biases plus a rank-k interaction."""
    rng = np.random.default_rng(1000)  # the same planted model for every call
    U = rng.normal(0, 1, (n_users, k))
    V = rng.normal(0, 1, (n_items, k))
    bu = rng.normal(0, 0.5, n_users)
    bi = rng.normal(0, 0.5, n_items)
    draw = np.random.default_rng(seed)
    u = draw.integers(0, n_users, n)
    i = draw.integers(0, n_items, n)
    logit = bu[u] + bi[i] + (U[u] * V[i]).sum(1)
    if regression:
        y = (logit + draw.normal(0, 0.1, n)).astype(np.float32)
    else:
        y = (draw.random(n) < 1 / (1 + np.exp(-2 * logit))).astype(np.float32)
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([u, n_users + i], 1).ravel()
    X = sp.csr_matrix((np.ones(2 * n, np.float32), (rows, cols)), shape=(n, n_users + n_items))
    return X, y
