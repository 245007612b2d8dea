"""Metrics: hand-computed values and the SageMaker log-line format."""

from __future__ import annotations

import math

import numpy as np

from fmrec.model.metrics import (
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
