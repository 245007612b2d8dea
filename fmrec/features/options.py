"""Preprocess options: the argv flags of pipeline/steps/preprocess.py (kept light, so the CLI starts fast)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from fmrec.data.scale import RATING_MAX, RATING_MIN
from fmrec.errors import InputError
from fmrec.features.history import HistoryConfig
from fmrec.features.objective import OBJECTIVES, POSITIVE_RULES, PREDICTORS, SamplingConfig, check_objective

AUX_USER = ("age", "gender", "occupation")
AUX_MOVIE = ("genres", "year")
# History columns per ranking row by default: chosen by the search in docs/tuning.md ("The ranking defaults")
DEFAULT_HISTORY = 128


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
    # The training objective and its row sampling (fmrec/features/sampling.py, SamplingConfig)
    objective: str = "ranking"
    negatives_per_positive: int = 4
    negative_exponent: float = 0.75
    positives: str = "weighted"
    below_threshold_negatives: bool = False
    predictor_type: str = "binary_classifier"
    # History columns per ranking row (fmrec/features/history.py); None: DEFAULT_HISTORY for ranking, 0 else
    history: int | None = None
    # Implicit feedback (clicks, views): every row is a positive, whatever its rating column holds
    implicit: bool = False

    def history_config(self) -> HistoryConfig | None:
        """The rated-movie history block, or None: the rating objective keeps the seed's columns exactly (so a
        pipeline's HistoryLength parameter does not stop a rating run)."""
        cfg = HistoryConfig(cap=DEFAULT_HISTORY if self.history is None else self.history)
        cfg.validate("--history")
        return cfg if cfg.enabled and self.objective == "ranking" else None

    def sampling(self) -> SamplingConfig:
        """The sampler's config (validated: an out-of-range value raises InputError)."""
        return SamplingConfig(
            objective=self.objective,
            negatives_per_positive=self.negatives_per_positive,
            popularity_exponent=self.negative_exponent,
            positives=self.positives,
            below_threshold_as_negative=self.below_threshold_negatives,
            seed=self.seed,
        )


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
    p.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default="ranking",
        help="ranking (default): rated movies as positives plus sampled unrated movies as negatives; "
        "rating: the seed's task, labels from the ratings of rated pairs only",
    )
    p.add_argument(
        "--negatives",
        type=int,
        default=4,
        help="ranking: unrated movies sampled per positive (1..100, default 4; 0 only with "
        "--below-threshold-negatives)",
    )
    p.add_argument(
        "--negative-exponent",
        type=float,
        default=0.75,
        help="ranking: negatives drawn with weight train count ** X (0 uniform, 1 popularity; default 0.75)",
    )
    p.add_argument(
        "--positives",
        choices=POSITIVE_RULES,
        default="weighted",
        help="ranking: weighted = every rated movie is a positive, a liked one (>= --threshold) twice "
        "(default); all = every rated movie once; liked = only ratings >= --threshold",
    )
    p.add_argument(
        "--below-threshold-negatives",
        nargs="?",
        const="true",
        default="false",
        type=_boolean,
        help="ranking with --positives liked: ratings below --threshold become negatives too "
        "(a bare flag means true; the pipeline passes true/false)",
    )
    p.add_argument(
        "--predictor-type",
        choices=sorted({p for ps in PREDICTORS.values() for p in ps}),
        default="binary_classifier",
        help="the FM predictor_type that will train these rows (ranking needs binary_classifier)",
    )
    p.add_argument(
        "--implicit",
        action="store_true",
        help="implicit feedback (clicks, views): every row is a liked positive and the rating column is "
        "ignored (ranking objective only)",
    )
    p.add_argument(
        "--history",
        type=int,
        default=None,
        help=f"ranking: the user's rated movies as weighted columns, at most N per row (0 = none; default "
        f"{DEFAULT_HISTORY}; the rating objective has none and ignores it)",
    )
    return p


def _boolean(raw: str) -> bool:
    if str(raw).lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {raw!r}")
    return str(raw).lower() == "true"


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
    if not (math.isfinite(args.threshold) and RATING_MIN <= args.threshold <= RATING_MAX):
        # outside the scale every label is the same (nan: every label 0, and a bare NaN in the JSON)
        raise InputError(
            f"--threshold {args.threshold}: expected a rating from {RATING_MIN:g} to {RATING_MAX:g} "
            "(label 1: rating >= threshold)"
        )
    if not 0 <= args.max_reject_fraction <= 1:
        raise InputError(f"--max-reject-fraction {args.max_reject_fraction}: expected a fraction in [0, 1]")
    check_objective(args.objective, args.predictor_type, args.label)
    if args.implicit and args.objective != "ranking":
        raise InputError("--implicit: implicit feedback has no ratings to predict; use --objective ranking")
    cfg = PreprocessConfig(
        split=args.split,
        holdout_per_user=args.holdout_per_user,
        label=args.label,
        threshold=args.threshold,
        aux=aux,
        shards=args.shards,
        seed=args.seed,
        max_reject_fraction=args.max_reject_fraction,
        objective=args.objective,
        negatives_per_positive=args.negatives,
        negative_exponent=args.negative_exponent,
        positives=args.positives,
        below_threshold_negatives=bool(args.below_threshold_negatives),
        predictor_type=args.predictor_type,
        history=args.history,
        implicit=bool(args.implicit),
    )
    cfg.sampling().check_trainable()  # validates the ranges (before any output is written)
    cfg.history_config()
    return cfg
