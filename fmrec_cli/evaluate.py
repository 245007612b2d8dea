"""`fmrec evaluate`: a model's ranking and pointwise metrics against the baselines, outside the pipeline."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fmrec.errors import InputError


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="score any model.tar.gz as the pipeline's evaluate step does (NDCG@10 first)",
        description=(
            "Evaluate MODEL on a preprocess output folder (train/, test/, lookup/, holdout/) as the "
            "pipeline's evaluate step does: ranking metrics at 10 over every held-out user against "
            "popularity, pointwise metrics against popularity and biases-only baselines."
        ),
    )
    parser.add_argument("--model", type=Path, required=True, metavar="PATH", help="model.tar.gz")
    parser.add_argument("--channels", type=Path, required=True, metavar="DIR", help="preprocess output")
    parser.add_argument("--threshold", type=float, default=None, help="relevant: rating >= this (lookup's)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write evaluation.json, model_metrics.json and report.html here",
    )
    parser.set_defaults(func=run)


def _objective(channels: Path) -> str:
    try:
        manifest = json.loads((channels / "manifest" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "ranking"
    return str(manifest.get("objective") or "ranking")


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy and scipy load only when this command runs)
    from fmrec.evaluation.evaluate import evaluate, model_metrics, read_processed
    from fmrec.evaluation.report import report_html
    from fmrec.io_utils import atomic_write_text

    if not args.model.is_file():
        raise InputError(f"--model {args.model}: no such file (expected a model.tar.gz)")
    data = read_processed(args.model, args.channels)
    doc = evaluate(data, _objective(args.channels), args.threshold)
    scores = doc.pop("_scores")
    ranking = doc["ranking"]
    print(f"ranking at {ranking['k']}, {ranking['users']} users ({doc['objective']} objective):")
    for name in ("model", "popularity"):
        print(f"  {name:<10} " + "  ".join(f"{k} {v:.4f}" for k, v in ranking[name].items()))
    print(f"  NDCG@10 lift over popularity {ranking['ndcg_at_10_lift']:+.1%}")
    print("pointwise (test channel):")
    for name in ("model", "popularity", "biases"):
        print(f"  {name:<10} " + "  ".join(f"{k} {v:.4f}" for k, v in doc[name].items()))
    if args.out is not None:
        atomic_write_text(args.out / "model_metrics.json", json.dumps(model_metrics(doc), indent=2))
        atomic_write_text(
            args.out / "report.html", report_html({**doc, "_scores": scores}, data.y_test, data.curves)
        )
        atomic_write_text(args.out / "evaluation.json", json.dumps(doc, indent=2))
        print(f"wrote {args.out / 'evaluation.json'}, model_metrics.json, report.html")
    return 0
