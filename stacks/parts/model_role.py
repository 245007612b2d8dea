"""The role SageMaker assumes to host the FM model on the stage's endpoint, and its policy."""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.config import CAPTURE_PREFIX, MODELS_PREFIX, StageConfig
from stacks.nag import acknowledge


class EndpointModelRole:
    """ModelRole + ModelPolicy: read models/, pull the FM image, write the endpoint's logs and metrics, and
    write datacapture/<endpoint>/ when the stage captures traffic."""

    def __init__(
        self, scope: Construct, *, config: StageConfig, bucket: s3.IBucket, fm_repository_arn: str
    ) -> None:
        region, account, partition = Aws.REGION, Aws.ACCOUNT_ID, Aws.PARTITION
        endpoint = config.endpoint_name
        self.role = iam.Role(
            scope,
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
        self.policy = iam.Policy(scope, "ModelPolicy", statements=statements)
        self.policy.attach_to_role(self.role)
        acknowledge(
            self.policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; PutMetricData is limited to "
                "the /aws/sagemaker/* namespaces by condition.",
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
                self.policy,
                (
                    nag.wildcard_resource(nag.bucket_objects(config, f"{CAPTURE_PREFIX}{endpoint}/*")),
                    "Data capture writes one object per batch of requests under the endpoint's own prefix.",
                ),
            )
