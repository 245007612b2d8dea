"""Batch step: every user's top k from the approved model artifact and its lookup, as JSON Lines.

Reads base_dir/input/model/ (a folder holding model.tar.gz) and base_dir/input/lookup/ (the lookup preprocess
wrote in the same pipeline run); writes base_dir/output/recommendations/recommendations.jsonl and, last,
summary.json. A thin shell over fmrec.serving.batch (docs/pipeline.md, "Batch recommendations").
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec.io_utils import atomic_write_text
from fmrec.model.artifact import load_model_tar
from fmrec.serving.batch import write_all_users
from fmrec.serving.lookup import read_lookup
from pipeline.steps.script import run_as_script

log = logging.getLogger(__name__)
OUTPUT_NAME = "recommendations.jsonl"


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered == "true"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="batch_recommend.py")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exclude-rated", type=_bool, default=True)
    args = parser.parse_args(list(argv))
    if not 1 <= args.k <= 1000:
        raise InputError(f"--k {args.k}: expected 1..1000")
    return args


def main(base_dir: Path, argv: Sequence[str] = ()) -> dict[str, Any]:
    args = parse_args(argv)
    base = Path(base_dir)
    tars = sorted((base / "input" / "model").rglob("*.tar.gz"))
    if len(tars) != 1:
        raise InputError(
            f"{base / 'input' / 'model'}: expected one model artifact (*.tar.gz), found {len(tars)}"
        )
    model = load_model_tar(tars[0])
    lookup = read_lookup(base / "input" / "lookup")
    out = base / "output" / "recommendations"
    started = time.perf_counter()
    users = write_all_users(out / OUTPUT_NAME, model, lookup, args.k, exclude_rated=args.exclude_rated)
    summary = {
        "users": users,
        "movies": len(lookup.movie_ids),
        "k": args.k,
        "exclude_rated": args.exclude_rated,
        "seconds": round(time.perf_counter() - started, 3),
        "file": OUTPUT_NAME,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    log.info("batch recommendations: %s", json.dumps(summary))
    return summary


if __name__ == "__main__":
    run_as_script("batch_recommend", main)
