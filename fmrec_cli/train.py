"""`fmrec train`: train FM locally on recordIO channels, as a SageMaker training job would."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError, OutputError
from fmrec.features.manifest import MANIFEST_FILE, read_manifest


def _parse_hp(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--hp {item!r}: expected name=value, e.g. --hp num_factors=64")
        out[name.strip()] = value.strip()
    return out


def _manifest_feature_dim(channels: Path) -> str | None:
    """feature_dim from a preprocess output folder's manifest, if there is one beside the channels."""
    for path in (channels / MANIFEST_FILE, channels / MANIFEST_FILE.name):
        if path.is_file():
            try:
                return str(read_manifest(path).feature_dim)
            except InputError:
                return None
    return None


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
    hp: dict[str, str] = {}
    if args.hp_file:
        try:
            loaded = json.loads(Path(args.hp_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"{args.hp_file}: not a readable JSON object of hyperparameters ({exc})"
            ) from exc
        if not isinstance(loaded, dict):
            raise InputError(f"{args.hp_file}: expected a JSON object of name: string value")
        hp.update({str(k): str(v) for k, v in loaded.items()})
    hp.update(_parse_hp(args.hp))
    if "feature_dim" not in hp:
        found = _manifest_feature_dim(channels_dir)
        if found is not None:
            log.info("feature_dim=%s from the preprocess manifest", found)
            hp["feature_dim"] = found
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
        help="a hyperparameter, as SageMaker names it (repeatable); feature_dim defaults to the manifest's",
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
