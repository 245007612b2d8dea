"""What every deployer job shares: its settings from the environment, its error, and AWS error checks."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from fmrec.errors import InputError
from fmrec.serving.artifacts import version_from_package_arn


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


def aws_error(exc: Exception) -> tuple[str, str]:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return str(error.get("Code", "")), str(error.get("Message", ""))


def not_found(exc: Exception) -> bool:
    code, message = aws_error(exc)
    return code == "ValidationException" and "not find" in message.lower()


def already_exists(exc: Exception) -> bool:
    """SageMaker refuses a second CreateModel/CreateEndpointConfig/CreateEndpoint of one name with a
    ValidationException "Cannot create already existing ...": a duplicate event got there first, fine."""
    code, message = aws_error(exc)
    return code == "ValidationException" and "already exist" in message.lower()
