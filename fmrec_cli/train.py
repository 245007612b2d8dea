"""`fmrec train`: train FM locally on recordIO channels, as a SageMaker training job would."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError, OutputError

# The preprocess label mode -> the FM predictor that trains it (the pipeline trains binary labels with the
# classifier, docs/training.md).
LABEL_PREDICTORS = {"binary": "binary_classifier", "regression": "regressor"}


def _parse_hp(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--hp {item!r}: expected name=value, e.g. --hp num_factors=64")
        out[name.strip()] = value.strip()
    return out


def _read_manifest(channels: Path) -> dict[str, Any]:
    """The preprocess manifest beside the channels ({} when there is none or it is unreadable)."""
    for path in (channels / "manifest" / "manifest.json", channels / "manifest.json"):
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
            return doc if isinstance(doc, dict) else {}
    return {}


def manifest_defaults(channels: Path) -> dict[str, str]:
    """feature_dim and predictor_type as the preprocess manifest implies them (as the pipeline sets them)."""
    manifest = _read_manifest(channels)
    out: dict[str, str] = {}
    if manifest.get("feature_dim") is not None:
        out["feature_dim"] = str(manifest["feature_dim"])
    label = manifest.get("label")
    mode = label.get("mode") if isinstance(label, dict) else None
    if mode in LABEL_PREDICTORS:
        out["predictor_type"] = LABEL_PREDICTORS[mode]
    return out


def default_hyperparameters(channels: Path, sagemaker_defaults: bool) -> dict[str, str]:
    """What `fmrec train` starts from: the manifest's feature_dim and predictor type, and, unless
    `sagemaker_defaults`, the recommended settings the pipeline trains with (fmrec.model.hyperparameters)."""
    # local import: CLI start-up (the hyperparameter table loads only when this command runs)
    from fmrec.model.hyperparameters import RECOMMENDED

    return {**({} if sagemaker_defaults else RECOMMENDED), **manifest_defaults(channels)}


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy, scipy and numba load only when this command runs)
    from twins.training.job import (
        FAILURE_NAME,
        clear_previous_outputs,
        failure_text,
        run_training,
        write_failure,
    )

    log = logging.getLogger("fmrec.training")
    channels_dir = Path(args.channels)
    if not channels_dir.is_dir():
        raise InputError(
            f"{channels_dir}: no such folder; expected one holding train/ (and optionally test/)"
        )
    hp: dict[str, str] = default_hyperparameters(channels_dir, args.sagemaker_defaults)
    given: dict[str, str] = {}
    if args.hp_file:
        try:
            loaded = json.loads(Path(args.hp_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{args.hp_file}: not a readable JSON object of hyperparameters ({exc})"
            ) from exc
        if not isinstance(loaded, dict):
            raise InputError(f"{args.hp_file}: expected a JSON object of name: string value")
        given.update({str(k): str(v) for k, v in loaded.items()})
    given.update(_parse_hp(args.hp))
    defaulted = {k: v for k, v in hp.items() if k not in given}
    if defaulted:
        source = (
            "the preprocess manifest"
            if args.sagemaker_defaults
            else "the manifest and the recommended settings"
        )
        log.info("from %s: %s", source, " ".join(f"{k}={v}" for k, v in sorted(defaulted.items())))
    hp.update(given)
    channels = {name: channels_dir / name for name in ("train", "test") if (channels_dir / name).is_dir()}
    if "train" not in channels:
        channels["train"] = channels_dir / "train"
    model_dir = Path(args.model_dir)
    output_dir = Path(args.output_dir) if args.output_dir else model_dir
    failure = output_dir / FAILURE_NAME
    try:
        clear_previous_outputs(model_dir, output_dir)  # as the training-job twin: no stale model or metrics
    except OSError as exc:
        raise OutputError(f"{output_dir}: cannot write here ({exc.strerror or exc})") from exc
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    try:
        doc: dict[str, Any] = run_training(
            hp, channels, model_dir, output_dir, seed=args.seed, progress=progress
        )
    except Exception as exc:
        text, code = failure_text(exc)
        write_failure(failure, text)
        if code == 1:
            raise  # an internal error: its traceback is the report
        if isinstance(exc, FmrecError):
            raise
        raise OutputError(text.strip()) from exc
    final = doc["final_metrics"]
    summary = ", ".join(f"{k}={v:.4f}" for k, v in final.items() if isinstance(v, float))
    print(f"model: {model_dir / 'model.tar.gz'}")
    print(f"metrics: {output_dir / 'data' / 'metrics.json'}")
    epochs = len(doc["history"])
    print(f"{doc['train_rows']} train rows, {epochs} epochs in {doc['train_seconds']:.2f} s; {summary}")
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "train",
        help="train Factorization Machines locally (the SageMaker training-job twin)",
        description=(
            "Train FM on recordIO-protobuf channels with SageMaker FM's hyperparameters. Writes "
            "MODEL_DIR/model.tar.gz and OUTPUT_DIR/data/metrics.json (per-epoch history); on bad input, "
            "OUTPUT_DIR/failure and a non-zero exit."
        ),
    )
    parser.add_argument(
        "--channels", required=True, metavar="DIR", help="folder with train/ and optional test/"
    )
    parser.add_argument("--model-dir", required=True, metavar="DIR", help="where model.tar.gz goes")
    parser.add_argument("--output-dir", metavar="DIR", help="metrics and failure file (default: --model-dir)")
    parser.add_argument(
        "--hp",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyperparameter, as SageMaker names it (repeatable); feature_dim and predictor_type default "
        "to the preprocess manifest's, the others to the recommended settings the pipeline trains with",
    )
    parser.add_argument(
        "--sagemaker-defaults",
        action="store_true",
        help="leave unset hyperparameters at SageMaker FM's defaults instead of the recommended settings "
        "(num_factors is then required)",
    )
    parser.add_argument("--hp-file", metavar="JSON", help="hyperparameters.json to start from")
    parser.add_argument(
        "--seed", type=int, default=0, help="random seed for initialisation and order (default 0)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a TTY)",
    )
    parser.set_defaults(func=run)
