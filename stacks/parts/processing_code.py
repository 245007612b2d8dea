"""The processing code tree (pipeline/steps + fmrec) copied to s3://<bucket>/code/<version>/, no Docker."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from stacks import nag
from stacks.config import CODE_PREFIX, StageConfig
from stacks.lambda_function import _retention
from stacks.nag import acknowledge


class ProcessingCode:
    """ProcessingCode (CDK's BucketDeployment) with its own CodeDeploymentRole, CodeDeploymentPolicy and
    CodeDeploymentLogs: read the asset zip, write code/, log; nothing else.

    One folder per content version: an execution that is still running keeps reading the folder its
    definition names while a deploy adds the next one beside it. retain_on_delete keeps the old folder when
    the destination changes (CDK's handler would otherwise `s3 rm --recursive` it on that update)."""

    def __init__(
        self, scope: Construct, *, config: StageConfig, bucket: s3.IBucket, code_dir: Path, version: str
    ) -> None:
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        self.logs = logs.LogGroup(
            scope,
            "CodeDeploymentLogs",
            retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            scope,
            "CodeDeploymentRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="copies the processing code asset into code/<version>/ of the artifact bucket",
        )
        qualifier = cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
        assets_bucket = f"arn:{partition}:s3:::cdk-{qualifier}-assets-{account}-{region}"
        self.policy = iam.Policy(
            scope,
            "CodeDeploymentPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadCodeAsset", actions=["s3:GetObject"], resources=[f"{assets_bucket}/*"]
                ),
                iam.PolicyStatement(
                    sid="WriteCodeFolder",
                    actions=["s3:PutObject", "s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{CODE_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ListCodeFolder",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{CODE_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    sid="OwnLogGroup",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.logs.log_group_arn],
                ),
            ],
        )
        self.policy.attach_to_role(self.role)
        self.deployment = s3deploy.BucketDeployment(
            scope,
            "ProcessingCode",
            sources=[s3deploy.Source.asset(str(code_dir))],
            destination_bucket=bucket,
            destination_key_prefix=f"{CODE_PREFIX}{version}",
            prune=False,
            retain_on_delete=True,
            memory_limit=256,
            # CDK would grant its handler read/write/delete on the whole bucket (data/, models/ too): it gets
            # this role, scoped to code/, and CDK's own grants are dropped (without_policy_updates).
            role=self.role.without_policy_updates(),
            log_group=self.logs,
        )
        self.deployment.node.add_dependency(self.policy)  # CDK's own grants would have added this
        self._acknowledge(scope, config)

    def _acknowledge(self, scope: Construct, config: StageConfig) -> None:
        """Findings on CDK's BucketDeployment handler (a singleton Lambda at the stack's top level) and on the
        role this part gives it."""
        stack = cdk.Stack.of(scope)
        handlers = [c for c in stack.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        qualifier = cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
        assets_bucket = f"arn:{nag.PARTITION}:s3:::cdk-{qualifier}-assets-{nag.ACCOUNT}-{nag.REGION}/*"
        why = "CDK's BucketDeployment handler, which copies the code asset into code/<version>/ on deploy"
        for handler in handlers:
            acknowledge(
                handler,
                ("AwsSolutions-L1", f"{why}: its runtime is chosen by aws-cdk-lib, not by this app."),
            )
        acknowledge(
            self.policy,
            (
                nag.wildcard_resource(assets_bucket),
                f"{why}: it reads the asset zip, named by its hash, from the CDK bootstrap bucket.",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{CODE_PREFIX}*")),
                f"{why}: it writes one folder per code version under code/, and nothing outside it.",
            ),
        )
