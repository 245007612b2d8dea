"""The training pipeline's parameters: each one's name, type and default, in the definition's order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fmrec.errors import InputError
from fmrec.features.options import PreprocessConfig
from fmrec.features.settings import BY_FIELD, DEFAULTS, OBJECTIVE_FIELDS
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from pipeline.sdk import ParameterFloat, ParameterInteger, ParameterString
from pipeline.session import DefinitionError

PREDICTOR_TYPE = "binary_classifier"  # the gate reads classifier metrics, so the pipeline trains a classifier
_MAKERS = {"Integer": ParameterInteger, "Float": ParameterFloat, "String": ParameterString}


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
    cast = {"Integer": int, "Float": float, "String": str}[s.kind]
    return _MAKERS[s.kind](name, default_value=cast(value))


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
    return PipelineParameters(
        input_data=ParameterString("InputDataUrl", default_value=input_data_url),
        threshold=ParameterFloat("LabelThreshold", default_value=float(label_threshold)),
        min_auc=ParameterFloat("GateMinAuc", default_value=float(gate_min_auc)),
        ndcg_margin=ParameterFloat("GateNdcgMargin", default_value=float(gate_ndcg_margin)),
        proc_type=ParameterString("ProcessingInstanceType", default_value=processing_instance_type),
        proc_count=ParameterInteger("ProcessingInstanceCount", default_value=int(processing_instance_count)),
        train_type=ParameterString("TrainingInstanceType", default_value=training_instance_type),
        train_count=ParameterInteger("TrainingInstanceCount", default_value=int(training_instance_count)),
        approval=ParameterString("ModelApprovalStatus", default_value="PendingManualApproval"),
        hp={
            h.parameter: _MAKERS[h.kind](h.parameter, default_value=hp_defaults[h.parameter])
            for h in PIPELINE_PARAMETERS
        },
        objective_settings={
            field: _parameter(field, value) for field, value in (sampling or objective_defaults()).items()
        },
    )
