"""A SageMaker pipeline (CfnPipeline) of a definition with CDK placeholders, and its optional schedule."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.parts.execution_role import PipelineExecutionRole


class SageMakerPipeline:
    """A CfnPipeline (id `construct_id`) of a definition built with pipeline.definition.CDK_ARGUMENTS:
    CloudFormation fills in the two placeholders with the bucket and this pipeline's own role, whose policy
    is in place before the pipeline is created."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        name: str,
        description: str,
        definition: dict[str, Any],
        execution: PipelineExecutionRole,
    ) -> None:
        body = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        role_arn = execution.role.role_arn
        self.resource = sagemaker.CfnPipeline(
            scope,
            construct_id,
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=description,
            role_arn=role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": cdk.Fn.sub(
                    body, {"ArtifactBucket": bucket.bucket_name, "PipelineRoleArn": role_arn}
                )
            },
        )
        self.resource.node.add_dependency(execution.policy)
        self.name = name
        self.arn = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}:pipeline/{name}"


class PipelineSchedule:
    """ScheduleRole + Schedule: an EventBridge rule that starts `pipeline` on `expression`."""

    def __init__(self, scope: Construct, *, pipeline: SageMakerPipeline, expression: str) -> None:
        role = iam.Role(
            scope,
            "ScheduleRole",
            assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
            description=f"starts {pipeline.name} on its schedule",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="StartPipeline",
                actions=["sagemaker:StartPipelineExecution"],
                resources=[pipeline.arn],
            )
        )
        # aws_events_targets has no SageMaker pipeline target in this CDK version: an L1 rule.
        self.rule = events.CfnRule(
            scope,
            "Schedule",
            description=f"runs {pipeline.name} on {expression}",
            schedule_expression=expression,
            state="ENABLED",
            targets=[events.CfnRule.TargetProperty(id="pipeline", arn=pipeline.arn, role_arn=role.role_arn)],
        )
        self.rule.node.add_dependency(pipeline.resource)
