"""numpy-side ranking helpers: a lookup's movie rows as a CSR matrix, and top-k by partial sort."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmrec.errors import InputError
from fmrec.serving.lookup import Lookup


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


@dataclass(frozen=True)
class Rows:
    """CSR arrays without scipy (the Lambda's layer has none): what fmrec.model.fm reads from a matrix."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def feature_rows(keys: Sequence[Sequence[int]], values: Sequence[Sequence[float]] | None, dim: int) -> Any:
    """One sparse row per key list (values 1 when `values` is None): a scipy CSR matrix when scipy is
    installed, else Rows."""
    indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(k) for k in keys])
    n = int(indptr[-1])
    cols = np.fromiter((c for k in keys for c in k), dtype=np.int64, count=n)
    if values is None:
        data = np.ones(n, dtype=np.float32)
    else:
        for i, (k, v) in enumerate(zip(keys, values, strict=True)):
            if len(k) != len(v):
                raise InputError(f"row {i}: {len(k)} keys but {len(v)} values")
        data = np.fromiter((x for v in values for x in v), dtype=np.float64, count=n)
    try:
        # local import: scipy is optional (faster products); the Lambda's numpy layer has no scipy
        from scipy.sparse import csr_matrix
    except ImportError:
        return Rows((len(keys), int(dim)), indptr, cols, data)
    return csr_matrix((data, cols, indptr), shape=(len(keys), int(dim)))


def movie_rows(lookup: Lookup) -> Any:
    """One row per movie position: its columns (Lookup.movie_keys) and their values (Lookup.movie_values)."""
    positions = range(len(lookup.movie_ids))
    keys = [lookup.movie_keys(p) for p in positions]
    if not lookup.aux_blocks:  # every column is a one-hot 1
        return feature_rows(keys, None, int(lookup.feature_dim))
    return feature_rows(keys, [lookup.movie_values(p) for p in positions], int(lookup.feature_dim))


def user_rows(lookup: Lookup, positions: Sequence[int]) -> Any:
    """One row per user position: its keys (Lookup.user_keys) with their values (Lookup.user_values)."""
    return feature_rows(
        [lookup.user_keys(p) for p in positions],
        [lookup.user_values(p) for p in positions],
        int(lookup.feature_dim),
    )
