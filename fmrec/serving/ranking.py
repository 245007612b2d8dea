"""numpy-side ranking helpers: a lookup's movie rows as a CSR matrix, and top-k by partial sort."""

from __future__ import annotations

from typing import Any

import numpy as np


def top_k_indices(scores: np.ndarray, k: int, min_score: float | None = None) -> np.ndarray:
    """Indices of the k best finite-or-+inf scores, best first (ties: lower index first); -inf means excluded.

    O(n) with np.argpartition, then a sort of the k survivors (plus any that tie with the k-th), so the
    answer is the same as a full stable sort's.
    """
    scores = np.asarray(scores)
    n = int(scores.shape[0])
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    if n > k:
        kth = scores[np.argpartition(scores, n - k)[n - k :]].min()
        idx = np.flatnonzero(scores >= kth)
    else:
        idx = np.arange(n)
    order = idx[np.lexsort((idx, -scores[idx]))][:k]
    keep = scores[order] > -np.inf
    if min_score is not None:
        keep &= scores[order] >= min_score
    return order if keep.all() else order[keep]


def movie_rows(lookup: Any) -> Any:
    """A CSR matrix with one row per movie position: its columns (Lookup.movie_keys), value 1."""
    from scipy.sparse import csr_matrix

    keys = [lookup.movie_keys(p) for p in range(len(lookup.movie_ids))]
    indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(k) for k in keys])
    cols = np.fromiter((c for k in keys for c in k), dtype=np.int64, count=int(indptr[-1]))
    return csr_matrix(
        (np.ones(len(cols), dtype=np.float32), cols, indptr), shape=(len(keys), int(lookup.feature_dim))
    )
