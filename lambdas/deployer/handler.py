"""Deploys approved model packages to the endpoint, on EventBridge events and the stack's custom resource."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from fmrec.errors import InputError
from fmrec.serving.artifacts import (
    CURRENT_KEY,
    VERSION_PREFIX,
    dump_current,
    lookup_key,
    model_key,
    version_from_package_arn,
    version_prefix,
)

log = logging.getLogger()
log.setLevel(logging.INFO)

APPROVAL_EVENT = "SageMaker Model Package State Change"
ENDPOINT_EVENT = "SageMaker Endpoint State Change"
STAGED_KEY = "staged.json"  # written last into serving/<variant>/: the variant's artifacts are complete
ATTEMPTS_PREFIX = "attempts/"  # serving/attempts/<config>.json: the deployer has sent this config once
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"


class DeployError(Exception):
    """The event, the model package or the settings do not allow a deployment; the message says why."""


@dataclass(frozen=True)
class Settings:
    """What to deploy and how, from the function's environment (set by the serving stack)."""

    endpoint_name: str
    model_package_group: str
    model_role_arn: str
    instance_type: str
    initial_instance_count: int
    max_instance_count: int
    invocations_per_instance: int
    data_capture_percent: int
    capture_s3_uri: str
    artifact_bucket: str
    serving_prefix: str
    lookup_metadata_key: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        try:
            return cls(
                endpoint_name=env["ENDPOINT_NAME"],
                model_package_group=env["MODEL_PACKAGE_GROUP"],
                model_role_arn=env["MODEL_ROLE_ARN"],
                instance_type=env["INSTANCE_TYPE"],
                initial_instance_count=int(env["INITIAL_INSTANCE_COUNT"]),
                max_instance_count=int(env["MAX_INSTANCE_COUNT"]),
                invocations_per_instance=int(env["INVOCATIONS_PER_INSTANCE"]),
                data_capture_percent=int(env.get("DATA_CAPTURE_PERCENT", "0")),
                capture_s3_uri=env.get("CAPTURE_S3_URI", ""),
                artifact_bucket=env["ARTIFACT_BUCKET"],
                serving_prefix=env.get("SERVING_PREFIX", "serving/"),
                lookup_metadata_key=env.get("LOOKUP_METADATA_KEY", "LookupS3Uri"),
            )
        except KeyError as exc:
            raise DeployError(f"environment variable {exc.args[0]} is not set") from exc
        except ValueError as exc:
            raise DeployError(
                f"an instance count or percentage in the environment is not an integer: {exc}"
            ) from exc

    def fingerprint(self) -> str:
        """8 hex digits over the endpoint-config settings: a changed setting gives a new config name."""
        parts = (
            self.instance_type,
            self.initial_instance_count,
            self.data_capture_percent,
            self.capture_s3_uri,
        )
        raw = "|".join(str(p) for p in parts)
        return hashlib.sha256(raw.encode()).hexdigest()[:8]


def variant_name(package_arn: str) -> str:
    """The production variant (and published model version) of a package: v<version>, e.g. v3."""
    try:
        return version_from_package_arn(package_arn)
    except InputError as exc:
        raise DeployError(str(exc)) from None


def _split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise DeployError(f"{uri!r}: expected s3://bucket/key")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def _error(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def _not_found(exc: Exception) -> bool:
    code, message = _error(exc)
    return code == "ValidationException" and "not find" in message.lower()


def _already_exists(exc: Exception) -> bool:
    """SageMaker refuses a second CreateModel/CreateEndpointConfig/CreateEndpoint of one name with a
    ValidationException "Cannot create already existing ...": a duplicate event got there first, fine."""
    code, message = _error(exc)
    return code == "ValidationException" and "already exist" in message.lower()


# DescribeEndpoint's EndpointStatus values while SageMaker is still working on the endpoint: it refuses an
# update then, and sends another "SageMaker Endpoint State Change" event when it is done
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html).
BUSY = ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed")
# The stack (its custom resource) asks for the newest approved package explicitly and retries a failed one;
# endpoint state changes and package events carry a deployment on but never retry one that failed, except an
# approval of that very package. SageMaker sends these events to EventBridge, possibly several for one state
# change (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html).
EXPLICIT, ENDPOINT_CHANGE, PACKAGE_CHANGE = "explicit", "endpoint change", "package change"
FAILED_SUFFIX = ".failed"  # serving/attempts/<config>.failed.json: that config failed after it was sent
RETRY_HINT = (
    "Approve a new version, or approve this one again (set it Rejected, then Approved), to deploy it again"
)


