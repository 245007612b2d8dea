"""SageMaker FM's hyperparameters: names, defaults, allowed values and tunable ranges, parsed from strings."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

from fmrec.errors import InputError
from fmrec.model.fm import PREDICTOR_TYPES

log = logging.getLogger(__name__)

INIT_METHODS = ("normal", "uniform", "constant")
GROUPS = ("bias", "linear", "factors")
# SageMaker adds these to a tuning job's hyperparameters.json; the algorithm accepts and ignores them.
IGNORED_PREFIXES = ("_tuning_objective_metric", "sagemaker_")
# The contract's suggested range for learning rates, weight decays and init values; also the tuning range.
SUGGESTED = (1e-8, 512.0)


class HyperparameterError(InputError):
    """A hyperparameter that is unknown, missing or out of its allowed values; the message names it."""


@dataclass(frozen=True)
class Spec:
    """One hyperparameter as SageMaker documents it."""

    name: str
    kind: str  # "int", "float" or "choice"
    default: str | None  # None: required, or "none" (not set) when required is False
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None  # inclusive
    exclusive_minimum: bool = False
    suggested: tuple[float, float] | None = None  # outside it: allowed, with a warning
    tunable: tuple[float, float] | None = None  # SageMaker's documented tuning range
    description: str = ""

    def allowed(self) -> str:
        """Words for what the hyperparameter accepts, for error messages and docs."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        noun = "an integer" if self.kind == "int" else "a number"
        if self.minimum is None:
            return noun
        op = ">" if self.exclusive_minimum else ">="
        bound = int(self.minimum) if self.kind == "int" else self.minimum
        return f"{noun} {op} {bound}"


def _specs() -> dict[str, Spec]:
    out = [
        Spec("feature_dim", "int", None, required=True, minimum=1, description="number of input columns"),
        Spec("num_factors", "int", None, required=True, minimum=1, description="dimension of the factors"),
        Spec("predictor_type", "choice", None, required=True, choices=PREDICTOR_TYPES),
        Spec("epochs", "int", "1", minimum=1, tunable=(1, 1000), description="passes over the train channel"),
        Spec(
            "mini_batch_size", "int", "1000", minimum=1, tunable=(100, 10000), description="rows per update"
        ),
        Spec("clip_gradient", "float", None, description="clip gradients to [-c, c] (negative: no clipping)"),
        Spec(
            "eps", "float", None, minimum=0, exclusive_minimum=True, description="Adam epsilon (default 1e-8)"
        ),
        Spec(
            "rescale_grad",
            "float",
            None,
            minimum=0,
            exclusive_minimum=True,
            description="gradient scale (default 1/mini_batch_size)",
        ),
    ]
    lr = {"bias": "0.1", "linear": "0.001", "factors": "0.0001"}
    wd = {"bias": "0.01", "linear": "0.001", "factors": "0.00001"}
    sigma = {"bias": "0.01", "linear": "0.01", "factors": "0.001"}
    for g in GROUPS:
        out += [
            Spec(f"{g}_lr", "float", lr[g], minimum=0, suggested=SUGGESTED, tunable=SUGGESTED),
            Spec(f"{g}_wd", "float", wd[g], minimum=0, suggested=SUGGESTED, tunable=SUGGESTED),
            Spec(f"{g}_init_method", "choice", "normal", choices=INIT_METHODS),
            Spec(f"{g}_init_sigma", "float", sigma[g], minimum=0, suggested=SUGGESTED, tunable=SUGGESTED),
            Spec(
                f"{g}_init_scale",
                "float",
                None,
                minimum=0,
                suggested=SUGGESTED,
                tunable=SUGGESTED,
                description=f"uniform init range [-s, s]; needed when {g}_init_method is uniform",
            ),
            Spec(
                f"{g}_init_value",
                "float",
                None,
                suggested=SUGGESTED,
                tunable=SUGGESTED,
                description=f"constant init value; needed when {g}_init_method is constant",
            ),
        ]
    return {s.name: s for s in out}


