"""Processing step: score the trained FM and its baselines; write evaluation.json, model_metrics.json, report.

Reads base_dir/input/model/ (the training job's output folder: model.tar.gz, and output.tar.gz or
metrics.json with per-epoch curves when the trainer wrote them), base_dir/input/test/ and input/train/
(recordIO-protobuf channels), base_dir/input/lookup/ (the serving lookups) and base_dir/input/holdout/
ratings.tsv (the raw held-out ratings), and writes base_dir/output/evaluation/{evaluation.json,
model_metrics.json, report.html} and base_dir/output/model/model.tar.gz, the model it judged and RegisterModel
registers: the training job's artifact byte for byte, or, with a neighbour table in the lookup (preprocess
--neighbours), the trained one with the neighbour column's weight set
(fmrec.features.neighbours.served_model). argv: --objective ranking|rating (recorded; the gate reads it
from the pipeline parameter), --threshold X (relevance: held-out rating >= X; default the lookup's label
threshold).

The reading, metrics, baselines and report live in fmrec.evaluation (evaluate.py, report.py); this script
parses its arguments, calls them and writes. evaluation.json:
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
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmrec.evaluation.report import report_html
from fmrec.features.objective import OBJECTIVES
from fmrec.features.settings import DEFAULTS
from fmrec.io_utils import atomic_write_bytes, atomic_write_text
from fmrec.model.artifact import save_model_tar
from fmrec.numbers import attach_option_values, parse_float
from fmrec.stages.evaluate import EvaluationError, evaluate, model_metrics, read_inputs
from pipeline.steps.script import run_as_script

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate.py")
    parser.add_argument("--objective", choices=OBJECTIVES, default=DEFAULTS["objective"])
    parser.add_argument(
        "--threshold", type=parse_float, default=None, help="relevant: held-out rating >= this"
    )
    try:
        return parser.parse_args(attach_option_values(parser, argv or []))
    except SystemExit:
        raise EvaluationError(
            f"evaluate arguments {list(argv or [])}: expected --objective {'|'.join(OBJECTIVES)} "
            "and --threshold NUMBER"
        ) from None


def main(base_dir: Path, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Evaluate base_dir/input/* and write base_dir/output/evaluation/*; returns the evaluation document."""
    args = parse_args(argv)
    data = read_inputs(Path(base_dir))
    served = Path(base_dir) / "output" / "model" / "model.tar.gz"  # what RegisterModel registers
    if data.lookup.neighbours is not None:  # read_inputs gave the served model (the column's weight set)
        save_model_tar(data.model, served)
    elif data.model_tar is not None:  # the training job's artifact, byte for byte
        atomic_write_bytes(served, data.model_tar.read_bytes())
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
    run_as_script("evaluate", main)
