"""aws_cdk.assertions on every stack of the synthesized dev and prod stages."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from fmrec_cli.pipeline import LOCAL_ARGUMENTS, local_definition
from stacks.api import OPENAPI_PATH
from stacks.parts.recommend_function import HANDLER, POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_VERSION
from stacks.parts.rest_api import openapi_routes
from tests.support.cdk import REPO, Assembly


def template(assembly: Assembly, suffix: str) -> Template:
    return Template.from_json(assembly.stack(suffix))


# --- storage ---------------------------------------------------------------------------------------------
def test_storage_buckets(dev: Assembly) -> None:
    t = template(dev, "Storage")
    t.resource_count_is("AWS::S3::Bucket", 2)
    t.has_resource(
        "AWS::S3::Bucket",
        {
            "Properties": {
                "BucketName": {
                    "Fn::Join": ["", ["fmrec-dev-artifacts-", {"Ref": "AWS::AccountId"}, "-us-east-1"]]
                },
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "VersioningConfiguration": {"Status": "Enabled"},
                "LoggingConfiguration": {
                    "DestinationBucketName": {"Ref": Match.string_like_regexp("AccessLogBucket")}
                },
                "LifecycleConfiguration": {
                    "Rules": Match.array_with(
                        [
                            Match.object_like(
                                {"Prefix": "pipeline/", "ExpirationInDays": 14, "Status": "Enabled"}
                            ),
                            Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": 30}}),
                        ]
                    )
                },
            },
            "DeletionPolicy": "Delete",
        },
    )
    t.has_output("BucketName", {})


def test_storage_buckets_deny_plain_http(dev: Assembly) -> None:
    policies = dev.resources("Storage", "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


def test_prod_retains_data(prod: Assembly, dev: Assembly) -> None:
    buckets = prod.resources("Storage", "AWS::S3::Bucket")
    assert {b["DeletionPolicy"] for b in buckets.values()} == {"Retain"}
    # No auto-delete custom resource in a stage that keeps its data.
    assert not prod.resources("Storage", "Custom::S3AutoDeleteObjects")
    # The registry's group is kept by its custom resource in prod, emptied and deleted in dev.
    groups = prod.resources("Pipeline", "Custom::FmrecModelPackageGroup")
    assert [g["Properties"]["KeepOnDelete"] for g in groups.values()] == ["true"]
    dev_groups = dev.resources("Pipeline", "Custom::FmrecModelPackageGroup")
    assert [g["Properties"]["KeepOnDelete"] for g in dev_groups.values()] == ["false"]


# --- pipeline --------------------------------------------------------------------------------------------
def _pipeline(assembly: Assembly) -> dict[str, Any]:
    """The training pipeline's properties (the stack also deploys the batch pipeline: test_batch_stack.py)."""
    (resource,) = [
        r
        for r in assembly.resources("Pipeline", "AWS::SageMaker::Pipeline").values()
        if r["Properties"]["PipelineName"].endswith("-pipeline")
    ]
    return dict(resource["Properties"])


def test_pipeline_resources(dev: Assembly) -> None:
    t = template(dev, "Pipeline")
    t.resource_count_is("AWS::SageMaker::Pipeline", 2)  # training and batch recommendation
    t.resource_count_is("Custom::FmrecModelPackageGroup", 1)
    t.resource_count_is("Custom::CDKBucketDeployment", 1)
    t.resource_count_is("AWS::Events::Rule", 0)  # dev has no schedule
    t.has_resource_properties("Custom::FmrecModelPackageGroup", {"GroupName": "fmrec-dev-models"})
    t.has_resource_properties(
        "AWS::SageMaker::Pipeline",
        {
            "PipelineName": "fmrec-dev-pipeline",
            "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("PipelineRole"), "Arn"]},
        },
    )
    t.has_resource_properties(
        "Custom::CDKBucketDeployment",
        {
            "DestinationBucketKeyPrefix": Match.string_like_regexp(r"^code/[0-9a-f]{16}$"),
            "Prune": False,
            "RetainOnDelete": True,
        },
    )
    t.has_output("PipelineName", {"Value": "fmrec-dev-pipeline"})


