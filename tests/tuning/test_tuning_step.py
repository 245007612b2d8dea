"""The TuningStep's arguments validate against botocore's CreateHyperParameterTuningJob request shape."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.validate import validate_parameters

from fmrec.tuning.job import config_from_request
from fmrec.tuning.space import TuningError, build_space, parse_range, resolve_objective
from pipeline.tuning import TUNE_STEP, top_model_s3_uri, tuning_job_arguments, tuning_step

# Long enough for every minimum length in the shape (a role ARN needs 20 characters).
_PLACEHOLDER = {
    "string": "arn:aws:iam::123456789012:role/placeholder",
    "integer": 1,
    "long": 1,
    "float": 1.0,
    "double": 1.0,
    "boolean": True,
}


def _is_expression(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and next(iter(value)) in ("Get", "Std:Join", "Std:JsonGet")
    )


def substitute(value: Any, shape: Shape) -> Any:
    """Replace pipeline expressions with a value of the type the shape expects at that place."""
    if _is_expression(value):
        return _PLACEHOLDER[shape.type_name]
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: substitute(v, shape.members[k]) if k in shape.members else v for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [substitute(v, shape.member) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: substitute(v, shape.value) for k, v in value.items()}
    return value


def request_shape() -> Shape:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return model.operation_model("CreateHyperParameterTuningJob").input_shape


def make_arguments(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image_uri": "382416733822.dkr.ecr.us-east-1.amazonaws.com/factorization-machines:1",
        "role_arn": {"Get": "Parameters.RoleArn"},
        "train_s3": {"Get": "Steps.CarveValidation.ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri"},
        "validation_s3": {
            "Get": "Steps.CarveValidation.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"
        },
        "output_s3": {"Std:Join": {"On": "/", "Values": ["s3:/", {"Get": "Parameters.Bucket"}, "tuning"]}},
        "instance_type": {"Get": "Parameters.TrainingInstanceType"},
        "instance_count": {"Get": "Parameters.TrainingInstanceCount"},
        "static_hyperparameters": {
            "feature_dim": {"Get": "Parameters.FeatureDim"},
            "predictor_type": "binary_classifier",
        },
        "space": build_space(),
        "objective": resolve_objective("binary_classifier", "test:binary_classification_accuracy"),
        "max_jobs": {"Get": "Parameters.TuningMaxJobs"},
        "max_parallel": {"Get": "Parameters.TuningMaxParallelJobs"},
    }
    base.update(kw)
    return tuning_job_arguments(**base)


def test_arguments_validate_against_botocore_shape() -> None:
    args = make_arguments()
    request = {"HyperParameterTuningJobName": "fmrec-tune", **substitute(args, request_shape())}
    validate_parameters(request, request_shape())  # raises ParamValidationError on any mismatch
    cfg = args["HyperParameterTuningJobConfig"]
    assert cfg["Strategy"] == "Bayesian" and cfg["TrainingJobEarlyStoppingType"] == "Auto"
    assert cfg["HyperParameterTuningJobObjective"] == {
        "Type": "Maximize",
        "MetricName": "test:binary_classification_accuracy",
    }
    names = {r["Name"] for group in cfg["ParameterRanges"].values() for r in group}
    assert {"num_factors", "epochs", "mini_batch_size", "bias_lr", "factors_wd"} <= names
    channels = {c["ChannelName"]: c for c in args["TrainingJobDefinition"]["InputDataConfig"]}
    assert set(channels) == {"train", "test"}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"


def test_a_wrong_request_fails_botocore_validation() -> None:
    args = make_arguments()
    args["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = "two"
    with pytest.raises(Exception, match="MaxParallelTrainingJobs"):
        validate_parameters(
            {"HyperParameterTuningJobName": "x", **substitute(args, request_shape())}, request_shape()
        )


def test_step_and_top_model_uri_follow_the_sdk_shapes() -> None:
    step = tuning_step(TUNE_STEP, make_arguments(), depends_on=["CarveValidation"])
    assert step["Type"] == "Tuning" and step["DependsOn"] == ["CarveValidation"]
    uri = top_model_s3_uri(TUNE_STEP, {"Std:Join": {"On": "/", "Values": ["s3:/", "bucket", "tuning"]}})
    assert uri == {
        "Std:Join": {
            "On": "/",
            "Values": [
                "s3:/",
                "bucket",
                "tuning",
                {"Get": f"Steps.{TUNE_STEP}.TrainingJobSummaries[0].TrainingJobName"},
                "output/model.tar.gz",
            ],
        }
    }
    with pytest.raises(ValueError, match=r"0\.\.49"):
        top_model_s3_uri(TUNE_STEP, "s3://b/p", top_k=50)


def test_local_tuner_reads_the_same_request_and_checks_it() -> None:
    args = make_arguments(
        static_hyperparameters={"feature_dim": "100", "predictor_type": "binary_classifier"}
    )
    args["HyperParameterTuningJobConfig"]["ResourceLimits"] = {
        "MaxNumberOfTrainingJobs": 6,
        "MaxParallelTrainingJobs": 4,
    }
    cfg = config_from_request(args, default_parallel=2)
    assert cfg.max_jobs == 6 and cfg.max_parallel == 2 and cfg.early_stopping
    assert cfg.objective.metric_name == "test:binary_classification_accuracy"
    assert {r.name: r for r in cfg.space} == {r.name: r for r in build_space()}

    bad = make_arguments(static_hyperparameters={"feature_dim": "100", "predictor_type": "regressor"})
    with pytest.raises(TuningError, match="emitted only by a binary_classifier"):
        config_from_request(bad)
    too_wide = make_arguments(space=build_space([parse_range("epochs=1:1000")]))
    too_wide["HyperParameterTuningJobConfig"]["ResourceLimits"] = {"MaxParallelTrainingJobs": 1}
    too_wide["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"][1]["MaxValue"] = (
        "5000"
    )
    with pytest.raises(TuningError, match="outside FM's documented limits"):
        config_from_request(too_wide)
