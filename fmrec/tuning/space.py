"""The search space and objectives shared by the SageMaker tuning job and its local twin."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fmrec.errors import InputError
from fmrec.model.hyperparameters import TUNABLE_RANGES
from fmrec.model.metrics import SAGEMAKER_NAMES


class TuningError(InputError):
    """A tuning request (range, objective, budget) that FM's tuning contract does not allow."""


# FM's documented tuning ranges come from the hyperparameter spec (epochs 1–1000, mini_batch_size 100–10000,
# learning rates, weight decays and init values [1e-8, 512]). num_factors uses its documented suggested range
# [2, 1000]: AWS's fm-tuning page does not list it as tunable (see docs/tuning.md).
NUM_FACTORS_LIMITS = ("int", 2.0, 1000.0)
DOCUMENTED_LIMITS: dict[str, tuple[str, float, float]] = {"num_factors": NUM_FACTORS_LIMITS, **TUNABLE_RANGES}

SCALINGS = ("Auto", "Linear", "Logarithmic")


@dataclass(frozen=True)
class ParamRange:
    """One tuned hyperparameter: SageMaker's Integer/ContinuousParameterRange in one shape."""

    name: str
    kind: str  # "int" or "float"
    low: float
    high: float
    scaling: str = "Auto"

    @property
    def log(self) -> bool:
        return self.scaling == "Logarithmic"

    def to_sagemaker(self) -> dict[str, str]:
        lo = str(int(self.low)) if self.kind == "int" else _fmt_float(self.low)
        hi = str(int(self.high)) if self.kind == "int" else _fmt_float(self.high)
        return {"Name": self.name, "MinValue": lo, "MaxValue": hi, "ScalingType": self.scaling}


def _fmt_float(value: float) -> str:
    return repr(float(value))


@dataclass(frozen=True)
class Objective:
    """A metric FM emits on its test channel, usable as a tuning objective."""

    metric_name: str  # as SageMaker names it, e.g. "test:binary_classification_accuracy"
    predictor_type: str
    direction: str  # "Maximize" or "Minimize"
    metric_key: str  # the key in fmrec.model.metrics' dicts (or fmrec.evaluation.ranking's, for a local one)
    # False: computed by fmrec from the model (ranking metrics), not emitted by FM; a SageMaker tuning job
    # reads only the algorithm's own metrics (https://docs.aws.amazon.com/sagemaker/latest/dg/fm-tuning.html).
    emitted_by_fm: bool = True

    @property
    def optuna_direction(self) -> str:
        return "maximize" if self.direction == "Maximize" else "minimize"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "Maximize" else a < b


# (key in fmrec.model.metrics, predictor type, direction); the emitted name comes from the metrics module.
_OBJECTIVE_KEYS = (
    ("accuracy", "binary_classifier", "Maximize"),
    ("cross_entropy", "binary_classifier", "Minimize"),
    ("f1", "binary_classifier", "Maximize"),
    ("rmse", "regressor", "Minimize"),
)
OBJECTIVES: dict[str, Objective] = {
    f"test:{SAGEMAKER_NAMES[key]}": Objective(f"test:{SAGEMAKER_NAMES[key]}", predictor, direction, key)
    for key, predictor, direction in _OBJECTIVE_KEYS
}

# NDCG@10 of the ranking protocol (fmrec.evaluation.ranking) on ratings carved from train: local tuning only.
NDCG_OBJECTIVE = Objective("validation:ndcg_at_10", "binary_classifier", "Maximize", "ndcg_at_10", False)
LOCAL_OBJECTIVES: dict[str, Objective] = {NDCG_OBJECTIVE.metric_name: NDCG_OBJECTIVE}

DEFAULT_OBJECTIVE = {
    "binary_classifier": "test:binary_classification_cross_entropy",
    "regressor": "test:rmse",
}

# The default search: every range sits inside the documented limits and is bounded so a local trial on
# ml-100k-sized data stays within seconds (epochs and num_factors dominate a trial's cost).
DEFAULT_RANGES: tuple[ParamRange, ...] = (
    ParamRange("num_factors", "int", 4, 128, "Logarithmic"),
    # epochs over the default train channel's three sampling passes (SamplingPasses): 6 to 60 passes
    ParamRange("epochs", "int", 2, 20, "Linear"),
    ParamRange("mini_batch_size", "int", 100, 5000, "Logarithmic"),
    ParamRange("bias_lr", "float", 1e-4, 0.5, "Logarithmic"),
    ParamRange("linear_lr", "float", 1e-5, 0.1, "Logarithmic"),
    ParamRange("factors_lr", "float", 1e-5, 0.1, "Logarithmic"),
    ParamRange("bias_wd", "float", 1e-8, 1.0, "Logarithmic"),
    ParamRange("linear_wd", "float", 1e-8, 1.0, "Logarithmic"),
    ParamRange("factors_wd", "float", 1e-8, 1.0, "Logarithmic"),
)

# The default space covers at least these; a space without one of them (num_factors, where AWS rejects tuning
# it) leaves it to the static hyperparameters.
REQUIRED_TUNED = ("num_factors", "epochs", "mini_batch_size")


