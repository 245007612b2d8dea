"""Pointwise metrics of the test channel's labelled rows, with the popularity and biases-only baselines."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from fmrec.evaluation.sparse_products import matvec, rmatvec, row_hits
from fmrec.model import fm
from fmrec.model.metrics import binary_metrics, regression_metrics

BIAS_L2 = 1e-4  # per-example L2 of the biases-only baseline (mean loss + BIAS_L2/2 * |w|^2)
# Rows the baselines fit at most: past it every s-th row of the train channel, evenly strided. The default
# ranking channel holds three sampling passes (SamplingPasses), whose rows say what one pass says: fitting
# all of them tripled EvaluateModel's L-BFGS time for the same baselines. A one-pass ml-100k channel (716k
# rows) and every rating channel up to 1M rows are fit whole, as before.
BASELINE_ROWS = 1_000_000


def row_positions(X: sp.csr_matrix, cols: np.ndarray) -> np.ndarray:
    """For each row, the position (index into `cols`) of the one column of that block it has set; -1 if none.

    A test row of a user or movie absent from train has no column of that block: SageMaker scores it with
    the columns it has, and so do the scorers here (the popularity baseline gives such a movie count 0).
    """
    position = np.full(X.shape[1], -1, dtype=np.int64)
    position[cols] = np.arange(cols.size)
    # compiled: numpy's position[X.indices] made a 0.5 GB temporary at the ml-100k shape (1 CPU-s a call)
    return row_hits(X.indptr, X.indices, position)


def _fit_linear(X: sp.csr_matrix, y: np.ndarray, binary: bool, l2: float) -> tuple[float, np.ndarray]:
    """w0, w minimising mean log loss (binary) or half mean squared error, plus l2/2 |w|^2 (L-BFGS)."""
    n, d = X.shape
    # The products of scipy on X's float64 copy and on its transpose, bit for bit, without either copy
    # (sparse_products.py).
    indptr, indices, data = X.indptr, X.indices, X.data

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + matvec(indptr, indices, data, theta[1:])
        if binary:
            # log(1 + e^z) - y z, computed stably
            loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
            r = fm.sigmoid(z) - y
        else:
            r = z - y
            loss = float(0.5 * np.mean(r * r))
        grad = np.empty(d + 1)
        grad[0] = r.mean()
        grad[1:] = rmatvec(indptr, indices, data, r, d) / n + l2 * theta[1:]
        return loss + 0.5 * l2 * float(theta[1:] @ theta[1:]), grad

    start = np.zeros(d + 1)
    start[0] = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6)) if binary else float(y.mean())
    result = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return float(result.x[0]), result.x[1:]


@dataclass
class Baselines:
    """Scores of the popularity and biases-only baselines for any one-hot rows."""

    movie_cols: np.ndarray  # one-hot column of each movie position
    counts: np.ndarray  # train rating count per movie position
    pop: tuple[float, float]  # a + b * log1p(count)
    bias: tuple[float, np.ndarray]  # w0, w over all columns
    binary: bool

    def _link(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(fm.sigmoid(z)) if self.binary else z

    def popularity(self, movie_pos: np.ndarray) -> np.ndarray:
        a, b = self.pop
        counts = np.where(movie_pos >= 0, self.counts[np.maximum(movie_pos, 0)], 0.0)
        return self._link(a + b * np.log1p(counts))

    def biases(self, X: sp.csr_matrix) -> np.ndarray:
        w0, w = self.bias
        return self._link(w0 + X @ w)


def fit_baselines(
    X_train: sp.csr_matrix, y_train: np.ndarray, movie_cols: np.ndarray, counts: np.ndarray, binary: bool
) -> Baselines:
    """Popularity: a 1-D fit of the label on log1p(train rating count); biases-only: an L2 linear model on
    every column (an FM without interactions). Both fit the train channel's labelled rows (at most
    BASELINE_ROWS of them, evenly strided)."""
    n = X_train.shape[0]
    if n > BASELINE_ROWS:
        rows = np.arange(0, n, -(-n // BASELINE_ROWS))
        X_train, y_train = X_train[rows], np.asarray(y_train)[rows]
    counts = np.asarray(counts, dtype=np.float64)
    train_movie = row_positions(X_train, movie_cols)
    known = np.where(train_movie >= 0, counts[np.maximum(train_movie, 0)], 0.0)
    feature = sp.csr_matrix(np.log1p(known).reshape(-1, 1))
    pop_w0, pop_w = _fit_linear(feature, y_train, binary, l2=0.0)
    bias = _fit_linear(X_train, y_train, binary, l2=BIAS_L2)
    return Baselines(movie_cols, counts, (pop_w0, float(pop_w[0])), bias, binary)


def pointwise(binary: bool, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """binary: accuracy, auc, log_loss, f1; regressor: rmse, mae."""
    if binary:
        m = binary_metrics(y, scores)
        return {"accuracy": m["accuracy"], "auc": m["auc"], "log_loss": m["cross_entropy"], "f1": m["f1"]}
    return regression_metrics(y, scores)
