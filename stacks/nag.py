"""cdk-nag acknowledgements: one finding id at a time, each with its reason, on the construct that owns it."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct

from stacks.config import StageConfig

ACCOUNT = "<AWS::AccountId>"
PARTITION = "<AWS::Partition>"
REGION = "<AWS::Region>"


def acknowledge(scope: IConstruct, *findings: tuple[str, str]) -> None:
    """Acknowledge exact finding ids (e.g. "AwsSolutions-IAM5[Resource::*]") on `scope` and its children."""
    Validations.of(scope).acknowledge(*(Acknowledgment(id=fid, reason=reason) for fid, reason in findings))


def wildcard_resource(resource: str) -> str:
    """The id cdk-nag gives an IAM5 finding for one wildcard resource, as it renders the ARN."""
    return f"AwsSolutions-IAM5[Resource::{resource}]"


def wildcard_action(action: str) -> str:
    return f"AwsSolutions-IAM5[Action::{action}]"


def service_arn(service: str, rest: str) -> str:
    """arn:<AWS::Partition>:<service>:<AWS::Region>:<AWS::AccountId>:<rest>, as cdk-nag prints it."""
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{rest}"


def bucket_objects(config: StageConfig, pattern: str) -> str:
    """How cdk-nag prints arn:...:s3:::<artifact bucket>/<pattern>."""
    return f"arn:{PARTITION}:s3:::{config.bucket_name(config.account or ACCOUNT)}/{pattern}"
