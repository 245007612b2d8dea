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
            {"LookupS3Uri": "s3://bucket/models/exec-1/preprocess/lookup"} if metadata is None else metadata
        ),
    }


OLD_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/3"
ALREADY = {
    "service_error_code": "ValidationException",
    "service_message": "Cannot create already existing model",
}


def _expect_staging(c: Clients) -> None:
    c.expect(
        "s3",
        "list_objects_v2",
        {"KeyCount": 0},
        {"Bucket": "bucket", "Prefix": "serving/v7/staged.json", "MaxKeys": 1},
    )
    c.expect(
        "s3",
        "list_objects_v2",
        {"Contents": [{"Key": "models/exec-1/preprocess/lookup/users.json"}], "KeyCount": 1},
        {"Bucket": "bucket", "Prefix": "models/exec-1/preprocess/lookup/"},
    )
    c.expect(
        "s3",
        "copy_object",
        {},
        {
            "Bucket": "bucket",
            "Key": "serving/v7/lookup/users.json",
            "CopySource": {"Bucket": "bucket", "Key": "models/exec-1/preprocess/lookup/users.json"},
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
    c.expect("s3", "put_object", {}, None)  # serving/v7/staged.json, written last


def _approval_event(arn: str = ARN) -> dict[str, Any]:
    return {
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "detail": {"ModelPackageGroupName": GROUP, "ModelPackageArn": arn, "ModelApprovalStatus": "Approved"},
    }


def _endpoint_event(status: str = "IN_SERVICE") -> dict[str, Any]:
    return {
        "detail-type": "SageMaker Endpoint State Change",
        "detail": {"EndpointName": ENDPOINT, "EndpointStatus": status},
    }


def _endpoint(config: str, status: str, variant: str = "v6", failure: str | None = None) -> dict[str, Any]:
    response = {
        "EndpointName": ENDPOINT,
        "EndpointArn": SOME_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": "2026-11-24",
        "LastModifiedTime": "2026-11-24",
        "ProductionVariants": [{"VariantName": variant}],
    }
    if failure:
        response["FailureReason"] = failure
    return response


def _expect_latest(c: Clients, arn: str | None = ARN) -> None:
    c.expect(
        "sm",
        "list_model_packages",
        {
            "ModelPackageSummaryList": (
                [
                    {
                        "ModelPackageGroupName": GROUP,
                        "ModelPackageArn": arn,
                        "CreationTime": "2026-11-24",
                        "ModelPackageStatus": "Completed",
                        "ModelApprovalStatus": "Approved",
                    }
                ]
                if arn
                else []
            )
        },
        {
            "ModelPackageGroupName": GROUP,
            "ModelApprovalStatus": "Approved",
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 1,
        },
    )


def _expect_housekeeping(c: Clients, variant: str, configs: list[str], models: list[str]) -> None:
    """What an InService endpoint gets on every reconcile: scaling, current.json, clean-up."""
    c.expect("aas", "register_scalable_target", {})
    c.expect("aas", "put_scaling_policy", {"PolicyARN": SOME_ARN})
    c.expect(
        "s3",
        "put_object",
        {},
        {
            "Bucket": "bucket",
            "Key": "serving/current.json",
            "Body": json.dumps({"modelVersion": variant}).encode(),
            "ContentType": "application/json",
        },
    )
    summaries = [
        {"EndpointConfigName": name, "EndpointConfigArn": SOME_ARN, "CreationTime": "2026"}
        for name in configs
    ]
    c.expect("sm", "list_endpoint_configs", {"EndpointConfigs": summaries}, {"NameContains": ENDPOINT})
    listed = [{"ModelName": name, "ModelArn": SOME_ARN, "CreationTime": "2026"} for name in models]
    c.expect("sm", "list_models", {"Models": listed}, {"NameContains": ENDPOINT})


def _expect_attempt(c: Clients, config: str) -> None:
    key = f"serving/attempts/{config}.json"
    c.expect(
        "s3",
        "put_object",
        {},
        {
            "Bucket": "bucket",
            "Key": key,
            "Body": json.dumps({"config": config}).encode(),
            "ContentType": "application/json",
        },
    )


def _expect_prepare(c: Clients, model_error: dict[str, Any] | None = None) -> None:
    c.expect("sm", "describe_model_package", _package(), {"ModelPackageName": ARN})
    _expect_staging(c)
    if model_error:
        c.expect_error("sm", "create_model", model_error)
    else:
        c.expect("sm", "create_model", {"ModelArn": SOME_ARN})
    c.expect("sm", "create_endpoint_config", {"EndpointConfigArn": SOME_ARN})


def test_first_approval_creates_model_config_and_endpoint(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(c)
    c.expect("sm", "describe_model_package", _package(), {"ModelPackageName": ARN})
    _expect_staging(c)
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
    _expect_attempt(c, config)
    c.expect(
        "sm",
        "create_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    result = handler.dispatch(_approval_event(), c.deployer)
    assert (result["action"], result["config"], result["variant"]) == ("created", config, "v7")
    assert config.startswith(f"{ENDPOINT}-v7-") and len(config) <= 63


def test_approval_of_a_new_version_updates_the_live_endpoint(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    _expect_prepare(c)
    _expect_attempt(c, config)
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


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack"])
def test_an_approval_while_the_endpoint_is_busy_is_deferred_not_raised(clients: Clients, status: str) -> None:
    """The old deployer raised here and Lambda's two retries (about 3 minutes) ran out long before an update
    (5-10 minutes) ended: the approval was lost. Now the endpoint's next state change carries it on."""
    c = clients
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", status))
    _expect_latest(c)
    result = handler.dispatch(_approval_event(), c.deployer)
    assert (result["action"], result["status"]) == ("deferred", status)


def test_the_state_change_that_ends_an_update_deploys_the_approval_it_deferred(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    _expect_prepare(c)
    _expect_attempt(c, config)
    c.expect("aas", "deregister_scalable_target", {})
    c.expect(
        "sm",
        "update_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    assert handler.dispatch(_endpoint_event("IN_SERVICE"), c.deployer)["action"] == "updated"


def test_a_failed_endpoint_is_deleted_and_recreated_with_the_newest_package(clients: Clients) -> None:
    """UpdateEndpoint on a Failed endpoint is refused by AWS: the old deployer sent it, and every later
    approval failed the same way."""
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "Failed", failure="no capacity"))
    _expect_latest(c)
    c.expect("aas", "deregister_scalable_target", {})
    c.expect("sm", "delete_endpoint", {}, {"EndpointName": ENDPOINT})
    waited: list[str] = []
    c.deployer.wait_deleted = waited.append
    _expect_prepare(c)
    _expect_attempt(c, config)
    c.expect(
        "sm",
        "create_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    assert handler.dispatch(_approval_event(), c.deployer)["action"] == "created"
    assert waited == [ENDPOINT]


def test_the_real_waiter_waits_for_the_failed_endpoint_to_be_gone(clients: Clients) -> None:
    c = clients
    c.expect("sm", "describe_endpoint", _endpoint("x", "Deleting"))
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    c.deployer.delete_poll_seconds = 0
    c.deployer.wait_deleted(ENDPOINT)  # returns once DescribeEndpoint says the endpoint is gone


def test_a_failed_newest_package_is_deleted_but_not_recreated_in_a_loop(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(config, "Failed", "v7", failure="model failed to load"))
    _expect_latest(c)
    c.expect(
        "s3",
        "put_object",
        {},
        {
            "Bucket": "bucket",
            "Key": f"serving/attempts/{config}.failed.json",
            "Body": json.dumps({"config": config, "failure": "model failed to load"}).encode(),
            "ContentType": "application/json",
        },
    )
    c.expect("aas", "deregister_scalable_target", {})
    c.expect("sm", "delete_endpoint", {}, {"EndpointName": ENDPOINT})
    with pytest.raises(handler.DeployError, match=r"failed with .*model failed to load.*deleted it"):
        handler.dispatch(_endpoint_event("FAILED"), c.deployer)


def _expect_attempts(c: Clients, config: str, sent: int | None, failed: int | None) -> None:
    """The listing of serving/attempts/<config>*: the times (minutes) each marker was last written."""
    at = {f"serving/attempts/{config}.json": sent, f"serving/attempts/{config}.failed.json": failed}
    contents = [
        {"Key": key, "LastModified": f"2026-11-24T10:{minute:02d}:00Z"}
        for key, minute in sorted(at.items())
        if minute is not None
    ]
    c.expect(
        "s3",
        "list_objects_v2",
        {"Contents": contents, "KeyCount": len(contents)},
        {"Bucket": "bucket", "Prefix": f"serving/attempts/{config}", "MaxKeys": 10},
    )


@pytest.mark.parametrize("gone", [True, False])
def test_the_retries_of_a_failed_event_fail_and_create_nothing(clients: Clients, gone: bool) -> None:
    """Issue 23 item 1: Lambda retries the failed event a minute later; the endpoint is then being deleted
    or gone. The old deployer created the same failing config again (a loop) and the retry succeeded, so the
    alarm never fired; now each retry fails too, and the event reaches the failure queue."""
    c = clients
    config = c.deployer.config_name("v7")
    if gone:
        c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    else:
        c.expect("sm", "describe_endpoint", _endpoint(config, "Deleting", "v7"))
    _expect_latest(c)
    _expect_attempts(c, config, sent=1, failed=5)
    with pytest.raises(handler.DeployError, match=r"was deleted after failing with .*-v7-"):
        handler.dispatch(_endpoint_event("FAILED"), c.deployer)


def test_an_endpoint_event_with_no_endpoint_does_nothing(clients: Clients) -> None:
    """The state change of a deletion (the endpoint is gone) creates nothing."""
    c = clients
    config = c.deployer.config_name("v7")
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(c)
    _expect_attempts(c, config, sent=1, failed=None)
    assert handler.dispatch(_endpoint_event("DELETING"), c.deployer)["action"] == "no endpoint"


def _registration_event(version: int = 8, status: str = "PendingManualApproval") -> dict[str, Any]:
    event = _approval_event(f"arn:aws:sagemaker:us-east-1:123456789012:model-package/{GROUP}/{version}")
    event["detail"]["ModelApprovalStatus"] = status
    return event


def test_a_new_registration_does_not_retry_a_failed_update(clients: Clients) -> None:
    """Issue 23 item 2: every PendingManualApproval registration re-attempted the failed blue/green update."""
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService", failure="update failed"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    _expect_attempts(c, config, sent=1, failed=None)
    result = handler.dispatch(_registration_event(), c.deployer)
    assert (result["action"], result["config"]) == ("not retried", config)
    assert "update failed" in result["reason"]


def test_a_new_registration_does_not_recreate_a_failed_endpoint(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(c)
    _expect_attempts(c, config, sent=1, failed=5)
    assert handler.dispatch(_registration_event(), c.deployer)["action"] == "not retried"


def test_approving_the_failed_package_again_retries_it(clients: Clients) -> None:
    """Rejected, then Approved again: the approval of the newest package itself is an explicit retry."""
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService", failure="update failed"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    _expect_prepare(c)
    _expect_attempt(c, config)
    c.expect("aas", "deregister_scalable_target", {})
    c.expect("sm", "update_endpoint", {"EndpointArn": SOME_ARN})
    event = _approval_event()
    event["detail"]["UpdatedModelPackageFields"] = ["ModelApprovalStatus"]
    assert handler.dispatch(event, c.deployer)["action"] == "updated"


@pytest.mark.parametrize(
    ("detail", "approved"),
    [
        ({"ModelApprovalStatus": "Approved", "ModelPackageArn": ARN}, ARN),
        ({"ModelApprovalStatus": "Approved", "ModelPackageArn": ARN, "UpdatedModelPackageFields": []}, None),
        ({"ModelApprovalStatus": "PendingManualApproval", "ModelPackageArn": ARN}, None),
        ({"ModelApprovalStatus": "Rejected", "ModelPackageArn": ARN}, None),
    ],
)
def test_which_package_events_are_approvals(detail: dict[str, Any], approved: str | None) -> None:
    assert handler.approved_by(detail) == approved


def test_a_retry_sent_after_the_failure_clears_it(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    _expect_attempts(c, config, sent=9, failed=5)
    assert c.deployer._attempt_state(config) == (True, False)


def test_a_rolled_back_update_is_not_retried_on_its_own_state_change(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService", failure="update failed"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    _expect_attempts(c, config, sent=1, failed=None)
    with pytest.raises(handler.DeployError, match=r"serves .*-v6-abc, not .*update failed"):
        handler.dispatch(_endpoint_event("IN_SERVICE"), c.deployer)


def test_an_old_failure_reason_does_not_block_a_deferred_version_never_tried(clients: Clients) -> None:
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(f"{ENDPOINT}-v6-abc", "InService", failure="long ago"))
    _expect_housekeeping(c, "v6", [f"{ENDPOINT}-v6-abc"], [f"{ENDPOINT}-v6"])
    _expect_latest(c)
    c.expect("s3", "list_objects_v2", {"KeyCount": 0})
    _expect_prepare(c)
    _expect_attempt(c, config)
    c.expect("aas", "deregister_scalable_target", {})
    c.expect(
        "sm",
        "update_endpoint",
        {"EndpointArn": SOME_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config},
    )
    assert handler.dispatch(_endpoint_event("IN_SERVICE"), c.deployer)["action"] == "updated"


def test_an_edit_of_an_old_approved_package_does_not_roll_the_endpoint_back(clients: Clients) -> None:
    """SageMaker sends a state change (UpdatedModelPackageFields) for any edit of an approved package: the
    event names v3, but v7 is the newest approved and already serves, so nothing is deployed."""
    c = clients
    config = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(config, "InService", "v7"))
    _expect_housekeeping(c, "v7", [config], [f"{ENDPOINT}-v7"])
    _expect_latest(c)
    event = _approval_event(OLD_ARN)
    event["detail"]["UpdatedModelPackageFields"] = ["ModelPackageDescription"]
    result = handler.dispatch(event, c.deployer)
    assert (result["action"], result["package"]) == ("unchanged", ARN)


def test_duplicate_events_treat_already_existing_resources_as_done(clients: Clients) -> None:
    c = clients
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(c)
    c.expect("sm", "describe_model_package", _package())
    _expect_staging(c)
    c.expect_error("sm", "create_model", ALREADY)
    c.expect("s3", "put_object", {})  # the attempt marker
    c.expect_error(
        "sm",
        "create_endpoint_config",
        {
            "service_error_code": "ValidationException",
            "service_message": "Cannot create already existing endpoint configuration",
        },
    )
    c.expect_error(
        "sm",
        "create_endpoint",
        {
            "service_error_code": "ValidationException",
            "service_message": "Cannot create already existing endpoint",
        },
    )
    result = handler.dispatch(_approval_event(), c.deployer)
    assert result["action"] == "deferred"


def test_another_create_error_is_not_swallowed(clients: Clients) -> None:
    c = clients
    c.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(c)
    c.expect("sm", "describe_model_package", _package())
    _expect_staging(c)
    c.expect_error(
        "sm", "create_model", {"service_error_code": "ResourceLimitExceeded", "service_message": "x"}
    )
    with pytest.raises(Exception, match="ResourceLimitExceeded"):
        handler.dispatch(_approval_event(), c.deployer)


def test_a_variant_already_staged_is_not_copied_again(clients: Clients) -> None:
    """The lookup and model are copied once; a later stack update or redeploy does not need the sources."""
    c = clients
    c.expect(
        "s3",
        "list_objects_v2",
        {"KeyCount": 1},
        {"Bucket": "bucket", "Prefix": "serving/v7/staged.json", "MaxKeys": 1},
    )
    c.deployer.stage_artifacts("v7", _package())


def test_a_package_without_its_lookup_is_refused(clients: Clients) -> None:
    clients.expect("sm", "describe_model_package", _package(metadata={}))
    clients.expect("s3", "list_objects_v2", {"KeyCount": 0})
    with pytest.raises(handler.DeployError, match="CustomerMetadataProperties has no 'LookupS3Uri'"):
        clients.deployer.prepare(ARN, "v7")


def test_a_package_no_longer_approved_is_refused(clients: Clients) -> None:
    clients.expect("sm", "describe_model_package", _package(status="Rejected"))
    with pytest.raises(handler.DeployError, match="is Rejected, not Approved"):
        clients.deployer.prepare(ARN, "v7")


def test_in_service_scales_publishes_and_cleans_up(clients: Clients) -> None:
    c = clients
    current = c.deployer.config_name("v7")
    c.expect("sm", "describe_endpoint", _endpoint(current, "InService", "v7"))
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
    _expect_latest(c)
    result = handler.dispatch(_endpoint_event("IN_SERVICE"), c.deployer)
    assert result["action"] == "unchanged"


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
    clients.expect_error("sm", "describe_endpoint", _not_found("endpoint"))
    _expect_latest(clients, None)
    assert (
        handler.custom_resource({"RequestType": "Create"}, clients.deployer)["action"]
        == "no approved package"
    )


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


# --- the model package group resource (issue 13 item 8: destroy, then deploy again) -------------------------
def _group_event(request: str, keep: str) -> dict[str, Any]:
    return {
        "RequestType": request,
        "ResourceType": "Custom::FmrecModelPackageGroup",
        "ResourceProperties": {"GroupName": GROUP, "Description": "d", "KeepOnDelete": keep},
    }


def test_group_create_adopts_a_group_a_retaining_stage_kept(clients: Clients) -> None:
    c = clients
    c.expect_error(
        "sm",
        "create_model_package_group",
        {
            "service_error_code": "ValidationException",
            "service_message": f"Model Package Group {GROUP} already exists",
        },
    )
    c.expect(
        "sm",
        "describe_model_package_group",
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupArn": SOME_ARN,
            "CreationTime": "2026",
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
        {"ModelPackageGroupName": GROUP},
    )
    assert handler.group_lifecycle(_group_event("Create", "true"), c.sm)["action"] == "adopted"


def test_group_create_error_other_than_existing_is_raised(clients: Clients) -> None:
    c = clients
    c.expect_error(
        "sm",
        "create_model_package_group",
        {"service_error_code": "ValidationException", "service_message": "bad"},
    )
    c.expect_error("sm", "describe_model_package_group", _not_found("group"))
    with pytest.raises(Exception, match="bad"):
        handler.group_lifecycle(_group_event("Create", "false"), c.sm)


def test_group_delete_empties_the_group_first_when_the_stage_destroys(clients: Clients) -> None:
    c = clients
    c.expect(
        "sm",
        "describe_model_package_group",
        {
            "ModelPackageGroupName": GROUP,
            "ModelPackageGroupArn": SOME_ARN,
            "CreationTime": "2026",
            "CreatedBy": {},
            "ModelPackageGroupStatus": "Completed",
        },
    )
    versions = [
        {"ModelPackageArn": arn, "CreationTime": "2026", "ModelPackageStatus": "Completed"}
        for arn in (ARN, OLD_ARN)
    ]
    c.expect(
        "sm", "list_model_packages", {"ModelPackageSummaryList": versions}, {"ModelPackageGroupName": GROUP}
    )
    c.expect("sm", "delete_model_package", {}, {"ModelPackageName": ARN})
    c.expect("sm", "delete_model_package", {}, {"ModelPackageName": OLD_ARN})
    c.expect("sm", "delete_model_package_group", {}, {"ModelPackageGroupName": GROUP})
    result = handler.group_lifecycle(_group_event("Delete", "false"), c.sm)
    assert (result["action"], result["versions"]) == ("deleted", 2)


def test_group_delete_keeps_a_retained_group(clients: Clients) -> None:
    assert handler.group_lifecycle(_group_event("Delete", "true"), clients.sm)["action"] == "kept"
