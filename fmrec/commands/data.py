"""`fmrec data fetch|synth`: download MovieLens from GroupLens, or write a synthetic ml-100k-format set."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser("data", help="get a dataset: fetch MovieLens or synthesize one")
    data_sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    synth = data_sub.add_parser(
        "synth",
        help="write a synthetic dataset in the ml-100k format",
        description=(
            "Write u.data, ua.base/ua.test (10 test ratings per user), u.item, u.user, u.genre, "
            "u.occupation and u.info, drawn from a planted latent-factor model with Zipf-like popularity. "
            "Defaults match ml-100k's shape; the output is a function of the arguments alone."
        ),
    )
    synth.add_argument("--out", required=True, help="output folder (must not exist)")
    synth.add_argument("--users", type=int, default=943)
    synth.add_argument("--items", type=int, default=1682)
    synth.add_argument("--ratings", type=int, default=100_000)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--factors", type=int, default=8, help="rank of the planted model (default 8)")
    synth.set_defaults(func=_run_synth)


def _run_synth(args: argparse.Namespace) -> int:
    from fmrec.data.synth import SynthConfig, write_synth

    cfg = SynthConfig(
        users=args.users, items=args.items, ratings=args.ratings, seed=args.seed, factors=args.factors
    )
    summary = write_synth(args.out, cfg)
    print(json.dumps({"out": str(args.out), **{k: summary[k] for k in ("ratings", "train", "test")}}))
    return 0
