"""Preprocess step: MovieLens folder -> one-hot recordIO-protobuf train/test, lookup artifacts, manifest.

SageMaker Processing script: `main(base_dir, argv)` reads base_dir/input/data/ and writes base_dir/output/
{train,test,lookup,manifest}/; `fmrec preprocess --data-dir DIR --out DIR [flags]` runs the same code.

argv flags (all optional):
  --split S               ml-100k: ua (default), ub, u1..u5, or holdout; other layouts: holdout (default)
  --holdout-per-user N    ratings per user held out for test when splitting u.data / ratings.* (default 10)
  --label binary|regression   binary: 1.0 if rating >= --threshold else 0.0 (default); regression: the rating
  --threshold X           binary label threshold (default 4)
  --aux LIST              auxiliary features appended after the movie block: comma list of
                          age,gender,occupation (user side), genres,year (movie side); "all"; "none" (default)
  --shards N              split train into N files part-00000.pbr.. for ShardedByS3Key training (default 1)
  --seed N                seed of the holdout split (default 0)
  --max-reject-fraction F a ratings file with more rejected rows than this fraction is an error (default 0.05)
  --objective ranking|rating  ranking (default): rated movies as positives plus sampled unrated movies as
                          negatives (fmrec/features/sampling.py); rating: the seed's rated-pairs-only rows
  --negatives N           ranking: unrated movies sampled per positive (default 4)
  --negative-exponent X   ranking: sampling weight train count ** X, X in [0, 1] (default 0.75)
  --positives all|liked   ranking: every rated movie (default) or only ratings >= --threshold
  --below-threshold-negatives [true|false]  ranking with --positives liked: low ratings are negatives too
  --predictor-type T      the FM predictor_type that trains the rows (ranking needs binary_classifier)

Outputs: train/part-NNNNN.pbr, test/part-00000.pbr (float32 one-hot rows, float32 labels, byte-identical to
SDK 2.x write_spmatrix_to_sparse_tensor for --objective rating), lookup/ (fmrec.serving.lookup.LOOKUP_FILES),
holdout/ratings.tsv (the raw held-out ratings, ids not columns, for the ranking evaluation),
manifest/manifest.json (feature_dim, layout, objective, sampling counts, label balance, files) and
manifest/data_quality.json. Ranking mode: train holds the positives and sampled negatives in a seeded
shuffled order; test holds the held-out positives and negatives sampled from movies the user rated neither
in train nor in test, so FM's test cross-entropy is a ranking validation metric.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError, OutputError
from fmrec.features.options import PreprocessConfig, build_arg_parser, config_from_args
from fmrec.features.preprocess import OUTPUT_CHANNELS, preprocess
from fmrec.io_utils import atomic_open
from fmrec.numbers import attach_option_values


def _publish(tmp: Path, out: Path) -> None:
    """Fill each (empty) channel folder with the files built in `tmp`.

    Each output's LocalPath "will be created by the platform and exist when your container's entrypoint is
    invoked" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Output.html): it is a
    mount point, which cannot be removed or renamed over (EBUSY), and a rename into it from elsewhere crosses
    devices (EXDEV). So the folders stay and the files go in one by one, each atomically (renamed on the same
    device, else copied to a temporary name and renamed); a failure removes every file already published.
    """
    for name in OUTPUT_CHANNELS:
        target = out / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise OutputError(f"{target}: already holds files; expected an empty output channel")
    published: list[Path] = []
    made: list[Path] = []
    try:
        for name in OUTPUT_CHANNELS:
            if not (out / name).exists():  # the local runner does not pre-create the channels
                (out / name).mkdir(parents=True)
                made.append(out / name)
            for src in sorted(p for p in (tmp / name).rglob("*") if p.is_file()):
                dst = out / name / src.relative_to(tmp / name)
                for folder in reversed(dst.parents):
                    if out / name in folder.parents and not folder.exists():
                        folder.mkdir()
                        made.append(folder)
                try:
                    os.replace(src, dst)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    with src.open("rb") as fh_in, atomic_open(dst) as fh_out:
                        shutil.copyfileobj(fh_in, fh_out, 1 << 20)
                published.append(dst)
    except BaseException:
        for path in published:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def check_arguments(argv: Sequence[str]) -> PreprocessConfig:
    """The step's arguments as a config, or InputError: the local runner calls this before any step runs."""
    parser = build_arg_parser(argparse.ArgumentParser(prog="preprocess", exit_on_error=False))
    try:
        args, unknown = parser.parse_known_args(attach_option_values(parser, argv))
    except argparse.ArgumentError as exc:
        raise InputError(f"preprocess arguments: {exc}") from None
    if unknown:
        raise InputError(f"preprocess arguments: unrecognized {' '.join(unknown)}")
    return config_from_args(args)


def main(base_dir: str | Path, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Processing entry point: base_dir/input/data -> base_dir/output/{train,test,lookup,manifest}."""
    base = Path(base_dir)
    parser = build_arg_parser()
    cfg = config_from_args(parser.parse_args(attach_option_values(parser, argv or [])))
    out = base / "output"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".preprocess.", dir=out))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write here ({exc.strerror or exc})") from exc
    try:
        manifest = preprocess(base / "input" / "data", tmp, cfg)
        _publish(tmp, out)
        return manifest
    except OSError as exc:  # a full or failing disk: the plain writes inside tmp raise bare OSError
        raise OutputError(f"{out}: cannot write the output ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main(Path("/opt/ml/processing"), sys.argv[1:])
    except (
        FmrecError
    ) as exc:  # a clear message and a non-zero exit, as SageMaker shows it in the job's failure
        print(f"preprocess: error: {exc}", file=sys.stderr)
        sys.exit(2)
