"""The evaluate step: metrics against an independent computation, baselines, ranking, outputs, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmrec.codec.recordio import read_spmatrix
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.model.metrics import binary_metrics
from pipeline.steps import evaluate as ev


@pytest.fixture()
def eval_base(tiny_run: Any, tmp_path: Path) -> Path:
    """A copy of the evaluate step's inputs from the shared run, without its outputs."""
    base = tmp_path / "processing"
    shutil.copytree(tiny_run.folder / "steps" / "EvaluateModel" / "processing" / "input", base / "input")
    return base


def test_main_writes_the_three_files_with_independently_checked_metrics(eval_base: Path) -> None:
    doc = ev.main(eval_base)
    out = eval_base / "output" / "evaluation"
    assert json.loads((out / "evaluation.json").read_text()) == json.loads(json.dumps(doc))
    model = load_model_tar(next((eval_base / "input" / "model").rglob("model.tar.gz")))
    X, y = read_spmatrix(eval_base / "input" / "test")
    expected = binary_metrics(y, fm.predict(model.params, X, "binary_classifier"))
    assert doc["model"]["auc"] == pytest.approx(expected["auc"])
    assert doc["model"]["log_loss"] == pytest.approx(expected["cross_entropy"])
    assert doc["model"]["accuracy"] == pytest.approx(expected["accuracy"])
    for name in ("model", "popularity", "biases"):
        block = doc[name]
        assert set(block) >= {
            "accuracy",
            "auc",
            "log_loss",
            "f1",
            "precision_at_10",
            "recall_at_10",
            "ndcg_at_10",
        }
        assert 0 < block["coverage"] <= 1 and 0 <= block["ndcg_at_10"] <= 1
    assert doc["counts"]["test_rows"] == X.shape[0]
    registry_doc = json.loads((out / "model_metrics.json").read_text())
    auc = registry_doc["binary_classification_metrics"]["auc"]
    assert auc["value"] == doc["model"]["auc"] and auc["standard_deviation"] == "NaN"
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<img") == 4


def test_ranking_metrics_by_hand() -> None:
    # user 0 rated movie 0 in train; liked 1 and 3 in test. Scores rank 3, 2, 1 (k=2): one hit at rank 1.
    scores = np.array([9.0, 1.0, 2.0, 3.0])
    result = ev.ranking(
        {"m": lambda user, cand: scores[cand]}, {0: {1, 3}}, lambda user: [0], n_movies=4, k=2
    )["m"]
    assert result["precision_at_2"] == pytest.approx(0.5)
    assert result["recall_at_2"] == pytest.approx(0.5)
    assert result["ndcg_at_2"] == pytest.approx(1.0 / (1.0 + 1.0 / math.log2(3)))
    assert result["coverage"] == pytest.approx(2 / 4)  # movies 3 and 2 were shown


def test_baselines_fit_what_they_should() -> None:
    # One-hot rows: movie column decides the label; the biases-only fit must separate them.
    import scipy.sparse as sp

    rows = sp.csr_matrix(
        np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 0, 1]] * 20, dtype=np.float32)
    )
    y = np.array([1.0, 0.0, 1.0, 0.0] * 20)
    base = ev.fit_baselines(rows, y, movie_cols=np.array([2, 3]), binary=True)
    biases = base.biases(rows[:4])
    assert biases[0] > 0.9 and biases[1] < 0.1
    # Both movies are equally popular, so popularity predicts the base rate for both.
    assert base.popularity(np.array([0, 1])) == pytest.approx([0.5, 0.5], abs=1e-3)


def test_missing_model_is_a_clear_error(eval_base: Path) -> None:
    for tar in (eval_base / "input" / "model").rglob("model.tar.gz"):
        tar.unlink()
    with pytest.raises(ev.EvaluationError, match=r"no model\.tar\.gz"):
        ev.main(eval_base)
    assert not (eval_base / "output" / "evaluation" / "evaluation.json").exists()


def test_an_empty_test_channel_is_a_clear_error(eval_base: Path) -> None:
    shutil.rmtree(eval_base / "input" / "test")
    (eval_base / "input" / "test").mkdir()
    with pytest.raises(ev.EvaluationError, match="test channel is missing or empty"):
        ev.main(eval_base)


def test_curves_are_read_from_the_training_output(eval_base: Path) -> None:
    curves = ev.read_curves(eval_base / "input" / "model")
    assert curves and "test:cross_entropy" in curves[0] and "train:cross_entropy" in curves[0]


def test_a_regressor_is_evaluated_with_rmse_and_mae(tiny_data: Path, tmp_path: Path) -> None:
    from pipeline.steps import preprocess
    from twins.training.job import run_training

    pre = tmp_path / "pre"
    shutil.copytree(tiny_data, pre / "input" / "data")
    preprocess.main(pre, ["--label", "regression", "--objective", "rating"])
    manifest = json.loads((pre / "output" / "manifest" / "manifest.json").read_text())
    hp = {
        "feature_dim": manifest["feature_dim"],
        "num_factors": 8,
        "predictor_type": "regressor",
        "epochs": 5,
    }
    base = tmp_path / "eval"
    run_training(hp, {"train": pre / "output" / "train"}, base / "input" / "model", base / "job-output")
    for name in ("test", "train", "lookup"):
        shutil.copytree(pre / "output" / name, base / "input" / name)
    doc = ev.main(base)
    assert doc["predictor_type"] == "regressor"
    for name in ("model", "popularity", "biases"):
        assert set(doc[name]) >= {"rmse", "mae", "ndcg_at_10"} and "auc" not in doc[name]
        assert 0 < doc[name]["mae"] <= doc[name]["rmse"] < 4
    metrics = json.loads((base / "output" / "evaluation" / "model_metrics.json").read_text())
    assert metrics["regression_metrics"]["rmse"]["value"] == doc["model"]["rmse"]
    html = (base / "output" / "evaluation" / "report.html").read_text()
    assert html.count("<img") == 1  # score distribution only: no curves without metrics.json, no ROC
