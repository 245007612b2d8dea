"""The evaluate step: metrics against an independent computation, baselines, ranking, outputs, bad input."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.codec.writer import write_spmatrix
from fmrec.evaluation import pointwise
from fmrec.evaluation.holdout import read_holdout
from fmrec.evaluation.pointwise import fit_baselines
from fmrec.evaluation.report import report_html
from fmrec.evaluation.scorers import model_scorer
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.model.metrics import binary_metrics
from fmrec.serving.lookup import read_lookup
from fmrec.stages.evaluate import EvaluationError, evaluate, read_curves, read_inputs
from pipeline.steps import evaluate as ev
from pipeline.steps import preprocess
from twins.training.job import run_training

pytestmark = pytest.mark.slow


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
        assert set(doc[name]) == {"accuracy", "auc", "log_loss", "f1"}
    ranking = doc["ranking"]
    assert (
        ranking["k"] == 10 and ranking["sampled"] is False and ranking["users"] == ranking["users_total"] > 0
    )
    for name in ("model", "popularity"):
        block = ranking[name]
        assert set(block) == {"precision_at_10", "recall_at_10", "ndcg_at_10", "map_at_10", "coverage"}
        assert 0 < block["coverage"] <= 1 and 0 <= block["ndcg_at_10"] <= 1
    assert doc["objective"] == "ranking" and doc["counts"]["test_rows"] == X.shape[0]
    registry_doc = json.loads((out / "model_metrics.json").read_text())
    auc = registry_doc["binary_classification_metrics"]["auc"]
    assert auc["value"] == doc["model"]["auc"] and auc["standard_deviation"] == "NaN"
    ranking_registry = registry_doc["ranking_metrics"]
    assert ranking_registry["ndcg_at_10"]["value"] == ranking["model"]["ndcg_at_10"]
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>") and html.count("<img") == 5
    assert f"all {ranking['users']} users with a relevant held-out movie" in html


def test_ranking_figures_match_a_plain_loop_over_users(eval_base: Path) -> None:
    """NDCG@10 and P@10 of the model, recomputed one user at a time with the serving path's scorer."""
    doc = ev.main(eval_base, ["--objective", "rating", "--threshold", "4"])
    model = load_model_tar(next((eval_base / "input" / "model").rglob("model.tar.gz")))
    lookup = read_lookup(eval_base / "input" / "lookup")
    held = read_holdout(eval_base / "input" / "holdout")
    liked: dict[int, set[int]] = {}
    for u, m, r in zip(held.user.tolist(), held.movie.tolist(), held.rating.tolist(), strict=True):
        if r >= 4:
            liked.setdefault(u, set()).add(m)
    items = sp.csr_matrix(np.hstack([np.zeros((lookup.n_movies, lookup.n_users)), np.eye(lookup.n_movies)]))
    ndcg = precision = 0.0
    for user_id, rel in liked.items():
        pos = lookup.user_position(user_id)
        seen = set(lookup.rated_positions(pos)) if pos is not None else set()
        cand = np.array([p for p in range(lookup.n_movies) if p not in seen])
        keys = lookup.user_keys(pos) if pos is not None else []
        s = fm.score_user_candidates(model.params, keys, items[cand], "binary_classifier")
        top = [lookup.movie_ids[p] for p in cand[np.argsort(-s, kind="stable")[:10]]]
        hits = [m in rel for m in top]
        ideal = sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg += sum(h / math.log2(i + 2) for i, h in enumerate(hits)) / ideal
        precision += sum(hits) / 10
    assert doc["objective"] == "rating" and doc["ranking"]["users"] == len(liked)
    assert doc["ranking"]["model"]["ndcg_at_10"] == pytest.approx(ndcg / len(liked), abs=1e-9)
    assert doc["ranking"]["model"]["precision_at_10"] == pytest.approx(precision / len(liked), abs=1e-9)


