"""`fmrec data fetch|synth`: download MovieLens from GroupLens, or write a synthetic ml-100k-format set."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fmrec.data.synth_presets import LIMITS, PRESETS
from fmrec.errors import InputError

MAX_SEED = 2**64 - 1  # the synthetic generator's seeds: whole numbers 0..2^64-1 (numpy's SeedSequence)


def register(sub: Any) -> None:
    parser = sub.add_parser("data", help="get a dataset: fetch MovieLens or synthesize one")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset shaped like a MovieLens release",
        description=(
            "Users pick movies by taste clusters, franchises and long-tailed popularity, and rate them "
            "from a planted model, calibrated against the real dataset the preset is named after "
            "(docs/data.md). "
            "ml-100k (default): u.data, ua.base/ua.test (10 test ratings per user), u.item, u.user, u.genre, "
            "u.occupation, u.info. ml-latest-small: ratings.csv (half stars) and movies.csv, split 10 per "
            "user by the readers. The output is a function of the arguments alone."
        ),
    )
    synth.add_argument("--out", required=True, help="output folder (must not exist)")
    synth.add_argument(
        "--preset", default="ml-100k", choices=PRESETS, help="the shape and layout (default ml-100k)"
    )
    for flag, what in (("users", "users"), ("items", "rated movies"), ("ratings", "ratings")):
        lo, hi = LIMITS[flag]
        synth.add_argument(
            f"--{flag}", type=int, default=None, help=f"{what}, {lo:,}..{hi:,} (default: the preset's)"
        )
    synth.add_argument("--seed", type=int, default=0, help=f"0..{MAX_SEED} (default 0)")
    synth.add_argument(
        "--factors", type=int, default=None, help="rank of the planted rating model, 1..256 (default 8)"
    )
    synth.set_defaults(func=_run_synth)

    fetch = data_sub.add_parser(
        "fetch",
        help="download a MovieLens dataset from GroupLens",
        description=(
            "Download NAME.zip from GroupLens (or --base-url / $FMREC_MOVIELENS_URL), verify it against the "
            ".md5 GroupLens publishes next to it, keep it in the cache ($FMREC_CACHE, default "
            "~/.cache/fmrec/movielens) and unzip it to OUT/NAME. A cached, verified zip needs no network."
        ),
    )
    fetch.add_argument(
        "name", metavar="NAME", help="ml-100k, ml-1m, ml-25m, ml-32m, ml-latest-small, ml-latest"
    )
    fetch.add_argument("--out", required=True, help="folder to unzip into (OUT/NAME must not exist)")
    fetch.add_argument("--base-url", default=None, help="mirror URL (default GroupLens)")
    fetch.add_argument("--cache-dir", default=None, help="download cache folder")
    fetch.add_argument("--timeout", type=float, default=10.0, help="network timeout in seconds (default 10)")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bar")
    fetch.set_defaults(func=_run_fetch)


def _run_synth(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy loads only when this command runs)
    from fmrec.data.synth import preset, write_synth

    if not 0 <= args.seed <= MAX_SEED:  # numpy's SeedSequence takes no negative seed
        raise InputError(f"--seed {args.seed}: expected a whole number from 0 to {MAX_SEED}")
    cfg = preset(
        args.preset,
        users=args.users,
        items=args.items,
        ratings=args.ratings,
        seed=args.seed,
        factors=args.factors,
    )
    summary = write_synth(args.out, cfg)
    print(json.dumps({"out": str(args.out), **{k: summary[k] for k in ("ratings", "train", "test")}}))
    return 0


def _run_fetch(args: argparse.Namespace) -> int:
    # local import: CLI start-up (tqdm loads only when this command runs)
    from fmrec.data.fetch import fetch

    folder = fetch(
        args.name,
        args.out,
        base_url=args.base_url,
        cache_dir=args.cache_dir,
        timeout=args.timeout,
        progress=not args.no_progress,
    )
    print(json.dumps({"dataset": args.name, "folder": str(folder)}))
    return 0
