"""What offline checks cannot see, asked of the target account: layers, bootstrap, API logging, quotas."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fmrec.deploy.layers import (
    ARCHITECTURE,
    AWS_SDK_PANDAS_VERSION,
    NUMPY_LAYER_KEY,
    PANDAS_LAYER_PARAMETER,
    POWERTOOLS_LAYER_PARAMETER,
    POWERTOOLS_VERSION,
    RUNTIME_LAYER_TAG,
)
from fmrec.deploy.stage import StageConfig

# `cdk bootstrap` writes its template version to this parameter; every synthesized template's
# CheckBootstrapVersion rule refuses a version below 6 (tests/deploy checks it against a synthesized one).
# https://docs.aws.amazon.com/cdk/v2/guide/bootstrapping-env.html
DEFAULT_QUALIFIER = "hnb659fds"
QUALIFIER_KEY = "@aws-cdk/core:bootstrapQualifier"
MIN_BOOTSTRAP_VERSION = 6
SAGEMAKER = "sagemaker"  # the Service Quotas service code of SageMaker

ClientFactory = Callable[[str], Any]  # service name -> a boto3 client of the stage's region


@dataclass(frozen=True)
class Check:
    """One preflight finding: what was checked, what was found, and what to do when it failed."""

    name: str
    ok: bool
    found: str
    fix: str = ""


@dataclass(frozen=True)
class QuotaNeed:
    """Instances of one type the stage runs at once for one use (a SageMaker quota "<type> for <use>")."""

    use: str  # "training job usage", "processing job usage", "endpoint usage"
    instance_type: str
    count: int
    why: str

    @property
    def quota_name(self) -> str:
        return f"{self.instance_type} for {self.use}"


def quota_needs(config: StageConfig) -> list[QuotaNeed]:
    """The SageMaker instances the stage needs at once, by quota. A blue/green update provisions the new
    fleet before the old one goes, so the endpoint needs its maximum plus its initial count
    (https://docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-blue-green.html)."""
    endpoint = config.endpoint_max_instance_count + config.endpoint_instance_count
    return [
        QuotaNeed(
            "training job usage",
            config.training_instance_type,
            config.training_instance_count,
            "training_instance_count",
        ),
        QuotaNeed(
            "processing job usage",
            config.processing_instance_type,
            config.processing_instance_count,
            "processing_instance_count",
        ),
        QuotaNeed(
            "endpoint usage",
            config.endpoint_instance_type,
            endpoint,
            "endpoint_max_instance_count + endpoint_instance_count (blue/green update)",
        ),
    ]


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _denied(exc: Exception) -> bool:
    return _error_code(exc) in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")


def check_layer(
    clients: ClientFactory, region: str, label: str, parameter: str | None, arn: str | None = None
) -> Check:
    """The layer named by an SSM parameter (or an ARN given with -c) resolves in the region and fits the
    Lambda's runtime and architecture."""
    name = f"layer {label}"
    source = arn or parameter or ""
    if arn is None and parameter is not None:
        try:
            arn = str(clients("ssm").get_parameter(Name=parameter)["Parameter"]["Value"])
        except Exception as exc:
            if _error_code(exc) == "ParameterNotFound":
                return Check(
                    name,
                    False,
                    f"SSM parameter {parameter} does not exist in {region}",
                    f"that layer version is not published in {region}: deploy to a region that has it, or "
                    f"pin another version in fmrec/deploy/layers.py"
                    + (
                        f", or pass -c {NUMPY_LAYER_KEY}=<layer version ARN>" if "pandas" in parameter else ""
                    ),
                )
            if _denied(exc):
                return Check(
                    name, False, f"{exc}", f"allow ssm:GetParameter on {parameter} to your credentials"
                )
            raise
    try:
        layer = clients("lambda").get_layer_version_by_arn(Arn=arn)
    except Exception as exc:
        code = _error_code(exc)
        if code in ("ResourceNotFoundException", "AccessDeniedException", "ValidationException"):
            return Check(
                name,
                False,
                f"{source} -> {arn}: {code}",
                "the layer version is gone or not shared with this account; choose one that is "
                "(https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html, "
                "https://docs.powertools.aws.dev/lambda/python/latest/)",
            )
        raise
    runtimes = layer.get("CompatibleRuntimes") or []
    architectures = layer.get("CompatibleArchitectures") or []
    if (runtimes and RUNTIME_LAYER_TAG not in runtimes) or (
        architectures and ARCHITECTURE not in architectures
    ):
        return Check(
            name,
            False,
            f"{arn} is for {runtimes or 'any runtime'} on {architectures or 'any architecture'}",
            f"use a layer built for {RUNTIME_LAYER_TAG} on {ARCHITECTURE}",
        )
    return Check(name, True, arn or "")


def check_bootstrap(clients: ClientFactory, region: str, qualifier: str) -> Check:
    parameter = f"/cdk-bootstrap/{qualifier}/version"
    bootstrap = f"run `npx cdk bootstrap aws://<account>/{region}` (docs/deploy.md)"
    try:
        value = clients("ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    except Exception as exc:
        if _error_code(exc) == "ParameterNotFound":
            return Check("CDK bootstrap", False, f"{parameter} does not exist in {region}", bootstrap)
        if _denied(exc):
            return Check("CDK bootstrap", False, str(exc), f"allow ssm:GetParameter on {parameter}")
        raise
    try:
        version = int(value)
    except ValueError:
        return Check("CDK bootstrap", False, f"{parameter} = {value!r}, not a number", bootstrap)
    if version < MIN_BOOTSTRAP_VERSION:
        return Check(
            "CDK bootstrap",
            False,
            f"version {version}, the templates need {MIN_BOOTSTRAP_VERSION} or later",
            f"bootstrap again: {bootstrap}",
        )
    return Check("CDK bootstrap", True, f"version {version} ({parameter})")


def check_api_gateway_role(clients: ClientFactory, region: str) -> Check:
    """The REST API's execution and access logs need the account's API Gateway CloudWatch role, a setting
    of the whole account and region that the stacks never change
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html)."""
    role = clients("apigateway").get_account().get("cloudwatchRoleArn")
    if not role:
        return Check(
            "API Gateway CloudWatch role",
            False,
            f"no CloudWatch role is set for API Gateway in {region}: the API stack's deployment would fail",
            "create a role that apigateway.amazonaws.com may assume, with the managed policy "
            "AmazonAPIGatewayPushToCloudWatchLogs, then `aws apigateway update-account --patch-operations "
            "op=replace,path=/cloudwatchRoleArn,value=<role arn>` (docs/deploy.md, 'Before you deploy')",
        )
    return Check("API Gateway CloudWatch role", True, str(role))


def _quotas(client: Any, operation: str) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    for page in client.get_paginator(operation).paginate(ServiceCode=SAGEMAKER):
        for quota in page.get("Quotas", []):
            found[str(quota.get("QuotaName"))] = quota
    return found


def check_quotas(clients: ClientFactory, region: str, needs: Iterable[QuotaNeed]) -> list[Check]:
    """Each need against the account's applied quota, else AWS's default: ListServiceQuotas leaves out a
    quota whose applied value is not available
    (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html)."""
    client = clients("service-quotas")
    applied = _quotas(client, "list_service_quotas")
    defaults: dict[str, Mapping[str, Any]] | None = None
    checks = []
    for need in needs:
        quota = applied.get(need.quota_name)
        if quota is None:
            defaults = (
                defaults if defaults is not None else _quotas(client, "list_aws_default_service_quotas")
            )
            quota = defaults.get(need.quota_name)
        name = f"quota {need.quota_name}"
        if quota is None:
            checks.append(
                Check(
                    name,
                    False,
                    f"SageMaker has no such quota in {region}",
                    f"{need.instance_type} is not offered for {need.use} in {region}: choose another "
                    "instance type in cdk.json",
                )
            )
            continue
        value = float(quota.get("Value", 0))
        if value < need.count:
            code = quota.get("QuotaCode", "<quota code>")
            checks.append(
                Check(
                    name,
                    False,
                    f"{value:g}, the stage needs {need.count} ({need.why})",
                    f"aws service-quotas request-service-quota-increase --region {region} --service-code "
                    f"{SAGEMAKER} --quota-code {code} --desired-value {need.count}, or lower the stage's "
                    "counts in cdk.json",
                )
            )
            continue
        checks.append(Check(name, True, f"{value:g} >= {need.count} ({need.why})"))
    return checks


def run_preflight(
    config: StageConfig,
    clients: ClientFactory,
    qualifier: str = DEFAULT_QUALIFIER,
    numpy_layer_arn: str | None = None,
) -> list[Check]:
    """Every check of `fmrec deploy preflight`, in docs/deploy.md's order; clients are of config.region."""
    region = config.region
    checks = [
        check_layer(clients, region, f"Powertools {POWERTOOLS_VERSION}", POWERTOOLS_LAYER_PARAMETER),
        check_layer(
            clients,
            region,
            f"AWS SDK for pandas {AWS_SDK_PANDAS_VERSION} (numpy)",
            None if numpy_layer_arn else PANDAS_LAYER_PARAMETER,
            numpy_layer_arn,
        ),
        check_bootstrap(clients, region, qualifier),
        check_api_gateway_role(clients, region),
    ]
    return checks + check_quotas(clients, region, quota_needs(config))
