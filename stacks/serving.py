"""Serving stack: the endpoint's model role and the deployer that puts approved model packages on it."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from stacks.config import StageConfig
from stacks.parts.deployer import EndpointDeployer
from stacks.parts.deployer_triggers import DeployerTriggers
from stacks.parts.model_role import EndpointModelRole
from stacks.storage import artifact_bucket


class ServingStack(cdk.Stack):
    """Endpoint <config.endpoint_name>, (re)deployed by a Lambda on each approval in the package group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        fm_repository_arn: str,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bucket = artifact_bucket(self, config)
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        endpoint = config.endpoint_name
        group = config.model_package_group_name
        self.endpoint_name = endpoint
        self.endpoint_arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint}"
        self.group_arn = f"arn:{partition}:sagemaker:{region}:{account}:model-package-group/{group}"

        hosting = EndpointModelRole(self, config=config, bucket=bucket, fm_repository_arn=fm_repository_arn)
        self.model_role = hosting.role
        self.deployer = EndpointDeployer(
            self, config=config, bucket=bucket, model_role=hosting.role, endpoint_arn=self.endpoint_arn
        )
        triggers = DeployerTriggers(self, config=config, deployer=self.deployer)
        self.failures = triggers.failures
        self.failure_alarm = triggers.failure_alarm

        cdk.CfnOutput(
            self, "EndpointName", value=endpoint, description="the SageMaker endpoint the API invokes"
        )
