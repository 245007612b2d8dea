"""Processing step: score the trained FM and its baselines; write evaluation.json, model_metrics.json, report.

Reads base_dir/input/model/ (the training job's output folder: model.tar.gz, and output.tar.gz or
metrics.json with per-epoch curves when the trainer wrote them), base_dir/input/test/ and input/train/
(recordIO-protobuf channels), base_dir/input/lookup/ (the serving lookups) and base_dir/input/holdout/
ratings.tsv (the raw held-out ratings), and writes base_dir/output/evaluation/{evaluation.json,
model_metrics.json, report.html}. argv: --objective ranking|rating (recorded; the gate reads it from the
pipeline parameter), --threshold X (relevance: held-out rating >= X; default the lookup's label threshold).

The metrics and baselines live in fmrec.evaluation; this script reads, calls and writes. evaluation.json:
  "model", "popularity", "biases": pointwise metrics of the test channel (binary: accuracy, auc, log_loss,
      f1; regressor: rmse, mae);
  "ranking": {"k", "users", "users_total", "sampled", ..., "model": {...}, "popularity": {...},
      "ndcg_at_10_lift"}: P@10, recall@10, NDCG@10, MAP@10, coverage over every held-out user with a
      relevant movie (fmrec/evaluation/ranking.py has the protocol);
  "objective", "predictor_type", "counts", "hyperparameters".
The pipeline's gate reads it through a PropertyFile (pipeline/definition.py GATE_CHECKS).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import logging
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.errors import InputError
from fmrec.evaluation.holdout import HeldOut, read_holdout
from fmrec.evaluation.pointwise import fit_baselines, pointwise, row_positions
from fmrec.evaluation.ranking import MAX_SCORE_CELLS, K, metric_keys, ranking_metrics_at_k, ranking_task
from fmrec.evaluation.scorers import fm_scorer, lookup_rows, popularity_scorer, train_matrix
from fmrec.io_utils import atomic_write_text
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.serving.lookup import Lookup, read_lookup

log = logging.getLogger(__name__)

OBJECTIVES = ("ranking", "rating")
DEFAULT_THRESHOLD = 4.0
NDCG_FLOOR = 1e-9
RANKED = ("model", "popularity")  # the scorers of the ranking block


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


# ---------------------------------------------------------------- reading


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
    model = load_model_tar(tars[0])
    dim = model.params.feature_dim
    X_test, y_test = _channel(inp / "test", "test", dim)
    X_train, y_train = _channel(inp / "train", "train", dim)
    lookup = read_lookup(inp / "lookup")
    if lookup.feature_dim != dim:
        raise EvaluationError(f"{inp / 'lookup'}: feature_dim {lookup.feature_dim}; the model has {dim}")
    try:
        holdout = read_holdout(inp / "holdout")
    except InputError as exc:
        raise EvaluationError(str(exc)) from None
    return Inputs(model, X_test, y_test, X_train, y_train, lookup, holdout, read_curves(inp / "model"))


# ---------------------------------------------------------------- evaluation


def evaluate(
    data: Inputs,
    objective: str = OBJECTIVES[0],
    threshold: float | None = None,
    *,
    max_cells: int = MAX_SCORE_CELLS,
    seed: int = 0,
) -> dict[str, Any]:
    """The evaluation.json document (pointwise blocks, the ranking block), plus arrays the report plots."""
    model, lookup = data.model, data.lookup
    binary = model.predictor_type == "binary_classifier"
    n_users, n_movies = lookup.n_users, lookup.n_movies
    user_cols = np.array([lookup.user_column(p) for p in range(n_users)], dtype=np.int64)
    movie_cols = np.array([lookup.movie_column(p) for p in range(n_movies)], dtype=np.int64)
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
    user_rows, item_rows = lookup_rows(lookup)
    ranked = {
        "model": ranking_metrics_at_k(fm_scorer(model.params, user_rows, item_rows), task, K),
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


# ---------------------------------------------------------------- report


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(doc: dict[str, Any], y: np.ndarray, curves: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scores: dict[str, np.ndarray] = doc["_scores"]
    binary = doc["predictor_type"] == "binary_classifier"
    figures: list[tuple[str, str]] = []
    # Per-channel quality metrics only ("test:auc"), split into losses and scores so the scales fit.
    numeric = sorted({k for row in curves for k, v in row.items() if ":" in k and isinstance(v, int | float)})
    losses = [k for k in numeric if any(w in k for w in ("cross_entropy", "rmse", "mae", "loss"))]
    panels = [
        (t, keys)
        for t, keys in (("loss", losses), ("score", [k for k in numeric if k not in losses]))
        if keys
    ]
    if panels:
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
        epochs = [row.get("epoch", i + 1) for i, row in enumerate(curves)]
        for ax, (title, keys) in zip(axes[0], panels, strict=True):
            for key in keys:
                ax.plot(epochs, [row.get(key, np.nan) for row in curves], label=key)
            ax.set_xlabel("epoch")
            ax.set_title(f"Training curves: {title}")
            ax.legend(fontsize=7)
        figures.append(("Training curves", _png(fig)))
        plt.close(fig)
    if binary:
        truth = y >= 0.5
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for name, s in scores.items():
            order = np.argsort(-s, kind="stable")
            tpr = np.concatenate([[0], np.cumsum(truth[order]) / max(truth.sum(), 1)])
            fpr = np.concatenate([[0], np.cumsum(~truth[order]) / max((~truth).sum(), 1)])
            ax.plot(fpr, tpr, label=f"{name} (AUC {doc[name]['auc']:.3f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(fontsize=8)
        ax.set_title("ROC (test)")
        figures.append(("ROC", _png(fig)))
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    s = scores["model"]
    if binary:
        ax.hist([s[y >= 0.5], s[y < 0.5]], bins=40, label=["liked", "not liked"], histtype="step")
    else:
        ax.hist(s, bins=40, histtype="step", label="predicted")
        ax.hist(y, bins=40, histtype="step", label="actual")
    ax.legend(fontsize=8)
    ax.set_title("Model score distribution (test)")
    figures.append(("Score distribution", _png(fig)))
    plt.close(fig)
    if binary:
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        bins = np.linspace(0, 1, 11)
        for name, sc in scores.items():
            idx = np.clip(np.digitize(sc, bins) - 1, 0, 9)
            filled = [b for b in range(10) if (idx == b).any()]
            ax.plot(
                [sc[idx == b].mean() for b in filled], [y[idx == b].mean() for b in filled], "o-", label=name
            )
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("share liked")
        ax.legend(fontsize=8)
        ax.set_title("Calibration (test)")
        figures.append(("Calibration", _png(fig)))
        plt.close(fig)
    ranking = doc["ranking"]
    bar_keys = metric_keys(ranking["k"])
    fig, axes = plt.subplots(
        1, len(bar_keys), figsize=(2.8 * len(bar_keys), 3.2), squeeze=False, constrained_layout=True
    )
    for ax, key in zip(axes[0], bar_keys, strict=True):
        values = [ranking[name][key] for name in RANKED]
        bars = ax.bar(RANKED, values, color=["tab:blue", "tab:gray"])
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_ylim(0, max(max(values) * 1.25, 1e-3))
        ax.tick_params(labelsize=8)
    sampled = f", sampled {ranking['users']} of {ranking['users_total']} users" if ranking["sampled"] else ""
    fig.suptitle(f"Ranking at {ranking['k']} ({ranking['users']} users{sampled})", fontsize=10)
    figures.append(("Ranking metrics", _png(fig)))
    plt.close(fig)
    return figures


def report_html(doc: dict[str, Any], y: np.ndarray, curves: list[dict[str, Any]]) -> str:
    names = ("model", "popularity", "biases")
    keys = list(doc["model"])
    rows = "".join(
        f"<tr><th>{k}</th>" + "".join(f"<td>{doc[n][k]:.4f}</td>" for n in names) + "</tr>" for k in keys
    )
    ranking = doc["ranking"]
    rank_rows = "".join(
        f"<tr><th>{k}</th>" + "".join(f"<td>{ranking[n][k]:.4f}</td>" for n in RANKED) + "</tr>"
        for k in metric_keys(ranking["k"])
    )
    users = (
        f"a seeded sample of {ranking['users']} of {ranking['users_total']} users (users x catalog above "
        f"{MAX_SCORE_CELLS} scores)"
        if ranking["sampled"]
        else f"all {ranking['users']} users with a relevant held-out movie"
    )
    try:
        figures = _plots(doc, y, curves)
        plots = "".join(
            f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{png}">' for title, png in figures
        )
    except ImportError:  # matplotlib is not in every processing image; the numbers still stand
        plots = "<p>Plots unavailable: matplotlib is not installed in this image.</p>"
    counts = "".join(f"<li>{k}: {v}</li>" for k, v in doc["counts"].items())
    header = "".join(f"<th>{n}</th>" for n in names)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fmrec evaluation</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}</style>"
        f"</head><body><h1>fmrec evaluation ({html.escape(doc['objective'])} objective, "
        f"{doc['predictor_type']})</h1><ul>{counts}</ul>"
        f"<h2>Ranking at {ranking['k']}</h2><p>{users}; relevant: held-out rating &gt;= "
        f"{ranking['relevant_threshold']:g}; candidates: every movie the user did not rate in train; "
        f"NDCG@{ranking['k']} lift over popularity {ranking[f'ndcg_at_{K}_lift']:+.3f}.</p>"
        f"<table><tr><th></th>{''.join(f'<th>{n}</th>' for n in RANKED)}</tr>{rank_rows}</table>"
        f"<h2>Pointwise (test channel)</h2><table><tr><th></th>{header}</tr>{rows}</table>"
        f"{plots}</body></html>"
    )


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate.py")
    parser.add_argument("--objective", choices=OBJECTIVES, default=OBJECTIVES[0])
    parser.add_argument("--threshold", type=float, default=None, help="relevant: held-out rating >= this")
    try:
        return parser.parse_args(list(argv or []))
    except SystemExit:
        raise EvaluationError(
            f"evaluate arguments {list(argv or [])}: expected --objective {'|'.join(OBJECTIVES)} "
            "and --threshold NUMBER"
        ) from None


def main(base_dir: Path, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate base_dir/input/* and write base_dir/output/evaluation/*; returns the evaluation document."""
    args = parse_args(argv)
    data = read_inputs(Path(base_dir))
    doc = evaluate(data, args.objective, args.threshold)
    scores = doc.pop("_scores")
    out = Path(base_dir) / "output" / "evaluation"
    atomic_write_text(out / "model_metrics.json", json.dumps(model_metrics(doc), indent=2))
    atomic_write_text(out / "report.html", report_html({**doc, "_scores": scores}, data.y_test, data.curves))
    # evaluation.json last: the gate's PropertyFile appears only when everything else was written.
    atomic_write_text(out / "evaluation.json", json.dumps(doc, indent=2))
    log.info("evaluation: %s", json.dumps({k: doc[k] for k in ("model", "popularity", "biases", "ranking")}))
    return doc


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        main(Path("/opt/ml/processing"), sys.argv[1:])
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        sys.exit(2)
