"""The stage's model package group, as a custom resource that survives destroy and redeploy."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks import nag
from stacks.config import StageConfig
from stacks.lambda_function import PythonLambda
from stacks.nag import acknowledge
from stacks.parts.deployer import deployer_code


class ModelPackageGroup:
    """Registry (a PythonLambda running lambdas/deployer's group_lifecycle) + RegistryPolicy + the
    ModelPackageGroup custom resource: it adopts a group a retaining stage kept when it was destroyed, and
    empties it before deleting it in a stage that does not."""

    def __init__(self, scope: Construct, *, config: StageConfig) -> None:
        group = config.model_package_group_name
        sm = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}"
        self.function = PythonLambda(
            scope,
            "Registry",
            config=config,
            function_name=config.name("registry"),
            description=f"creates or adopts model package group {group}; empties and deletes it if destroyed",
            code=deployer_code(scope),
            handler="handler.lambda_handler",
            memory_size=256,
            timeout=cdk.Duration.minutes(5),
        )
        self.policy = iam.Policy(
            scope,
            "RegistryPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="OwnGroup",
                    actions=[
                        "sagemaker:CreateModelPackageGroup",
                        "sagemaker:DescribeModelPackageGroup",
                        "sagemaker:DeleteModelPackageGroup",
                    ],
                    resources=[f"{sm}:model-package-group/{group}"],
                ),
                iam.PolicyStatement(
                    sid="DeleteVersions",
                    actions=["sagemaker:DeleteModelPackage"],
                    resources=[f"{sm}:model-package/{group}/*"],
                ),
                iam.PolicyStatement(
                    sid="ListVersions",
                    actions=["sagemaker:ListModelPackages"],
                    resources=["*"],  # List* APIs have no resource-level permissions
                ),
            ],
        )
        self.policy.attach_to_role(self.function.role)
        acknowledge(
            self.policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ListModelPackages has no resource-level permissions; it only lists the group's versions.",
            ),
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", f"model-package/{group}/*")),
                "A destroyed stage deletes every version of its own model package group, then the group.",
            ),
        )
        self.resource = cdk.CustomResource(
            scope,
            "ModelPackageGroup",
            service_token=self.function.function.function_arn,
            resource_type="Custom::FmrecModelPackageGroup",
            properties={
                "GroupName": group,
                "Description": f"FM recommender models of stage {config.stage}",
                "KeepOnDelete": "true" if config.retain else "false",
            },
        )
        self.resource.node.add_dependency(self.policy)
