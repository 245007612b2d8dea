"""The one FM scoring module (numpy only): shared by the trainer, endpoint twin, evaluate and the Lambda."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, cast

import numpy as np

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

    @cached_property
    def v_squared_norms(self) -> np.ndarray:
        """|v_i|^2 per column (D,) float64: computed once per model, not per request (at 280,000 columns it is
        an 18M-element pass). The parameters are never changed in place once built."""
        V = np.asarray(self.V)
        return np.einsum("ij,ij->i", V, V, dtype=np.float64)


class CSRLike(Protocol):
    """What the scoring functions read from a matrix: scipy.sparse CSR matrices and arrays qualify."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


_HAVE_SCIPY = importlib.util.find_spec("scipy") is not None
# Rows scored per block: bounds the (nnz x k) float64 temporaries to tens of MB for any input size.
_ROWS_PER_BLOCK = 32768


def _csr(params: FMParams, X: Any) -> CSRLike:
    if hasattr(X, "tocsr"):
        X = X.tocsr()
        if not getattr(X, "has_canonical_format", True):
            X = X.copy()
            X.sum_duplicates()  # a repeated key counts once, with its values summed
    if not all(hasattr(X, a) for a in ("shape", "indptr", "indices", "data")):
        raise InputError(f"features: expected a CSR sparse matrix, got {type(X).__name__}")
    if len(X.shape) != 2:
        raise InputError(f"features: expected a 2-D matrix, got shape {X.shape}")
    # A matrix narrower than the model (a request with fewer columns) is fine when its keys fit.
    if X.shape[1] > params.feature_dim and len(X.indices) and int(np.max(X.indices)) >= params.feature_dim:
        raise InputError(
            f"features: key {int(np.max(X.indices))} but the model has feature_dim {params.feature_dim}; "
            f"keys must be < {params.feature_dim}"
        )
    return cast(CSRLike, X)


