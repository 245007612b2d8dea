"""The training pipeline's parameters: each one's name, type and default, in the definition's order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fmrec.data.scale import RATING_MAX, RATING_MIN
from fmrec.errors import InputError
from fmrec.features.options import PreprocessConfig
from fmrec.features.settings import BY_FIELD, DEFAULTS, OBJECTIVE_FIELDS, SETTINGS
from fmrec.model.hyperparameters import HYPERPARAMETERS, PIPELINE_PARAMETERS
from pipeline.sdk import ParameterFloat, ParameterInteger, ParameterString
from pipeline.session import DefinitionError

PREDICTOR_TYPE = "binary_classifier"  # the gate reads classifier metrics, so the pipeline trains a classifier
_MAKERS = {"Integer": ParameterInteger, "Float": ParameterFloat, "String": ParameterString}
_CASTS = {"Integer": int, "Float": float, "String": str}


@dataclass(frozen=True)
class DefinitionParameter:
    """A parameter of the definition's own (neither an objective setting nor an FM hyperparameter)."""

    field: str  # PipelineParameters' field, and pipeline_parameters' keyword for its default
    name: str
    kind: str  # "Integer" | "Float" | "String"
    feeds: str  # what it sets, for docs/pipeline.md's table


# In the definition's order; the objective settings (fmrec.features.settings) and the FM hyperparameters
# (fmrec.model.hyperparameters.PIPELINE_PARAMETERS) follow them. docs/pipeline.md's table is built from the
# three tables (markdown_table) and tests/pipeline/test_parameter_doc.py keeps it equal.
DEFINITION_PARAMETERS = (
    DefinitionParameter("input_data", "InputDataUrl", "String", "preprocess input (locally: `--data-dir`)"),
    DefinitionParameter(
        "threshold",
        "LabelThreshold",
        "Float",
        f"preprocess `--threshold` (label = rating ≥ threshold; a rating from {RATING_MIN:g} to "
        f"{RATING_MAX:g}) and evaluate `--threshold` (relevant: a held-out rating ≥ threshold)",
    ),
    DefinitionParameter("min_auc", "GateMinAuc", "Float", "rating gate: the minimum test AUC"),
    DefinitionParameter(
        "ndcg_margin",
        "GateNdcgMargin",
        "Float",
        "ranking gate: the model's NDCG@10 must be ≥ (1 + margin) × popularity's (relative; 0.1 = 10 % "
        "better, 0 = at least as good, negative = may lose by that share)",
    ),
    DefinitionParameter("proc_type", "ProcessingInstanceType", "String", "preprocess and evaluate"),
    DefinitionParameter(
        "proc_count",
        "ProcessingInstanceCount",
        "Integer",
        "preprocess only (default: the stage's `processing_instance_count`): each instance writes the rows "
        "of its users (`--user-shards`, from resourceconfig.json); the local twin runs it as one instance",
    ),
    DefinitionParameter("train_type", "TrainingInstanceType", "String", "training"),
    DefinitionParameter(
        "train_count",
        "TrainingInstanceCount",
        "Integer",
        "training; also preprocess `--shards`, so each host gets its own train shard",
    ),
    DefinitionParameter("approval", "ModelApprovalStatus", "String", "register"),
)


@dataclass(frozen=True)
class PipelineParameters:
    """The SDK parameter objects the step builders read; `ordered()` is the definition's Parameters list."""

    input_data: Any
    threshold: Any
    min_auc: Any
    ndcg_margin: Any
    proc_type: Any
    proc_count: Any  # the preprocess step's instances: each writes its users' rows (--user-shards)
    train_type: Any
    train_count: Any
    approval: Any
    hp: Mapping[str, Any]  # FM hyperparameters by pipeline name (fmrec.model.hyperparameters)
    # The objective settings' parameters by PreprocessConfig field, in the settings table's order.
    objective_settings: Mapping[str, Any]

    def ordered(self) -> list[Any]:
        return [
            self.input_data,
            self.threshold,
            self.min_auc,
            self.ndcg_margin,
            self.proc_type,
            self.proc_count,
            self.train_type,
            self.train_count,
            self.approval,
            *self.hp.values(),
            *self.objective_settings.values(),
        ]


