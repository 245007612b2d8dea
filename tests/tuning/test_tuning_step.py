"""The tuning branch of the pipeline: its steps, the TuningStep request shape, the best model's hand-off."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from fmrec.tuning.job import config_from_request
from fmrec.tuning.space import DEFAULT_RANGES, ParamRange, TuningError, build_space
from pipeline import definition as pdef
from pipeline.tuning import CARVE_STEP, CHOOSE_STEP, PIPELINE_RANGES, TUNE_STEP, TuningOptions
from tests.support.pipeline_shapes import typed
from twins.pipeline.graph import all_steps

pytestmark = pytest.mark.slow

REGISTER_TUNED = "RegisterModelTuned-RegisterModel"


def shape(operation: str) -> Any:
    return (
        botocore.session.get_session().get_service_model("sagemaker").operation_model(operation).input_shape
    )


def step(definition: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in all_steps(definition) if s["Name"] == name)


def test_a_condition_on_use_tuning_chooses_the_branch(tuning_definition: dict[str, Any]) -> None:
    assert [s["Name"] for s in tuning_definition["Steps"]] == ["Preprocess", CHOOSE_STEP]
    args = step(tuning_definition, CHOOSE_STEP)["Arguments"]
    assert args["Conditions"] == [
        {"Type": "Equals", "LeftValue": {"Get": "Parameters.UseTuning"}, "RightValue": True}
    ]
    assert [s["Name"] for s in args["IfSteps"]] == [
        CARVE_STEP,
        TUNE_STEP,
        "EvaluateModelTuned",
        "CheckQualityTuned",
    ]
    assert [s["Name"] for s in args["ElseSteps"]] == ["TrainModel", "EvaluateModel", "CheckQuality"]
    params = {p["Name"]: p for p in tuning_definition["Parameters"]}
    assert params["UseTuning"] == {"Name": "UseTuning", "Type": "Boolean", "DefaultValue": False}
    assert params["TuningMaxJobs"]["Type"] == params["TuningMaxParallelJobs"]["Type"] == "Integer"
    assert len(json.dumps(tuning_definition)) < pdef.MAX_DEFINITION_CHARS


def test_tuning_step_validates_against_botocore_shape(tuning_definition: dict[str, Any]) -> None:
    tune = step(tuning_definition, TUNE_STEP)
    assert tune["Type"] == "Tuning"
    request_shape = shape("CreateHyperParameterTuningJob")
    request = {"HyperParameterTuningJobName": "job", **typed(tune["Arguments"], request_shape)}
    report = ParamValidator().validate(request, request_shape)
    assert not report.has_errors(), report.generate_report()

    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    # FM is not on AWS's early-stopping list: "Auto" would do nothing there, so the branch asks for "Off".
    assert config["Strategy"] == "Bayesian" and config["TrainingJobEarlyStoppingType"] == "Off"
    assert config["HyperParameterTuningJobObjective"] == {
        "Type": "Minimize",
        "MetricName": "test:binary_classification_cross_entropy",
    }
    assert config["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": {"Get": "Parameters.TuningMaxJobs"},
        "MaxParallelTrainingJobs": {"Get": "Parameters.TuningMaxParallelJobs"},
    }
    names = {r["Name"] for group in config["ParameterRanges"].values() for r in group}
    assert {"epochs", "mini_batch_size"} <= names
    assert "num_factors" not in names  # not tunable on AWS's fm-tuning page: static (NumFactors)
    assert {f"{g}_{k}" for g in ("bias", "linear", "factors") for k in ("lr", "wd")} <= names

    definition = tune["Arguments"]["TrainingJobDefinition"]
    # tuned ones dropped; factors_init_sigma and num_factors are not searched, so they stay static
    assert set(definition["StaticHyperParameters"]) == {
        "feature_dim",
        "predictor_type",
        "factors_init_sigma",
        "num_factors",
    }
    assert "Parameters.NumFactors" in json.dumps(definition["StaticHyperParameters"]["num_factors"])
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in definition["InputDataConfig"]}
    assert channels["train"]["S3DataDistributionType"] == "ShardedByS3Key"
    # The objective's "test" channel is the split carved from train, never preprocess's test output.
    assert channels["test"]["S3Uri"] == {
        "Get": f"Steps.{CARVE_STEP}.ProcessingOutputConfig.Outputs['validation'].S3Output.S3Uri"
    }


@pytest.mark.parametrize(
    ("step_type", "operation", "run_time"),
    [
        ("Processing", "CreateProcessingJob", {"ProcessingJobName": "job"}),
        ("Training", "CreateTrainingJob", {"TrainingJobName": "job"}),
        ("RegisterModel", "CreateModelPackage", {}),
    ],
)
def test_every_step_of_both_branches_validates(
    tuning_definition: dict[str, Any], step_type: str, operation: str, run_time: dict[str, str]
) -> None:
    request_shape = shape(operation)
    steps = [s for s in all_steps(tuning_definition) if s["Type"] == step_type]
    assert steps
    for s in steps:
        report = ParamValidator().validate(
            {**run_time, **typed(s["Arguments"], request_shape)}, request_shape
        )
        assert not report.has_errors(), f"{s['Name']}: {report.generate_report()}"


def test_a_wrong_tuning_request_fails_the_shape_check(tuning_definition: dict[str, Any]) -> None:
    request_shape = shape("CreateHyperParameterTuningJob")
    request = {
        "HyperParameterTuningJobName": "job",
        **typed(step(tuning_definition, TUNE_STEP)["Arguments"], request_shape),
    }
    request["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = "two"
    assert ParamValidator().validate(request, request_shape).has_errors()


def test_carve_step_reads_train_only_and_validates(tuning_definition: dict[str, Any]) -> None:
    carve = step(tuning_definition, CARVE_STEP)
    request_shape = shape("CreateProcessingJob")
    request = {"ProcessingJobName": "job", **typed(carve["Arguments"], request_shape)}
    assert not ParamValidator().validate(request, request_shape).has_errors()
    sources = json.dumps([i["S3Input"]["S3Uri"] for i in carve["Arguments"]["ProcessingInputs"]])
    assert "Outputs['train']" in sources and "Outputs['test']" not in sources
    assert carve["Arguments"]["AppSpecification"]["ContainerEntrypoint"][-1].endswith("carve_validation.py")


def test_best_training_job_model_flows_into_evaluate_and_register(tuning_definition: dict[str, Any]) -> None:
    best = {"Get": f"Steps.{TUNE_STEP}.TrainingJobSummaries[0].TrainingJobName"}
    evaluate = step(tuning_definition, "EvaluateModelTuned")["Arguments"]
    model_input = next(i for i in evaluate["ProcessingInputs"] if i["InputName"] == "model")
    assert model_input["S3Input"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": ["s3:/", "${ArtifactBucket}", "models/tuning", best, "output"]}
    }
    register = step(tuning_definition, REGISTER_TUNED)["Arguments"]
    model_url = register["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    served = ["s3:/", "${ArtifactBucket}", "models", {"Get": "Execution.PipelineExecutionId"}]
    assert model_url == {  # what EvaluateModelTuned judged: its "model" output (the best job's, or served)
        "Std:Join": {"On": "/", "Values": [*served, "evaluatetuned", "model", "model.tar.gz"]}
    }
    outputs = evaluate["ProcessingOutputConfig"]["Outputs"]
    model_output = next(o for o in outputs if o["OutputName"] == "model")
    assert model_output["S3Output"]["S3Uri"] == {
        "Std:Join": {"On": "/", "Values": [*served, "evaluatetuned", "model"]}
    }
    gate = step(tuning_definition, "CheckQualityTuned")["Arguments"]
    assert "EvaluateModelTuned" in json.dumps(gate["Conditions"])


def test_local_tuner_reads_the_same_request(tuning_definition: dict[str, Any]) -> None:
    args = json.loads(json.dumps(step(tuning_definition, TUNE_STEP)["Arguments"]))
    args["HyperParameterTuningJobConfig"]["ResourceLimits"] = {
        "MaxNumberOfTrainingJobs": 6,
        "MaxParallelTrainingJobs": 4,
    }
    args["TrainingJobDefinition"]["StaticHyperParameters"]["feature_dim"] = "100"
    config = config_from_request(args, default_parallel=2)
    # The twin reads the request's "Off" and so, like SageMaker for FM, runs every trial to its end.
    assert config.max_jobs == 6 and config.max_parallel == 2 and not config.early_stopping
    assert config.objective.metric_name == "test:binary_classification_cross_entropy"
    assert {r.name: r for r in config.space} == {r.name: r for r in build_space(PIPELINE_RANGES, base=())}

    ints = args["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"]
    next(r for r in ints if r["Name"] == "epochs")["MaxValue"] = "5000"
    with pytest.raises(TuningError, match=r"range epochs: \[2, 5000\] is outside FM's documented limits"):
        config_from_request(args)


def test_bad_options_fail_before_any_definition_is_built() -> None:
    with pytest.raises(TuningError, match="emitted only by a regressor"):
        TuningOptions(objective="test:rmse")
    with pytest.raises(TuningError, match="outside FM's documented limits"):
        TuningOptions(ranges=(*PIPELINE_RANGES, ParamRange("epochs", "int", 1, 5000)))
    with pytest.raises(TuningError, match="num_factors is not tunable for FM on SageMaker"):
        TuningOptions(ranges=DEFAULT_RANGES)
    with pytest.raises(TuningError, match="max_parallel_jobs"):
        TuningOptions(max_parallel_jobs=0)
