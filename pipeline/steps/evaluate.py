"""Processing step: score the trained FM and two baselines on the test channel; write evaluation + report.

Reads base_dir/input/model/ (the training job's output folder: model.tar.gz, and output.tar.gz or
metrics.json with per-epoch curves when the trainer wrote them), base_dir/input/test/ and input/train/
(recordIO-protobuf channels) and base_dir/input/lookup/ (the serving lookups), and writes
base_dir/output/evaluation/{evaluation.json, model_metrics.json, report.html}.

evaluation.json: {"model": {...}, "popularity": {...}, "biases": {...}, ...}; each block holds the pointwise
metrics (binary: accuracy, auc, log_loss, f1; regressor: rmse, mae) and the ranking metrics on held-out
ratings (precision_at_10, recall_at_10, ndcg_at_10, coverage). Baselines: popularity (a 1-D fit on the
movie's log train count) and biases-only (L2-regularised linear model on the same one-hot columns, i.e. an
FM without interactions). The pipeline's gate compares them through a PropertyFile.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from fmrec.codec.recordio import read_spmatrix
from fmrec.errors import InputError
from fmrec.io_utils import atomic_write_text
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from fmrec.model.metrics import binary_metrics, regression_metrics
from fmrec.serving.lookup import Lookup, read_lookup

log = logging.getLogger(__name__)

K = 10
MAX_RANKED_USERS = 2000  # ranking metrics on a fixed-seed sample of test users keeps big datasets fast
BIAS_L2 = 1e-4  # per-example L2 of the biases-only baseline (mean loss + BIAS_L2/2 * |w|^2)


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
    return Inputs(model, X_test, y_test, X_train, y_train, lookup, read_curves(inp / "model"))


# ---------------------------------------------------------------- baselines


def _fit_linear(X: sp.csr_matrix, y: np.ndarray, binary: bool, l2: float) -> tuple[float, np.ndarray]:
    """w0, w minimising mean log loss (binary) or half mean squared error, plus l2/2 |w|^2 (L-BFGS)."""
    n, d = X.shape
    Xt = X.T.tocsr()

    def loss_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = theta[0] + X @ theta[1:]
        if binary:
            # log(1 + e^z) - y z, computed stably
            loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
            r = fm.sigmoid(z) - y
        else:
            r = z - y
            loss = float(0.5 * np.mean(r * r))
        grad = np.empty(d + 1)
        grad[0] = r.mean()
        grad[1:] = Xt @ r / n + l2 * theta[1:]
        return loss + 0.5 * l2 * float(theta[1:] @ theta[1:]), grad

    start = np.zeros(d + 1)
    start[0] = math.log(max(y.mean(), 1e-6) / max(1 - y.mean(), 1e-6)) if binary else float(y.mean())
    result = minimize(loss_grad, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return float(result.x[0]), result.x[1:]


@dataclass
class Baselines:
    """Scores of the popularity and biases-only baselines for any one-hot rows."""

    movie_cols: np.ndarray  # one-hot column of each movie position
    counts: np.ndarray  # train count per movie position
    pop: tuple[float, float]  # a + b * log1p(count)
    bias: tuple[float, np.ndarray]  # w0, w over all columns
    binary: bool

    def _link(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(fm.sigmoid(z)) if self.binary else z

    def popularity(self, movie_pos: np.ndarray) -> np.ndarray:
        a, b = self.pop
        return self._link(a + b * np.log1p(self.counts[movie_pos]))

    def biases(self, X: sp.csr_matrix) -> np.ndarray:
        w0, w = self.bias
        return self._link(w0 + X @ w)


def fit_baselines(
    X_train: sp.csr_matrix, y_train: np.ndarray, movie_cols: np.ndarray, binary: bool
) -> Baselines:
    col_counts = np.asarray(X_train.getnnz(axis=0)).ravel()
    counts = col_counts[movie_cols].astype(np.float64)
    train_movie = _row_positions(X_train, movie_cols, "train")
    feature = sp.csr_matrix(np.log1p(counts[train_movie]).reshape(-1, 1))
    pop_w0, pop_w = _fit_linear(feature, y_train, binary, l2=0.0)
    bias = _fit_linear(X_train, y_train, binary, l2=BIAS_L2)
    return Baselines(movie_cols, counts, (pop_w0, float(pop_w[0])), bias, binary)


# ---------------------------------------------------------------- metrics


def _row_positions(X: sp.csr_matrix, cols: np.ndarray, channel: str) -> np.ndarray:
    """For each row, the position (index into `cols`) of the one column of that block it has set."""
    position = np.full(X.shape[1], -1, dtype=np.int64)
    position[cols] = np.arange(cols.size)
    out = np.full(X.shape[0], -1, dtype=np.int64)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    hit = position[X.indices] >= 0
    out[rows[hit]] = position[X.indices[hit]]
    if (out < 0).any():
        raise EvaluationError(
            f"{channel} row {int(np.argmax(out < 0))}: no column of the expected one-hot block"
        )
    return out


def pointwise(binary: bool, y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    if binary:
        m = binary_metrics(y, scores)
        return {"accuracy": m["accuracy"], "auc": m["auc"], "log_loss": m["cross_entropy"], "f1": m["f1"]}
    return regression_metrics(y, scores)


def ranking(
    scorers: dict[str, Callable[[int, np.ndarray], np.ndarray]],
    relevant: dict[int, set[int]],
    seen: Callable[[int], Sequence[int]],
    n_movies: int,
    k: int = K,
) -> dict[str, dict[str, float]]:
    """precision@k, recall@k, NDCG@k over users with relevant held-out movies, and catalog coverage.

    Candidates of a user are the movies they did not rate in train; `scorers[name](user_pos, candidates)`
    returns one score per candidate.
    """
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out: dict[str, dict[str, float]] = {}
    for name, score in scorers.items():
        precision = recall = ndcg = 0.0
        shown: set[int] = set()
        for user, rel in relevant.items():
            mask = np.ones(n_movies, dtype=bool)
            mask[list(seen(user))] = False
            candidates = np.flatnonzero(mask)
            s = score(user, candidates)
            top = candidates[np.argsort(-s, kind="stable")[:k]]
            hits = np.array([m in rel for m in top], dtype=np.float64)
            precision += hits.sum() / k
            recall += hits.sum() / len(rel)
            ideal = discounts[: min(len(rel), k)].sum()
            ndcg += float(hits @ discounts[: hits.size]) / ideal
            shown.update(int(m) for m in top)
        n = max(len(relevant), 1)
        out[name] = {
            f"precision_at_{k}": precision / n,
            f"recall_at_{k}": recall / n,
            f"ndcg_at_{k}": ndcg / n,
            "coverage": len(shown) / n_movies,
        }
    return out


def evaluate(data: Inputs, max_users: int = MAX_RANKED_USERS, seed: int = 0) -> dict[str, Any]:
    """The evaluation.json document (model, popularity, biases), plus arrays the report plots."""
    model, lookup = data.model, data.lookup
    binary = model.predictor_type == "binary_classifier"
    n_users, n_movies = len(lookup.user_ids), len(lookup.movie_ids)
    user_cols = np.array([lookup.user_column(p) for p in range(n_users)], dtype=np.int64)
    movie_cols = np.array([lookup.movie_column(p) for p in range(n_movies)], dtype=np.int64)

    base = fit_baselines(data.X_train, data.y_train, movie_cols, binary)
    test_users = _row_positions(data.X_test, user_cols, "test")
    test_movies = _row_positions(data.X_test, movie_cols, "test")
    scores = {
        "model": np.asarray(fm.predict(model.params, data.X_test, model.predictor_type), dtype=np.float64),
        "popularity": base.popularity(test_movies),
        "biases": base.biases(data.X_test),
    }
    doc: dict[str, Any] = {name: pointwise(binary, data.y_test, s) for name, s in scores.items()}

    # Relevant = held-out movies the user liked (label 1; for a regressor, rating >= the lookup's threshold).
    cut = 0.5 if binary else float(getattr(lookup, "label_threshold", 4.0) or 4.0)
    liked = data.y_test >= cut
    relevant: dict[int, set[int]] = {}
    for u, m in zip(test_users[liked].tolist(), test_movies[liked].tolist(), strict=True):
        relevant.setdefault(u, set()).add(m)
    if len(relevant) > max_users:
        keep = np.random.default_rng(seed).choice(sorted(relevant), size=max_users, replace=False)
        relevant = {int(u): relevant[int(u)] for u in sorted(keep)}

    item_rows = sp.csr_matrix(
        (
            np.ones(sum(len(lookup.movie_keys(p)) for p in range(n_movies)), dtype=np.float32),
            np.concatenate([np.asarray(lookup.movie_keys(p), dtype=np.int64) for p in range(n_movies)]),
            np.cumsum([0] + [len(lookup.movie_keys(p)) for p in range(n_movies)]),
        ),
        shape=(n_movies, lookup.feature_dim),
    )
    _, w = base.bias

    def fm_scores(user: int, cand: np.ndarray) -> np.ndarray:
        return np.asarray(
            fm.score_user_candidates(
                model.params,
                lookup.user_keys(user),
                item_rows[cand],
                model.predictor_type,
                user_values=lookup.user_values(user),
            )
        )

    def pop_scores(user: int, cand: np.ndarray) -> np.ndarray:
        return base.counts[cand]

    def bias_scores(user: int, cand: np.ndarray) -> np.ndarray:
        return np.asarray(item_rows[cand] @ w)  # the user's own terms shift every candidate equally

    ranked = ranking(
        {"model": fm_scores, "popularity": pop_scores, "biases": bias_scores},
        relevant,
        lambda u: list(lookup.rated_positions(u)),
        n_movies,
    )
    for name in doc:
        doc[name].update(ranked[name])
    doc.update(
        predictor_type=model.predictor_type,
        ranking_k=K,
        counts={
            "train_rows": int(data.X_train.shape[0]),
            "test_rows": int(data.X_test.shape[0]),
            "test_positive_share": float(liked.mean()),
            "users_ranked": len(relevant),
            "movies": n_movies,
            "feature_dim": int(lookup.feature_dim),
        },
        hyperparameters=dict(model.hyperparameters),
    )
    doc["_scores"] = scores
    return doc


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
    out["ranking_metrics"] = {
        k: entry(m[k]) for k in (f"precision_at_{K}", f"recall_at_{K}", f"ndcg_at_{K}", "coverage")
    }
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
    return figures


def report_html(doc: dict[str, Any], y: np.ndarray, curves: list[dict[str, Any]]) -> str:
    names = ("model", "popularity", "biases")
    keys = list(doc["model"])
    rows = "".join(
        f"<tr><th>{k}</th>" + "".join(f"<td>{doc[n][k]:.4f}</td>" for n in names) + "</tr>" for k in keys
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
        f"</head><body><h1>fmrec evaluation ({doc['predictor_type']})</h1><ul>{counts}</ul>"
        f"<table><tr><th></th>{header}</tr>{rows}</table>{plots}</body></html>"
    )


# ---------------------------------------------------------------- entry point


def main(base_dir: Path) -> dict[str, Any]:
    """Evaluate base_dir/input/* and write base_dir/output/evaluation/*; returns the evaluation document."""
    data = read_inputs(Path(base_dir))
    doc = evaluate(data)
    scores = doc.pop("_scores")
    out = Path(base_dir) / "output" / "evaluation"
    atomic_write_text(out / "model_metrics.json", json.dumps(model_metrics(doc), indent=2))
    atomic_write_text(out / "report.html", report_html({**doc, "_scores": scores}, data.y_test, data.curves))
    # evaluation.json last: the gate's PropertyFile appears only when everything else was written.
    atomic_write_text(out / "evaluation.json", json.dumps(doc, indent=2))
    log.info("evaluation: %s", json.dumps({k: doc[k] for k in ("model", "popularity", "biases")}))
    return doc


if __name__ == "__main__":
    import sys

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        main(Path("/opt/ml/processing"))
    except InputError as exc:
        print(f"evaluate: error: {exc}", file=sys.stderr)
        sys.exit(2)