def test_pipeline_definition_is_resolved_by_cloudformation(dev: Assembly) -> None:
    body, variables = _pipeline(dev)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    assert set(variables) == {"ArtifactBucket", "PipelineRoleArn"}
    assert variables["PipelineRoleArn"]["Fn::GetAtt"][1] == "Arn"
    assert variables["ArtifactBucket"] == {
        "Fn::Join": ["", ["fmrec-dev-artifacts-", {"Ref": "AWS::AccountId"}, "-us-east-1"]]
    }
    # Every ${...} in the body is one of the two variables: nothing is left for CloudFormation to choke on.
    assert set(re.findall(r"\$\{([^}]*)\}", body)) == {"ArtifactBucket", "PipelineRoleArn"}


def _substituted(assembly: Assembly, values: dict[str, str]) -> dict[str, Any]:
    body, variables = _pipeline(assembly)["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    for name in variables:
        body = body.replace("${" + name + "}", values[name])
    return dict(json.loads(body))


def test_deployed_definition_equals_what_the_local_runner_executes(dev: Assembly) -> None:
    """`fmrec pipeline run --local --group fmrec-dev-models` executes exactly the dev stack's definition."""
    deployed = _substituted(
        dev,
        {
            "ArtifactBucket": LOCAL_ARGUMENTS["artifact_bucket"],
            "PipelineRoleArn": LOCAL_ARGUMENTS["role_arn"],
        },
    )
    # The one difference: the deployed definition reads its own content-addressed code folder.
    local = local_definition(group="fmrec-dev-models")
    local_code = f"s3://{LOCAL_ARGUMENTS['artifact_bucket']}/code/"
    deployed_text = re.sub(r"/code/[0-9a-f]{16}/", "/code/", json.dumps(deployed, sort_keys=True))
    assert json.loads(deployed_text) == json.loads(json.dumps(local, sort_keys=True))
    assert local_code in json.dumps(local)


def test_prod_definition_carries_the_stage_settings(prod: Assembly, cdk_context: dict[str, Any]) -> None:
    settings = cdk_context["fmrec:stages"]["prod"]
    definition = _substituted(prod, {"ArtifactBucket": "b", "PipelineRoleArn": "r"})
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    assert defaults["GateMinAuc"] == settings["gate_threshold"]
    assert defaults["ProcessingInstanceType"] == settings["processing_instance_type"]
    assert defaults["TrainingInstanceType"] == settings["training_instance_type"]


def test_prod_schedule_starts_the_pipeline(prod: Assembly, cdk_context: dict[str, Any]) -> None:
    t = template(prod, "Pipeline")
    t.resource_count_is("AWS::Events::Rule", 1)
    t.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": cdk_context["fmrec:stages"]["prod"]["schedule"],
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {"Arn": {"Fn::Join": ["", Match.array_with([":pipeline/fmrec-prod-pipeline"])]}}
                )
            ],
        },
    )


# --- serving ---------------------------------------------------------------------------------------------
def test_serving_deployer_and_triggers(dev: Assembly) -> None:
    t = template(dev, "Serving")
    t.resource_count_is("AWS::Lambda::Function", 1)
    t.resource_count_is("AWS::Events::Rule", 2)
    t.resource_count_is("Custom::FmrecEndpoint", 1)
    t.resource_count_is(
        "AWS::SQS::Queue", 1
    )  # the deployer's failure destination (tests/stacks/test_first_deploy.py)
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handler.lambda_handler",
            "TracingConfig": {"Mode": "Active"},
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "ENDPOINT_NAME": "fmrec-dev-endpoint",
                        "MODEL_PACKAGE_GROUP": "fmrec-dev-models",
                        "INSTANCE_TYPE": "ml.c4.xlarge",
                        "INITIAL_INSTANCE_COUNT": "1",
                        "MAX_INSTANCE_COUNT": "2",
                        "INVOCATIONS_PER_INSTANCE": "1000",
                        "DATA_CAPTURE_PERCENT": "0",
                        "SERVING_PREFIX": "serving/",
                        "LOOKUP_METADATA_KEY": "LookupS3Uri",
                    }
                )
            },
        },
    )
    t.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Model Package State Change"],
                "detail": {"ModelPackageGroupName": ["fmrec-dev-models"]},
            }
        },
    )
    t.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Endpoint State Change"],
                "detail": {
                    "EndpointName": ["fmrec-dev-endpoint"],
                    "EndpointStatus": ["IN_SERVICE", "FAILED"],
                },
            }
        },
    )
    t.has_output("EndpointName", {"Value": "fmrec-dev-endpoint"})


