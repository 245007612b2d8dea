"""The deployer Lambda (lambdas/deployer) that puts approved packages on the endpoint, and its policy."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.config import CAPTURE_PREFIX, MODELS_PREFIX, PIPELINE_PREFIX, SERVING_PREFIX, StageConfig
from stacks.lambda_function import PythonLambda
from stacks.nag import acknowledge
from stacks.staging import stage_deployer

# The deployer reads the lookup folder of a package from this key of its CustomerMetadataProperties.
LOOKUP_METADATA_KEY = "LookupS3Uri"


def deployer_code(scope: Construct) -> lambda_.Code:
    """lambdas/deployer plus the stdlib-only fmrec modules it imports (the artifact contract), staged in the
    cloud assembly; also the code of the model package group's custom resource (parts/model_registry)."""
    stage = cdk.Stage.of(scope)
    if stage is None:  # only a construct outside any App has no stage; ours always sit in one
        raise ValueError(f"{scope.node.path}: the deployer's code is staged in the cloud assembly of an App")
    return lambda_.Code.from_asset(str(stage_deployer(Path(stage.outdir))))


class EndpointDeployer:
    """Deployer (a PythonLambda) + DeployerPolicy: owns the endpoint <config.endpoint_name>, its models,
    endpoint configs and scaling, and publishes serving/ for the recommend Lambda."""

    def __init__(
        self,
        scope: Construct,
        *,
        config: StageConfig,
        bucket: s3.IBucket,
        model_role: iam.IRole,
        endpoint_arn: str,
    ) -> None:
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        endpoint = config.endpoint_name
        group = config.model_package_group_name
        self.environment: dict[str, str] = {
            "ENDPOINT_NAME": endpoint,
            "MODEL_PACKAGE_GROUP": group,
            "MODEL_ROLE_ARN": model_role.role_arn,
            "INSTANCE_TYPE": config.endpoint_instance_type,
            "INITIAL_INSTANCE_COUNT": str(config.endpoint_instance_count),
            "MAX_INSTANCE_COUNT": str(config.endpoint_max_instance_count),
            "INVOCATIONS_PER_INSTANCE": str(config.invocations_per_instance),
            "DATA_CAPTURE_PERCENT": str(config.data_capture_percent),
            "CAPTURE_S3_URI": f"s3://{bucket.bucket_name}/{CAPTURE_PREFIX}{endpoint}",
            "ARTIFACT_BUCKET": bucket.bucket_name,
            "SERVING_PREFIX": SERVING_PREFIX,
            "LOOKUP_METADATA_KEY": LOOKUP_METADATA_KEY,
        }
        self.function = PythonLambda(
            scope,
            "Deployer",
            config=config,
            function_name=config.name("deployer"),
            description=f"deploys approved packages of {group} to {endpoint}",
            code=deployer_code(scope),
            handler="handler.lambda_handler",
            environment=self.environment,
            memory_size=256,
            # Replacing a Failed endpoint waits for its deletion (up to 10 minutes) before creating it anew.
            timeout=cdk.Duration.minutes(15),
        )
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        self.policy = iam.Policy(
            scope,
            "DeployerPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadPackages",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[f"{sm}:model-package/{group}/*"],
                ),
                iam.PolicyStatement(
                    sid="ListApprovedPackages",
                    actions=["sagemaker:ListModelPackages"],
                    resources=["*"],  # List* APIs have no resource-level permissions
                ),
                iam.PolicyStatement(
                    sid="OwnModelsAndConfigs",
                    actions=[
                        "sagemaker:CreateModel",
                        "sagemaker:DescribeModel",
                        "sagemaker:DeleteModel",
                        "sagemaker:CreateEndpointConfig",
                        "sagemaker:DescribeEndpointConfig",
                        "sagemaker:DeleteEndpointConfig",
                    ],
                    resources=[f"{sm}:model/{endpoint}-v*", f"{sm}:endpoint-config/{endpoint}-v*"],
                ),
                iam.PolicyStatement(
                    sid="ListModelsAndConfigs",
                    actions=["sagemaker:ListModels", "sagemaker:ListEndpointConfigs"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="OwnEndpoint",
                    actions=[
                        "sagemaker:CreateEndpoint",
                        "sagemaker:DescribeEndpoint",
                        "sagemaker:UpdateEndpoint",
                        "sagemaker:DeleteEndpoint",
                        "sagemaker:UpdateEndpointWeightsAndCapacities",
                    ],
                    resources=[endpoint_arn, f"{sm}:endpoint-config/{endpoint}-v*"],
                ),
                iam.PolicyStatement(
                    sid="PassModelRole",
                    actions=["iam:PassRole"],
                    resources=[model_role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="Autoscaling",
                    actions=[
                        "application-autoscaling:RegisterScalableTarget",
                        "application-autoscaling:DeregisterScalableTarget",
                        "application-autoscaling:PutScalingPolicy",
                        "application-autoscaling:DescribeScalableTargets",
                        "application-autoscaling:DescribeScalingPolicies",
                    ],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:RequestedRegion": region}},
                ),
                iam.PolicyStatement(
                    sid="ScalingAlarms",
                    actions=[
                        "cloudwatch:PutMetricAlarm",
                        "cloudwatch:DescribeAlarms",
                        "cloudwatch:DeleteAlarms",
                    ],
                    resources=[
                        f"arn:{partition}:cloudwatch:{region}:{account}:alarm:TargetTracking-endpoint/{endpoint}/*"
                    ],
                ),
                iam.PolicyStatement(
                    sid="AutoscalingServiceRole",
                    actions=["iam:CreateServiceLinkedRole"],
                    resources=[
                        f"arn:{partition}:iam::{account}:role/aws-service-role/sagemaker.application-autoscaling."
                        "amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint"
                    ],
                    conditions={
                        "StringLike": {
                            "iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="ReadPackageArtifacts",
                    actions=["s3:GetObject"],
                    resources=[
                        bucket.arn_for_objects(f"{PIPELINE_PREFIX}*"),
                        bucket.arn_for_objects(f"{MODELS_PREFIX}*"),
                    ],
                ),
                # The lookup folders of packages (models/<execution>/..., pipeline/... for older ones) and the
                # staged marker of a variant (serving/<variant>/staged.json).
                iam.PolicyStatement(
                    sid="ListLookupFolders",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={
                        "StringLike": {
                            "s3:prefix": [f"{p}*" for p in (PIPELINE_PREFIX, MODELS_PREFIX, SERVING_PREFIX)]
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="PublishServingArtifacts",
                    actions=["s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{SERVING_PREFIX}*")],
                ),
            ],
        )
        self.policy.attach_to_role(self.function.role)
        self._acknowledge(config)

    def _acknowledge(self, config: StageConfig) -> None:
        endpoint, group = config.endpoint_name, config.model_package_group_name

        def sm_arn(rest: str) -> str:
            return nag.wildcard_resource(nag.service_arn("sagemaker", rest))

        acknowledge(
            self.policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ListModelPackages/ListModels/ListEndpointConfigs and the Application Auto Scaling APIs "
                "have no resource-level permissions (the latter are limited to the stack's region by "
                "condition).",
            ),
            (sm_arn(f"model-package/{group}/*"), "Any version of this stack's own model package group."),
            (
                sm_arn(f"model/{endpoint}-v*"),
                "Models are named <endpoint>-v<version>, one per approved version.",
            ),
            (
                sm_arn(f"endpoint-config/{endpoint}-v*"),
                "Endpoint configs are named <endpoint>-v<version>-<hash>.",
            ),
            (
                nag.wildcard_resource(
                    nag.service_arn("cloudwatch", f"alarm:TargetTracking-endpoint/{endpoint}/*")
                ),
                "Target tracking names its alarms TargetTracking-endpoint/<endpoint>/<variant>-...",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{PIPELINE_PREFIX}*")),
                "A package's lookup folder lies under pipeline/<execution id>/, known only at run time.",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{MODELS_PREFIX}*")),
                "A package's model.tar.gz lies under models/<training job>/, known only at run time.",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{SERVING_PREFIX}*")),
                "The deployer publishes serving/<variant>/ and serving/current.json for the Lambda.",
            ),
        )
