"""The TrainModel step: the built-in FM container on the preprocess channels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from pipeline.build.context import BuildContext
from pipeline.build.preprocess import PREPROCESS_STEP
from pipeline.estimator import fm_estimator
from pipeline.parameters import PREDICTOR_TYPE
from pipeline.sdk import Join, JsonGet, TrainingInput, TrainingStep

TRAIN_STEP = "TrainModel"


def train_step(ctx: BuildContext, manifest: Any, pre_uri: Callable[[str], Any]) -> tuple[Any, Any, Any]:
    """(the step, its estimator, the S3 folder of its job's outputs).

    feature_dim is only known after preprocess, so it comes from the manifest by JsonGet (an over-allocated
    dim would waste memory and break the serving lookups' shape)."""
    p = ctx.params
    models_uri = f"s3://{ctx.bucket}/models"
    estimator = fm_estimator(
        image_uri=ctx.images["fm"],
        role_arn=ctx.role_arn,
        instance_count=p.train_count,
        instance_type=p.train_type,
        output_path=models_uri,
        session=ctx.session,
    )
    estimator.set_hyperparameters(
        feature_dim=JsonGet(step_name=PREPROCESS_STEP, property_file=manifest, json_path="feature_dim"),
        predictor_type=PREDICTOR_TYPE,
        **{h.hyperparameter: p.hp[h.parameter] for h in PIPELINE_PARAMETERS},
    )
    train = TrainingStep(
        name=TRAIN_STEP,
        step_args=estimator.fit(
            {
                # Sharded so that TrainingInstanceCount > 1 gives each host its own shards (distributed FM).
                "train": TrainingInput(
                    pre_uri("train"), distribution="ShardedByS3Key", content_type=RECORDIO
                ),
                "test": TrainingInput(pre_uri("test"), distribution="FullyReplicated", content_type=RECORDIO),
            }
        ),
    )
    # The job's output folder holds model.tar.gz and, when the container wrote any, output.tar.gz (curves).
    train_output = Join(on="/", values=[models_uri, train.properties.TrainingJobName, "output"])
    return train, estimator, train_output
