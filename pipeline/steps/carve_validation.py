"""Processing step of the tuning branch: split the train channel into fit and validation channels.

Reads base_dir/input/train/ (recordIO-protobuf shards, as preprocess writes them) and writes
base_dir/output/train/part-00000.pbr (the rows the trials fit on), base_dir/output/validation/part-00000.pbr
(the rows the tuning objective is measured on: the tuning job's "test" channel) and
base_dir/output/validation_split.json (row counts, fraction, seed).

Arguments: --fraction F (share of the train channel's (user, movie) pairs held out, with all their rows,
default 0.1), --seed S (default 0). The gate's test set is never read here, so it never steers the search.

In the ranking objective the rows are positives with their sampled negatives and history columns, so the
validation channel is too, and FM's validation cross-entropy is what the tuning job minimises (a tuning job
reads only the algorithm's own metrics). The split keeps every row of a pair together: a liked rating is
written twice and a row-level split would score copies of fit rows. docs/tuning.md, "Tuning for ranking",
says why the remaining overlap (a held-out movie stays in the user's other rows' history columns) is accepted.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from fmrec.tuning.split import DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_FRACTION, carve_channels
from pipeline.steps.script import run_as_script


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fraction", type=float, default=DEFAULT_VALIDATION_FRACTION)
    parser.add_argument("--seed", type=int, default=DEFAULT_SPLIT_SEED)
    return parser.parse_args(argv)


def main(base_dir: Path, argv: Sequence[str] | None = None) -> dict[str, int | float]:
    args = parse_args(argv)
    return carve_channels(base_dir / "input" / "train", base_dir / "output", args.fraction, args.seed)


if __name__ == "__main__":
    run_as_script("carve_validation", main)
