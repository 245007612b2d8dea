"""The tuning path of the pipeline: a TuningStep (CreateHyperParameterTuningJob) over FM's ranges.

    UseTuning? ──true──► CarveValidation ──► TuneModel ──► EvaluateTuned ──► gate ──► register | fail
        │                 (train → fit +      (Bayesian,     model: <output>/<best job>/output/model.tar.gz
        │                  validation)         early stop)
        └──false─► the plain TrainModel branch (train → evaluate → gate → register | fail)

The tuning job's "test" channel is the validation split carved from the train channel, so the gate's test set
never steers the search. SageMaker Pipelines cannot skip a step except through a ConditionStep branch, and a
step downstream of both branches would never run, so each branch carries its own evaluate → gate → register
chain; the tuned chain reads its model from TuningStep.get_top_model_s3_uri(top_k=0) (the best training job).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fmrec.tuning.space import Objective, ParamRange

Expr = Any  # a literal or a pipeline expression ({"Get": ...}, {"Std:Join": ...})

TUNE_STEP = "TuneModel"
RECORDIO = "application/x-recordio-protobuf"


def parameter_ranges(space: Sequence[ParamRange]) -> dict[str, list[dict[str, str]]]:
    return {
        "IntegerParameterRanges": [r.to_sagemaker() for r in space if r.kind == "int"],
        "ContinuousParameterRanges": [r.to_sagemaker() for r in space if r.kind == "float"],
        "CategoricalParameterRanges": [],
    }


def _channel(name: str, s3_uri: Expr, distribution: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": s3_uri,
                "S3DataDistributionType": distribution,
            }
        },
        "ContentType": RECORDIO,
        "InputMode": "File",
    }


def tuning_job_arguments(
    *,
    image_uri: Expr,
    role_arn: Expr,
    train_s3: Expr,
    validation_s3: Expr,
    output_s3: Expr,
    instance_type: Expr,
    instance_count: Expr,
    static_hyperparameters: Mapping[str, Expr],
    space: Sequence[ParamRange],
    objective: Objective,
    max_jobs: Expr,
    max_parallel: Expr,
    early_stopping: bool = True,
    volume_size_gb: int = 30,
    max_runtime_s: int = 86400,
) -> dict[str, Any]:
    """The CreateHyperParameterTuningJob request of a TuningStep (without its name: the pipeline sets it).

    The train channel is sharded by S3 key, as in the single-run TrainingStep, so instance_count > 1 works.
    """
    return {
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": objective.direction,
                "MetricName": objective.metric_name,
            },
            "ResourceLimits": {"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel},
            "ParameterRanges": parameter_ranges(space),
            "TrainingJobEarlyStoppingType": "Auto" if early_stopping else "Off",
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": dict(static_hyperparameters),
            "AlgorithmSpecification": {"TrainingImage": image_uri, "TrainingInputMode": "File"},
            "RoleArn": role_arn,
            "InputDataConfig": [
                _channel("train", train_s3, "ShardedByS3Key"),
                _channel("test", validation_s3, "FullyReplicated"),
            ],
            "OutputDataConfig": {"S3OutputPath": output_s3},
            "ResourceConfig": {
                "InstanceType": instance_type,
                "InstanceCount": instance_count,
                "VolumeSizeInGB": volume_size_gb,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_s},
        },
    }


def tuning_step(name: str, arguments: Mapping[str, Any], depends_on: Sequence[str] = ()) -> dict[str, Any]:
    step: dict[str, Any] = {"Name": name, "Type": "Tuning", "Arguments": dict(arguments)}
    if depends_on:
        step["DependsOn"] = list(depends_on)
    return step


def top_model_s3_uri(step_name: str, output_s3: Expr, top_k: int = 0) -> dict[str, Any]:
    """What TuningStep.get_top_model_s3_uri builds: <S3OutputPath>/<k-th best job>/output/model.tar.gz.

    A TuningStep's TrainingJobSummaries come sorted by final objective, best first: top_k=0 is the best.
    """
    if not 0 <= top_k <= 49:
        raise ValueError(f"top_k: a TuningStep keeps the 50 best training jobs; expected 0..49, got {top_k}")
    # Join values must be plain values or references: an output path that is itself a "/"-Join is spliced in.
    head: list[Expr]
    if isinstance(output_s3, Mapping) and output_s3.get("Std:Join", {}).get("On") == "/":
        head = list(output_s3["Std:Join"]["Values"])
    else:
        head = [output_s3]
    return {
        "Std:Join": {
            "On": "/",
            "Values": [
                *head,
                {"Get": f"Steps.{step_name}.TrainingJobSummaries[{top_k}].TrainingJobName"},
                "output/model.tar.gz",
            ],
        }
    }
