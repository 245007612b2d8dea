"""The RegisterModel step: a model package version in the group, with its metrics and lookup."""

from __future__ import annotations

from typing import Any

from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from pipeline.build.context import BuildContext
from pipeline.sdk import Join, MetricsSource, Model, ModelMetrics, ModelStep

REGISTER_STEP = "RegisterModel"
CONTENT_TYPES = ("application/json", RECORDIO)
RESPONSE_TYPES = ("application/json",)
INFERENCE_INSTANCES = ("ml.c4.xlarge", "ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge")
TRANSFORM_INSTANCES = ("ml.c4.xlarge", "ml.m5.xlarge")


def register_step(
    ctx: BuildContext, model_data: Any, lookup_uri: Any, eval_parts: list[Any], suffix: str = ""
) -> Any:
    model = Model(
        image_uri=ctx.images["fm"], model_data=model_data, role=ctx.role_arn, sagemaker_session=ctx.session
    )
    metrics_uri = Join(on="/", values=[*eval_parts, "model_metrics.json"])
    return ModelStep(
        name=REGISTER_STEP + suffix,
        step_args=model.register(
            content_types=list(CONTENT_TYPES),
            response_types=list(RESPONSE_TYPES),
            inference_instances=list(INFERENCE_INSTANCES),
            transform_instances=list(TRANSFORM_INSTANCES),
            model_package_group_name=ctx.group,
            approval_status=ctx.params.approval,
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=metrics_uri, content_type="application/json")
            ),
            description="fmrec: SageMaker Factorization Machines recommender (label: rating >= threshold)",
            # The serving side (deployer, API twin) needs the lookup of the data this model was trained on.
            customer_metadata_properties={
                "LookupS3Uri": lookup_uri,
                "EvaluationS3Uri": Join(on="/", values=eval_parts),
            },
        ),
    )
