"""Storage stack: the artifact bucket (encrypted, private, SSL-only, versioned, logged), its log bucket and
the ratings table."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.config import PIPELINE_PREFIX, StageConfig
from stacks.parts.ratings_table import RatingsTable


def removal_policy(config: StageConfig) -> cdk.RemovalPolicy:
    return cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY


def artifact_bucket(scope: Construct, config: StageConfig) -> s3.IBucket:
    """The storage stack's bucket by its deterministic name: consumers need no cross-stack export."""
    return s3.Bucket.from_bucket_name(
        scope, "ArtifactBucket", config.bucket_name(cdk.Stack.of(scope).account)
    )


class StorageStack(cdk.Stack):
    """The bucket that holds input data, pipeline artifacts, models and captured traffic."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        policy = removal_policy(config)
        # Emptying a bucket on delete needs a CDK custom resource: only stages that destroy data use it.
        auto_delete = not config.retain

        self.log_bucket = s3.Bucket(
            self,
            "AccessLogBucket",
            # S3 server access logging cannot deliver to SSE-KMS buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs", expiration=cdk.Duration.days(config.access_log_expiration_days)
                )
            ],
            removal_policy=policy,
            auto_delete_objects=auto_delete,
        )
        # cdk-nag's S1 (server access logs) does not apply to a bucket that is itself a log destination.

        if config.retain and config.account is None:
            # CloudFormation can adopt a retained bucket on the next deploy (`cdk deploy
            # --import-existing-resources`) only if its name is a literal, not one built from AWS::AccountId
            # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/import-resources-automatically.html).
            cdk.Annotations.of(self).add_warning_v2(
                "fmrec:retain-without-account",
                f"stage {config.stage} retains its artifact bucket but sets no account: its name depends on "
                "AWS::AccountId, so a deploy after `cdk destroy` cannot adopt the retained bucket. Set "
                f"'account' in cdk.json fmrec:stages.{config.stage} (docs/deploy.md, 'Destroy, redeploy').",
            )
        self.bucket = s3.Bucket(
            self,
            "ArtifactBucket",
            bucket_name=config.bucket_name(self.account),
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.log_bucket,
            server_access_logs_prefix="artifact-bucket/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-pipeline-artifacts",
                    prefix=PIPELINE_PREFIX,
                    expiration=cdk.Duration.days(config.artifact_expiration_days),
                ),
                s3.LifecycleRule(
                    id="expire-old-versions",
                    noncurrent_version_expiration=cdk.Duration.days(
                        config.noncurrent_version_expiration_days
                    ),
                    abort_incomplete_multipart_upload_after=cdk.Duration.days(7),
                ),
            ],
            removal_policy=policy,
            auto_delete_objects=auto_delete,
        )

        self.ratings = RatingsTable(self, config=config, bucket=self.bucket)

        cdk.CfnOutput(self, "BucketName", value=self.bucket.bucket_name, description="the artifact bucket")
        cdk.CfnOutput(
            self,
            "RatingsTableName",
            value=self.ratings.table.table_name,
            description="the ratings POST /users/{userId}/ratings stores",
        )
