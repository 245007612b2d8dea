"""Preprocess options: the argv flags of pipeline/steps/preprocess.py (kept light, so the CLI starts fast)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from fmrec.errors import InputError

AUX_USER = ("age", "gender", "occupation")
AUX_MOVIE = ("genres", "year")


@dataclass(frozen=True)
class PreprocessConfig:
    split: str = "auto"
    holdout_per_user: int = 10
    label: str = "binary"
    threshold: float = 4.0
    aux: tuple[str, ...] = ()
    shards: int = 1
    seed: int = 0
    max_reject_fraction: float = 0.05


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="preprocess", description="MovieLens folder -> one-hot recordIO-protobuf, lookup, manifest"
    )
    p.add_argument("--split", default="auto", help="ua (ml-100k default), ub, u1..u5, holdout")
    p.add_argument("--holdout-per-user", type=int, default=10)
    p.add_argument("--label", choices=("binary", "regression"), default="binary")
    p.add_argument(
        "--threshold", type=float, default=4.0, help="binary label: rating >= threshold (default 4)"
    )
    p.add_argument(
        "--aux", default="none", help="none, all, or a comma list of age,gender,occupation,genres,year"
    )
    p.add_argument(
        "--shards", type=int, default=1, help="train files for multi-instance training (default 1)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-reject-fraction", type=float, default=0.05)
    return p


def config_from_args(args: argparse.Namespace) -> PreprocessConfig:
    raw = [a.strip() for a in str(args.aux).split(",") if a.strip()]
    if raw in ([], ["none"]):
        aux: tuple[str, ...] = ()
    elif raw == ["all"]:
        aux = AUX_USER + AUX_MOVIE
    else:
        unknown = sorted(set(raw) - set(AUX_USER + AUX_MOVIE))
        if unknown:
            raise InputError(
                f"--aux: unknown feature(s) {', '.join(unknown)}; expected {', '.join(AUX_USER + AUX_MOVIE)}"
            )
        aux = tuple(a for a in AUX_USER + AUX_MOVIE if a in raw)
    if args.shards < 1:
        raise InputError(f"--shards {args.shards}: expected a positive number of files")
    if args.holdout_per_user < 1:
        raise InputError(f"--holdout-per-user {args.holdout_per_user}: expected a positive number")
    if not 0 <= args.max_reject_fraction <= 1:
        raise InputError(f"--max-reject-fraction {args.max_reject_fraction}: expected a fraction in [0, 1]")
    return PreprocessConfig(
        split=args.split,
        holdout_per_user=args.holdout_per_user,
        label=args.label,
        threshold=args.threshold,
        aux=aux,
        shards=args.shards,
        seed=args.seed,
        max_reject_fraction=args.max_reject_fraction,
    )
