"""The CheckQuality step: a Condition on evaluation.json per objective → RegisterModel | QualityGateFailed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fmrec.features.objective import OBJECTIVES
from pipeline.build.context import BuildContext
from pipeline.sdk import (
    ConditionEquals,
    ConditionGreaterThan,
    ConditionGreaterThanOrEqualTo,
    ConditionLessThan,
    ConditionOr,
    ConditionStep,
    FailStep,
    Join,
)

GATE_STEP = "CheckQuality"
FAIL_STEP = "QualityGateFailed"


@dataclass(frozen=True)
class GateCheck:
    """One gate condition of one objective: evaluation.json `left` <op> `right` (a path or a parameter)."""

    objective: str  # the check binds only when the Objective parameter has this value
    left: str
    op: str  # a SageMaker condition type
    right: str
    right_is_parameter: bool = False


# ranking: the model's NDCG@10 must beat popularity's by GateNdcgMargin, relative: model >= (1 + margin) x
# popularity. Relative, because NDCG levels differ across datasets while "x% better than most-popular" means
# the same on each. Conditions compare but cannot compute, so the evaluate step writes the lift
# (model - popularity) / popularity into evaluation.json and the condition compares it with the margin.
# rating: the seed's pointwise gate (AUC floor, better AUC and log loss than both baselines).
GATE_CHECKS = (
    GateCheck("ranking", "ranking.ndcg_at_10_lift", "GreaterThanOrEqualTo", "GateNdcgMargin", True),
    GateCheck("rating", "model.auc", "GreaterThanOrEqualTo", "GateMinAuc", right_is_parameter=True),
    GateCheck("rating", "model.auc", "GreaterThan", "popularity.auc"),
    GateCheck("rating", "model.auc", "GreaterThan", "biases.auc"),
    GateCheck("rating", "model.log_loss", "LessThan", "popularity.log_loss"),
    GateCheck("rating", "model.log_loss", "LessThan", "biases.log_loss"),
)


def gate_conditions(ctx: BuildContext, metric: Callable[[str], Any]) -> list[Any]:
    """One condition per GATE_CHECKS entry, binding only when the Objective parameter names its objective."""
    objective = ctx.params.objective_settings["objective"]
    ops = {
        "GreaterThanOrEqualTo": ConditionGreaterThanOrEqualTo,
        "GreaterThan": ConditionGreaterThan,
        "LessThan": ConditionLessThan,
    }
    parameters = {"GateMinAuc": ctx.params.min_auc, "GateNdcgMargin": ctx.params.ndcg_margin}
    # A ConditionStep's conditions must all hold (https://docs.aws.amazon.com/sagemaker/latest/dg/
    # build-and-manage-steps.html#step-type-condition), and there is no if/else on a parameter inside one
    # step. So each check of an objective becomes "Objective is the other one OR the check holds": it binds
    # exactly when its objective runs. An unknown Objective value binds every check of both objectives
    # (preprocess rejects it earlier anyway). Or of Equals is used rather than Not, whose JSON form the
    # service once rejected (https://github.com/aws/sagemaker-python-sdk/issues/2746).
    return [
        ConditionOr(
            conditions=[
                ConditionEquals(left=objective, right=next(o for o in OBJECTIVES if o != c.objective)),
                ops[c.op](
                    left=metric(c.left),
                    right=parameters[c.right] if c.right_is_parameter else metric(c.right),
                ),
            ]
        )
        for c in GATE_CHECKS
    ]


def fail_step(ctx: BuildContext, metric: Callable[[str], Any], suffix: str = "") -> Any:
    # The Fail step's ErrorMessage may be a Join of parameters and JsonGet values, resolved when it runs
    # (https://docs.aws.amazon.com/sagemaker/latest/dg/build-and-manage-steps.html#step-type-fail); the
    # execution step's FailureReason keeps at most 1024 characters
    # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_PipelineExecutionStep.html), so it stays
    # short: the figures of both objectives, the Objective value saying which gate applied.
    return FailStep(
        name=FAIL_STEP + suffix,
        error_message=Join(
            on=" ",
            values=[
                "Quality gate failed for Objective",
                ctx.params.objective_settings["objective"],
                "- ranking gate: model NDCG@10",
                metric("ranking.model.ndcg_at_10"),
                "vs popularity NDCG@10",
                metric("ranking.popularity.ndcg_at_10"),
                "is a lift of",
                metric("ranking.ndcg_at_10_lift"),
                "and needs >= GateNdcgMargin",
                ctx.params.ndcg_margin,
                "- rating gate: model AUC",
                metric("model.auc"),
                "log loss",
                metric("model.log_loss"),
                "needs AUC >= GateMinAuc",
                ctx.params.min_auc,
                "and better AUC and log loss than popularity: AUC",
                metric("popularity.auc"),
                "log loss",
                metric("popularity.log_loss"),
                "and biases-only: AUC",
                metric("biases.auc"),
                "log loss",
                metric("biases.log_loss"),
            ],
        ),
    )


def gate_step(ctx: BuildContext, metric: Callable[[str], Any], register: Any, suffix: str = "") -> Any:
    return ConditionStep(
        name=GATE_STEP + suffix,
        conditions=gate_conditions(ctx, metric),
        if_steps=[register],
        else_steps=[fail_step(ctx, metric, suffix)],
    )
