"""Evaluate a trained FM: read its inputs, score it and the baselines, build the registry's metrics."""

from __future__ import annotations

import json
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.errors import InputError
from fmrec.evaluation.holdout import HeldOut, read_holdout
from fmrec.evaluation.pointwise import fit_baselines, pointwise, row_positions
from fmrec.evaluation.ranking import (
    MAX_SCORE_CELLS,
    K,
    metric_keys,
    ranking_metrics_at_k,
    ranking_task,
)
from fmrec.evaluation.scorers import model_scorer, popularity_scorer, train_matrix
from fmrec.features.layout import block_range
from fmrec.features.neighbours import served_model
from fmrec.features.settings import DEFAULTS
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.serving.lookup import Lookup, read_lookup

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 4.0
NDCG_FLOOR = 1e-9


class EvaluationError(InputError):
    """An input of the evaluate step is missing or inconsistent."""


@dataclass
class Inputs:
    model: Any
    X_test: sp.csr_matrix
    y_test: np.ndarray
    X_train: sp.csr_matrix
    y_train: np.ndarray
    lookup: Lookup
    holdout: HeldOut
    curves: list[dict[str, Any]]
    model_tar: Path | None = None  # the file the model was read from


def _channel(folder: Path, name: str, feature_dim: int) -> tuple[sp.csr_matrix, np.ndarray]:
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        raise EvaluationError(
            f"{folder}: the {name} channel is missing or empty; expected recordIO-protobuf files"
        )
    X, y = read_spmatrix(folder)
    if y is None:
        raise EvaluationError(
            f"{folder}: the {name} channel has no labels; evaluation needs labelled records"
        )
    if X.shape[1] != feature_dim:
        raise EvaluationError(
            f"{folder}: {name} rows have {X.shape[1]} columns; the model expects {feature_dim}"
        )
    return sp.csr_matrix(X), np.asarray(y, dtype=np.float64)


