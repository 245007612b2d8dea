"""The deployer Lambda's entry: EventBridge events and CloudFormation custom resources to its three jobs
(endpoint.py reconciles the endpoint, publish.py publishes serving/, registry_group.py owns the group)."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import boto3

from lambdas.deployer.endpoint import ENDPOINT_CHANGE, EXPLICIT, PACKAGE_CHANGE, Deployer
from lambdas.deployer.registry_group import GROUP_RESOURCE, group_lifecycle
from lambdas.deployer.settings import DeployError, Settings, variant_name

__all__ = [
    "APPROVAL_EVENT",
    "ENDPOINT_EVENT",
    "GROUP_RESOURCE",
    "DeployError",
    "Deployer",
    "Settings",
    "approved_by",
    "custom_resource",
    "dispatch",
    "group_lifecycle",
    "lambda_handler",
    "send_cfn_response",
    "variant_name",
]

log = logging.getLogger()
log.setLevel(logging.INFO)

APPROVAL_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"


# --- event routing -----------------------------------------------------------------------------------------
def dispatch(event: Mapping[str, Any], deployer: Deployer) -> dict[str, Any]:
    """Every event of the group or the endpoint reconciles; SageMaker may send several events for one state
    change (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html), and
    reconciling twice is harmless."""
    detail_type = event.get("detail-type")
    detail = event.get("detail") or {}
    if detail_type == APPROVAL_EVENT:
        if detail.get("ModelPackageGroupName") != deployer.s.model_package_group:
            raise DeployError(
                f"event for group {detail.get('ModelPackageGroupName')!r}, "
                f"not {deployer.s.model_package_group!r}"
            )
        return deployer.reconcile(PACKAGE_CHANGE, approved_by(detail))
    if detail_type == ENDPOINT_EVENT:
        if detail.get("EndpointName") != deployer.s.endpoint_name:
            raise DeployError(
                f"event for endpoint {detail.get('EndpointName')!r}, not {deployer.s.endpoint_name!r}"
            )
        return deployer.reconcile(ENDPOINT_CHANGE)
    raise DeployError(f"unexpected event: detail-type {detail_type!r}")


def approved_by(detail: Mapping[str, Any]) -> str | None:
    """The package a package event approved, None for any other change: a new registration, a rejection, an
    edit of an approved package (its UpdatedModelPackageFields names what changed, not the status)."""
    if detail.get("ModelApprovalStatus") != "Approved":
        return None
    fields = detail.get("UpdatedModelPackageFields")
    if fields is not None and "ModelApprovalStatus" not in fields:
        return None
    arn = detail.get("ModelPackageArn")
    return str(arn) if arn else None


def custom_resource(event: Mapping[str, Any], deployer: Deployer) -> dict[str, Any]:
    """CloudFormation lifecycle: deploy the newest approved package on create/update; tear down on delete."""
    if event["RequestType"] == "Delete":
        return deployer.tear_down()
    return deployer.reconcile(EXPLICIT)


def send_cfn_response(
    event: Mapping[str, Any],
    status: str,
    reason: str,
    data: Mapping[str, Any],
    opener: Callable[[urllib.request.Request], Any] = urllib.request.urlopen,
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId")
            or (
                str((event.get("ResourceProperties") or {}).get("GroupName"))
                if event.get("ResourceType") == GROUP_RESOURCE
                else f"{event['LogicalResourceId']}-deployer"
            ),
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": {k: str(v) for k, v in data.items() if isinstance(v, str | int)},
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"],
        data=body,
        method="PUT",
        headers={"Content-Type": "", "Content-Length": str(len(body))},
    )
    opener(request)


def _deployer_from_env() -> Deployer:
    return Deployer(
        Settings.from_env(os.environ),
        boto3.client("sagemaker"),
        boto3.client("application-autoscaling"),
        boto3.client("s3"),
    )


def _run_custom_resource(event: Mapping[str, Any]) -> dict[str, Any]:
    if event.get("ResourceType") == GROUP_RESOURCE:
        return group_lifecycle(event, boto3.client("sagemaker"))
    return custom_resource(event, _deployer_from_env())


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if "RequestType" in event and "ResponseURL" in event:
        try:
            result = _run_custom_resource(event)
        except Exception as exc:
            log.exception("custom resource %s failed", event.get("RequestType"))
            # A failed delete is reported as failed: a stack that silently leaves a billed endpoint is worse.
            send_cfn_response(event, "FAILED", f"{type(exc).__name__}: {exc}", {})
            return {"action": "failed", "error": str(exc)}
        send_cfn_response(event, "SUCCESS", "ok", result)
        return result
    return dispatch(event, _deployer_from_env())
