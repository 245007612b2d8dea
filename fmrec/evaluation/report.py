"""The evaluation report: one HTML page with the metric tables and, where matplotlib exists, the plots."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from fmrec.evaluation.ranking import MAX_SCORE_CELLS, RANKED, K, metric_keys


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(doc: dict[str, Any], y: np.ndarray, curves: list[dict[str, Any]]) -> list[tuple[str, str]]:
    # local import: matplotlib is needed for the plots alone and slow to import; Agg must precede pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local import: after matplotlib.use("Agg")

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
                # the test channel is scored once, after the last epoch: a point, not a line
                once = sum(key in row for row in curves) == 1
                ax.plot(
                    epochs, [row.get(key, np.nan) for row in curves], label=key, marker="o" if once else None
                )
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
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}"
        "img{max-width:100%;height:auto}</style>"
        f"</head><body><h1>fmrec evaluation ({html.escape(doc['objective'])} objective, "
        f"{doc['predictor_type']})</h1><ul>{counts}</ul>"
        f"<h2>Ranking at {ranking['k']}</h2><p>{users}; relevant: held-out rating &gt;= "
        f"{ranking['relevant_threshold']:g}; candidates: every movie the user did not rate in train; "
        f"NDCG@{ranking['k']} lift over popularity {ranking[f'ndcg_at_{K}_lift']:+.3f}.</p>"
        f"<table><tr><th></th>{''.join(f'<th>{n}</th>' for n in RANKED)}</tr>{rank_rows}</table>"
        f"<h2>Pointwise (test channel)</h2><table><tr><th></th>{header}</tr>{rows}</table>"
        f"{plots}</body></html>"
    )


def run_report_html(header: Sequence[tuple[str, str]], evaluation_html: str) -> str:
    """The evaluation report with a table of the run's facts (run id, date, data, gate decision...) on top."""
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
        f"{html.escape(v)}</td></tr>"
        for k, v in header
    )
    table = f"<h1>fmrec pipeline run</h1><table>{rows}</table>"
    head, sep, body = evaluation_html.partition("<body>")
    return f"{head}{sep}{table}{body}" if sep else f"<html><body>{table}{evaluation_html}</body></html>"