class Deployer:
    """Reconciles the endpoint with the newest approved package: model → endpoint config → endpoint, then
    autoscaling and the serving artifacts once it is InService."""

    def __init__(
        self,
        settings: Settings,
        sagemaker: Any,
        autoscaling: Any,
        s3: Any,
        wait_deleted: Callable[[str], None] | None = None,
    ) -> None:
        self.s = settings
        self.sm = sagemaker
        self.aas = autoscaling
        self.s3 = s3
        self.wait_deleted = wait_deleted or self._wait_deleted
        self.delete_poll_seconds = 15  # 40 polls: 10 minutes, within the function's 15-minute timeout

    # --- names -----------------------------------------------------------------------------------------
    def model_name(self, variant: str) -> str:
        return f"{self.s.endpoint_name}-{variant}"

    def config_name(self, variant: str) -> str:
        return f"{self.s.endpoint_name}-{variant}-{self.s.fingerprint()}"

    def _owned(self, name: str) -> bool:
        return name.startswith(f"{self.s.endpoint_name}-{VERSION_PREFIX}")

    # --- state -----------------------------------------------------------------------------------------
    def latest_approved(self) -> str | None:
        response = self.sm.list_model_packages(
            ModelPackageGroupName=self.s.model_package_group,
            ModelApprovalStatus="Approved",
            SortBy="CreationTime",
            SortOrder="Descending",
            MaxResults=1,
        )
        packages = response.get("ModelPackageSummaryList", [])
        return packages[0]["ModelPackageArn"] if packages else None

    def describe_endpoint(self) -> dict[str, Any] | None:
        try:
            return dict(self.sm.describe_endpoint(EndpointName=self.s.endpoint_name))
        except Exception as exc:
            if _not_found(exc):
                return None
            raise

    def _wait_deleted(self, name: str) -> None:
        # DeleteEndpoint returns at once; a new endpoint of the same name can be created only once it is gone.
        self.sm.get_waiter("endpoint_deleted").wait(
            EndpointName=name, WaiterConfig={"Delay": self.delete_poll_seconds, "MaxAttempts": 40}
        )

    # --- reconciliation --------------------------------------------------------------------------------
    def reconcile(self, trigger: str = EXPLICIT, approved: str | None = None) -> dict[str, Any]:
        """Deploy the newest approved package unless it is the one serving.

        Only the newest approved version is ever deployed, whatever the event was about: SageMaker sends a
        package state change for any edit of an approved package (UpdatedModelPackageFields), so deploying
        the event's own package would roll the endpoint back to an old version whose description changed.
        `approved` is the package an approval event approved: approving the newest package (again) retries
        its deployment; any other package event (a new registration pending approval, an edit) does not.
        """
        endpoint = self.describe_endpoint()
        status = endpoint["EndpointStatus"] if endpoint else None
        if endpoint is not None and status == "InService":
            self.on_in_service(endpoint)
        target = self.latest_approved()
        base: dict[str, Any] = {"endpoint": self.s.endpoint_name, "trigger": trigger}
        if target is None:
            return {**base, "action": "no approved package"}
        variant = variant_name(target)
        config = self.config_name(variant)
        base.update(package=target, variant=variant, config=config)
        # Events carry a deployment on but never retry one that failed; an explicit request (the stack, an
        # approval of this very package) does.
        guarded = trigger == ENDPOINT_CHANGE or (trigger == PACKAGE_CHANGE and approved != target)
        if trigger == ENDPOINT_CHANGE and status in (None, "Deleting"):
            return self._gone(base, config)
        if endpoint is not None and status in BUSY:
            # Not an error: the state change that ends this status invokes the deployer again.
            return {**base, "action": "deferred", "status": status}
        if endpoint is not None and endpoint["EndpointConfigName"] == config and status == "InService":
            return {**base, "action": "unchanged"}
        if endpoint is not None and status == "Failed":
            # "DeleteEndpoint is the only operation that can be performed on a failed endpoint"
            # (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeEndpoint.html).
            failed_config = endpoint["EndpointConfigName"]
            if guarded and failed_config == config:
                # The newest package itself failed: recreating it would fail again, in a loop. The failure is
                # recorded first, so that Lambda's retries of this event fail too (and reach the alarm).
                self._mark_failed(config, str(endpoint.get("FailureReason", "")))
            self.deregister_scaling(endpoint)
            self.sm.delete_endpoint(EndpointName=self.s.endpoint_name)
            if guarded and failed_config == config:
                raise DeployError(
                    f"endpoint {self.s.endpoint_name} failed with {config} "
                    f"({endpoint.get('FailureReason')}); deleted it. {RETRY_HINT}"
                )
            self.wait_deleted(self.s.endpoint_name)
            endpoint = None
        elif guarded and endpoint is not None and endpoint.get("FailureReason"):
            attempted, _ = self._attempt_state(config)
            if attempted:
                # An update that failed rolls back to the old config and ends InService with a FailureReason:
                # retrying it on every event would loop. A deferred deployment of a version never tried yet
                # goes ahead whatever an old FailureReason says.
                message = (
                    f"endpoint {self.s.endpoint_name} serves {endpoint['EndpointConfigName']}, not {config}: "
                    f"{endpoint['FailureReason']}"
                )
                if trigger == ENDPOINT_CHANGE:
                    raise DeployError(message)
                log.warning("not retried on a package event: %s. %s", message, RETRY_HINT)
                return {**base, "action": "not retried", "reason": message}
        elif guarded and endpoint is None and self._attempt_state(config)[1]:
            # The endpoint was deleted after the newest package failed (above): a package event does not
            # recreate it; approving that package again, or a new one, does.
            log.warning("not retried on a package event: %s failed before. %s", config, RETRY_HINT)
            return {**base, "action": "not retried", "reason": f"{config} failed before"}
        self.prepare(target, variant)
        self._mark_attempt(config)
        if endpoint is None:
            try:
                self.sm.create_endpoint(EndpointName=self.s.endpoint_name, EndpointConfigName=config)
            except Exception as exc:
                if not _already_exists(exc):
                    raise
                return {**base, "action": "deferred", "status": "Creating"}
            action = "created"
        else:
            # Scaling policies pin a variant; the old variant disappears with the update, so release it first.
            self.deregister_scaling(endpoint)
            self.sm.update_endpoint(EndpointName=self.s.endpoint_name, EndpointConfigName=config)
            action = "updated"
        log.info("endpoint %s %s with %s (%s)", self.s.endpoint_name, action, config, target)
        return {**base, "action": action}

    def _gone(self, base: dict[str, Any], config: str) -> dict[str, Any]:
        """An endpoint-change event for an endpoint that is gone or going creates nothing: such an event is a
        retry of the one that deleted a Failed endpoint, or the deletion's own state change. It fails while
        that failure stands, so every retry fails and the event reaches the failure queue and its alarm.

        Lambda retries a failed asynchronous invocation twice, a minute and two minutes later:
        https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
        """
        if self._attempt_state(config)[1]:
            raise DeployError(
                f"endpoint {self.s.endpoint_name} was deleted after failing with {config}. {RETRY_HINT}"
            )
        return {**base, "action": "no endpoint"}

    def _attempt_key(self, config: str, suffix: str = "") -> str:
        return f"{self.s.serving_prefix}{ATTEMPTS_PREFIX}{config}{suffix}.json"

    def _attempt_state(self, config: str) -> tuple[bool, bool]:
        """(sent, failed): the deployer sent this config; it failed since it was last sent. One listing
        of both markers (the function may list serving/ but not read every key of it)."""
        sent, failed = self._attempt_key(config), self._attempt_key(config, FAILED_SUFFIX)
        listed = self.s3.list_objects_v2(
            Bucket=self.s.artifact_bucket, Prefix=self._attempt_key(config)[: -len(".json")], MaxKeys=10
        )
        times = {item["Key"]: item.get("LastModified") for item in listed.get("Contents", [])}
        if sent not in times:
            return False, False
        if failed not in times:
            return True, False
        sent_at, failed_at = times[sent], times[failed]
        return True, sent_at is None or failed_at is None or failed_at >= sent_at

    def _mark_attempt(self, config: str) -> None:
        self._put_marker(self._attempt_key(config), {"config": config})

    def _mark_failed(self, config: str, reason: str) -> None:
        self._put_marker(self._attempt_key(config, FAILED_SUFFIX), {"config": config, "failure": reason})

    def _put_marker(self, key: str, body: Mapping[str, str]) -> None:
        self.s3.put_object(
            Bucket=self.s.artifact_bucket,
            Key=key,
            Body=json.dumps(dict(body)).encode(),
            ContentType="application/json",
        )

    def prepare(self, package_arn: str, variant: str) -> None:
        """The package's serving artifacts, model and endpoint config; each step may already be done."""
        package = self.sm.describe_model_package(ModelPackageName=package_arn)
        if package.get("ModelApprovalStatus") != "Approved":
            raise DeployError(f"{package_arn} is {package.get('ModelApprovalStatus')}, not Approved")
        self.stage_artifacts(variant, package)
        model, config = self.model_name(variant), self.config_name(variant)
        try:
            self.sm.create_model(
                ModelName=model,
                ExecutionRoleArn=self.s.model_role_arn,
                PrimaryContainer={"ModelPackageName": package_arn},
                EnableNetworkIsolation=True,
            )
        except Exception as exc:
            if not _already_exists(exc):
                raise
        try:
            self.sm.create_endpoint_config(**self.endpoint_config_request(config, model, variant))
        except Exception as exc:
            if not _already_exists(exc):
                raise

    def endpoint_config_request(self, config: str, model: str, variant: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "EndpointConfigName": config,
            "ProductionVariants": [
                {
                    "VariantName": variant,
                    "ModelName": model,
                    "InstanceType": self.s.instance_type,
                    "InitialInstanceCount": self.s.initial_instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
        }
        if self.s.data_capture_percent > 0:
            request["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": self.s.data_capture_percent,
                "DestinationS3Uri": self.s.capture_s3_uri,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            }
        return request

    def stage_artifacts(self, variant: str, package: Mapping[str, Any]) -> None:
        """Copy the package's lookup files and model.tar.gz under <serving prefix><variant>/ for the recommend
        Lambda (it loads the lookup of the variant that answered, and the model for its fast path).

        Done once per variant: STAGED_KEY, written last, marks a complete copy, so a later deploy or stack
        update does not copy again (nor need the sources, should they be gone by then).
        """
        dest = self.s.serving_prefix + version_prefix(variant)
        marker = self.s3.list_objects_v2(Bucket=self.s.artifact_bucket, Prefix=dest + STAGED_KEY, MaxKeys=1)
        if marker.get("KeyCount", 0) > 0:
            return
        metadata = package.get("CustomerMetadataProperties") or {}
        lookup_uri = metadata.get(self.s.lookup_metadata_key)
        if not lookup_uri:
            raise DeployError(
                f"{package.get('ModelPackageArn')}: CustomerMetadataProperties has no "
                f"{self.s.lookup_metadata_key!r} "
                "(the lookup folder the pipeline wrote for this model)"
            )
        containers = package.get("InferenceSpecification", {}).get("Containers", [])
        if not containers or not containers[0].get("ModelDataUrl"):
            raise DeployError(f"{package.get('ModelPackageArn')}: InferenceSpecification has no ModelDataUrl")
        src_bucket, src_prefix = _split_s3(lookup_uri.rstrip("/") + "/")
        paginator = self.s3.get_paginator("list_objects_v2")
        copied = 0
        for page in paginator.paginate(Bucket=src_bucket, Prefix=src_prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(src_prefix) :]
                self.s3.copy_object(
                    Bucket=self.s.artifact_bucket,
                    Key=self.s.serving_prefix + lookup_key(variant, name),
                    CopySource={"Bucket": src_bucket, "Key": item["Key"]},
                )
                copied += 1
        if copied == 0:
            raise DeployError(f"{lookup_uri}: no lookup files there")
        model_bucket, model_source = _split_s3(containers[0]["ModelDataUrl"])
        self.s3.copy_object(
            Bucket=self.s.artifact_bucket,
            Key=self.s.serving_prefix + model_key(variant),
            CopySource={"Bucket": model_bucket, "Key": model_source},
        )
        self.s3.put_object(
            Bucket=self.s.artifact_bucket,
            Key=dest + STAGED_KEY,
            Body=json.dumps({"package": package.get("ModelPackageArn"), "lookup": lookup_uri}).encode(),
            ContentType="application/json",
        )

    # --- once InService --------------------------------------------------------------------------------
    def on_in_service(self, endpoint: Mapping[str, Any]) -> dict[str, Any]:
        """Scale the live variant, publish it as the current version, drop superseded models and configs."""
        variants = [v["VariantName"] for v in endpoint.get("ProductionVariants", [])]
        for variant in variants:
            resource = f"endpoint/{self.s.endpoint_name}/variant/{variant}"
            self.aas.register_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=self.s.initial_instance_count,
                MaxCapacity=self.s.max_instance_count,
            )
            self.aas.put_scaling_policy(
                PolicyName=f"{self.s.endpoint_name}-invocations",
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension=SCALABLE_DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": float(self.s.invocations_per_instance),
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            )
        if len(variants) == 1:
            self.s3.put_object(
                Bucket=self.s.artifact_bucket,
                Key=f"{self.s.serving_prefix}{CURRENT_KEY}",
                Body=dump_current(variants[0]),
                ContentType="application/json",
            )
        removed = self.remove_unused(keep_config=endpoint["EndpointConfigName"], keep_variants=set(variants))
        return {
            "endpoint": self.s.endpoint_name,
            "action": "in service",
            "variants": variants,
            "removed": removed,
        }

    def deregister_scaling(self, endpoint: Mapping[str, Any]) -> None:
        for variant in endpoint.get("ProductionVariants", []):
            resource = f"endpoint/{self.s.endpoint_name}/variant/{variant['VariantName']}"
            with contextlib.suppress(self.aas.exceptions.ObjectNotFoundException):
                self.aas.deregister_scalable_target(
                    ServiceNamespace="sagemaker", ResourceId=resource, ScalableDimension=SCALABLE_DIMENSION
                )

    def remove_unused(self, keep_config: str | None, keep_variants: set[str]) -> list[str]:
        """Delete endpoint configs and models this deployer made that the endpoint no longer uses."""
        removed: list[str] = []
        for page in self.sm.get_paginator("list_endpoint_configs").paginate(
            NameContains=self.s.endpoint_name
        ):
            for item in page.get("EndpointConfigs", []):
                name = item["EndpointConfigName"]
                if self._owned(name) and name != keep_config:
                    self.sm.delete_endpoint_config(EndpointConfigName=name)
                    removed.append(name)
        keep_models = {self.model_name(v) for v in keep_variants}
        for page in self.sm.get_paginator("list_models").paginate(NameContains=self.s.endpoint_name):
            for item in page.get("Models", []):
                name = item["ModelName"]
                if self._owned(name) and name not in keep_models:
                    self.sm.delete_model(ModelName=name)
                    removed.append(name)
        return removed

    def tear_down(self) -> dict[str, Any]:
        """Stack deletion: the endpoint, its scaling targets and every model and config this deployer made."""
        endpoint = self.describe_endpoint()
        if endpoint is not None:
            self.deregister_scaling(endpoint)
            self.sm.delete_endpoint(EndpointName=self.s.endpoint_name)
        removed = self.remove_unused(keep_config=None, keep_variants=set())
        return {"endpoint": self.s.endpoint_name, "action": "deleted", "removed": removed}


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


GROUP_RESOURCE = "Custom::FmrecModelPackageGroup"


def group_lifecycle(event: Mapping[str, Any], sagemaker: Any) -> dict[str, Any]:
    """The model package group as a custom resource that survives destroy → deploy in both stages.

    Create adopts a group that is already there (one a retaining stage kept when it was destroyed), where a
    plain AWS::SageMaker::ModelPackageGroup would fail with "already exists". Delete keeps the group when
    the stage retains its registry; otherwise it deletes every version first: DeleteModelPackageGroup refuses
    a group that still holds versions (its ConflictException,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeleteModelPackageGroup.html).
    """
    props = event.get("ResourceProperties") or {}
    name = str(props.get("GroupName", ""))
    if not name:
        raise DeployError("ResourceProperties.GroupName is not set")
    result: dict[str, Any] = {"group": name}
    if event["RequestType"] == "Delete":
        if str(props.get("KeepOnDelete", "true")).lower() == "true":
            return {**result, "action": "kept"}
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except Exception as exc:
            code, message = _error(exc)
            missing = any(w in message.lower() for w in ("not find", "not exist", "not found"))
            if code in ("ValidationException", "ResourceNotFound") and missing:
                return {**result, "action": "already gone"}
            raise
        deleted = 0
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=name):
            for item in page.get("ModelPackageSummaryList", []):
                sagemaker.delete_model_package(ModelPackageName=item["ModelPackageArn"])
                deleted += 1
        sagemaker.delete_model_package_group(ModelPackageGroupName=name)
        return {**result, "action": "deleted", "versions": deleted}
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=name, ModelPackageGroupDescription=str(props.get("Description", ""))
        )
        return {**result, "action": "created"}
    except Exception as exc:
        if _error(exc)[0] != "ValidationException":
            raise
        # Not knowing the exact wording of "already exists", ask: the group is there, or the error stands.
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except Exception:
            raise exc from None
        return {**result, "action": "adopted"}


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
