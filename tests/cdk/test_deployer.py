"""The deployer Lambda against stubbed SageMaker, Application Auto Scaling and S3 clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.deployer import handler

GROUP = "fmrec-dev-models"
ENDPOINT = "fmrec-dev-endpoint"
ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/7"
SOME_ARN = "arn:aws:sagemaker:us-east-1:123456789012:thing/some-name"
ENV = {
    "ENDPOINT_NAME": ENDPOINT,
    "MODEL_PACKAGE_GROUP": GROUP,
    "MODEL_ROLE_ARN": "arn:aws:iam::123456789012:role/model",
    "INSTANCE_TYPE": "ml.c4.xlarge",
    "INITIAL_INSTANCE_COUNT": "1",
    "MAX_INSTANCE_COUNT": "3",
    "INVOCATIONS_PER_INSTANCE": "1000",
    "DATA_CAPTURE_PERCENT": "0",
    "CAPTURE_S3_URI": "s3://bucket/datacapture/fmrec-dev-endpoint",
    "ARTIFACT_BUCKET": "bucket",
    "SERVING_PREFIX": "serving/",
    "LOOKUP_METADATA_KEY": "LookupS3Uri",
}


def _not_found(what: str) -> dict[str, Any]:
    return {"service_error_code": "ValidationException", "service_message": f"Could not find {what}."}


class Clients:
    def __init__(self) -> None:
        kwargs = {"region_name": "us-east-1", "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        self.sm = boto3.client("sagemaker", **kwargs)
        self.aas = boto3.client("application-autoscaling", **kwargs)
        self.s3 = boto3.client("s3", **kwargs)
        self.stubs = {name: Stubber(getattr(self, name)) for name in ("sm", "aas", "s3")}
        self.settings = handler.Settings.from_env(ENV)
        self.deployer = handler.Deployer(self.settings, self.sm, self.aas, self.s3)

    def expect(self, client: str, operation: str, response: dict[str, Any], params: Any = None) -> None:
        self.stubs[client].add_response(operation, response, params)

    def expect_error(self, client: str, operation: str, error: dict[str, Any]) -> None:
        self.stubs[client].add_client_error(operation, **error)


@pytest.fixture
def clients() -> Iterator[Clients]:
    c = Clients()
    for stub in c.stubs.values():
        stub.activate()
    yield c
    for stub in c.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _package(status: str = "Approved", metadata: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "ModelPackageName": f"{GROUP}",
        "ModelPackageArn": ARN,
        "CreationTime": "2026-11-24T00:00:00Z",
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": {"ValidationStatuses": []},
        "ModelApprovalStatus": status,
        "InferenceSpecification": {
            "Containers": [
                {"Image": "fm:1", "ModelDataUrl": "s3://bucket/models/job-1/output/model.tar.gz"},
            ],
            "SupportedContentTypes": ["application/json"],
            "SupportedResponseMIMETypes": ["application/json"],
        },
        "CustomerMetadataProperties": (
            {"LookupS3Uri": "s3://bucket/pipeline/exec-1/preprocess/lookup"} if metadata is None else metadata
        ),
    }


def _expect_staging(c: Clients) -> None:
    c.expect(
        "s3",
        "list_objects_v2",
        {"Contents": [{"Key": "pipeline/exec-1/preprocess/lookup/users.json"}], "KeyCount": 1},
        {"Bucket": "bucket", "Prefix": "pipeline/exec-1/preprocess/lookup/"},
    )
    c.expect(
        "s3",
        "copy_object",
        {},
        {
            "Bucket": "bucket",
            "Key": "serving/v7/lookup/users.json",
            "CopySource": {"Bucket": "bucket", "Key": "pipeline/exec-1/preprocess/lookup/users.json"},
        },
    )
    c.expect(
        "s3",
        "copy_object",
        {},
        {
            "Bucket": "bucket",
            "Key": "serving/v7/model.tar.gz",
            "CopySource": {"Bucket": "bucket", "Key": "models/job-1/output/model.tar.gz"},
        },
    )


def _approval_event() -> dict[str, Any]:
    return {
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "detail": {"ModelPackageGroupName": GROUP, "ModelPackageArn": ARN, "ModelApprovalStatus": "Approved"},
    }


def test_first_approval_creates_model_config_and_endpoint(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_model_package", _package(), {"ModelPackageName": ARN})
    _expect_staging(c)
    c.expect_error("sm", "describe_model", _not_found("model"))
    c.expect(
        "sm",
        "create_model",
        {"ModelArn": SOME_ARN},
        {
            "ModelName": f"{ENDPOINT}-v7",
            "ExecutionRoleArn": ENV["MODEL_ROLE_ARN"],
            "PrimaryContainer": {"ModelPackageName": ARN},
            "EnableNetworkIsolation": True,
        },
    )
    c.expect_error("sm", "describe_endpoint_config", _not_found("endpoint config"))
    c.expect(
        "sm",
        "create_endpoint_config",
        {"EndpointConfigArn": SOME_ARN},
        {
            "EndpointConfigName": config,
            "ProductionVariants": [
                {
                    "VariantName": "v7",
                    "ModelName": f"{ENDPOINT}-v7",
                    "InstanceType": "ml.c4.xlarge",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1.0,
                }
            ],
        },
    )
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    c.expect(
        "sm",
        "create_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    result = handler.dispatch(_approval_event(), c.deployer)
    assert result == {"endpoint": ENDPOINT, "config": config, "variant": "v7", "action": "created"}
    assert config.startswith(f"{ENDPOINT}-v7-") and len(config) <= 63


def test_approval_of_a_new_version_updates_the_live_endpoint(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_model_package", _package())
    _expect_staging(c)
    c.expect("sm", "describe_model", {"ModelName": "m", "ModelArn": SOME_ARN, "CreationTime": "2026-11-24"})
    c.expect(
        "sm",
        "describe_endpoint_config",
        {
            "EndpointConfigName": config,
            "EndpointConfigArn": SOME_ARN,
            "ProductionVariants": [{"VariantName": "v7", "ModelName": "m"}],
            "CreationTime": "2026",
        },
    )
    live = {
        "EndpointName": ENDPOINT,
        "EndpointArn": SOME_ARN,
        "EndpointConfigName": f"{ENDPOINT}-v6-abc",
        "EndpointStatus": "InService",
        "CreationTime": "2026-11-24",
        "LastModifiedTime": "2026-11-24",
        "ProductionVariants": [{"VariantName": "v6"}],
    }
    c.expect("sm", "describe_endpoint", live)
    c.expect(
        "aas",
        "deregister_scalable_target",
        {},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": f"endpoint/{ENDPOINT}/variant/v6",
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        },
    )
    c.expect(
        "sm",
        "update_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    assert handler.dispatch(_approval_event(), c.deployer)["action"] == "updated"


def test_endpoint_busy_is_an_error_to_retry(clients: Clients) -> None:
    c = clients
    c.expect("sm", "describe_model_package", _package())
    _expect_staging(c)
    c.expect("sm", "describe_model", {"ModelName": "m", "ModelArn": SOME_ARN, "CreationTime": "2026-11-24"})
    c.expect(
        "sm",
        "describe_endpoint_config",
        {
            "EndpointConfigName": "x",
            "EndpointConfigArn": SOME_ARN,
            "ProductionVariants": [{"VariantName": "v7", "ModelName": "m"}],
            "CreationTime": "2026",
        },
    )
    c.expect(
        "sm",
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": SOME_ARN,
            "EndpointConfigName": "old",
            "EndpointStatus": "Updating",
            "CreationTime": "2026-11-24",
            "LastModifiedTime": "2026-11-24",
        },
    )
    with pytest.raises(handler.DeployError, match="is Updating; retry once it is InService"):
        handler.dispatch(_approval_event(), c.deployer)


def test_a_package_without_its_lookup_is_refused(clients: Clients) -> None:
    clients.expect("sm", "describe_model_package", _package(metadata={}))
    with pytest.raises(handler.DeployError, match="CustomerMetadataProperties has no 'LookupS3Uri'"):
        clients.deployer.deploy(ARN)


def test_a_package_no_longer_approved_is_refused(clients: Clients) -> None:
    clients.expect("sm", "describe_model_package", _package(status="Rejected"))
    with pytest.raises(handler.DeployError, match="is Rejected, not Approved"):
        clients.deployer.deploy(ARN)


def test_in_service_scales_publishes_and_cleans_up(clients: Clients) -> None:
    c = clients
    current = c.deployer.config_name("v7")
    c.expect(
        "sm",
        "describe_endpoint",
        {
            "EndpointName": ENDPOINT,
            "EndpointArn": SOME_ARN,
            "EndpointConfigName": current,
            "EndpointStatus": "InService",
            "CreationTime": "2026-11-24",
            "LastModifiedTime": "2026-11-24",
            "ProductionVariants": [{"VariantName": "v7"}],
        },
    )
    resource = f"endpoint/{ENDPOINT}/variant/v7"
    c.expect(
        "aas",
        "register_scalable_target",
        {},
        {
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": 1,
            "MaxCapacity": 3,
        },
    )
    c.expect(
        "aas",
        "put_scaling_policy",
        {"PolicyARN": SOME_ARN},
        {
            "PolicyName": f"{ENDPOINT}-invocations",
            "ServiceNamespace": "sagemaker",
            "ResourceId": resource,
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": 1000.0,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                },
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        },
    )
    c.expect(
        "s3",
        "put_object",
        {},
        {
            "Bucket": "bucket",
            "Key": "serving/current.json",
            "Body": json.dumps({"modelVersion": "v7"}).encode(),
            "ContentType": "application/json",
        },
    )
    summaries = [
        {"EndpointConfigName": name, "EndpointConfigArn": SOME_ARN, "CreationTime": "2026"}
        for name in (current, f"{ENDPOINT}-v6-abc", "someone-elses-config")
    ]
    c.expect("sm", "list_endpoint_configs", {"EndpointConfigs": summaries}, {"NameContains": ENDPOINT})
    c.expect("sm", "delete_endpoint_config", {}, {"EndpointConfigName": f"{ENDPOINT}-v6-abc"})
    models = [
        {"ModelName": name, "ModelArn": SOME_ARN, "CreationTime": "2026"}
        for name in (f"{ENDPOINT}-v7", f"{ENDPOINT}-v6")
    ]
    c.expect("sm", "list_models", {"Models": models}, {"NameContains": ENDPOINT})
    c.expect("sm", "delete_model", {}, {"ModelName": f"{ENDPOINT}-v6"})
    event = {
        "detail-type": "SageMaker Endpoint State Change",
        "detail": {"EndpointName": ENDPOINT, "EndpointStatus": "IN_SERVICE"},
    }
    result = handler.dispatch(event, c.deployer)
    assert result["removed"] == [f"{ENDPOINT}-v6-abc", f"{ENDPOINT}-v6"]


def test_stack_delete_tears_the_endpoint_down(clients: Clients) -> None:
    c = clients
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    c.expect("sm", "list_endpoint_configs", {"EndpointConfigs": []})
    c.expect(
        "sm",
        "list_models",
        {"Models": [{"ModelName": f"{ENDPOINT}-v3", "ModelArn": SOME_ARN, "CreationTime": "2026"}]},
    )
    c.expect("sm", "delete_model", {}, {"ModelName": f"{ENDPOINT}-v3"})
    sent: list[Any] = []
    event = {
        "RequestType": "Delete",
        "ResponseURL": "https://cloudformation-response.example/x",
        "StackId": "stack",
        "RequestId": "req",
        "LogicalResourceId": "EndpointLifecycle",
        "PhysicalResourceId": "EndpointLifecycle-deployer",
    }
    result = handler.custom_resource(event, c.deployer)
    handler.send_cfn_response(event, "SUCCESS", "ok", result, opener=sent.append)
    body = json.loads(sent[0].data)
    assert (sent[0].method, body["Status"], body["PhysicalResourceId"]) == (
        "PUT",
        "SUCCESS",
        "EndpointLifecycle-deployer",
    )
    assert result["removed"] == [f"{ENDPOINT}-v3"]


def test_stack_create_without_an_approved_package_does_nothing(clients: Clients) -> None:
    clients.expect(
        "sm",
        "list_model_packages",
        {"ModelPackageSummaryList": []},
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )
    assert handler.custom_resource({"RequestType": "Create"}, clients.deployer) == {
        "action": "no approved package yet"
    }


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"detail-type": "Something Else"}, "unexpected event"),
        (
            {
                "detail-type": "SageMaker Model Package State Change",
                "detail": {"ModelPackageGroupName": "other"},
            },
            "event for group 'other'",
        ),
        (
            {"detail-type": "SageMaker Endpoint State Change", "detail": {"EndpointName": "other"}},
            "event for endpoint 'other'",
        ),
    ],
)
def test_foreign_events_are_refused(clients: Clients, event: dict[str, Any], message: str) -> None:
    with pytest.raises(handler.DeployError, match=message):
        handler.dispatch(event, clients.deployer)


def test_variant_names_and_settings() -> None:
    assert handler.variant_name(ARN) == "v7"
    with pytest.raises(handler.DeployError, match=r"expected arn:\.\.\.:model-package/<group>/<version>"):
        handler.variant_name("arn:aws:sagemaker:us-east-1:123456789012:model-package/fmrec-dev-models")
    with pytest.raises(handler.DeployError, match="ENDPOINT_NAME is not set"):
        handler.Settings.from_env({k: v for k, v in ENV.items() if k != "ENDPOINT_NAME"})
    with pytest.raises(handler.DeployError, match="not an integer"):
        handler.Settings.from_env({**ENV, "MAX_INSTANCE_COUNT": "many"})
    changed = handler.Settings.from_env({**ENV, "INSTANCE_TYPE": "ml.m5.large"})
    assert changed.fingerprint() != handler.Settings.from_env(ENV).fingerprint()


def test_data_capture_goes_into_the_endpoint_config() -> None:
    settings = handler.Settings.from_env({**ENV, "DATA_CAPTURE_PERCENT": "20"})
    deployer = handler.Deployer(settings, None, None, None)
    request = deployer.endpoint_config_request("cfg", "model", "v7")
    assert request["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 20,
        "DestinationS3Uri": ENV["CAPTURE_S3_URI"],
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
    }