def read_curves(model_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch metrics the trainer wrote (output/data/metrics.json, shipped in output.tar.gz), if any."""
    raw: Any = None
    direct = model_dir / "metrics.json"
    if direct.is_file():
        raw = json.loads(direct.read_text(encoding="utf-8"))
    elif (model_dir / "output.tar.gz").is_file():
        with tarfile.open(model_dir / "output.tar.gz") as tar:
            for member in tar.getmembers():
                if member.isfile() and Path(member.name).name == "metrics.json":
                    fh = tar.extractfile(member)
                    raw = json.loads(fh.read()) if fh else None
                    break
    if isinstance(raw, dict):
        raw = raw.get("history", raw.get("epochs"))
    if not isinstance(raw, list):
        return []
    rows = []
    for row in raw:
        if isinstance(row, dict):
            # {"epoch": 1, "test": {"auc": ...}} → {"epoch": 1, "test:auc": ...}
            flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
            flat.update(
                {f"{k}:{kk}": vv for k, v in row.items() if isinstance(v, dict) for kk, vv in v.items()}
            )
            rows.append(flat)
    return rows


def read_inputs(base_dir: Path) -> Inputs:
    inp = base_dir / "input"
    tars = sorted((inp / "model").rglob("model.tar.gz"))
    if not tars:
        raise EvaluationError(f"{inp / 'model'}: no model.tar.gz; expected the training job's output folder")
    return read_processed(tars[0], inp, read_curves(inp / "model"))


def read_processed(model_tar: Path, processed: Path, curves: list[dict[str, Any]] | None = None) -> Inputs:
    """The inputs from a model.tar.gz and a preprocess output folder (train/, test/, lookup/, holdout/); with
    a neighbour table in the lookup, the model is the served one (fmrec.features.neighbours.served_model)."""
    model = load_model_tar(model_tar)
    dim = model.params.feature_dim
    X_test, y_test = _channel(processed / "test", "test", dim)
    X_train, y_train = _channel(processed / "train", "train", dim)
    lookup = read_lookup(processed / "lookup")
    if lookup.feature_dim != dim:
        raise EvaluationError(
            f"{processed / 'lookup'}: feature_dim {lookup.feature_dim}; the model has {dim} (a model of "
            "another preprocess run?)"
        )
    try:
        holdout = read_holdout(processed / "holdout")
    except InputError as exc:
        raise EvaluationError(str(exc)) from None
    model = served_model(model, lookup.neighbours)  # what RegisterModel registers and the endpoint serves
    return Inputs(model, X_test, y_test, X_train, y_train, lookup, holdout, curves or [], model_tar)


def evaluate(
    data: Inputs,
    objective: str = str(DEFAULTS["objective"]),
    threshold: float | None = None,
    *,
    max_cells: int = MAX_SCORE_CELLS,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation.json document (pointwise blocks, the ranking block), plus arrays the report plots."""
    model, lookup = data.model, data.lookup
    binary = model.predictor_type == "binary_classifier"
    n_users, n_movies = lookup.n_users, lookup.n_movies
    user_cols, movie_cols = block_range(lookup.columns.users), block_range(lookup.columns.movies)
    counts = np.asarray(lookup.movie_count, dtype=np.float64)

    # Pointwise: the test channel's labelled rows (in the ranking objective: held-out positives and sampled
    # negatives). A row of an unknown user or movie is scored with the columns it has, as SageMaker does.
    base = fit_baselines(data.X_train, data.y_train, movie_cols, counts, binary)
    test_users = row_positions(data.X_test, user_cols)
    test_movies = row_positions(data.X_test, movie_cols)
    scores = {
        "model": np.asarray(fm.predict(model.params, data.X_test, model.predictor_type), dtype=np.float64),
        "popularity": base.popularity(test_movies),
        "biases": base.biases(data.X_test),
    }
    doc: dict[str, Any] = {name: pointwise(binary, data.y_test, s) for name, s in scores.items()}

    # Ranking: relevance from the raw held-out ratings, never from the test channel's labels.
    cut = float(threshold if threshold is not None else lookup.label_threshold or DEFAULT_THRESHOLD)
    task = ranking_task(
        data.holdout.user,
        data.holdout.movie,
        data.holdout.rating,
        cut,
        np.asarray(lookup.user_ids, dtype=np.int64),
        np.asarray(lookup.movie_ids, dtype=np.int64),
        train_matrix(lookup),
        max_cells=max_cells,
        seed=seed,
    )
    ranked = {
        "model": ranking_metrics_at_k(model_scorer(model, lookup), task, K),
        "popularity": ranking_metrics_at_k(popularity_scorer(counts), task, K),
    }
    if task.sampled:
        log.warning(
            "ranking: %d of %d users (users x catalog above %d scores; seed %d)",
            task.users.size,
            task.users_total,
            max_cells,
            seed,
        )
    model_ndcg, pop_ndcg = ranked["model"][f"ndcg_at_{K}"], ranked["popularity"][f"ndcg_at_{K}"]
    doc["ranking"] = {
        "k": K,
        **task.summary(),
        "sample_seed": seed if task.sampled else None,
        **ranked,
        # The gate's input (SageMaker conditions compare values but cannot compute): model over popularity.
        f"ndcg_at_{K}_lift": ndcg_lift(model_ndcg, pop_ndcg),
    }
    doc.update(
        objective=objective,
        predictor_type=model.predictor_type,
        counts={
            "train_rows": int(data.X_train.shape[0]),
            "test_rows": int(data.X_test.shape[0]),
            "test_rows_unknown_user": int((test_users < 0).sum()),
            "test_rows_unknown_movie": int((test_movies < 0).sum()),
            "test_rows_unknown_both": int(((test_users < 0) & (test_movies < 0)).sum()),
            "test_positive_share": float((data.y_test >= (0.5 if binary else cut)).mean()),
            "held_out_ratings": len(data.holdout),
            "users": n_users,
            "movies": n_movies,
            "feature_dim": int(lookup.feature_dim),
        },
        hyperparameters=dict(model.hyperparameters),
    )
    doc["_scores"] = scores
    return doc


def ndcg_lift(model_ndcg: float, popularity_ndcg: float) -> float:
    """Relative NDCG gain over popularity, (model - popularity) / popularity; popularity 0 counts as 1e-9."""
    return (model_ndcg - popularity_ndcg) / max(popularity_ndcg, NDCG_FLOOR)


def model_metrics(doc: dict[str, Any]) -> dict[str, Any]:
    """The Model Registry's model-quality statistics document: {"<kind>_metrics": {name: {value, sd}}}."""
    m = doc["model"]

    def entry(v: float) -> dict[str, Any]:
        return {"value": v, "standard_deviation": "NaN"}

    if doc["predictor_type"] == "binary_classifier":
        block = {k: entry(m[k]) for k in ("accuracy", "auc", "f1", "log_loss")}
        out: dict[str, Any] = {"binary_classification_metrics": block}
    else:
        out = {"regression_metrics": {"rmse": entry(m["rmse"]), "mae": entry(m["mae"])}}
    ranking = doc["ranking"]
    # Free-form beside the standard block: the registry keeps the statistics file as it is.
    out["ranking_metrics"] = {key: entry(ranking["model"][key]) for key in metric_keys(ranking["k"])}
    out["ranking_metrics"]["users"] = entry(ranking["users"])
    out["ranking_baseline_metrics"] = {
        f"popularity_{key}": entry(ranking["popularity"][key]) for key in metric_keys(ranking["k"])
    }
    out["objective"] = doc["objective"]
    return out
