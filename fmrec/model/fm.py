"""The one FM scoring module: shared by the trainer, the endpoint twin, evaluate and the Lambda."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fmrec.errors import InputError

BINARY_CLASSIFIER = "binary_classifier"
REGRESSOR = "regressor"
PREDICTOR_TYPES = (BINARY_CLASSIFIER, REGRESSOR)


@dataclass(frozen=True)
class FMParams:
    """w0 (global bias), w (D,) linear weights and V (D, k) factors, float32 as SageMaker stores them."""

    w0: float
    w: np.ndarray
    V: np.ndarray

    def __post_init__(self) -> None:
        w = np.asarray(self.w)
        V = np.asarray(self.V)
        if w.ndim != 1 or V.ndim != 2 or V.shape[0] != w.shape[0]:
            raise InputError(
                f"FM parameters: expected w of shape (D,) and V of shape (D, k); got w {w.shape}, V {V.shape}"
            )

    @property
    def feature_dim(self) -> int:
        return int(self.V.shape[0])

    @property
    def num_factors(self) -> int:
        return int(self.V.shape[1])


def _check_columns(params: FMParams, X: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    X = sp.csr_matrix(X)
    if X.shape[1] != params.feature_dim:
        # A narrower matrix (fewer columns in the request than the model) is fine when its keys fit.
        if X.shape[1] < params.feature_dim:
            X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], params.feature_dim))
        else:
            raise InputError(
                f"features: {X.shape[1]} columns but the model has feature_dim {params.feature_dim}; "
                f"keys must be < {params.feature_dim}"
            )
    return X


def raw_scores(params: FMParams, X: sp.spmatrix | sp.sparray) -> np.ndarray:
    """y(x) = w0 + w.x + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2], O(k nnz); float64 (n,)."""
    X = _check_columns(params, X)
    V = np.asarray(params.V)
    xv = np.asarray(X @ V, dtype=np.float64)
    x2 = X.multiply(X).tocsr()
    v2 = np.einsum("ij,ij->i", V, V, dtype=np.float64)
    pair = 0.5 * (np.einsum("ij,ij->i", xv, xv) - np.asarray(x2 @ v2, dtype=np.float64))
    linear = np.asarray(X @ np.asarray(params.w, dtype=np.float64), dtype=np.float64)
    return float(params.w0) + linear + pair


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Overflow-free logistic function."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def _check_predictor(predictor_type: str) -> None:
    if predictor_type not in PREDICTOR_TYPES:
        raise InputError(f"predictor_type {predictor_type!r}: expected one of {', '.join(PREDICTOR_TYPES)}")


def link(raw: np.ndarray, predictor_type: str) -> np.ndarray:
    """The output layer: a sigmoid for binary_classifier, identity for regressor."""
    _check_predictor(predictor_type)
    return sigmoid(raw) if predictor_type == BINARY_CLASSIFIER else np.asarray(raw, dtype=np.float64)


def predict(params: FMParams, X: sp.spmatrix | sp.sparray, predictor_type: str) -> np.ndarray:
    """The score SageMaker's endpoint returns: a probability (binary_classifier) or the value (regressor)."""
    _check_predictor(predictor_type)
    return link(raw_scores(params, X), predictor_type)


def score_user_candidates(
    params: FMParams,
    user_cols: Sequence[int],
    item_rows: sp.spmatrix | sp.sparray,
    predictor_type: str,
    user_values: Sequence[float] | None = None,
) -> np.ndarray:
    """Scores of the rows (user features + item_rows[i]) for every i, via one matrix-vector product.

    The user side's sums are computed once; the interaction with each item row is then
    <s_u, s_i> with s_i = item_rows @ V, which is the only per-item O(k) work.
    """
    _check_predictor(predictor_type)
    items = _check_columns(params, item_rows)
    cols = np.asarray(user_cols, dtype=np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= params.feature_dim):
        raise InputError(f"user_cols: columns must be in [0, {params.feature_dim}); got {cols.tolist()}")
    vals = np.ones(cols.size) if user_values is None else np.asarray(user_values, dtype=np.float64)
    if vals.shape != cols.shape:
        raise InputError(f"user_values: expected {cols.size} values, got {vals.size}")
    V = np.asarray(params.V)
    w = np.asarray(params.w, dtype=np.float64)
    Vu = V[cols].astype(np.float64) * vals[:, None]
    s_u = Vu.sum(axis=0)
    user_part = float(params.w0) + float(w[cols] @ vals) + 0.5 * (float(s_u @ s_u) - float(np.sum(Vu * Vu)))
    xv = np.asarray(items @ V, dtype=np.float64)
    v2 = np.einsum("ij,ij->i", V, V, dtype=np.float64)
    x2 = items.multiply(items).tocsr()
    item_part = np.asarray(items @ w) + 0.5 * (np.einsum("ij,ij->i", xv, xv) - np.asarray(x2 @ v2))
    return link(user_part + item_part + xv @ s_u, predictor_type)
