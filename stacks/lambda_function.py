"""A Python Lambda with its own role, log group (retention set) and X-Ray tracing, and no managed policies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from fmrec.deploy.layers import RUNTIME_LAYER_TAG
from stacks.config import ConfigError, StageConfig
from stacks.nag import acknowledge

# Both public layers we rely on (Powertools, AWS SDK for pandas) are published per Python minor version; this
# is the newest runtime both publish for, so the runtime and the layers' RUNTIME_LAYER_TAG move together.
RUNTIME = lambda_.Runtime.PYTHON_3_13


class PythonLambda(Construct):
    """Function + role + log group. The role gets only the log-stream permissions of its own group;
    callers add the rest with `add_to_role_policy`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        function_name: str,
        description: str,
        code: lambda_.Code,
        handler: str,
        environment: Mapping[str, str] | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        memory_size: int = 512,
        timeout: cdk.Duration | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"execution role of {function_name}",
        )
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="OwnLogGroup",
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[self.log_group.log_group_arn],
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=code,
            handler=handler,
            environment=dict(environment or {}),
            layers=list(layers),
            memory_size=memory_size,
            timeout=timeout or cdk.Duration.seconds(30),
            role=self.role,
            log_group=self.log_group,
        )
        # Active tracing is set on the L1 so that its "*" grant lands in a policy of its own, the only place
        # the wildcard acknowledgement applies (Tracing.ACTIVE would put it in the role's default policy).
        cfn_function = self.function.node.default_child
        assert isinstance(cfn_function, lambda_.CfnFunction)
        cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode="Active")
        xray = iam.Policy(
            self,
            "XRayPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="XRayTraces",
                    actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                    resources=["*"],
                )
            ],
        )
        xray.attach_to_role(self.role)
        cfn_function.node.add_dependency(xray)
        acknowledge(
            xray,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.",
            ),
        )
        acknowledge(
            self.function,
            (
                "AwsSolutions-L1",
                f"Pinned to {RUNTIME_LAYER_TAG}: the public Powertools and AWS SDK for pandas layers are "
                "published per Python minor version, so runtime and layers move together.",
            ),
        )

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        self.role.add_to_policy(statement)


_RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    731: "TWO_YEARS",
}


def _retention(days: int) -> logs.RetentionDays:
    if days not in _RETENTION:
        raise ConfigError(
            f"log_retention_days: {days} is not a CloudWatch retention; expected one of {sorted(_RETENTION)}"
        )
    return logs.RetentionDays[_RETENTION[days]]
