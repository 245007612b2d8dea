"""A run's parameters: --param NAME=VALUE parsed against the definition, and checked before any step runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec.model.hyperparameters import HYPERPARAMETERS, parse_hyperparameters
from fmrec.numbers import parse_float, parse_int
from twins.pipeline.entry_points import entry_script, step_entry_point
from twins.pipeline.expressions import Expressions, text
from twins.pipeline.graph import DefinitionFormatError, all_steps


class ParameterError(InputError):
    """A --param names no parameter of the definition, or its value has the wrong type."""


def parse_parameters(definition: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Defaults of the definition's parameters with `overrides` applied, converted to their declared types."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(
            f"--param {', '.join(unknown)}: unknown parameter; known: {', '.join(sorted(declared))}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        kind = spec.get("Type", "String")
        if name not in overrides:
            values[name] = spec.get("DefaultValue")
            continue
        raw = str(overrides[name])
        try:
            if kind == "Integer":  # strict: '0_1' is no 1, nan/inf no Float (the API's parser too)
                values[name] = parse_int(raw)
            elif kind == "Float":
                values[name] = parse_float(raw)
            elif kind == "Boolean":
                if raw.lower() not in ("true", "false"):
                    raise ValueError(raw)
                values[name] = raw.lower() == "true"
            else:
                values[name] = raw
        except ValueError:
            raise ParameterError(f"--param {name}={raw}: expected {kind.lower()} value") from None
    missing = [n for n, v in values.items() if v is None]
    if missing:
        raise ParameterError(f"parameter(s) {', '.join(missing)} have no default; pass --param NAME=VALUE")
    return values


def split_assignments(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ParameterError(f"--param {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def check_before_run(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """Inputs, hyperparameters and step arguments set by parameters, refused before the first step runs."""
    _check_parameter_inputs(definition, parameters)
    _check_parameter_hyperparameters(definition, parameters)
    _check_step_arguments(definition, parameters)


def _check_parameter_inputs(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """A step input given by a parameter (InputDataUrl) must exist locally before the first step runs."""
    for step in all_steps(definition):
        for item in step.get("Arguments", {}).get("ProcessingInputs", []):
            ref = item.get("S3Input", {}).get("S3Uri")
            if isinstance(ref, Mapping) and str(ref.get("Get", "")).startswith("Parameters."):
                name = ref["Get"].split(".", 1)[1]
                uri = str(parameters[name])
                probe = Expressions(definition, Path("/nonexistent"), "", parameters)
                path = probe.local_path(uri) if uri.startswith(("/", "file://")) else None
                if path is not None and not path.exists():
                    raise ParameterError(f"--param {name}={uri}: {path} does not exist")
                if path is None:
                    raise ParameterError(
                        f"--param {name}={uri}: the local runner reads local data; pass --data-dir DIR "
                        f"or --param {name}=/absolute/path"
                    )


def _parameter_names(value: Any) -> set[str]:
    """Names of the pipeline parameters an expression reads ({"Get": "Parameters.Epochs"} -> Epochs)."""
    if isinstance(value, Mapping):
        ref = value.get("Get")
        if set(value) == {"Get"} and str(ref).startswith("Parameters."):
            return {str(ref).split(".", 1)[1]}
        return set().union(*(_parameter_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_parameter_names(v) for v in value)) if value else set()
    return set()


def _check_parameter_hyperparameters(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """Hyperparameters set by pipeline parameters (Epochs -> epochs) are validated before the first step runs:
    --param Epochs=-1 fails at once instead of at TrainModel, after preprocess has run."""
    probe = Expressions(definition, Path("/nonexistent"), "", parameters)
    # parse_hyperparameters checks a whole set; these stand in for the required ones a step computes later.
    stand_ins = {"feature_dim": "1", "num_factors": "1", "predictor_type": "regressor"}
    for step in all_steps(definition):
        args = step.get("Arguments", {})
        if step.get("Type") == "Training":
            hps = args.get("HyperParameters")
        else:
            hps = (args.get("TrainingJobDefinition") or {}).get("StaticHyperParameters")
        for key, value in (hps or {}).items():
            names = _parameter_names(value)
            if not names or key not in HYPERPARAMETERS:
                continue
            try:
                resolved = probe.resolve(value)
            except FmrecError:
                continue  # it also reads a step's output: checked when that step has run
            try:
                parse_hyperparameters({**stand_ins, key: resolved})
            except InputError as exc:
                given = ", ".join(f"{n}={parameters[n]}" for n in sorted(names))
                raise ParameterError(f"--param {given}: {exc} (step {step.get('Name')})") from None


def _check_step_arguments(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """A processing script with a `check_arguments(argv)` refuses its resolved arguments before any step runs.

    Only arguments made of literals and parameters are checked here (those that depend on an earlier step's
    output are known only when it has run); the step checks its arguments again when it runs, as on AWS.
    """
    probe = Expressions(definition, Path("/nonexistent"), "", parameters)
    for step in all_steps(definition):
        if step.get("Type") != "Processing":
            continue
        app = step.get("Arguments", {}).get("AppSpecification", {})
        script = entry_script(app.get("ContainerEntrypoint", []))
        if script is None:
            continue
        check = step_entry_point(script, step["Name"]).check_arguments
        if check is None:
            continue
        try:
            argv = [text(a) for a in probe.resolve(app.get("ContainerArguments", []))]
        except (DefinitionFormatError, InputError):
            continue
        try:
            check(argv)
        except InputError as exc:
            raise ParameterError(f"step {step['Name']}: {exc} (checked before any step ran)") from exc
