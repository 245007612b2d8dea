"""The pipeline definition: offline build, placeholders, size, botocore request shapes, DAG edges."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pipeline import definition as pdef
from tests.support.pipeline_shapes import typed
from twins.pipeline.graph import all_steps, edges, topological_order

pytestmark = pytest.mark.slow

REGISTER = "RegisterModel-RegisterModel"
OPERATIONS = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "RegisterModel": "CreateModelPackage",
}
# The job names SageMaker Pipelines sets at run time; the definition leaves them out.
RUN_TIME_FIELDS = {
    "CreateProcessingJob": {"ProcessingJobName": "job"},
    "CreateTrainingJob": {"TrainingJobName": "job"},
}


def test_definition_has_every_step(cdk_definition: dict[str, Any]) -> None:
    kinds = {s["Name"]: s["Type"] for s in all_steps(cdk_definition)}
    assert kinds == {
        "Preprocess": "Processing",
        "TrainModel": "Training",
        "EvaluateModel": "Processing",
        "CheckQuality": "Condition",
        REGISTER: "RegisterModel",
        "QualityGateFailed": "Fail",
    }


@pytest.mark.parametrize("step_type", sorted(OPERATIONS))
def test_arguments_match_botocore_request_shapes(cdk_definition: dict[str, Any], step_type: str) -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    operation = OPERATIONS[step_type]
    shape = model.operation_model(operation).input_shape
    steps = [s for s in all_steps(cdk_definition) if s["Type"] == step_type]
    assert steps
    for step in steps:
        request = {**RUN_TIME_FIELDS.get(operation, {}), **typed(step["Arguments"], shape)}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{step['Name']}: {report.generate_report()}"


def test_validation_catches_a_wrong_type(cdk_definition: dict[str, Any]) -> None:
    """The shape check above can fail: an instance count given as text is rejected."""
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
    train = next(s for s in all_steps(cdk_definition) if s["Name"] == "TrainModel")
    request = {"TrainingJobName": "job", **typed(train["Arguments"], shape.input_shape)}
    request["ResourceConfig"]["InstanceCount"] = "two"
    assert ParamValidator().validate(request, shape.input_shape).has_errors()


def test_dag_edges(cdk_definition: dict[str, Any]) -> None:
    assert edges(cdk_definition) == {
        ("Preprocess", "TrainModel"),  # channels + feature_dim by JsonGet on the manifest
        ("Preprocess", "EvaluateModel"),  # test, train, lookup
        ("TrainModel", "EvaluateModel"),  # the model
        ("EvaluateModel", "CheckQuality"),  # the evaluation PropertyFile
        ("CheckQuality", REGISTER),
        ("CheckQuality", "QualityGateFailed"),
        # no TrainModel edge: the ModelDataUrl is EvaluateModel's model output, after CheckQuality anyway
        ("Preprocess", REGISTER),  # the lookup location, in CustomerMetadataProperties
        ("EvaluateModel", "QualityGateFailed"),  # the reason quotes the metrics
    }
    assert topological_order(cdk_definition)[:4] == [
        "Preprocess",
        "TrainModel",
        "EvaluateModel",
        "CheckQuality",
    ]


def test_only_the_documented_placeholders_and_size(cdk_definition: dict[str, Any]) -> None:
    text = json.dumps(cdk_definition)
    assert set(re.findall(r"\$\{([^}]*)\}", text)) == set(pdef.PLACEHOLDERS)
    assert len(text) < pdef.MAX_DEFINITION_CHARS


def test_feature_dim_comes_from_the_preprocess_manifest(cdk_definition: dict[str, Any]) -> None:
    pre = next(s for s in cdk_definition["Steps"] if s["Name"] == "Preprocess")
    assert pre["PropertyFiles"] == [
        {"PropertyFileName": "Manifest", "OutputName": "manifest", "FilePath": "manifest.json"}
    ]
    hp = next(s for s in cdk_definition["Steps"] if s["Name"] == "TrainModel")["Arguments"]["HyperParameters"]
    feature_dim = hp["feature_dim"]["Std:Join"]["Values"][0]["Std:JsonGet"]
    assert feature_dim == {
        "PropertyFile": {"Get": "Steps.Preprocess.PropertyFiles.Manifest"},
        "Path": "feature_dim",
    }
    assert hp["predictor_type"] == "binary_classifier"
    for name in ("num_factors", "epochs", "mini_batch_size"):
        assert "Get" in hp[name]["Std:Join"]["Values"][0]


def test_training_is_distributable_and_uses_the_fm_image(cdk_definition: dict[str, Any]) -> None:
    args = next(s for s in cdk_definition["Steps"] if s["Name"] == "TrainModel")["Arguments"]
    channels = {c["ChannelName"]: c for c in args["InputDataConfig"]}
    assert channels["train"]["DataSource"]["S3DataSource"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert channels["train"]["ContentType"] == "application/x-recordio-protobuf"
    assert args["ResourceConfig"]["InstanceCount"] == {"Get": "Parameters.TrainingInstanceCount"}
    assert args["AlgorithmSpecification"]["TrainingImage"].endswith("/factorization-machines:1")
    params = {p["Name"]: p for p in cdk_definition["Parameters"]}
    assert params["TrainingInstanceType"]["DefaultValue"] == "ml.c4.xlarge"
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"


def test_register_declares_content_types_instances_and_metrics(cdk_definition: dict[str, Any]) -> None:
    args = next(s for s in all_steps(cdk_definition) if s["Name"] == REGISTER)["Arguments"]
    spec = args["InferenceSpecification"]
    assert set(spec["SupportedContentTypes"]) == {"application/json", "application/x-recordio-protobuf"}
    assert "ml.c4.xlarge" in spec["SupportedRealtimeInferenceInstanceTypes"]
    stats = args["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert stats["ContentType"] == "application/json"
    assert stats["S3Uri"]["Std:Join"]["Values"][-1] == "model_metrics.json"
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}


def test_gate_switches_on_the_objective_and_fails_with_both_figures(cdk_definition: dict[str, Any]) -> None:
    gate = next(s for s in cdk_definition["Steps"] if s["Name"] == "CheckQuality")["Arguments"]
    assert len(gate["Conditions"]) == len(pdef.GATE_CHECKS)
    # Every condition is "Objective is the other one OR the check": conditions are AND-ed, so each
    # objective's checks bind only in that objective.
    by_objective: dict[str, list[dict[str, Any]]] = {}
    for cond in gate["Conditions"]:
        assert cond["Type"] == "Or"
        switch, check = cond["Conditions"]
        assert switch["Type"] == "Equals" and switch["LeftValue"] == {"Get": "Parameters.Objective"}
        other = switch["RightValue"]
        by_objective.setdefault(next(o for o in pdef.OBJECTIVES if o != other), []).append(check)
    [ranking] = by_objective["ranking"]
    assert ranking["Type"] == "GreaterThanOrEqualTo"
    assert ranking["LeftValue"]["Std:JsonGet"]["Path"] == "ranking.ndcg_at_10_lift"
    assert ranking["RightValue"] == {"Get": "Parameters.GateNdcgMargin"}
    rating = by_objective["rating"]
    assert rating[0]["RightValue"] == {"Get": "Parameters.GateMinAuc"} and len(rating) == 5
    params = {p["Name"]: p for p in cdk_definition["Parameters"]}
    assert params["Objective"] == {"Name": "Objective", "Type": "String", "DefaultValue": "ranking"}
    assert params["GateNdcgMargin"]["Type"] == "Float"
    fail = gate["ElseSteps"][0]
    message = json.dumps(fail["Arguments"]["ErrorMessage"])
    assert fail["Type"] == "Fail" and "Quality gate failed" in message
    for path in ("ranking.model.ndcg_at_10", "ranking.popularity.ndcg_at_10", "model.auc"):
        assert f'"Path": "{path}"' in message


def test_evaluate_reads_the_holdout_and_gets_the_objective(cdk_definition: dict[str, Any]) -> None:
    args = next(s for s in cdk_definition["Steps"] if s["Name"] == "EvaluateModel")["Arguments"]
    inputs = {i["InputName"]: i for i in args["ProcessingInputs"]}
    source = inputs["holdout"]["S3Input"]["S3Uri"]["Get"]
    assert source == "Steps.Preprocess.ProcessingOutputConfig.Outputs['holdout'].S3Output.S3Uri"
    assert inputs["holdout"]["S3Input"]["LocalPath"] == "/opt/ml/processing/input/holdout"
    container = args["AppSpecification"]["ContainerArguments"]
    assert container[:2] == ["--objective", {"Get": "Parameters.Objective"}] and container[2] == "--threshold"
    with pytest.raises(pdef.DefinitionError, match="objective"):
        pdef.get_pipeline(
            region="us-east-1", role_arn="r", artifact_bucket="b", code_uri="s3://b/code", objective="clicks"
        )


def test_region_selects_images_and_bad_arguments_are_rejected() -> None:
    eu = pdef.image_uris("eu-west-1")
    assert eu["fm"] != pdef.image_uris("us-east-1")["fm"] and "eu-west-1" in eu["fm"]
    with pytest.raises(pdef.DefinitionError, match="code_uri"):
        pdef.get_pipeline(region="us-east-1", role_arn="r", artifact_bucket="b", code_uri="./local/code")
    with pytest.raises(pdef.DefinitionError, match="hyperparameters"):
        pdef.get_pipeline(
            region="us-east-1",
            role_arn="r",
            artifact_bucket="b",
            code_uri="s3://b/code",
            hyperparameters={"LearningRate": 1},
        )


def test_objective_parameters_reach_the_preprocess_step(cdk_definition: dict[str, Any]) -> None:
    params = {p["Name"]: p for p in cdk_definition["Parameters"]}
    assert params["Objective"] == {"Name": "Objective", "Type": "String", "DefaultValue": "ranking"}
    assert (
        params["NegativesPerPositive"]["Type"] == "Integer"
        and params["NegativesPerPositive"]["DefaultValue"] == 4
    )
    assert params["NegativeExponent"]["Type"] == "Float" and params["NegativeExponent"]["DefaultValue"] == 0.5
    assert params["PositiveRule"]["DefaultValue"] == "weighted"
    assert params["HistoryLength"] == {"Name": "HistoryLength", "Type": "Integer", "DefaultValue": 64}
    assert params["BelowThresholdNegatives"]["DefaultValue"] == "false"
    pre = next(s for s in cdk_definition["Steps"] if s["Name"] == "Preprocess")["Arguments"]
    argv = json.dumps(pre["AppSpecification"]["ContainerArguments"])
    for flag, name in [
        ("--objective", "Objective"),
        ("--negatives", "NegativesPerPositive"),
        ("--negative-exponent", "NegativeExponent"),
        ("--positives", "PositiveRule"),
        ("--below-threshold-negatives", "BelowThresholdNegatives"),
        ("--history", "HistoryLength"),
    ]:
        assert flag in argv and f"Parameters.{name}" in argv
    assert "holdout" in [o["OutputName"] for o in pre["ProcessingOutputConfig"]["Outputs"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "clicks"}, "objective 'clicks': expected one of ranking, rating"),
        ({"negatives_per_positive": -2}, "negatives per positive -2"),
        ({"negative_exponent": 3.0}, r"negative exponent 3.0: expected a number in \[0, 1\]"),
        ({"positives": "loved"}, "positives 'loved'"),
        ({"history": -1}, "HistoryLength length -1"),
        ({"below_threshold_negatives": True}, "only with positives 'liked'"),
    ],
)
def test_literal_objective_defaults_are_checked(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(pdef.DefinitionError, match=message):
        pdef.get_pipeline(
            region="us-east-1", role_arn="r", artifact_bucket="b", code_uri="s3://b/code", **kwargs
        )


def test_rating_objective_default(offline_pipeline: Any) -> None:
    doc = offline_pipeline(objective="rating", negatives_per_positive=0)
    params = {p["Name"]: p.get("DefaultValue") for p in doc["Parameters"]}
    assert params["Objective"] == "rating" and params["NegativesPerPositive"] == 0
