"""Test rows whose user or movie is absent from train: every step accepts them, evaluate scores them the
SageMaker way (only the known columns) and counts them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.data.synth import SynthConfig, write_synth
from fmrec.evaluation.pointwise import fit_baselines
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from pipeline.steps import evaluate as ev
from pipeline.steps import preprocess
from twins.training.job import run_training

pytestmark = pytest.mark.slow

COLD_USER = 1


@pytest.fixture(scope="module")
def cold_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic ml-100k with its own test-only movies, plus a user all of whose train ratings are dropped
    (a test-only user: the ua split never makes one, other splits and real data can) and a liked movie."""
    out = tmp_path_factory.mktemp("cold") / "ml"
    write_synth(out, SynthConfig(users=300, items=600, ratings=24_000, seed=0))
    base = np.loadtxt(out / "ua.base", dtype=np.int64).reshape(-1, 4)
    test = np.loadtxt(out / "ua.test", dtype=np.int64).reshape(-1, 4)
    assert (~np.isin(test[:, 1], base[:, 1])).sum() >= 1  # the generator makes cold test movies itself
    base = base[base[:, 0] != COLD_USER]
    # and a liked test movie made cold (its few train ratings dropped), so a relevant movie is unrankable
    liked = test[(test[:, 2] >= 4) & (test[:, 0] != COLD_USER) & np.isin(test[:, 1], base[:, 1]), 1]
    per_movie = np.bincount(base[:, 1])
    base = base[base[:, 1] != liked[np.argmin(per_movie[liked])]]
    np.savetxt(out / "ua.base", base, fmt="%d", delimiter="\t")
    return out


@pytest.fixture(scope="module")
def evaluated(cold_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("steps")
    pre = root / "pre"
    shutil.copytree(cold_data, pre / "input" / "data")
    # the rating objective: one test row per held-out rating, as the seed (and the manifest's counts) have
    preprocess.main(pre, ["--objective", "rating"])
    manifest = json.loads((pre / "output" / "manifest" / "manifest.json").read_text())
    hp = {"feature_dim": manifest["feature_dim"], "num_factors": 8, "predictor_type": "binary_classifier"}
    base = root / "eval"
    # the training job reads the test channel too (per-epoch test metrics) and must accept such rows
    channels = {"train": pre / "output" / "train", "test": pre / "output" / "test"}
    run_training({**hp, "epochs": 3}, channels, base / "input" / "model", base / "job-output")
    for name in ("test", "train", "lookup", "holdout"):
        shutil.copytree(pre / "output" / name, base / "input" / name)
    doc = ev.main(base)
    return {"doc": doc, "manifest": manifest, "base": base, "data": cold_data}


def test_counts_match_the_preprocess_manifest(evaluated: dict[str, Any]) -> None:
    counts, manifest = evaluated["doc"]["counts"], evaluated["manifest"]["counts"]
    for key in ("test_rows_unknown_user", "test_rows_unknown_movie", "test_rows_unknown_both"):
        assert counts[key] == manifest[key], key
    assert counts["test_rows_unknown_user"] == 10  # every ua.test row of the cold user
    assert counts["test_rows_unknown_movie"] >= 1
    written = json.loads((evaluated["base"] / "output" / "evaluation" / "evaluation.json").read_text())
    assert written["counts"] == counts


def test_rows_are_scored_with_their_known_columns_only(evaluated: dict[str, Any]) -> None:
    base: Path = evaluated["base"]
    model = load_model_tar(next((base / "input" / "model").rglob("model.tar.gz")))
    X, y = read_spmatrix(base / "input" / "test")
    lookup_n_users = json.loads((base / "input" / "lookup" / "lookup.json").read_text())["n_users"]
    nnz = np.diff(X.indptr)
    assert (nnz == 1).sum() == evaluated["doc"]["counts"]["test_rows_unknown_user"] + (
        evaluated["doc"]["counts"]["test_rows_unknown_movie"]
        - 2 * evaluated["doc"]["counts"]["test_rows_unknown_both"]
    )
    # a one-column row scores sigmoid(w0 + w_col): no pair term exists
    p = model.params
    one = np.flatnonzero(nnz == 1)
    col = X.indices[X.indptr[one]]
    expected = 1.0 / (1.0 + np.exp(-(float(p.w0) + np.asarray(p.w, dtype=np.float64)[col])))
    got = fm.predict(p, X[one], "binary_classifier")
    assert got == pytest.approx(expected, rel=1e-5)
    assert (col < lookup_n_users).any() and (col >= lookup_n_users).any()  # only-movie and only-user rows
    doc = evaluated["doc"]
    assert 0.0 < doc["model"]["auc"] < 1.0 and np.isfinite(doc["popularity"]["log_loss"])
    assert y.size == doc["counts"]["test_rows"]


def test_relevant_unknown_movies_stay_relevant_but_unranked(evaluated: dict[str, Any]) -> None:
    ranking = evaluated["doc"]["ranking"]
    base = np.loadtxt(evaluated["data"] / "ua.base", dtype=np.int64).reshape(-1, 4)
    test = np.loadtxt(evaluated["data"] / "ua.test", dtype=np.int64).reshape(-1, 4)
    liked = test[test[:, 2] >= 4]
    assert ranking["relevant_outside_catalog"] == int((~np.isin(liked[:, 1], base[:, 1])).sum()) >= 1
    # the cold user is ranked on the movie side only, as SageMaker scores a row holding only known columns
    assert ranking["users_unknown_to_model"] == int(COLD_USER in liked[:, 0])
    assert ranking["users"] == np.unique(liked[:, 0]).size


def test_popularity_scores_a_movie_absent_from_train_as_never_rated() -> None:
    rows = sp.csr_matrix(np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0]] * 10, dtype=np.float32))
    y = np.array([1.0, 0.0, 1.0] * 10)
    base = fit_baselines(rows, y, movie_cols=np.array([2, 3]), counts=np.array([20.0, 10.0]), binary=True)
    a, b = base.pop
    # position -1 must not wrap around to the last movie: it has no train rating, log1p(0) = 0
    assert base.popularity(np.array([-1, 1])) == pytest.approx(
        [1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-(a + b * np.log1p(10))))]
    )
