"""Serving stack: the endpoint's model role and the deployer that puts approved model packages on it."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks import nag
from stacks.config import CAPTURE_PREFIX, MODELS_PREFIX, PIPELINE_PREFIX, SERVING_PREFIX, StageConfig
from stacks.lambda_function import PythonLambda
from stacks.nag import acknowledge
from stacks.staging import stage_deployer
from stacks.storage import artifact_bucket

# The deployer reads the lookup folder of a package from this key of its CustomerMetadataProperties.
LOOKUP_METADATA_KEY = "LookupS3Uri"


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
        region, account = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID
        partition = cdk.Aws.PARTITION
        endpoint = config.endpoint_name
        self.endpoint_name = endpoint
        self.endpoint_arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint}"
        group = config.model_package_group_name
        group_arn = f"arn:{partition}:sagemaker:{region}:{account}:model-package-group/{group}"
        package_arns = f"arn:{partition}:sagemaker:{region}:{account}:model-package/{group}/*"

        # --- the role SageMaker assumes to host the model -------------------------------------------------
        self.model_role = iam.Role(
            self,
            "ModelRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"hosts the FM model on {endpoint}: reads models/, pulls the FM image, logs",
        )
        statements = [
            iam.PolicyStatement(
                sid="ReadModels",
                actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects(f"{MODELS_PREFIX}*")],
            ),
            iam.PolicyStatement(
                sid="PullFmImage",
                actions=[
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:BatchGetImage",
                    "ecr:GetDownloadUrlForLayer",
                ],
                resources=[fm_repository_arn],
            ),
            iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
            iam.PolicyStatement(
                sid="EndpointLogs",
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:DescribeLogStreams",
                ],
                resources=[
                    f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}:*"
                ],
            ),
            iam.PolicyStatement(
                sid="EndpointMetrics",
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
            ),
        ]
        if config.data_capture_percent > 0:
            statements.append(
                iam.PolicyStatement(
                    sid="WriteDataCapture",
                    actions=["s3:PutObject"],
                    resources=[bucket.arn_for_objects(f"{CAPTURE_PREFIX}{endpoint}/*")],
                )
            )
        model_policy = iam.Policy(self, "ModelPolicy", statements=statements)
        model_policy.attach_to_role(self.model_role)
        acknowledge(
            model_policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; PutMetricData is limited to "
                "the "
                "/aws/sagemaker/* namespaces by condition.",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{MODELS_PREFIX}*")),
                "Model artifacts are keyed by training job name under models/; only that prefix is read.",
            ),
            (
                nag.wildcard_resource(
                    nag.service_arn("logs", f"log-group:/aws/sagemaker/Endpoints/{endpoint}:*")
                ),
                "Log streams are created per instance and variant inside the endpoint's own log group.",
            ),
        )
        if config.data_capture_percent > 0:
            acknowledge(
                model_policy,
                (
                    nag.wildcard_resource(nag.bucket_objects(config, f"{CAPTURE_PREFIX}{endpoint}/*")),
                    "Data capture writes one object per batch of requests under the endpoint's own prefix.",
                ),
            )

        # --- the deployer --------------------------------------------------------------------------------
        env = {
            "ENDPOINT_NAME": endpoint,
            "MODEL_PACKAGE_GROUP": group,
            "MODEL_ROLE_ARN": self.model_role.role_arn,
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
        self.deployer = PythonLambda(
            self,
            "Deployer",
            config=config,
            function_name=config.name("deployer"),
            description=f"deploys approved packages of {group} to {endpoint}",
            # boto3, the standard library and the stdlib-only fmrec modules it imports (artifact contract).
            code=lambda_.Code.from_asset(str(stage_deployer(Path(cdk.Stage.of(self).outdir)))),
            handler="handler.lambda_handler",
            environment=env,
            memory_size=256,
            # Replacing a Failed endpoint waits for its deletion (up to 10 minutes) before creating it anew.
            timeout=cdk.Duration.minutes(15),
        )
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        deployer_policy = iam.Policy(
            self,
            "DeployerPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadPackages",
                    actions=["sagemaker:DescribeModelPackage"],
                    resources=[package_arns],
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
                    resources=[self.endpoint_arn, f"{sm}:endpoint-config/{endpoint}-v*"],
                ),
                iam.PolicyStatement(
                    sid="PassModelRole",
                    actions=["iam:PassRole"],
                    resources=[self.model_role.role_arn],
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
        deployer_policy.attach_to_role(self.deployer.role)
        sm_arn = lambda rest: nag.wildcard_resource(nag.service_arn("sagemaker", rest))  # noqa: E731
        acknowledge(
            deployer_policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ListModelPackages/ListModels/ListEndpointConfigs and the Application Auto Scaling APIs "
                "have no "
                "resource-level permissions (the latter are limited to the stack's region by condition).",
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

        # --- triggers: every change in the group or of the endpoint reconciles (lambdas/deployer) ----------
        # EventBridge invokes the deployer asynchronously: "By default, Lambda retries an asynchronous
        # invocation twice ... When an event fails all processing attempts ... Lambda discards it"
        # (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-lambda-eventinvokeconfig.html),
        # so a failed event goes to this queue instead, whose alarm tells an operator (docs/deploy.md).
        self.failures = sqs.Queue(
            self,
            "DeployerFailures",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.deployer.function.configure_async_invoke(
            on_failure=destinations.SqsDestination(self.failures),
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
        )
        self.failure_alarm = cloudwatch.Alarm(
            self,
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
        packages = events.Rule(
            self,
            "OnPackageChange",
            description=f"a package of {group} changed: put the newest approved one on {endpoint}",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Model Package State Change"],
                detail={"ModelPackageGroupName": [group]},
            ),
        )
        packages.add_target(targets.LambdaFunction(self.deployer.function, dead_letter_queue=self.failures))
        endpoint_rule = events.Rule(
            self,
            "OnEndpointChange",
            description=f"{endpoint} in service or failed: scale, publish, resume a deferred deploy",
            event_pattern=events.EventPattern(
                source=["aws.sagemaker"],
                detail_type=["SageMaker Endpoint State Change"],
                detail={"EndpointName": [endpoint], "EndpointStatus": ["IN_SERVICE", "FAILED"]},
            ),
        )
        endpoint_rule.add_target(
            targets.LambdaFunction(self.deployer.function, dead_letter_queue=self.failures)
        )
        lifecycle = cdk.CustomResource(
            self,
            "EndpointLifecycle",
            service_token=self.deployer.function.function_arn,
            resource_type="Custom::FmrecEndpoint",
            # A changed setting re-runs the deployment with the newest approved package.
            properties={"Settings": _settings_fingerprint(env)},
        )
        lifecycle.node.add_dependency(deployer_policy)
        self.group_arn = group_arn

        cdk.CfnOutput(
            self, "EndpointName", value=endpoint, description="the SageMaker endpoint the API invokes"
        )


def _settings_fingerprint(env: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(env.items()) if not cdk.Token.is_unresolved(v))