HYPERPARAMETERS: dict[str, Spec] = _specs()
# Our recommended starting point for one-hot user/item data (add feature_dim and predictor_type). SageMaker's
# default learning rates and weight decays leave the factors near their init within tens of epochs, so FM
# scores like a biases-only model; these let them learn. Chosen on synthetic ml-100k-shaped data
# (benchmarks/bench_train.py, and for the ranking rows the searches in docs/tuning.md: the batch 1000 -> 500;
# issue 22's on two presets: epochs 30 -> 15 and factors_lr 0.001 -> 0.002, which converge in half the
# epochs with popularity^0.5 negatives; session 3's: num_factors 64 -> 128 with 64 history columns instead of
# 128, a gain on the 9k-movie preset and level on ml-100k; session 4's: epochs 15 -> 4 over the three-pass
# channel of SamplingPasses, 12 passes with fresh negatives, a gain on the 9k preset at 0.8x the work); not
# yet checked on the real MovieLens.
RECOMMENDED: dict[str, str] = {
    "num_factors": "128",
    "epochs": "4",
    "mini_batch_size": "500",
    "linear_lr": "0.01",
    "factors_lr": "0.002",
    "factors_init_sigma": "0.01",
    "bias_wd": "0.0001",
    "linear_wd": "0.0001",
    "factors_wd": "0.0001",
}


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline parameter that feeds one FM hyperparameter."""

    parameter: str
    hyperparameter: str
    kind: str  # "Integer" | "Float" | "String"
    default: int | float | str


# The pipeline's hyperparameter parameters (pipeline/definition.py) and the FM hyperparameter each sets;
# their defaults are RECOMMENDED. With the seed notebook's values (batch 200, SageMaker's default learning
# rates) the model loses to the biases-only baseline on log loss, so the gate would reject it
# (docs/tuning.md).
PIPELINE_PARAMETERS = (
    PipelineParameter("NumFactors", "num_factors", "Integer", int(RECOMMENDED["num_factors"])),
    PipelineParameter("Epochs", "epochs", "Integer", int(RECOMMENDED["epochs"])),
    PipelineParameter("MiniBatchSize", "mini_batch_size", "Integer", int(RECOMMENDED["mini_batch_size"])),
    PipelineParameter("LinearLr", "linear_lr", "Float", float(RECOMMENDED["linear_lr"])),
    PipelineParameter("FactorsLr", "factors_lr", "Float", float(RECOMMENDED["factors_lr"])),
    PipelineParameter("BiasWd", "bias_wd", "Float", float(RECOMMENDED["bias_wd"])),
    PipelineParameter("LinearWd", "linear_wd", "Float", float(RECOMMENDED["linear_wd"])),
    PipelineParameter("FactorsWd", "factors_wd", "Float", float(RECOMMENDED["factors_wd"])),
    PipelineParameter(
        "FactorsInitSigma", "factors_init_sigma", "Float", float(RECOMMENDED["factors_init_sigma"])
    ),
)

# name -> (kind, low, high): the ranges SageMaker's tuning documentation allows for FM.
TUNABLE_RANGES: dict[str, tuple[str, float, float]] = {
    s.name: (s.kind, s.tunable[0], s.tunable[1]) for s in HYPERPARAMETERS.values() if s.tunable is not None
}


@dataclass(frozen=True)
class HyperParameters:
    """Parsed, validated hyperparameters; optional ones SageMaker leaves unset are None."""

    feature_dim: int
    num_factors: int
    predictor_type: str
    epochs: int = 1
    mini_batch_size: int = 1000
    bias_lr: float = 0.1
    linear_lr: float = 0.001
    factors_lr: float = 0.0001
    bias_wd: float = 0.01
    linear_wd: float = 0.001
    factors_wd: float = 0.00001
    bias_init_method: str = "normal"
    linear_init_method: str = "normal"
    factors_init_method: str = "normal"
    bias_init_sigma: float = 0.01
    linear_init_sigma: float = 0.01
    factors_init_sigma: float = 0.001
    bias_init_scale: float | None = None
    linear_init_scale: float | None = None
    factors_init_scale: float | None = None
    bias_init_value: float | None = None
    linear_init_value: float | None = None
    factors_init_value: float | None = None
    clip_gradient: float | None = None
    eps: float | None = None
    rescale_grad: float | None = None

    def lr(self, group: str) -> float:
        return float(getattr(self, f"{group}_lr"))

    def wd(self, group: str) -> float:
        return float(getattr(self, f"{group}_wd"))

    def to_strings(self) -> dict[str, str]:
        """Every set hyperparameter as SageMaker would pass it (strings), e.g. for meta.json."""
        return {k: str(v) for k, v in asdict(self).items() if v is not None}


_INT_RE = re.compile(r"[+-]?\d+")


def _parse_value(spec: Spec, raw: object) -> int | float | str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise HyperparameterError(
            f"hyperparameter {spec.name}: {raw!r} is a {type(raw).__name__}; expected {spec.allowed()}"
        )
    text = str(raw).strip()
    if spec.kind == "choice":
        if text not in spec.choices:
            raise HyperparameterError(
                f"hyperparameter {spec.name}: {text!r} is not allowed; expected {spec.allowed()}"
            )
        return text
    value: int | float
    if spec.kind == "int":
        if not _INT_RE.fullmatch(text):
            raise HyperparameterError(
                f"hyperparameter {spec.name}: {text!r} is not an integer; expected {spec.allowed()}"
            )
        value = int(text)
    else:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise HyperparameterError(
                f"hyperparameter {spec.name}: {text!r} is not a finite number; expected {spec.allowed()}"
            )
    if spec.minimum is not None and (
        value < spec.minimum or (spec.exclusive_minimum and value == spec.minimum)
    ):
        raise HyperparameterError(
            f"hyperparameter {spec.name}: {text} is out of range; expected {spec.allowed()}"
        )
    if spec.suggested is not None and value != 0 and not spec.suggested[0] <= abs(value) <= spec.suggested[1]:
        log.warning(
            "hyperparameter %s=%s is outside SageMaker's suggested range [%g, %g]",
            spec.name,
            text,
            *spec.suggested,
        )
    return value


def parse_hyperparameters(raw: Mapping[str, object]) -> HyperParameters:
    """Validate hyperparameters as SageMaker passes them (string values) and fill in the defaults."""
    unknown = sorted(
        k for k in raw if k not in HYPERPARAMETERS and not any(str(k).startswith(p) for p in IGNORED_PREFIXES)
    )
    if unknown:
        raise HyperparameterError(
            f"hyperparameter {', '.join(unknown)}: not a Factorization Machines hyperparameter; "
            f"expected one of {', '.join(sorted(HYPERPARAMETERS))}"
        )
    missing = [s.name for s in HYPERPARAMETERS.values() if s.required and s.name not in raw]
    if missing:
        raise HyperparameterError(
            f"hyperparameter {', '.join(missing)}: required but not given "
            f"({'; '.join(f'{n}: {HYPERPARAMETERS[n].allowed()}' for n in missing)})"
        )
    values: dict[str, object] = {}
    for name, spec in HYPERPARAMETERS.items():
        if name in raw:
            values[name] = _parse_value(spec, raw[name])
        elif spec.default is not None:
            values[name] = _parse_value(spec, spec.default)
    for g in GROUPS:
        method = values[f"{g}_init_method"]
        needed = {"uniform": f"{g}_init_scale", "constant": f"{g}_init_value"}.get(str(method))
        if needed is not None and needed not in values:
            raise HyperparameterError(
                f"hyperparameter {needed}: required when {g}_init_method is {method} "
                f"(expected {HYPERPARAMETERS[needed].allowed()})"
            )
        for extra, applies in ((f"{g}_init_scale", "uniform"), (f"{g}_init_value", "constant")):
            if extra in values and method != applies:
                log.warning("hyperparameter %s is ignored: %s_init_method is %s", extra, g, method)
    known = {f.name for f in fields(HyperParameters)}
    return HyperParameters(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]
