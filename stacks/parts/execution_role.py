"""A SageMaker pipeline's execution role, passed to every job it starts and scoped to bucket prefixes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.config import StageConfig
from stacks.nag import acknowledge


class JobKind(NamedTuple):
    """A kind of SageMaker job: its ARN resource type and the log group its jobs write to."""

    arn_type: str
    log_group: str


PROCESSING_JOBS = JobKind("processing-job", "ProcessingJobs")
TRAINING_JOBS = JobKind("training-job", "TrainingJobs")


class PipelineExecutionRole:
    """<prefix>Role + <prefix>Policy: S3 on the `read`/`write` prefixes only (each wildcard acknowledged with
    its reason from `prefix_reasons`), the jobs' images, logs and metrics, the `job_kinds`' jobs that
    SageMaker Pipelines starts, `extra` statements, and passing itself to those jobs.

    ListBucket carries the read prefixes as s3:prefix conditions: SageMaker lists an S3Prefix input with
    the key as given (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html)."""

    def __init__(
        self,
        scope: Construct,
        prefix: str,
        *,
        config: StageConfig,
        bucket: s3.IBucket,
        description: str,
        read: Sequence[str],
        write: Sequence[str],
        prefix_reasons: Mapping[str, str],
        image_repository_arns: Sequence[str],
        job_kinds: Sequence[JobKind],
        job_actions: Sequence[str],
        extra: Sequence[iam.PolicyStatement] = (),
    ) -> None:
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        self.role = iam.Role(
            scope,
            f"{prefix}Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=description,
        )

        def objects(p: str) -> str:
            return bucket.arn_for_objects(f"{p}*")

        self.policy = iam.Policy(
            scope,
            f"{prefix}Policy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadInputsAndCode",
                    actions=["s3:GetObject"],
                    resources=[objects(p) for p in read],
                ),
                iam.PolicyStatement(
                    sid="WriteOutputs",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[objects(p) for p in write],
                ),
                iam.PolicyStatement(
                    sid="ListOwnPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in read]}},
                ),
                iam.PolicyStatement(
                    sid="PullImages",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=list(image_repository_arns),
                ),
                iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    sid="JobLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[
                        f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/{kind.log_group}:*"
                        for kind in job_kinds
                    ],
                ),
                iam.PolicyStatement(
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
                ),
                iam.PolicyStatement(
                    sid="RunJobs",
                    actions=list(job_actions),
                    # SageMaker Pipelines names every job pipelines-<execution id>-<step>-<hash>.
                    resources=[f"{sm}:{kind.arn_type}/pipelines-*" for kind in job_kinds],
                ),
                *extra,
                iam.PolicyStatement(
                    sid="PassSelfToJobs",
                    actions=["iam:PassRole"],
                    resources=[self.role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        self.policy.attach_to_role(self.role)
        acknowledge(
            self.policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; PutMetricData is limited to "
                "the /aws/sagemaker/* namespaces by condition.",
            ),
            *[
                (
                    nag.wildcard_resource(
                        nag.service_arn("logs", f"log-group:/aws/sagemaker/{kind.log_group}:*")
                    ),
                    f"Each job writes its own streams in SageMaker's {kind.log_group} log group.",
                )
                for kind in job_kinds
            ],
            *[
                (
                    nag.wildcard_resource(nag.service_arn("sagemaker", f"{kind.arn_type}/pipelines-*")),
                    "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<hash> at run time.",
                )
                for kind in job_kinds
            ],
            *[
                (nag.wildcard_resource(nag.bucket_objects(config, f"{p}*")), reason)
                for p, reason in prefix_reasons.items()
            ],
        )