def test_unknown_users_and_movies_never_crash_and_are_counted(eval_base: Path) -> None:
    """A held-out user and movie absent from train, and a test row holding only its user's column."""
    holdout = eval_base / "input" / "holdout" / "ratings.tsv"
    holdout.write_text(holdout.read_text() + "99999\t1\t5\n1\t99999\t5\n")
    X, y = read_spmatrix(eval_base / "input" / "test")
    X = sp.csr_matrix(X)
    only_user = sp.csr_matrix(([1.0], ([0], [int(X[0].indices.min())])), shape=(1, X.shape[1]))
    for old in (eval_base / "input" / "test").iterdir():
        old.unlink()
    with (eval_base / "input" / "test" / "part-00000.pbr").open("wb") as fh:
        write_spmatrix(
            fh, sp.vstack([X, only_user]).tocsr().astype(np.float32), np.append(y, 1.0).astype(np.float32)
        )
    lookup = read_lookup(eval_base / "input" / "lookup")
    movie_block = (lookup.movie_offset, lookup.movie_offset + lookup.n_movies)
    had = sum(
        1 for i in range(X.shape[0]) if not any(movie_block[0] <= c < movie_block[1] for c in X[i].indices)
    )  # the synthetic data has test movies absent from train of its own
    held = read_holdout(eval_base / "input" / "holdout")
    cold_liked = int(((held.rating >= 4) & ~np.isin(held.movie, lookup.movie_ids)).sum())
    doc = ev.main(eval_base)
    assert doc["counts"]["test_rows_unknown_movie"] == had + 1
    assert doc["ranking"]["users_unknown_to_model"] == 1
    assert doc["ranking"]["relevant_outside_catalog"] == cold_liked >= 1


def test_a_missing_holdout_channel_is_a_clear_error(eval_base: Path) -> None:
    shutil.rmtree(eval_base / "input" / "holdout")
    with pytest.raises(EvaluationError, match="no held-out ratings file"):
        ev.main(eval_base)
    with pytest.raises(EvaluationError, match="--objective ranking"):
        ev.main(eval_base, ["--objective", "clicks"])


def test_baselines_fit_what_they_should() -> None:
    # One-hot rows: movie column decides the label; the biases-only fit must separate them.
    rows = sp.csr_matrix(
        np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 1, 0, 1]] * 20, dtype=np.float32)
    )
    y = np.array([1.0, 0.0, 1.0, 0.0] * 20)
    base = fit_baselines(rows, y, movie_cols=np.array([2, 3]), counts=np.array([40, 40]), binary=True)
    biases = base.biases(rows[:4])
    assert biases[0] > 0.9 and biases[1] < 0.1
    # Both movies are equally popular, so popularity predicts the base rate for both.
    assert base.popularity(np.array([0, 1])) == pytest.approx([0.5, 0.5], abs=1e-3)
    assert base.popularity(np.array([-1])).shape == (1,)  # a movie unknown to train: count 0, no crash