def test_prod_serving_scales_and_captures(prod: Assembly) -> None:
    t = template(prod, "Serving")
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Environment": {
                "Variables": Match.object_like(
                    {"INITIAL_INSTANCE_COUNT": "2", "MAX_INSTANCE_COUNT": "4", "DATA_CAPTURE_PERCENT": "20"}
                )
            }
        },
    )
    (model_policy,) = [
        p for k, p in prod.resources("Serving", "AWS::IAM::Policy").items() if k.startswith("ModelPolicy")
    ]
    sids = {s["Sid"] for s in model_policy["Properties"]["PolicyDocument"]["Statement"]}
    assert "WriteDataCapture" in sids


# --- api -------------------------------------------------------------------------------------------------
def test_api_mirrors_the_openapi_document(dev: Assembly) -> None:
    document = json.loads(OPENAPI_PATH.read_text())
    routes = openapi_routes(document)
    assert routes, "the OpenAPI document declares no operation"
    t = template(dev, "Api")
    t.resource_count_is("AWS::ApiGateway::RestApi", 1)
    # One validated method per operation; the rest are the catch-alls of test_api_routes.py.
    methods = dev.resources("Api", "AWS::ApiGateway::Method").values()
    assert len([m for m in methods if "RequestValidatorId" in m["Properties"]]) == len(routes)
    for _path, method, params in routes:
        t.has_resource_properties(
            "AWS::ApiGateway::Method",
            {
                "HttpMethod": method,
                "AuthorizationType": "AWS_IAM",
                "RequestParameters": params,
                "RequestValidatorId": {"Ref": Match.string_like_regexp("Validator")},
                "Integration": Match.object_like({"Type": "AWS_PROXY"}),
            },
        )
    by_path = {path: params for path, _, params in routes}
    assert "method.request.path.userId" in by_path["/users/{userId}/recommendations"]
    assert "method.request.path.movieId" in by_path["/movies/{movieId}/similar"]


def test_api_stage_is_throttled_logged_and_traced(dev: Assembly, cdk_context: dict[str, Any]) -> None:
    settings = cdk_context["fmrec:stages"]["dev"]
    t = template(dev, "Api")
    t.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": [
                Match.object_like(
                    {
                        "ThrottlingRateLimit": settings["throttle_rate_limit"],
                        "ThrottlingBurstLimit": settings["throttle_burst_limit"],
                        "LoggingLevel": "INFO",
                        "DataTraceEnabled": False,
                    }
                )
            ],
        },
    )
    for output in ("ApiUrl", "EndpointName"):
        t.has_output(output, {})


def test_recommend_lambda(dev: Assembly) -> None:
    t = template(dev, "Api")
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": HANDLER,
            "Runtime": "python3.13",
            "TracingConfig": {"Mode": "Active"},
            "Layers": Match.array_with(
                [
                    {"Ref": Match.string_like_regexp("SsmParameterValueawsserviceawssdkpandas")},
                    {"Ref": Match.string_like_regexp("SsmParameterValueawsservicepowertools")},
                ]
            ),
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "FMREC_ENDPOINT_NAME": "fmrec-dev-endpoint",
                        "FMREC_ARTIFACT_PREFIX": "serving/",
                        "FMREC_FAST_PATH": "0",
                    }
                )
            },
        },
    )
    parameters = dev.stack("Api")["Parameters"]
    assert POWERTOOLS_LAYER_PARAMETER in [p.get("Default") for p in parameters.values()]


def test_powertools_layer_matches_the_pinned_version() -> None:
    pins = (REPO / "requirements.txt").read_text().splitlines()
    assert f"aws-lambda-powertools=={POWERTOOLS_VERSION}" in pins


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_stack_is_tagged(assemblies: dict[str, Assembly], stage: str) -> None:
    for name in assemblies[stage].templates:
        functions = assemblies[stage].resources(name, "AWS::Lambda::Function")
        for logical_id, function in functions.items():
            if logical_id.startswith(("CustomCDKBucketDeployment", "CustomS3AutoDeleteObjects")):
                continue  # aws-cdk-lib's own singleton handlers
            tags = {t["Key"]: t["Value"] for t in function["Properties"].get("Tags", [])}
            assert tags.get("project") == "fmrec" and tags.get("stage") == stage
