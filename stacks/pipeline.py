"""Pipeline stack: the execution role, the processing code, the model package group and the CfnPipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks import nag, staging
from stacks.config import CODE_PREFIX, DATA_PREFIX, MODELS_PREFIX, PIPELINE_PREFIX, StageConfig
from stacks.nag import acknowledge
from stacks.storage import artifact_bucket, removal_policy

STEPS_DIR = staging.REPO_ROOT / "pipeline" / "steps"


def pipeline_definition(config: StageConfig) -> dict[str, Any]:
    """The definition this stage deploys: the factory the local runner calls, with this stage's settings and
    the CloudFormation placeholders in place of the bucket and role (docs/pipeline.md)."""
    from pipeline.definition import CDK_ARGUMENTS, get_pipeline
    from pipeline.tuning import TuningOptions

    return get_pipeline(
        region=config.region,
        pipeline_name=config.pipeline_name,
        model_package_group_name=config.model_package_group_name,
        gate_min_auc=config.gate_threshold,
        processing_instance_type=config.processing_instance_type,
        training_instance_type=config.training_instance_type,
        training_instance_count=config.training_instance_count,
        artifact_bucket=CDK_ARGUMENTS["artifact_bucket"],
        role_arn=CDK_ARGUMENTS["role_arn"],
        code_uri=CDK_ARGUMENTS["code_uri"],
        tuning=TuningOptions(),  # the optional tuning branch, as locally: off unless UseTuning=true
    )


def stage_code_tree(outdir: Path) -> Path:
    """The processing code tree: pipeline/steps/*.py and the fmrec modules they import, at package paths."""
    entry = {f"pipeline/steps/{p.name}": p for p in sorted(STEPS_DIR.glob("*.py"))}
    entry["pipeline/__init__.py"] = staging.REPO_ROOT / "pipeline" / "__init__.py"
    return staging.stage_python(outdir / "staging" / "pipeline-code", entry)


class PipelineStack(cdk.Stack):
    """The training pipeline of one stage, and an optional schedule that starts it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        definition: dict[str, Any],
        code_dir: Path,
        image_repository_arns: list[str],
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bucket = artifact_bucket(self, config)
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        group = config.model_package_group_name

        # --- the execution role of the pipeline and of every job it starts -------------------------------
        self.role = iam.Role(
            self,
            "PipelineRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"runs {config.pipeline_name}: processing and training jobs, model registration",
        )
        objects = lambda prefix: bucket.arn_for_objects(f"{prefix}*")  # noqa: E731
        policy = iam.Policy(
            self,
            "PipelinePolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadInputsAndCode",
                    actions=["s3:GetObject"],
                    resources=[
                        objects(p) for p in (DATA_PREFIX, CODE_PREFIX, PIPELINE_PREFIX, MODELS_PREFIX)
                    ],
                ),
                iam.PolicyStatement(
                    sid="WriteOutputs",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[objects(PIPELINE_PREFIX), objects(MODELS_PREFIX)],
                ),
                iam.PolicyStatement(
                    sid="ListOwnPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={
                        "StringLike": {
                            "s3:prefix": [
                                f"{p}*" for p in (DATA_PREFIX, CODE_PREFIX, PIPELINE_PREFIX, MODELS_PREFIX)
                            ]
                        }
                    },
                ),
                iam.PolicyStatement(
                    sid="PullImages",
                    actions=[
                        "ecr:BatchCheckLayerAvailability",
                        "ecr:BatchGetImage",
                        "ecr:GetDownloadUrlForLayer",
                    ],
                    resources=image_repository_arns,
                ),
                iam.PolicyStatement(sid="EcrLogin", actions=["ecr:GetAuthorizationToken"], resources=["*"]),
                iam.PolicyStatement(
                    sid="JobLogs",
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    resources=[
                        f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/ProcessingJobs:*",
                        f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/TrainingJobs:*",
                    ],
                ),
                iam.PolicyStatement(
                    sid="JobMetrics",
                    actions=["cloudwatch:PutMetricData"],
                    resources=["*"],
                    conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}},
                ),
                iam.PolicyStatement(
                    sid="RunJobs",
                    actions=[
                        "sagemaker:CreateProcessingJob",
                        "sagemaker:DescribeProcessingJob",
                        "sagemaker:StopProcessingJob",
                        "sagemaker:CreateTrainingJob",
                        "sagemaker:DescribeTrainingJob",
                        "sagemaker:StopTrainingJob",
                        "sagemaker:AddTags",
                    ],
                    # SageMaker Pipelines names every job pipelines-<execution id>-<step>-<hash>.
                    resources=[f"{sm}:processing-job/pipelines-*", f"{sm}:training-job/pipelines-*"],
                ),
                iam.PolicyStatement(
                    sid="RunTuningJobs",
                    actions=[
                        "sagemaker:CreateHyperParameterTuningJob",
                        "sagemaker:DescribeHyperParameterTuningJob",
                        "sagemaker:StopHyperParameterTuningJob",
                        "sagemaker:ListTrainingJobsForHyperParameterTuningJob",
                        "sagemaker:AddTags",
                    ],
                    resources=[f"{sm}:hyper-parameter-tuning-job/*"],
                ),
                iam.PolicyStatement(
                    sid="RegisterModels",
                    actions=[
                        "sagemaker:CreateModelPackage",
                        "sagemaker:DescribeModelPackage",
                        "sagemaker:AddTags",
                    ],
                    resources=[f"{sm}:model-package/{group}/*", f"{sm}:model-package-group/{group}"],
                ),
                iam.PolicyStatement(
                    sid="PassSelfToJobs",
                    actions=["iam:PassRole"],
                    resources=[self.role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        policy.attach_to_role(self.role)
        self._acknowledge_role(config, policy)

        # --- the processing code tree at s3://<bucket>/code/ (pipeline/steps + fmrec), no Docker ----------
        self.code = s3deploy.BucketDeployment(
            self,
            "ProcessingCode",
            sources=[s3deploy.Source.asset(str(code_dir))],
            destination_bucket=bucket,
            destination_key_prefix=CODE_PREFIX.rstrip("/"),
            prune=True,
            retain_on_delete=False,
            memory_limit=256,
        )
        self._acknowledge_bucket_deployment(config)

        # --- the model registry and the pipeline ---------------------------------------------------------
        self.group = sagemaker.CfnModelPackageGroup(
            self,
            "ModelPackageGroup",
            model_package_group_name=group,
            model_package_group_description=f"FM recommender models of stage {config.stage}",
        )
        self.group.apply_removal_policy(removal_policy(config))
        body = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        self.pipeline = sagemaker.CfnPipeline(
            self,
            "Pipeline",
            pipeline_name=config.pipeline_name,
            pipeline_display_name=config.pipeline_name,
            pipeline_description="preprocess → train (FM) → evaluate → quality gate → register",
            role_arn=self.role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": cdk.Fn.sub(
                    body, {"ArtifactBucket": bucket.bucket_name, "PipelineRoleArn": self.role.role_arn}
                )
            },
        )
        self.pipeline.node.add_dependency(self.group)
        self.pipeline.node.add_dependency(policy)
        self.pipeline_arn = f"{sm}:pipeline/{config.pipeline_name}"

        if config.schedule:
            schedule_role = iam.Role(
                self,
                "ScheduleRole",
                assumed_by=iam.ServicePrincipal("events.amazonaws.com"),
                description=f"starts {config.pipeline_name} on its schedule",
            )
            schedule_role.add_to_policy(
                iam.PolicyStatement(
                    sid="StartPipeline",
                    actions=["sagemaker:StartPipelineExecution"],
                    resources=[self.pipeline_arn],
                )
            )
            # aws_events_targets has no SageMaker pipeline target in this CDK version: an L1 rule.
            self.schedule = events.CfnRule(
                self,
                "Schedule",
                description=f"runs {config.pipeline_name} on {config.schedule}",
                schedule_expression=config.schedule,
                state="ENABLED",
                targets=[
                    events.CfnRule.TargetProperty(
                        id="pipeline",
                        arn=self.pipeline_arn,
                        role_arn=schedule_role.role_arn,
                    )
                ],
            )
            self.schedule.node.add_dependency(self.pipeline)

        cdk.CfnOutput(self, "PipelineName", value=config.pipeline_name, description="the SageMaker pipeline")
        cdk.CfnOutput(self, "ModelPackageGroupName", value=group, description="the model registry group")

    def _acknowledge_role(self, config: StageConfig, policy: iam.Policy) -> None:
        group = config.model_package_group_name
        acknowledge(
            policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; PutMetricData is limited to "
                "the "
                "/aws/sagemaker/* namespaces by condition.",
            ),
            *[
                (
                    nag.wildcard_resource(nag.service_arn("logs", f"log-group:/aws/sagemaker/{kind}:*")),
                    f"Each job writes its own streams in SageMaker's {kind} log group.",
                )
                for kind in ("ProcessingJobs", "TrainingJobs")
            ],
            *[
                (
                    nag.wildcard_resource(nag.service_arn("sagemaker", f"{kind}/pipelines-*")),
                    "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<hash> at run time.",
                )
                for kind in ("processing-job", "training-job")
            ],
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", "hyper-parameter-tuning-job/*")),
                "The optional tuning branch (UseTuning): SageMaker names the tuning job per execution; the "
                "training jobs it starts are its own.",
            ),
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", f"model-package/{group}/*")),
                "Registration creates the next version of this stack's own model package group.",
            ),
            *[
                (nag.wildcard_resource(nag.bucket_objects(config, f"{prefix}*")), reason)
                for prefix, reason in (
                    (
                        DATA_PREFIX,
                        "Input data sets are folders under data/ chosen per execution (InputDataUrl).",
                    ),
                    (CODE_PREFIX, "The processing jobs mount the whole code tree under code/."),
                    (
                        PIPELINE_PREFIX,
                        "Each execution writes its step outputs under pipeline/<execution id>/.",
                    ),
                    (MODELS_PREFIX, "Each training job writes models/<job name>/output/model.tar.gz."),
                )
            ],
        )

    def _acknowledge_bucket_deployment(self, config: StageConfig) -> None:
        """Findings on CDK's own BucketDeployment handler, a singleton Lambda at the stack's top level."""
        handlers = [c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        assets_bucket = (
            f"arn:{nag.PARTITION}:s3:::cdk-hnb659fds-assets-{config.account or nag.ACCOUNT}-{config.region}/*"
        )
        why = (
            "CDK's BucketDeployment handler, which copies the code asset into code/ on deploy and then idles"
        )
        for handler in handlers:
            acknowledge(
                handler,
                (
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole]",
                    f"{why}: CDK attaches the basic execution policy for its logs.",
                ),
                *[
                    (
                        nag.wildcard_action(action),
                        f"{why}: CDK grants it read/write on the destination bucket.",
                    )
                    for action in (
                        "s3:GetBucket*",
                        "s3:GetObject*",
                        "s3:List*",
                        "s3:Abort*",
                        "s3:DeleteObject*",
                    )
                ],
                (
                    nag.wildcard_resource(assets_bucket),
                    f"{why}: it reads the asset zip from the CDK bootstrap bucket.",
                ),
                (
                    nag.wildcard_resource(nag.bucket_objects(config, "*")),
                    f"{why}: CDK grants the whole bucket; the handler writes (and prunes) code/ only.",
                ),
                ("AwsSolutions-L1", f"{why}: its runtime is chosen by aws-cdk-lib, not by this app."),
            )