def resolve_objective(
    predictor_type: str, metric_name: str | None = None, *, local: bool = False
) -> Objective:
    """The objective for `predictor_type`; an error if FM does not emit that metric for it.

    `local`: also accept the objectives fmrec computes itself (LOCAL_OBJECTIVES), which only the local tuner
    can optimise; a SageMaker tuning job (the pipeline's branch, its local twin) cannot.
    """
    if predictor_type not in DEFAULT_OBJECTIVE:
        raise TuningError(
            f"predictor_type: {predictor_type!r} is not one of {', '.join(sorted(DEFAULT_OBJECTIVE))}"
        )
    name = metric_name or DEFAULT_OBJECTIVE[predictor_type]
    if name in LOCAL_OBJECTIVES and not local:
        raise TuningError(
            f"objective: {name!r} is computed by fmrec's local tuner (fmrec tune --local), not emitted by "
            "FM; a SageMaker tuning job can only read the algorithm's own metrics "
            f"({', '.join(OBJECTIVES)}); see docs/tuning.md"
        )
    objective = OBJECTIVES.get(name) or (LOCAL_OBJECTIVES.get(name) if local else None)
    if objective is None:
        raise TuningError(
            f"objective: {name!r} is not a metric FM emits; expected one of "
            f"{', '.join([*OBJECTIVES, *(LOCAL_OBJECTIVES if local else ())])}"
        )
    if objective.predictor_type != predictor_type:
        known = [*OBJECTIVES.values(), *(LOCAL_OBJECTIVES.values() if local else ())]
        allowed = [o.metric_name for o in known if o.predictor_type == predictor_type]
        raise TuningError(
            f"objective: {name!r} is emitted only by a {objective.predictor_type}, "
            f"not by a {predictor_type}; expected one of {', '.join(allowed)}"
        )
    return objective


def validate_range(r: ParamRange) -> ParamRange:
    """Check one range against FM's documented limits; return it unchanged."""
    limits = DOCUMENTED_LIMITS.get(r.name)
    if limits is None:
        raise TuningError(
            f"range {r.name}: not a tunable FM hyperparameter; expected one of {', '.join(DOCUMENTED_LIMITS)}"
        )
    kind, lo, hi = limits
    if r.kind != kind:
        raise TuningError(
            f"range {r.name}: is a{'n' if kind == 'int' else ''} {kind} hyperparameter, not {r.kind}"
        )
    if r.scaling not in SCALINGS:
        raise TuningError(f"range {r.name}: scaling {r.scaling!r} is not one of {', '.join(SCALINGS)}")
    for value in (r.low, r.high):
        if not math.isfinite(value):
            raise TuningError(f"range {r.name}: bounds must be finite numbers, got {value}")
        if kind == "int" and value != int(value):
            raise TuningError(f"range {r.name}: bounds must be whole numbers, got {value}")
    if r.low < lo or r.high > hi:
        raise TuningError(
            f"range {r.name}: [{_show(r.low)}, {_show(r.high)}] is outside FM's documented limits "
            f"[{_show(lo)}, {_show(hi)}]"
        )
    if r.low >= r.high:
        raise TuningError(f"range {r.name}: min {_show(r.low)} must be below max {_show(r.high)}")
    if r.log and r.low <= 0:
        raise TuningError(f"range {r.name}: Logarithmic scaling needs min > 0")
    return r


def _show(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


def parse_range(text: str) -> ParamRange:
    """Parse `name=min:max[:scaling]` (scaling Auto|Linear|Logarithmic) and validate it."""
    name, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or len(parts) not in (2, 3) or not name:
        raise TuningError(
            f"range {text!r}: expected name=min:max[:scaling], e.g. num_factors=8:128:Logarithmic"
        )
    name = name.strip()
    limits = DOCUMENTED_LIMITS.get(name)
    if limits is None:
        raise TuningError(
            f"range {name}: not a tunable FM hyperparameter; expected one of {', '.join(DOCUMENTED_LIMITS)}"
        )
    kind = limits[0]
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise TuningError(f"range {name}: bounds {parts[0]!r}:{parts[1]!r} are not numbers") from None
    scaling = parts[2].strip() if len(parts) == 3 else "Auto"
    return validate_range(ParamRange(name, kind, low, high, scaling))


def build_space(
    overrides: Iterable[ParamRange] = (), base: Sequence[ParamRange] = DEFAULT_RANGES
) -> tuple[ParamRange, ...]:
    """The default ranges with `overrides` replacing (or adding) ranges by name, all validated."""
    by_name = {r.name: r for r in base}
    for r in overrides:
        by_name[r.name] = r
    space = tuple(validate_range(r) for r in by_name.values())
    if not space:
        raise TuningError("search space: no range to tune")
    return space


def check_static(static: Mapping[str, object], space: Sequence[ParamRange]) -> None:
    """Static hyperparameters must not also be tuned (SageMaker rejects a name in both places)."""
    both = sorted(set(static) & {r.name for r in space})
    if both:
        raise TuningError(
            f"hyperparameters {', '.join(both)}: set as static values and also tuned; choose one"
        )


def check_budget(max_jobs: int, max_parallel: int) -> None:
    if max_jobs < 1:
        raise TuningError(f"max_jobs: must be >= 1, got {max_jobs}")
    if max_parallel < 1:
        raise TuningError(f"max_parallel_jobs: must be >= 1, got {max_parallel}")
