"""`fmrec preprocess`: the preprocess step (pipeline/steps/preprocess.py) on a local MovieLens folder."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fmrec.features.options import build_arg_parser, config_from_args


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "preprocess",
        help="MovieLens folder -> recordIO-protobuf train/test, lookup artifacts, manifest",
        description=(
            "Run the pipeline's preprocess step locally. Writes OUT/train/part-*.pbr, "
            "OUT/test/part-00000.pbr, OUT/lookup/, OUT/holdout/ratings.tsv, OUT/manifest/manifest.json and "
            "OUT/manifest/data_quality.json; OUT appears whole or not at all. --objective ranking (default) "
            "adds sampled unrated movies as negatives; --objective rating writes the seed's rows."
        ),
    )
    parser.add_argument(
        "--data-dir", required=True, help="a MovieLens folder (ml-100k, ml-1m, ml-latest layout)"
    )
    parser.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    build_arg_parser(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy and scipy load only when this command runs)
    from fmrec.stages.preprocess import run

    manifest = run(args.data_dir, args.out, config_from_args(args), overwrite=args.overwrite)
    print(json.dumps({"out": str(args.out), "feature_dim": manifest["feature_dim"], **manifest["counts"]}))
    return 0
