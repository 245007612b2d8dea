"""What runs the deployer: package and endpoint events, the stack's own deploys, and where failures go."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.config import StageConfig
from stacks.nag import acknowledge
from stacks.parts.deployer import EndpointDeployer


class DeployerTriggers:
    """DeployerFailures (queue) + DeployerFailed (alarm), the OnPackageChange and OnEndpointChange rules, and
    the EndpointLifecycle custom resource: every change in the group or of the endpoint reconciles, and so
    does every deploy that changes a setting (lambdas/deployer)."""

    def __init__(self, scope: Construct, *, config: StageConfig, deployer: EndpointDeployer) -> None:
        endpoint = config.endpoint_name
        group = config.model_package_group_name
        function = deployer.function.function
        # EventBridge invokes the deployer asynchronously: "By default, Lambda retries an asynchronous
        # invocation twice ... When an event fails all processing attempts ... Lambda discards it"
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-eventinvokeconfig.html),
        # so a failed event goes to this queue instead, whose alarm tells an operator (docs/deploy.md).
        self.failures = sqs.Queue(
            scope,
            "DeployerFailures",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failures),
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
        )
        self.failure_alarm = cloudwatch.Alarm(
            scope,
            "DeployerFailed",
            alarm_name=config.name("deployer-failed"),
            alarm_description=f"a deployment to {endpoint} failed after its retries: see the queue's message "
            "and the deployer's log",
            metric=self.failures.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5)
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        acknowledge(
            self.failures,
            (
                "AwsSolutions-SQS3",
                "This queue is itself the failure destination of the deployer's asynchronous invocations.",
            ),
        )
        # Any state change of a package in the group: an approval, a revoked approval (the previous approved
        # version comes back) or an edit; the deployer always deploys the newest approved version.
        self.package_rule = events.Rule(
            scope,
            "OnPackageChange",
            description=f"a package of {group} changed: put the newest approved one on {endpoint}",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [group]},
            ),
        )
        self.package_rule.add_target(targets.LambdaFunction(function, dead_letter_queue=self.failures))
        self.endpoint_rule = events.Rule(
            scope,
            "OnEndpointChange",
            description=f"{endpoint} in service or failed: scale, publish, resume a deferred deploy",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [endpoint], "EndpointStatus": ["IN_SERVICE", "FAILED"]},
            ),
        )
        self.endpoint_rule.add_target(targets.LambdaFunction(function, dead_letter_queue=self.failures))
        self.lifecycle = cdk.CustomResource(
            scope,
            "EndpointLifecycle",
            service_token=function.function_arn,
            resource_type="Custom::FmrecEndpoint",
            # A changed setting re-runs the deployment with the newest approved package.
            properties={"Settings": settings_fingerprint(deployer.environment)},
        )
        self.lifecycle.node.add_dependency(deployer.policy)


def settings_fingerprint(env: dict[str, str]) -> str:
    """The deployer's resolved settings as one string: unresolved tokens (ARNs) never change it."""
    return ",".join(f"{k}={v}" for k, v in sorted(env.items()) if not cdk.Token.is_unresolved(v))
