"""The training objective and its sampling options (no numpy: the CLI imports this to build its flags)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fmrec.errors import InputError
from fmrec.features.settings import BY_FIELD, DEFAULTS

# From the settings table (fmrec/features/settings.py), where each is written once.
OBJECTIVES = BY_FIELD["objective"].choices
POSITIVE_RULES = BY_FIELD["positives"].choices
MAX_NEGATIVES_PER_POSITIVE = int(BY_FIELD["negatives_per_positive"].bounds()[1])
EXPONENT_RANGE = BY_FIELD["negative_exponent"].bounds()
MAX_PASSES = int(BY_FIELD["passes"].bounds()[1])
# FM predictor types that can train each objective: ranking rows carry 0/1 labels and are scored as a
# probability, so only the classifier serves them (https://docs.aws.amazon.com/sagemaker/latest/dg/fact-machines-hyperparameters.html).
PREDICTORS = {"ranking": ("binary_classifier",), "rating": ("binary_classifier", "regressor")}


@dataclass(frozen=True)
class SamplingConfig:
    """How the ranking objective builds its rows (ignored, except for validation, by `rating`).

    negatives_per_positive: unrated movies drawn per positive (0..100).
    popularity_exponent: negatives are drawn with probability proportional to train count ** exponent
      (0 = uniform over the catalogue, 1 = proportional to popularity; word2vec's 0.75 in between).
    positives: "all" = every rated movie is a positive (the question is "will they pick it");
      "weighted" = every rated movie, and a liked one (>= the threshold) twice, so the log loss counts
      "they picked it and liked it" double (the search in docs/tuning.md chose it: relevance is a liked pick);
      "liked" = only ratings >= the label threshold; the others are dropped unless
    below_threshold_as_negative: they become explicit negatives (label 0), besides the sampled ones.
    passes: every positive row (and explicit negative) is written this many times, each copy with its own
      sampled negatives, so one epoch over the channel sees `passes` independent draws of negatives.
    seed: the sampling and shuffling seed.
    """

    objective: str = str(DEFAULTS["objective"])
    negatives_per_positive: int = int(DEFAULTS["negatives_per_positive"])
    popularity_exponent: float = float(DEFAULTS["negative_exponent"])
    positives: str = str(DEFAULTS["positives"])
    below_threshold_as_negative: bool = bool(DEFAULTS["below_threshold_negatives"])
    passes: int = int(DEFAULTS["passes"])
    seed: int = int(DEFAULTS["seed"])

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(f"objective {self.objective!r}: expected one of {', '.join(OBJECTIVES)}")
        n = self.negatives_per_positive
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_NEGATIVES_PER_POSITIVE:
            raise InputError(
                f"negatives per positive {n!r}: expected a whole number in [0, {MAX_NEGATIVES_PER_POSITIVE}]"
            )
        x = self.popularity_exponent
        lo, hi = EXPONENT_RANGE
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or not lo <= x <= hi:
            raise InputError(f"negative exponent {x!r}: expected a number in [{lo:g}, {hi:g}]")
        p = self.passes
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= MAX_PASSES:
            raise InputError(f"sampling passes {p!r}: expected a whole number in [1, {MAX_PASSES}]")
        if self.positives not in POSITIVE_RULES:
            raise InputError(f"positives {self.positives!r}: expected one of {', '.join(POSITIVE_RULES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InputError(f"seed {self.seed!r}: expected a whole number >= 0")
        if self.below_threshold_as_negative and self.positives != "liked":
            raise InputError(
                "below-threshold negatives: only with positives 'liked' (with 'all', a rating below the "
                "threshold is a positive)"
            )

    def check_trainable(self) -> None:
        """Refuse options that leave the ranking objective no negative row, before any data is read."""
        if (
            self.objective == "ranking"
            and self.negatives_per_positive == 0
            and not self.below_threshold_as_negative
        ):
            raise InputError(
                "negatives per positive 0: the ranking objective would have no negative row to learn from; "
                f"expected 1 to {MAX_NEGATIVES_PER_POSITIVE}, or 0 with positives 'liked' and "
                "below-threshold negatives"
            )


def check_objective(objective: str, predictor_type: str, label_mode: str = "binary") -> None:
    """Refuse an objective the FM predictor type (or the label mode) cannot train."""
    if objective not in PREDICTORS:
        raise InputError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVES)}")
    if predictor_type not in PREDICTORS[objective]:
        raise InputError(
            f"objective {objective!r} needs predictor_type {' or '.join(PREDICTORS[objective])}, "
            f"got {predictor_type!r}"
        )
    if objective == "ranking" and label_mode != "binary":
        raise InputError(
            f"objective 'ranking' trains 0/1 labels: label mode must be binary, got {label_mode!r}"
        )
