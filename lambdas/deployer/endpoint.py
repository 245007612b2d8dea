"""Reconciles the endpoint with the newest approved package: model, endpoint config, blue/green update,
autoscaling, and the failures it must not retry in a loop."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fmrec.serving.artifacts import VERSION_PREFIX
from lambdas.deployer.publish import publish_current, stage_version
from lambdas.deployer.settings import DeployError, Settings, already_exists, not_found, variant_name

log = logging.getLogger(__name__)

ATTEMPTS_PREFIX = "attempts/"  # serving/attempts/<config>.json: the deployer has sent this config once
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"

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
            if not_found(exc):
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
                if not already_exists(exc):
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
            if not already_exists(exc):
                raise
        try:
            self.sm.create_endpoint_config(**self.endpoint_config_request(config, model, variant))
        except Exception as exc:
            if not already_exists(exc):
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
        stage_version(self.s3, self.s, variant, package)

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
            publish_current(self.s3, self.s, variants[0])
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