def test_baselines_fit_at_most_baseline_rows_evenly_strided(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    cols = rng.integers(0, 6, size=(300, 2)) + np.array([0, 6])  # a user column and a movie column
    rows = sp.csr_matrix((np.ones(600, np.float32), cols.ravel(), np.arange(0, 601, 2)), shape=(300, 12))
    y = (rng.random(300) < 0.3).astype(np.float64)
    args = {"movie_cols": np.arange(6, 12), "counts": np.arange(1, 7), "binary": True}
    whole = fit_baselines(rows, y, **args)
    monkeypatch.setattr(pointwise, "BASELINE_ROWS", 100)
    strided = fit_baselines(rows, y, **args)  # 300 rows over 100: every third row, from the first
    every_third = fit_baselines(rows[::3], y[::3], **args)
    assert np.array_equal(strided.bias[1], every_third.bias[1]) and strided.pop == every_third.pop
    assert not np.array_equal(strided.bias[1], whole.bias[1])


def test_missing_model_is_a_clear_error(eval_base: Path) -> None:
    for tar in (eval_base / "input" / "model").rglob("model.tar.gz"):
        tar.unlink()
    with pytest.raises(EvaluationError, match=r"no model\.tar\.gz"):
        ev.main(eval_base)
    assert not (eval_base / "output" / "evaluation" / "evaluation.json").exists()


def test_an_empty_test_channel_is_a_clear_error(eval_base: Path) -> None:
    shutil.rmtree(eval_base / "input" / "test")
    (eval_base / "input" / "test").mkdir()
    with pytest.raises(EvaluationError, match="test channel is missing or empty"):
        ev.main(eval_base)


def test_curves_are_read_from_the_training_output(eval_base: Path) -> None:
    curves = read_curves(eval_base / "input" / "model")
    # train metrics every epoch; the test channel is scored once, after the last epoch (as SageMaker's FM)
    assert curves and all("train:cross_entropy" in row for row in curves)
    assert "test:cross_entropy" in curves[-1] and not any("test:cross_entropy" in row for row in curves[:-1])


def test_a_regressor_is_evaluated_with_rmse_and_mae(tiny_data: Path, tmp_path: Path) -> None:
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
    for name in ("test", "train", "lookup", "holdout"):
        shutil.copytree(pre / "output" / name, base / "input" / name)
    doc = ev.main(base)
    assert doc["predictor_type"] == "regressor"
    for name in ("model", "popularity", "biases"):
        assert set(doc[name]) == {"rmse", "mae"}
        assert 0 < doc[name]["mae"] <= doc[name]["rmse"] < 4
    metrics = json.loads((base / "output" / "evaluation" / "model_metrics.json").read_text())
    assert metrics["regression_metrics"]["rmse"]["value"] == doc["model"]["rmse"]
    html = (base / "output" / "evaluation" / "report.html").read_text()
    assert (
        html.count("<img") == 2
    )  # score distribution and ranking bars: no curves without metrics.json, no ROC
    assert 0 < doc["ranking"]["model"]["ndcg_at_10"] <= 1


def test_sampling_above_the_size_limit_is_reported(eval_base: Path) -> None:
    data = read_inputs(eval_base)
    cells = 20 * data.lookup.n_movies  # room for 20 users
    doc = evaluate(data, "ranking", 4.0, max_cells=cells, seed=5)
    ranking = doc["ranking"]
    assert ranking["sampled"] is True and ranking["users"] == 20 < ranking["users_total"]
    assert ranking["sample_seed"] == 5
    html = report_html(doc, data.y_test, [])
    assert f"a seeded sample of 20 of {ranking['users_total']} users" in html


def test_with_a_neighbour_table_the_step_writes_and_scores_the_served_model(
    tiny_data: Path, tmp_path: Path
) -> None:
    pre = tmp_path / "pre"
    shutil.copytree(tiny_data, pre / "input" / "data")
    preprocess.main(pre, ["--neighbours", "5", "--neighbour-weight", "0.3"])
    manifest = json.loads((pre / "output" / "manifest" / "manifest.json").read_text())
    hp = {"feature_dim": manifest["feature_dim"], "num_factors": 8, "predictor_type": "binary_classifier"}
    base = tmp_path / "eval"
    run_training(hp, {"train": pre / "output" / "train"}, base / "input" / "model", base / "job-output")
    for name in ("test", "train", "lookup", "holdout"):
        shutil.copytree(pre / "output" / name, base / "input" / name)
    trained = load_model_tar(base / "input" / "model" / "model.tar.gz")
    table = read_lookup(base / "input" / "lookup").neighbours
    assert table is not None and table.column == manifest["feature_dim"] - 1
    assert float(np.abs(trained.params.V[table.column]).sum()) > 0  # the trainer's random initial row
    doc = ev.main(base)
    served = load_model_tar(base / "output" / "model" / "model.tar.gz")
    assert served.params.w[table.column] == pytest.approx(0.3)
    assert not served.params.V[table.column].any()
    others = np.arange(served.feature_dim) != table.column
    np.testing.assert_array_equal(served.params.V[others], trained.params.V[others])
    lookup = read_lookup(base / "input" / "lookup")
    task_users = np.arange(lookup.n_users)
    blended = model_scorer(served, lookup)(task_users)
    assert np.isfinite(blended).all() and doc["ranking"]["model"]["ndcg_at_10"] > 0
