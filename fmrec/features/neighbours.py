"""The neighbour table: each rated movie's strongest EASE weights, summed per (user, movie) at serving."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from fmrec.errors import InputError
from fmrec.features.ease import EASE_MAX_ITEMS, ease_weights
from fmrec.model.artifact import FMModel
from fmrec.model.fm import FMParams
from fmrec.serving.neighbour_table import ServedNeighbours, summed_sources

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass(frozen=True)
class NeighbourTable:
    """Row h (a movie position) lists the `keep` movies h predicts most strongly and EASE's weight for each.

    A user's value for movie m is scale * n^-0.5 * sum over their n rated movies h of W[h, m]: a request reads
    at most `keep` entries per rated movie, whatever the catalogue. `scale` makes the values of the train
    users over every movie unit RMS, so one blend weight suits any catalogue.
    """

    indptr: np.ndarray  # (n_movies + 1,) int64
    targets: np.ndarray  # (nnz,) int32 movie positions
    weights: np.ndarray  # (nnz,) float32
    scale: float

    @property
    def n_movies(self) -> int:
        return int(self.indptr.size - 1)


def fit_table(train: sp.csr_matrix, l2: float, keep: int, max_movies: int = EASE_MAX_ITEMS) -> NeighbourTable:
    """The table of a (users x movies) train matrix: EASE at `l2` over its `max_movies` most-rated movies
    (the rest have no row and are no one's neighbour), each row cut to its `keep` largest weights."""
    return fit_tables(train, l2, (keep,), max_movies)[keep]


def fit_tables(
    train: sp.csr_matrix, l2: float, keeps: tuple[int, ...], max_movies: int = EASE_MAX_ITEMS
) -> dict[int, NeighbourTable]:
    """fit_table for several cuts of one EASE fit (the tuner's grid fits EASE once per lambda)."""
    if not keeps or min(keeps) < 1:
        raise InputError(f"neighbours: keep must be at least 1, got {list(keeps)}")
    import scipy.sparse as sp  # local import: scipy is absent where the Lambda has only numpy (user_values)

    x = sp.csr_matrix(train, dtype=np.float32, copy=True)  # float32: see ease_weights
    x.data[:] = 1.0
    n_movies = x.shape[1]
    counts = np.asarray(x.sum(axis=0)).ravel()
    fitted = np.sort(np.argsort(-counts, kind="stable")[: min(max_movies, n_movies)])
    B = ease_weights(x[:, fitted].tocsr(), l2)
    out = {}
    for keep in keeps:
        k = min(keep, max(fitted.size - 1, 1))
        best = _strongest(B, k) if fitted.size > 1 else np.zeros((fitted.size, 0), np.int64)
        rows = np.repeat(fitted, best.shape[1])
        cols = fitted[best.ravel()]
        vals = np.take_along_axis(B, best, axis=1).ravel()
        W = sp.csr_matrix((vals.astype(np.float32), (rows, cols)), shape=(n_movies, n_movies))
        W.sort_indices()
        indptr, targets = W.indptr.astype(np.int64), W.indices.astype(np.int32)
        out[keep] = NeighbourTable(indptr, targets, W.data.astype(np.float32), _unit_scale(x, W))
    return out


def _strongest(B: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest entries' columns, a block of rows at a time (a whole argpartition of B would
    hold two more n x n arrays)."""
    out = np.empty((B.shape[0], k), np.int64)
    for a in range(0, B.shape[0], 1024):
        out[a : a + 1024] = np.argpartition(-B[a : a + 1024], k - 1, axis=1)[:, :k]
    return out


def _unit_scale(x: sp.csr_matrix, W: sp.csr_matrix) -> float:
    """1 / RMS of n_u^-0.5 (x_u W) over every (train user, movie): sparse, one user block at a time."""
    n_users, n_movies = x.shape
    total = 0.0
    n_u = np.diff(x.indptr).astype(np.float64)
    for a in range(0, n_users, 4096):
        block = x[a : a + 4096] @ W
        norm = np.repeat(1.0 / np.maximum(n_u[a : a + 4096], 1.0), np.diff(block.indptr))
        total += float(np.sum(block.data.astype(np.float64) ** 2 * norm))
    rms = np.sqrt(total / max(n_users * n_movies, 1))
    return float(1.0 / rms) if rms > 0 else 1.0


def user_values(table: NeighbourTable | ServedNeighbours, history: Any) -> np.ndarray:
    """The value of every movie (float64, n_movies) for a user who rated the movie positions `history`
    (the fitted table or the served one: the same sum as ServedNeighbours.values)."""
    sources, factor = summed_sources(np.asarray(history, dtype=np.int64).tolist(), table.scale)
    if not sources:
        return np.zeros(table.n_movies)
    pos = np.asarray(sources, dtype=np.int64)
    # np.asarray views the served table's arrays (no copy); only the rows read are indexed and widened, so a
    # call costs the user's rated rows, not the table
    indptr = np.asarray(table.indptr)
    starts = indptr[pos].astype(np.int64)
    lens = indptr[pos + 1].astype(np.int64) - starts
    # the rows' entry indices, vectorised: each row's start repeated over its length, plus 0..len-1
    idx = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))
    targets = np.asarray(table.targets)[idx].astype(np.int64)
    weights = np.asarray(table.weights)[idx].astype(np.float64)
    return np.bincount(targets, weights=weights, minlength=table.n_movies) * factor


def with_blend_weight(model: FMModel, column: int, weight: float) -> FMModel:
    """The model a neighbour column is served with: the column's linear weight set to `weight` and its factor
    row zeroed, so a row carrying value g scores the trained FM's raw score + weight * g, exactly. The
    training job never saw the column (no row carries it), so nothing it learnt is lost."""
    if not 0 <= column < model.feature_dim:
        raise InputError(f"neighbour column {column}: expected a column of feature_dim {model.feature_dim}")
    w = np.array(model.params.w, dtype=np.float32)
    V = np.array(model.params.V, dtype=np.float32)
    w[column], V[column] = np.float32(weight), 0.0
    meta = {**model.meta, "neighbour_column": {"column": column, "weight": float(weight)}}
    return FMModel(FMParams(model.params.w0, w, V), model.predictor_type, dict(model.hyperparameters), meta)


def served_table(table: NeighbourTable, column: int, keep: int, l2: float, weight: float) -> ServedNeighbours:
    """The table as serving reads it (neighbours.bin, standard-library arrays), for the model's `column`."""
    return ServedNeighbours(
        column,
        keep,
        float(l2),
        float(table.scale),
        float(weight),
        _array("Q", table.indptr),
        _array("I", table.targets),
        _array("f", table.weights),
    )


def fit_served(
    users: np.ndarray,
    movies: np.ndarray,
    shape: tuple[int, int],
    column: int,
    *,
    keep: int,
    l2: float,
    max_movies: int,
    weight: float,
) -> ServedNeighbours:
    """The served table of train (user, movie) position pairs, each once: fit_table on their 0/1 matrix of
    `shape`, served as the model's `column` (preprocess's table, and the benchmarks' at ml-25m's shape)."""
    import scipy.sparse as sp  # local import: scipy is absent where the Lambda has only numpy (user_values)

    train = sp.csr_matrix((np.ones(users.size, np.float32), (users, movies)), shape=shape)
    return served_table(fit_table(train, l2, keep, max_movies), column, keep, l2, weight)


def _array(code: str, values: np.ndarray) -> array:
    out = array(code)
    out.frombytes(np.ascontiguousarray(values, dtype=np.dtype(code).newbyteorder("=")).tobytes())
    return out


def served_model(model: FMModel, table: ServedNeighbours | None) -> FMModel:
    """The model the endpoint serves with the lookup's neighbour table: with_blend_weight at the table's
    column and weight (preprocess's --neighbour-weight); the trained model itself without a table."""
    return model if table is None else with_blend_weight(model, table.column, table.weight)