def objective_defaults(**values: Any) -> dict[str, Any]:
    """The objective parameters' defaults by PreprocessConfig field (the table's, with `values` over them),
    refused here when the preprocess step would refuse them."""
    unknown = sorted(set(values) - set(OBJECTIVE_FIELDS))
    if unknown:
        raise DefinitionError(f"objective settings: unknown {unknown}; expected some of {OBJECTIVE_FIELDS}")
    chosen = {f: values.get(f, DEFAULTS[f]) for f in OBJECTIVE_FIELDS if BY_FIELD[f].parameter}
    names = {f: str(BY_FIELD[f].parameter) for f in chosen}
    try:  # the preprocess step's own checks (PreprocessConfig.validate), naming the parameters
        PreprocessConfig(**chosen, predictor_type=PREDICTOR_TYPE).validate(names)
    except InputError as exc:
        raise DefinitionError(str(exc)) from None
    return chosen


def _parameter(field: str, value: Any) -> Any:
    """The pipeline parameter of one objective setting; a Boolean is a "true"/"false" String so the argument
    the step receives is plain text."""
    s = BY_FIELD[field]
    name = str(s.parameter)
    if s.kind == "Boolean":
        return ParameterString(name, default_value="true" if value else "false")
    return _MAKERS[s.kind](name, default_value=_CASTS[s.kind](value))


def pipeline_parameters(
    *,
    input_data_url: str,
    label_threshold: float,
    gate_min_auc: float,
    gate_ndcg_margin: float,
    processing_instance_type: str,
    processing_instance_count: int,
    training_instance_type: str,
    training_instance_count: int,
    hp_defaults: Mapping[str, int | float | str],
    sampling: Mapping[str, Any] | None = None,
) -> PipelineParameters:
    defaults = {
        "input_data": input_data_url,
        "threshold": label_threshold,
        "min_auc": gate_min_auc,
        "ndcg_margin": gate_ndcg_margin,
        "proc_type": processing_instance_type,
        "proc_count": processing_instance_count,
        "train_type": training_instance_type,
        "train_count": training_instance_count,
        "approval": "PendingManualApproval",
    }
    return PipelineParameters(
        **{
            p.field: _MAKERS[p.kind](p.name, default_value=_CASTS[p.kind](defaults[p.field]))
            for p in DEFINITION_PARAMETERS
        },
        hp={
            h.parameter: _MAKERS[h.kind](h.parameter, default_value=hp_defaults[h.parameter])
            for h in PIPELINE_PARAMETERS
        },
        objective_settings={
            field: _parameter(field, value) for field, value in (sampling or objective_defaults()).items()
        },
    )


def markdown_table(parameters: Sequence[Mapping[str, Any]]) -> str:
    """docs/pipeline.md's table of the parameters: `parameters` is a definition's "Parameters" list (its
    defaults), the words are the three tables'."""
    feeds = {p.name: p.feeds for p in DEFINITION_PARAMETERS}
    for h in PIPELINE_PARAMETERS:
        feeds[h.parameter] = (
            f"FM hyperparameter `{h.hyperparameter}` ({HYPERPARAMETERS[h.hyperparameter].allowed()})"
        )
    for s in SETTINGS:
        if s.parameter is not None and s.parameter not in feeds:
            allowed = s.range_text() or ("true, false" if s.kind == "Boolean" else "text")
            feeds[s.parameter] = f"preprocess `{s.flag}` ({allowed}): {s.help}"
    feeds["Objective"] += (
        "; also evaluate `--objective`, and which gate applies (ranking: NDCG@10 against popularity; rating: "
        "AUC and log loss)"
    )
    rows = ["| parameter | type | default | feeds |", "|---|---|---|---|"]
    for p in parameters:
        if p["Name"] in feeds:
            rows.append(f"| `{p['Name']}` | {p['Type']} | `{p.get('DefaultValue')}` | {feeds[p['Name']]} |")
    return "\n".join(rows) + "\n"
