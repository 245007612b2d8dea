"""Preprocess options: the argv flags of pipeline/steps/preprocess.py (kept light, so the CLI starts fast)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fmrec.data.scale import RATING_MAX, RATING_MIN
from fmrec.errors import InputError
from fmrec.features.history import HistoryConfig
from fmrec.features.objective import SamplingConfig, check_objective
from fmrec.features.settings import DEFAULTS, OBJECTIVE_FIELDS, SETTINGS
from fmrec.numbers import parse_float, parse_int

AUX_USER = ("age", "gender", "occupation")
AUX_MOVIE = ("genres", "year")
D = DEFAULTS  # every default below comes from the settings table (fmrec/features/settings.py)


@dataclass(frozen=True)
class PreprocessConfig:
    split: str = str(D["split"])
    holdout_per_user: int = int(D["holdout_per_user"])
    label: str = str(D["label"])
    threshold: float = float(D["threshold"])
    aux: tuple[str, ...] = ()  # the parsed --aux (its default "none" is no auxiliary feature)
    aux_value: float = float(D["aux_value"])
    shards: int = int(D["shards"])
    seed: int = int(D["seed"])
    max_reject_fraction: float = float(D["max_reject_fraction"])
    neighbours: int = int(D["neighbours"])
    neighbour_l2: float = float(D["neighbour_l2"])
    neighbour_movies: int = int(D["neighbour_movies"])
    neighbour_weight: float = float(D["neighbour_weight"])
    # The training objective and its row sampling (fmrec/features/sampling.py, SamplingConfig)
    objective: str = str(D["objective"])
    negatives_per_positive: int = int(D["negatives_per_positive"])
    negative_exponent: float = float(D["negative_exponent"])
    positives: str = str(D["positives"])
    below_threshold_negatives: bool = bool(D["below_threshold_negatives"])
    predictor_type: str = str(D["predictor_type"])
    # History columns per ranking row (fmrec/features/history.py); None (an older manifest's): the default
    history: int | None = int(D["history"])
    passes: int = int(D["passes"])
    # Implicit feedback (clicks, views): every row is a positive, whatever its rating column holds
    implicit: bool = False
    # This Processing instance's share of the users (user id % user_shards == user_shard): the channels'
    # rows of those users only; the encoding, lookup and negatives' popularity stay the whole data's.
    user_shards: int = int(D["user_shards"])
    user_shard: int = int(D["user_shard"])

    def validate(self, names: Mapping[str, str] | None = None) -> PreprocessConfig:
        """Every check of the settings, in one place: the table's ranges, the objective against the predictor
        type and label mode, the sampler's and the history block's rules. An InputError names the flag, or
        the name `names` gives a field (the pipeline's parameter names)."""
        if not (math.isfinite(self.threshold) and RATING_MIN <= self.threshold <= RATING_MAX):
            # outside the scale every label is the same (nan: every label 0, and a bare NaN in the JSON)
            name = (names or {}).get("threshold", "--threshold")
            raise InputError(
                f"{name} {self.threshold}: expected a rating from {RATING_MIN:g} to {RATING_MAX:g} "
                "(label 1: rating >= threshold)"
            )
        for s in SETTINGS:  # the objective's settings: SamplingConfig and HistoryConfig check their ranges
            value = getattr(self, s.field)
            checked_elsewhere = s.field in OBJECTIVE_FIELDS and not s.field.startswith("neighbour")
            if checked_elsewhere or s.kind not in ("Integer", "Float"):
                continue
            low = s.minimum if s.minimum is not None else -math.inf
            high = s.maximum if s.maximum is not None else math.inf
            if not (isinstance(value, int | float) and low <= value <= high):
                name = (names or {}).get(s.field, s.flag)
                raise InputError(f"{name} {value!r}: expected a number, {s.range_text()}")
        if not self.user_shard < self.user_shards:
            name = (names or {}).get("user_shard", "--user-shard")
            raise InputError(f"{name} {self.user_shard}: expected an integer in [0, {self.user_shards - 1}]")
        check_objective(self.objective, self.predictor_type, self.label)
        if self.implicit and self.objective != "ranking":
            raise InputError(
                "--implicit: implicit feedback has no ratings to predict; expected --objective ranking"
            )
        self.sampling().check_trainable()
        history = HistoryConfig() if self.history is None else HistoryConfig(cap=self.history)
        history.validate((names or {}).get("history", "--history"))
        return self

    def history_config(self) -> HistoryConfig | None:
        """The rated-movie history block, or None: the rating objective keeps the seed's columns exactly (so a
        pipeline's HistoryLength parameter does not stop a rating run)."""
        cfg = HistoryConfig() if self.history is None else HistoryConfig(cap=self.history)
        cfg.validate("--history")
        return cfg if cfg.enabled and self.objective == "ranking" else None

    def part_name(self, s: int) -> str:
        """Channel file s of this instance: names unique across the user shards, which share one S3 prefix."""
        return f"part-{self.user_shard:03d}-{s:05d}.pbr" if self.user_shards > 1 else f"part-{s:05d}.pbr"

    def sampling(self) -> SamplingConfig:
        """The sampler's config (validated: an out-of-range value raises InputError)."""
        return SamplingConfig(
            objective=self.objective,
            negatives_per_positive=self.negatives_per_positive,
            popularity_exponent=self.negative_exponent,
            positives=self.positives,
            below_threshold_as_negative=self.below_threshold_negatives,
            passes=self.passes,
            seed=self.seed,
        )


def _flag_float(text: str) -> float:
    """A Float flag: strict decimals (no '0_5'), but nan and inf get through to validate()'s range message."""
    try:
        return parse_float(text)
    except ValueError:
        value = float(text)  # raises for anything that is no number at all
        if math.isfinite(value):
            raise
        return value


_TYPES: dict[str, Callable[[str], Any]] = {"Integer": parse_int, "Float": _flag_float, "String": str}


def build_arg_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The preprocess flags, one per row of the settings table."""
    p = parser or argparse.ArgumentParser(
        prog="preprocess", description="MovieLens folder -> one-hot recordIO-protobuf, lookup, manifest"
    )
    for s in SETTINGS:
        shown = str(s.default).lower() if isinstance(s.default, bool) else s.default
        text = f"{s.help} (default {shown}{'; ' + s.range_text() if s.minimum is not None else ''})"
        if s.kind == "Boolean":
            p.add_argument(s.flag, nargs="?", const="true", default=shown, type=_boolean, help=text)
        else:
            p.add_argument(
                s.flag, type=_TYPES[s.kind], default=s.default, choices=s.choices or None, help=text
            )
    p.add_argument(
        "--implicit",
        action="store_true",
        help="implicit feedback (clicks, views): every row is a liked positive and the rating column is "
        "ignored (ranking objective only)",
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
    cfg = PreprocessConfig(
        split=args.split,
        holdout_per_user=args.holdout_per_user,
        label=args.label,
        threshold=args.threshold,
        aux=aux,
        aux_value=args.aux_value,
        shards=args.shards,
        seed=args.seed,
        max_reject_fraction=args.max_reject_fraction,
        neighbours=args.neighbours,
        neighbour_l2=args.neighbour_l2,
        neighbour_movies=args.neighbour_movies,
        neighbour_weight=args.neighbour_weight,
        objective=args.objective,
        negatives_per_positive=args.negatives,
        negative_exponent=args.negative_exponent,
        positives=args.positives,
        below_threshold_negatives=bool(args.below_threshold_negatives),
        predictor_type=args.predictor_type,
        history=args.history,
        passes=args.passes,
        implicit=bool(args.implicit),
        user_shard=args.user_shard,
        user_shards=args.user_shards,
    )
    return cfg.validate()  # before any output is written
