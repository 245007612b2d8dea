"""Test-channel metrics as SageMaker FM names them; shared by the trainer, evaluate and tuning."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

THRESHOLD = 0.5
# Probabilities are clipped before the log so one confident mistake gives a large, finite loss.
PROB_EPS = 1e-12

# Short name (the key in the dicts below) -> SageMaker's metric name, as tuning objectives use it.
SAGEMAKER_NAMES: dict[str, str] = {
    "accuracy": "binary_classification_accuracy",
    "cross_entropy": "binary_classification_cross_entropy",
    "f1": "binary_f_beta",
    "rmse": "rmse",
}
# The names in `#quality_metric:` log lines (F1 is logged with its beta).
LOG_NAMES: dict[str, str] = {
    "accuracy": "binary_classification_accuracy",
    "cross_entropy": "binary_classification_cross_entropy",
    "f1": "binary_f_1.000",
    "rmse": "rmse",
}


def _as_arrays(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if y.size == 0:
        raise ValueError("no examples to score")
    return y, s


def average_ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of `a`, ties given their mean rank (scipy.stats.rankdata's default, the same values: each
    is a whole number or a half). Here rather than scipy.stats, whose import took 0.6-1.6 s of every training
    job and evaluate step for this one function."""
    sorter = np.argsort(a, kind="mergesort")
    inv = np.empty(sorter.size, dtype=np.intp)
    inv[sorter] = np.arange(sorter.size, dtype=np.intp)
    ordered = a[sorter]
    first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    dense = np.cumsum(first)[inv]
    count = np.concatenate((np.flatnonzero(first), [first.size]))
    return 0.5 * (count[dense] + count[dense - 1] + 1)


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged); NaN when only one class is present."""
    y, s = _as_arrays(y, scores)
    pos = y >= THRESHOLD
    n_pos = int(pos.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    if np.isnan(s).any():  # as rankdata's nan_policy "propagate": every rank NaN
        return math.nan
    ranks = average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """accuracy, cross_entropy, f1 (threshold 0.5) and auc of probabilities `scores` vs 0/1 labels `y`."""
    y, p = _as_arrays(y, scores)
    pred = p >= THRESHOLD
    truth = y >= THRESHOLD
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    f1 = 2 * tp / (2 * tp + fp + fn) if tp > 0 else 0.0
    pc = np.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    ce = -float(np.mean(y * np.log(pc) + (1.0 - y) * np.log1p(-pc)))
    return {
        "accuracy": float(np.mean(pred == truth)),
        "cross_entropy": ce,
        "f1": f1,
        "auc": roc_auc(y, p),
    }


def regression_metrics(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """rmse and mae of predictions `scores` against targets `y`."""
    y, s = _as_arrays(y, scores)
    err = s - y
    return {"rmse": float(np.sqrt(np.mean(err * err))), "mae": float(np.mean(np.abs(err)))}


def metrics_for(predictor_type: str, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """binary_metrics for binary_classifier, regression_metrics for regressor."""
    if predictor_type == "binary_classifier":
        return binary_metrics(y, scores)
    return regression_metrics(y, scores)


def sagemaker_metrics(metrics: Mapping[str, float], channel: str = "test") -> dict[str, float]:
    """{"test:binary_classification_accuracy": ...}: SageMaker's final-metric names, as tuning reads them."""
    return {f"{channel}:{SAGEMAKER_NAMES[k]}": v for k, v in metrics.items() if k in SAGEMAKER_NAMES}


def quality_metric_lines(
    metrics: Mapping[str, float], channel: str = "test", epoch: int | None = None
) -> list[str]:
    """`#quality_metric: host=algo-1, test binary_classification_accuracy <score>=0.69` lines."""
    where = "host=algo-1, " + (f"epoch={epoch}, " if epoch is not None else "")
    logged = [(LOG_NAMES[k], v) for k, v in metrics.items() if k in LOG_NAMES]
    return [f"#quality_metric: {where}{channel} {name} <score>={v}" for name, v in logged]
