"""The SageMaker SDK 2.x as the definitions use it: quiet, offline (no AWS call), and the build's checks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from pipeline import sdk
from pipeline.sdk import PipelineSession

MAX_DEFINITION_CHARS = 1_048_576
# The SDK's defaults config for the build: telemetry off, so the SDK never phones home.
SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
SKLEARN_VERSION = "1.4-2"  # the newest the SDK knows: the steps need a recent Python
PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"


class DefinitionError(ValueError):
    """get_pipeline was given an argument it cannot build a definition from."""


@contextmanager
def quiet_sdk() -> Iterator[None]:
    """Keep the SDK 2.x quiet and local while it builds (sdk.quiet), and fast.

    The SDK re-validates its config against its JSON schema on every config lookup (about 100 per build,
    0.2-0.4 s each, most of the build time); the one config used here is validated once instead.
    """
    with sdk.quiet():
        validate = sdk.utils.validate_sagemaker_config
        validate(SDK_CONFIG)

        def validate_once(sagemaker_config: dict[Any, Any] | None = None) -> Any:
            return None if sagemaker_config == SDK_CONFIG else validate(sagemaker_config or {})

        sdk.utils.validate_sagemaker_config = validate_once
        try:
            yield
        finally:
            sdk.utils.validate_sagemaker_config = validate


def offline_session(region: str, bucket: str) -> Any:
    """A PipelineSession that cannot reach AWS: the SDK paths that would call S3, IAM or STS raise instead."""

    class OfflineSession(PipelineSession):
        def default_bucket(self) -> str:
            return bucket

        def expand_role(self, role: str) -> str:
            return role

        def _refuse(self, *args: Any, **kwargs: Any) -> Any:
            raise DefinitionError("the definition build must not call AWS (an SDK path tried to)")

        upload_data = upload_string_as_file_body = account_id = get_caller_identity_arn = _refuse

    # No credentials are read: building clients is local; telemetry is opted out so the SDK never phones home.
    session = boto3.Session(region_name=region, aws_access_key_id="offline", aws_secret_access_key="offline")
    return OfflineSession(boto_session=session, default_bucket=bucket, sagemaker_config=dict(SDK_CONFIG))


def image_uris(region: str) -> dict[str, str]:
    """The FM and SKLearn image URIs of a region, from the config bundled with the SDK (no network)."""
    with quiet_sdk():
        return {
            "fm": sdk.image_uris.retrieve("factorization-machines", region),
            "sklearn": sdk.image_uris.retrieve(
                "sklearn", region, version=SKLEARN_VERSION, instance_type="ml.m5.xlarge"
            ),
        }


def check_arguments(region: str, artifact_bucket: str, code_uri: str, role_arn: str) -> None:
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", region):
        raise DefinitionError(f"region: expected an AWS region name such as us-east-1, got {region!r}")
    if not artifact_bucket or "/" in artifact_bucket or artifact_bucket.startswith("s3:"):
        raise DefinitionError(
            f"artifact_bucket: expected a bucket name (no s3://, no /), got {artifact_bucket!r}"
        )
    if not code_uri.startswith("s3://") or code_uri.rstrip("/").count("/") < 3:
        raise DefinitionError(f"code_uri: expected an s3://bucket/folder URI, got {code_uri!r}")
    if not role_arn:
        raise DefinitionError("role_arn: expected an IAM role ARN (or a placeholder)")
