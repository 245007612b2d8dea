"""Metrics: hand-computed values and the SageMaker log-line format."""

from __future__ import annotations

import math

import numpy as np

from fmrec.model.metrics import (
    average_ranks,
    binary_metrics,
    quality_metric_lines,
    regression_metrics,
    roc_auc,
    sagemaker_metrics,
)


def test_binary_metrics_by_hand() -> None:
    y = np.array([1, 0, 1, 1, 0])
    p = np.array([0.9, 0.4, 0.3, 0.6, 0.7])
    m = binary_metrics(y, p)
    assert m["accuracy"] == 3 / 5
    # tp=2 (0.9, 0.6), fp=1 (0.7), fn=1 (0.3)
    assert m["f1"] == 2 * 2 / (2 * 2 + 1 + 1)
    expected_ce = -np.mean(np.log([0.9, 0.6, 0.3, 0.6, 0.3]))
    assert math.isclose(m["cross_entropy"], expected_ce, rel_tol=1e-12)
    # positives' scores 0.9, 0.3, 0.6 vs negatives 0.4, 0.7: pairs won 2+0+1 + 2... count directly
    wins = sum((a > b) + 0.5 * (a == b) for a in (0.9, 0.3, 0.6) for b in (0.4, 0.7))
    assert math.isclose(m["auc"], wins / 6)


def test_auc_ties_and_single_class() -> None:
    assert roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == 0.5
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_average_ranks_are_scipys_rankdata() -> None:
    """The AUC's ranks, bit for bit those of scipy.stats.rankdata (which the metrics no longer import)."""
    from scipy.stats import rankdata  # local import: the reference implementation, tests only

    rng = np.random.default_rng(3)
    for a in (
        rng.integers(0, 50, 5_000).astype(np.float64),  # many ties
        rng.random(5_000),
        np.array([2.0]),
        np.array([1.0, 1.0, 1.0]),
        np.array([3.0, -np.inf, np.inf, 3.0, 0.0]),
    ):
        assert np.array_equal(average_ranks(a), rankdata(a))
        assert average_ranks(a).dtype == np.float64
    y = (rng.random(5_000) < 0.3).astype(np.float64)
    s = rng.integers(0, 20, 5_000) / 20.0
    n_pos = y.sum()
    ref = (rankdata(s)[y >= 0.5].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * (y.size - n_pos))
    assert roc_auc(y, s) == ref
    assert math.isnan(roc_auc(np.array([1, 0]), np.array([0.5, np.nan])))


def test_regression_metrics() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 1.0]))
    assert math.isclose(m["rmse"], math.sqrt(5 / 3))
    assert math.isclose(m["mae"], 1.0)


def test_log_lines_and_names() -> None:
    m = {"accuracy": 0.69, "cross_entropy": 0.58, "f1": 0.73, "auc": 0.75}
    lines = quality_metric_lines(m)
    assert lines[0] == "#quality_metric: host=algo-1, test binary_classification_accuracy <score>=0.69"
    assert "#quality_metric: host=algo-1, test binary_f_1.000 <score>=0.73" in lines
    assert len(lines) == 3  # AUC is ours, not a SageMaker metric
    assert sagemaker_metrics(m)["test:binary_f_beta"] == 0.73
    assert quality_metric_lines({"rmse": 1.5}, "train", epoch=2) == [
        "#quality_metric: host=algo-1, epoch=2, train rmse <score>=1.5"
    ]