def _row_sums(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sum `values` (nnz, ...) over each row's [start, end) span; empty rows give 0."""
    out = np.zeros((starts.size, *values.shape[1:]), dtype=np.float64)
    full = starts < ends
    if values.shape[0] and full.any():
        out[full] = np.add.reduceat(values, starts[full], axis=0)
    return out


def _parts_numpy(params: FMParams, X: CSRLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    V = np.asarray(params.V)
    w = np.asarray(params.w, dtype=np.float64)
    v2 = params.v_squared_norms
    indptr = np.asarray(X.indptr, dtype=np.int64)
    indices = np.asarray(X.indices, dtype=np.int64)
    data = np.asarray(X.data, dtype=np.float64)
    n = int(X.shape[0])
    lin = np.empty(n)
    sq = np.empty(n)
    xv = np.empty((n, V.shape[1]))
    for a in range(0, n, _ROWS_PER_BLOCK):
        b = min(n, a + _ROWS_PER_BLOCK)
        lo, hi = indptr[a], indptr[b]
        idx, val = indices[lo:hi], data[lo:hi]
        counts = np.diff(indptr[a : b + 1])
        # every row has the same m keys (one-hot requests): reshape and sum, no scatter
        if b > a and counts.min() == counts.max() > 0:
            m = int(counts[0])
            lin[a:b] = (w[idx] * val).reshape(b - a, m).sum(axis=1)
            sq[a:b] = (v2[idx] * val * val).reshape(b - a, m).sum(axis=1)
            xv[a:b] = (V[idx] * val[:, None]).reshape(b - a, m, -1).sum(axis=1)
            continue
        starts, ends = indptr[a:b] - lo, indptr[a + 1 : b + 1] - lo
        lin[a:b] = _row_sums(w[idx] * val, starts, ends)
        sq[a:b] = _row_sums(v2[idx] * val * val, starts, ends)
        xv[a:b] = _row_sums(V[idx] * val[:, None], starts, ends)
    return lin, xv, sq


def _parts(params: FMParams, X: CSRLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: w.x, the factor sums s = sum_i v_i x_i (n, k), and sum_i |v_i|^2 x_i^2.

    scipy's sparse products when scipy is installed (several times faster); the same sums in numpy
    otherwise, so the module runs where only numpy is packaged.
    """
    if not _HAVE_SCIPY:
        return _parts_numpy(params, X)
    # local import: scipy is optional (absent from the recommend Lambda's numpy layer, docs/deploy.md)
    import scipy.sparse as sp

    M = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], params.feature_dim), copy=False)
    V = np.asarray(params.V)
    lin = np.asarray(M @ np.asarray(params.w, dtype=np.float64), dtype=np.float64)
    xv = np.asarray(M @ V, dtype=np.float64)
    if M.has_canonical_format:
        # x_i^2 on the same structure: what M.multiply(M) computes, without its sparse-sparse product (an
        # overflow gives inf there too, silently; the callers check the scores).
        with np.errstate(over="ignore"):
            squared = M.data * M.data
        M2 = sp.csr_matrix((squared, M.indices, M.indptr), shape=M.shape, copy=False)
    else:  # repeated keys: multiply sums them before squaring
        M2 = M.multiply(M).tocsr()
    sq = np.asarray(M2 @ params.v_squared_norms, dtype=np.float64)
    return lin, xv, sq


def raw_scores(params: FMParams, X: Any) -> np.ndarray:
    """y(x) = w0 + w.x + 1/2 sum_f [(sum_i v_if x_i)^2 - sum_i v_if^2 x_i^2], O(k nnz); float64 (n,)."""
    lin, xv, sq = _parts(params, _csr(params, X))
    return float(params.w0) + lin + 0.5 * (np.einsum("ij,ij->i", xv, xv) - sq)


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


def predict(params: FMParams, X: Any, predictor_type: str) -> np.ndarray:
    """The score SageMaker's endpoint returns: a probability (binary_classifier) or the value (regressor)."""
    _check_predictor(predictor_type)
    return link(raw_scores(params, X), predictor_type)


@dataclass(frozen=True)
class SideTerms:
    """One side's rows (the movies, or the users) reduced to their own FM terms, computed once.

    For a row x: const = w.x + 1/2 (|s|^2 - sum_i |v_i|^2 x_i^2) and factors s = sum_i v_i x_i (k,). When a
    user row and a movie row share no column (separate one-hot blocks), the FM of their concatenation is
    y = w0 + const_u + const_i + <s_u, s_i>: one dot product per pair.
    """

    const: np.ndarray  # (n,) float64
    factors: np.ndarray  # (n, k) float64

    def __len__(self) -> int:
        return int(self.const.shape[0])

    def compact(self) -> SideTerms:
        """The same terms with float32 factors: half the memory, and a matrix-vector product several times
        faster (it is bound by memory bandwidth). Scores move by about 1e-7, the float32 precision the
        SageMaker container computes in anyway."""
        return SideTerms(self.const, np.ascontiguousarray(self.factors, dtype=np.float32))


def side_terms(params: FMParams, rows: Any, *, compact: bool = False) -> SideTerms:
    """The SideTerms of every row of a CSR matrix (O(k nnz), scipy when available).

    compact=True gives what .compact() would, computed by blocks of rows straight into the float32 factors:
    the whole (n, k) float64 factor sums never exist at once (60 MB at 59,047 movies and 128 factors).
    """
    X = _csr(params, rows)
    if not compact:
        lin, xv, sq = _parts(params, X)
        return SideTerms(lin + 0.5 * (np.einsum("ij,ij->i", xv, xv) - sq), xv)
    n = int(X.shape[0])
    const = np.empty(n)
    factors = np.empty((n, params.num_factors), dtype=np.float32)
    indptr = np.asarray(X.indptr)
    # A divisor of _ROWS_PER_BLOCK: the numpy path sees the same rows together; each row's sums are its own.
    step = _ROWS_PER_BLOCK // 4 if _ROWS_PER_BLOCK % 4 == 0 else _ROWS_PER_BLOCK
    for a in range(0, n, step):
        b = min(n, a + step)
        lo, hi = int(indptr[a]), int(indptr[b])
        block = _CSRBlock((b - a, int(X.shape[1])), indptr[a : b + 1] - lo, X.indices[lo:hi], X.data[lo:hi])
        lin, xv, sq = _parts(params, block)
        const[a:b] = lin + 0.5 * (np.einsum("ij,ij->i", xv, xv) - sq)
        factors[a:b] = xv
    return SideTerms(const, factors)


@dataclass
class _CSRBlock:
    """Rows [a, b) of a canonical CSR matrix, as the scoring functions read one (CSRLike)."""

    shape: tuple[int, int]
    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray


def user_terms(
    params: FMParams, user_cols: Sequence[int], user_values: Sequence[float] | None = None
) -> tuple[float, np.ndarray]:
    """(w0 + const, s) of one user's features: the user-side part of every score, computed once."""
    cols = np.asarray(user_cols, dtype=np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= params.feature_dim):
        raise InputError(f"user_cols: columns must be in [0, {params.feature_dim}); got {cols.tolist()}")
    vals = np.ones(cols.size) if user_values is None else np.asarray(user_values, dtype=np.float64)
    if vals.shape != cols.shape:
        raise InputError(f"user_values: expected {cols.size} values, got {vals.size}")
    V = np.asarray(params.V)
    w_u = np.asarray(params.w)[cols].astype(np.float64)  # the user's weights only, not all D converted
    Vu = V[cols].astype(np.float64) * vals[:, None]
    s_u = Vu.sum(axis=0)
    const = float(params.w0) + float(w_u @ vals) + 0.5 * (float(s_u @ s_u) - float(np.sum(Vu * Vu)))
    return const, s_u


def score_user_items(
    params: FMParams,
    items: SideTerms,
    user_cols: Sequence[int],
    predictor_type: str,
    user_values: Sequence[float] | None = None,
) -> np.ndarray:
    """Scores of one user against every row of `items`: one matrix-vector product, O(n k)."""
    _check_predictor(predictor_type)
    const, s_u = user_terms(params, user_cols, user_values)
    # einsum, not `@`: a BLAS matrix-vector product may start threads, which only wait on a busy machine.
    dots = np.einsum("ij,j->i", items.factors, s_u.astype(items.factors.dtype, copy=False))
    return link(const + items.const + dots, predictor_type)


def score_user_candidates(
    params: FMParams,
    user_cols: Sequence[int],
    item_rows: Any,
    predictor_type: str,
    user_values: Sequence[float] | None = None,
) -> np.ndarray:
    """Scores of the rows (user features + item_rows[i]) for every i, via one matrix-vector product.

    The user side's sums are computed once; the interaction with each item row is then
    <s_u, s_i> with s_i = item_rows @ V, which is the only per-item O(k) work. Scoring many users against
    the same items: compute side_terms(params, item_rows) once and call score_user_items.
    """
    _check_predictor(predictor_type)
    return score_user_items(params, side_terms(params, item_rows), user_cols, predictor_type, user_values)


def score_matrix(params: FMParams, user_rows: Any, item_rows: Any) -> np.ndarray:
    """Raw scores (n_users, n_items) of every (user row + item row) pair: the ranking evaluation's block.

    y(u, i) = w0 + const_u + const_i + <s_u, s_i> (SideTerms of each side), so a block costs one dense
    (n_users, k) @ (k, n_items) product. The link is left out: it is monotone, so it does not change any
    ranking. A row without keys (an unknown user) scores with the other side only, as SageMaker scores a
    request holding only the known columns.
    """
    users, items = side_terms(params, user_rows), side_terms(params, item_rows)
    return np.asarray(
        float(params.w0) + users.const[:, None] + items.const[None, :] + users.factors @ items.factors.T,
        dtype=np.float64,
    )
