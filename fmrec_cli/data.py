"""`fmrec data fetch|synth`: download MovieLens from GroupLens, or write a synthetic ml-100k-format set."""

from __future__ import annotations

import argparse
import json
from typing import Any

from fmrec.errors import InputError

MAX_SEED = 2**64 - 1  # the synthetic generator's seeds: whole numbers 0..2^64-1 (numpy's SeedSequence)


def register(sub: Any) -> None:
    parser = sub.add_parser("data", help="get a dataset: fetch MovieLens or synthesize one")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset in the ml-100k format",
        description=(
            "Write u.data, ua.base/ua.test (10 test ratings per user), u.item, u.user, u.genre, "
            "u.occupation and u.info: users pick movies by taste clusters and long-tailed popularity, and "
            "rate them from a planted latent-factor model, calibrated against ml-100k. "
            "Defaults match ml-100k's shape; the output is a function of the arguments alone."
        ),
    )
    synth.add_argument("--out", required=True, help="output folder (must not exist)")
    synth.add_argument("--users", type=int, default=943)
    synth.add_argument("--items", type=int, default=1682)
    synth.add_argument("--ratings", type=int, default=100_000)
    synth.add_argument("--seed", type=int, default=0, help=f"0..{MAX_SEED} (default 0)")
    synth.add_argument("--factors", type=int, default=8, help="rank of the planted model (default 8)")
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
    from fmrec.data.synth import SynthConfig, write_synth

    if not 0 <= args.seed <= MAX_SEED:  # numpy's SeedSequence takes no negative seed
        raise InputError(f"--seed {args.seed}: expected a whole number from 0 to {MAX_SEED}")
    cfg = SynthConfig(
        users=args.users, items=args.items, ratings=args.ratings, seed=args.seed, factors=args.factors
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
