"""The training pipeline's parameters: each one's name, type and default, in the definition's order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fmrec.errors import InputError
from fmrec.features.history import HistoryConfig
from fmrec.features.objective import OBJECTIVES, SamplingConfig, check_objective
from fmrec.features.options import DEFAULT_HISTORY
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from pipeline.sdk import ParameterFloat, ParameterInteger, ParameterString
from pipeline.session import DefinitionError

PREDICTOR_TYPE = "binary_classifier"  # the gate reads classifier metrics, so the pipeline trains a classifier


@dataclass(frozen=True)
class PipelineParameters:
    """The SDK parameter objects the step builders read; `ordered()` is the definition's Parameters list."""

    input_data: Any
    threshold: Any
    min_auc: Any
    ndcg_margin: Any
    proc_type: Any
    train_type: Any
    train_count: Any
    approval: Any
    hp: Mapping[str, Any]  # FM hyperparameters by pipeline name (fmrec.model.hyperparameters)
    objective: Any
    negatives: Any
    exponent: Any
    positive_rule: Any
    below: Any
    history_length: Any

    def ordered(self) -> list[Any]:
        return [
            self.input_data,
            self.threshold,
            self.min_auc,
            self.ndcg_margin,
            self.proc_type,
            self.train_type,
            self.train_count,
            self.approval,
            *self.hp.values(),
            self.objective,
            self.negatives,
            self.exponent,
            self.positive_rule,
            self.below,
            self.history_length,
        ]


def objective_defaults(
    objective: str,
    negatives: int,
    exponent: float,
    positives: str,
    below: bool,
    history: int = DEFAULT_HISTORY,
) -> dict[str, Any]:
    """The objective parameters' defaults, refused here when the preprocess step would refuse them."""
    try:
        check_objective(objective, PREDICTOR_TYPE)
        SamplingConfig(objective, negatives, exponent, positives, below)
        HistoryConfig(cap=history).validate("HistoryLength")
    except InputError as exc:
        raise DefinitionError(str(exc)) from None
    return {
        "Objective": objective,
        "NegativesPerPositive": int(negatives),
        "NegativeExponent": float(exponent),
        "PositiveRule": positives,
        "BelowThresholdNegatives": "true" if below else "false",
        "HistoryLength": int(history),
    }


def pipeline_parameters(
    *,
    input_data_url: str,
    label_threshold: float,
    gate_min_auc: float,
    gate_ndcg_margin: float,
    processing_instance_type: str,
    training_instance_type: str,
    training_instance_count: int,
    hp_defaults: Mapping[str, int | float | str],
    sampling: Mapping[str, Any] | None = None,
) -> PipelineParameters:
    makers = {"Integer": ParameterInteger, "Float": ParameterFloat, "String": ParameterString}
    # The training objective (fmrec/features/objective.py); BelowThresholdNegatives is a "true"/"false"
    # String rather than a Boolean so the argument the step receives is plain text.
    sampling = dict(sampling or objective_defaults(OBJECTIVES[0], 4, 0.75, "weighted", False))
    return PipelineParameters(
        input_data=ParameterString("InputDataUrl", default_value=input_data_url),
        threshold=ParameterFloat("LabelThreshold", default_value=float(label_threshold)),
        min_auc=ParameterFloat("GateMinAuc", default_value=float(gate_min_auc)),
        ndcg_margin=ParameterFloat("GateNdcgMargin", default_value=float(gate_ndcg_margin)),
        proc_type=ParameterString("ProcessingInstanceType", default_value=processing_instance_type),
        train_type=ParameterString("TrainingInstanceType", default_value=training_instance_type),
        train_count=ParameterInteger("TrainingInstanceCount", default_value=int(training_instance_count)),
        approval=ParameterString("ModelApprovalStatus", default_value="PendingManualApproval"),
        hp={
            h.parameter: makers[h.kind](h.parameter, default_value=hp_defaults[h.parameter])
            for h in PIPELINE_PARAMETERS
        },
        objective=ParameterString("Objective", default_value=sampling["Objective"]),
        negatives=ParameterInteger("NegativesPerPositive", default_value=sampling["NegativesPerPositive"]),
        exponent=ParameterFloat("NegativeExponent", default_value=sampling["NegativeExponent"]),
        positive_rule=ParameterString("PositiveRule", default_value=sampling["PositiveRule"]),
        below=ParameterString("BelowThresholdNegatives", default_value=sampling["BelowThresholdNegatives"]),
        history_length=ParameterInteger("HistoryLength", default_value=int(sampling["HistoryLength"])),
    )
