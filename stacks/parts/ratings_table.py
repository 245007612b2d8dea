"""The ratings table (fmrec.ratings.dynamodb) and its optional scheduled export to the pipeline's input."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from constructs import Construct

from fmrec.ratings.export import PARTITION_KEY, SORT_KEY
from stacks import nag
from stacks.config import StageConfig
from stacks.nag import acknowledge

ARTIFACT_BUCKET_ID = "ArtifactBucket7410C9EF"  # the storage stack's bucket, beside the table


def ratings_table_name(config: StageConfig) -> str:
    return config.name("ratings")


def ratings_table_arn(config: StageConfig) -> str:
    """The table's ARN from its deterministic name: the API stack needs no cross-stack export."""
    return (
        f"arn:{cdk.Aws.PARTITION}:dynamodb:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:table/"
        f"{ratings_table_name(config)}"
    )


def recommend_statement(config: StageConfig) -> iam.PolicyStatement:
    """What the recommend Lambda may do, on this table only: Query a user's ratings and Put a batch.

    A TransactWriteItems Put is authorized as dynamodb:PutItem
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html); no Scan,
    Update, Delete or index access.
    """
    return iam.PolicyStatement(
        sid="RatingsTable",
        actions=["dynamodb:Query", "dynamodb:PutItem"],
        resources=[ratings_table_arn(config)],
    )


class RatingsTable:
    """RatingsTable (on demand, point-in-time recovery, KMS encryption) and, when the stage sets
    ratings_export_schedule, RatingsExportRole + RatingsExport: an EventBridge Scheduler schedule that exports
    the table to <artifact bucket>/<ratings_export_prefix>, where the next preprocess merges it."""

    def __init__(self, scope: Construct, *, config: StageConfig, bucket: s3.IBucket) -> None:
        self.table = dynamodb.Table(
            scope,
            "RatingsTable",
            table_name=ratings_table_name(config),
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.NUMBER),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.NUMBER),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # Needed by ExportTableToPointInTime too ("The table must have point in time recovery enabled"):
            # https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_ExportTableToPointInTime.html
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=cdk.RemovalPolicy.RETAIN if config.retain else cdk.RemovalPolicy.DESTROY,
        )
        self.export: scheduler.CfnSchedule | None = None
        if config.ratings_export_schedule:
            self.export = self._export_schedule(scope, config, bucket)

    def _export_schedule(
        self, scope: Construct, config: StageConfig, bucket: s3.IBucket
    ) -> scheduler.CfnSchedule:
        prefix = config.ratings_export_prefix.strip("/")
        role = iam.Role(
            scope,
            "RatingsExportRole",
            assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com"),
            description=f"exports {ratings_table_name(config)} to s3://.../{prefix}/ on its schedule",
        )
        # ExportTableToPointInTime's caller needs the export action on the table and writes to the bucket
        # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport_Requesting.html).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ExportTable",
                actions=["dynamodb:ExportTableToPointInTime"],
                resources=[self.table.table_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteExport",
                actions=["s3:AbortMultipartUpload", "s3:PutObject", "s3:PutObjectAcl"],
                resources=[bucket.arn_for_objects(f"{prefix}/*")],
            )
        )
        acknowledge(
            role,
            (
                # cdk-nag names this stack's bucket by its logical ID (pinned: tests/stacks/logical_ids.json)
                nag.wildcard_resource(f"<{ARTIFACT_BUCKET_ID}.Arn>/{prefix}/*"),
                "DynamoDB names the export's files itself (AWSDynamoDB/<ExportId>/...) under the prefix.",
            ),
        )
        # A universal target: arn:aws:scheduler:::aws-sdk:<service>:<apiAction> with the API's own input
        # (https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html).
        export_input = {
            "TableArn": self.table.table_arn,
            "S3Bucket": bucket.bucket_name,
            "S3Prefix": prefix,
            "ExportFormat": "DYNAMODB_JSON",
        }
        return scheduler.CfnSchedule(
            scope,
            "RatingsExport",
            name=config.name("ratings-export"),
            description="exports the ratings table where the next pipeline run's preprocess merges it",
            schedule_expression=str(config.ratings_export_schedule),
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
            state="ENABLED",
            target=scheduler.CfnSchedule.TargetProperty(
                arn="arn:aws:scheduler:::aws-sdk:dynamodb:exportTableToPointInTime",
                role_arn=role.role_arn,
                input=cdk.Stack.of(scope).to_json_string(export_input),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=3),
            ),
        )
