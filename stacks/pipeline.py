"""Pipeline stack: execution roles, processing code, model package group, training and batch CfnPipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_deployment as s3deploy
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks import nag, staging
from stacks.config import (
    BATCH_PREFIX,
    CODE_PREFIX,
    DATA_PREFIX,
    MODELS_PREFIX,
    PIPELINE_PREFIX,
    StageConfig,
)
from stacks.images import ecr_repository_arn
from stacks.lambda_function import PythonLambda, _retention
from stacks.nag import acknowledge
from stacks.storage import artifact_bucket

STEPS_DIR = staging.REPO_ROOT / "pipeline" / "steps"


def code_version(code_dir: Path) -> str:
    """The content address of a staged code tree: its folder under code/ is code/<this>/."""
    return staging.folder_digest(code_dir)[:16]


def code_uri(version: str) -> str:
    return f"s3://${{ArtifactBucket}}/{CODE_PREFIX}{version}/"


def pipeline_definition(config: StageConfig, version: str) -> dict[str, Any]:
    """The definition this stage deploys: the factory the local runner calls, with this stage's settings, the
    CloudFormation placeholders in place of the bucket and role, and the code folder of this code version
    (docs/pipeline.md)."""
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
        code_uri=code_uri(version),
        tuning=TuningOptions(),  # the optional tuning branch, as locally: off unless UseTuning=true
    )


def batch_pipeline_definition(config: StageConfig, version: str) -> dict[str, Any]:
    """The batch recommendation pipeline of this stage (pipeline/batch.py), with the same placeholders and
    code folder as the training pipeline. Its model and lookup defaults are under models/ (where its role
    reads); nothing writes models/approved/: an execution names the approved package's ModelDataUrl and
    LookupS3Uri (docs/pipeline.md, "Batch recommendations")."""
    from pipeline.batch import get_batch_pipeline
    from pipeline.definition import CDK_ARGUMENTS

    bucket = CDK_ARGUMENTS["artifact_bucket"]
    return get_batch_pipeline(
        region=config.region,
        role_arn=CDK_ARGUMENTS["role_arn"],
        artifact_bucket=bucket,
        code_uri=code_uri(version),
        pipeline_name=config.batch_pipeline_name,
        model_data_url=f"s3://{bucket}/{MODELS_PREFIX}approved/model.tar.gz",
        lookup_url=f"s3://{bucket}/{MODELS_PREFIX}approved/lookup/",
        processing_instance_type=config.processing_instance_type,
    )


def definition_images(definition: Any) -> list[str]:
    """Every ImageUri a pipeline definition's jobs run, sorted and without repeats."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "ImageUri" and isinstance(item, str):
                    found.add(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(definition)
    return sorted(found)


def stage_code_tree(outdir: Path) -> Path:
    """The processing code tree: pipeline/steps/*.py and the fmrec modules they import, at package paths."""
    entry = {f"pipeline/steps/{p.name}": p for p in sorted(STEPS_DIR.glob("*.py"))}
    entry["pipeline/__init__.py"] = staging.REPO_ROOT / "pipeline" / "__init__.py"
    return staging.stage_python(outdir / "staging" / "pipeline-code", entry)


class PipelineStack(cdk.Stack):
    """The training pipeline of one stage, an optional schedule that starts it, and the batch recommendation
    pipeline (started per approved model: docs/pipeline.md, "Batch recommendations")."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        definition: dict[str, Any],
        code_dir: Path,
        image_repository_arns: list[str],
        batch_definition: dict[str, Any] | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bucket = artifact_bucket(self, config)
        sm = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}"
        group = config.model_package_group_name
        # Both pipelines read the one staged code folder (code/<version>/), each checked below.
        self.code_version = code_version(code_dir)
        if batch_definition is None:
            batch_definition = batch_pipeline_definition(config, self.code_version)
        for name, body in (
            (config.pipeline_name, definition),
            (config.batch_pipeline_name, batch_definition),
        ):
            if code_uri(self.code_version) not in json.dumps(body):
                raise staging.StagingError(
                    f"the definition of {name} does not read the staged code folder "
                    f"{code_uri(self.code_version)}"
                )

        # --- the execution role of the pipeline and of every job it starts -------------------------------
        self.role, policy = self._execution_role(
            "Pipeline",
            bucket,
            description=f"runs {config.pipeline_name}: processing and training jobs, model registration",
            read=(DATA_PREFIX, CODE_PREFIX, PIPELINE_PREFIX, MODELS_PREFIX),
            write=(PIPELINE_PREFIX, MODELS_PREFIX),
            image_repository_arns=image_repository_arns,
            job_kinds=(("processing-job", "ProcessingJobs"), ("training-job", "TrainingJobs")),
            job_actions=[
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:CreateTrainingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
            ],
            extra=[
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
            ],
        )
        self._acknowledge_execution_policy(
            config,
            policy,
            job_kinds=("processing-job", "training-job"),
            log_kinds=("ProcessingJobs", "TrainingJobs"),
            prefixes={
                DATA_PREFIX: "Input data sets are folders under data/ chosen per execution (InputDataUrl).",
                CODE_PREFIX: "The processing jobs mount the whole code tree under code/.",
                PIPELINE_PREFIX: "Each execution writes its step outputs under pipeline/<execution id>/.",
                MODELS_PREFIX: "Each training job writes models/<job name>/output/model.tar.gz.",
            },
        )
        acknowledge(
            policy,
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", "hyper-parameter-tuning-job/*")),
                "The optional tuning branch (UseTuning): SageMaker names the tuning job per execution; the "
                "training jobs it starts are its own.",
            ),
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", f"model-package/{group}/*")),
                "Registration creates the next version of this stack's own model package group.",
            ),
        )

        # --- the batch pipeline's role: one processing job reads a registered model, writes batch/ ------
        # A registered package's ModelDataUrl (models/<training job>/output/model.tar.gz) and LookupS3Uri
        # (models/<execution id>/preprocess/lookup/) are both under models/; it writes batch/<execution id>/.
        self.batch_role, batch_policy = self._execution_role(
            "BatchPipeline",
            bucket,
            description=f"runs {config.batch_pipeline_name}: reads a registered model, writes batch/",
            read=(CODE_PREFIX, MODELS_PREFIX),
            write=(BATCH_PREFIX,),
            image_repository_arns=[ecr_repository_arn(uri) for uri in definition_images(batch_definition)],
            job_kinds=(("processing-job", "ProcessingJobs"),),
            job_actions=[
                "sagemaker:CreateProcessingJob",
                "sagemaker:DescribeProcessingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:AddTags",
            ],
        )
        self._acknowledge_execution_policy(
            config,
            batch_policy,
            job_kinds=("processing-job",),
            log_kinds=("ProcessingJobs",),
            prefixes={
                CODE_PREFIX: "The batch processing job mounts the whole code tree under code/.",
                MODELS_PREFIX: "An execution reads the approved package's model and lookup, under models/.",
                BATCH_PREFIX: "Each execution writes its recommendations under batch/<execution id>/.",
            },
        )

        # --- the processing code tree at s3://<bucket>/code/<version>/ (pipeline/steps + fmrec), no Docker
        # One folder per content version: an execution that is still running keeps reading the folder its
        # definition names while a deploy adds the next one beside it. retain_on_delete keeps the old folder
        # when the destination changes (CDK's handler would otherwise `s3 rm --recursive` it on that update).
        self.code_deployment_role = self._code_deployment_role(config, bucket)
        self.code = s3deploy.BucketDeployment(
            self,
            "ProcessingCode",
            sources=[s3deploy.Source.asset(str(code_dir))],
            destination_bucket=bucket,
            destination_key_prefix=f"{CODE_PREFIX}{self.code_version}",
            prune=False,
            retain_on_delete=True,
            memory_limit=256,
            # CDK would grant its handler read/write/delete on the whole bucket (data/, models/ too): it gets
            # this role, scoped to code/, and CDK's own grants are dropped (without_policy_updates).
            role=self.code_deployment_role.without_policy_updates(),
            log_group=self.code_deployment_logs,
        )
        self.code.node.add_dependency(self.code_deployment_policy)  # CDK's own grants would have added this
        self._acknowledge_bucket_deployment(config)

        # --- the model registry and the pipelines --------------------------------------------------------
        self.group = self._model_package_group(config)
        self.pipeline = self._cfn_pipeline(
            "Pipeline",
            bucket,
            name=config.pipeline_name,
            description="preprocess → train (FM) → evaluate → quality gate → register",
            definition=definition,
            role=self.role,
            policy=policy,
        )
        self.pipeline.node.add_dependency(self.group)
        self.pipeline_arn = f"{sm}:pipeline/{config.pipeline_name}"
        # No EventBridge trigger on approval: the documented approval event carries the package's
        # ModelDataUrl but not its CustomerMetadataProperties (LookupS3Uri), which this pipeline needs
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html,
        # "Model package state change"). It is started per package: docs/deploy.md, "Batch recommendations".
        self.batch_pipeline = self._cfn_pipeline(
            "BatchPipeline",
            bucket,
            name=config.batch_pipeline_name,
            description="every user's top k from an approved model package, as JSON Lines under batch/",
            definition=batch_definition,
            role=self.batch_role,
            policy=batch_policy,
        )
        self.batch_pipeline_arn = f"{sm}:pipeline/{config.batch_pipeline_name}"

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
        cdk.CfnOutput(
            self,
            "BatchPipelineName",
            value=config.batch_pipeline_name,
            description="the batch recommendation pipeline (start it per approved model package)",
        )
        cdk.CfnOutput(self, "ModelPackageGroupName", value=group, description="the model registry group")

    def _execution_role(
        self,
        prefix: str,
        bucket: Any,
        *,
        description: str,
        read: tuple[str, ...],
        write: tuple[str, ...],
        image_repository_arns: list[str],
        job_kinds: tuple[tuple[str, str], ...],
        job_actions: list[str],
        extra: list[iam.PolicyStatement] | None = None,
    ) -> tuple[iam.Role, iam.Policy]:
        """A pipeline's execution role (<prefix>Role), passed by the pipeline to every job it starts, and its
        policy (<prefix>Policy): S3 on `read`/`write` prefixes only, the jobs' images, logs and metrics.

        ListBucket carries the read prefixes as s3:prefix conditions: SageMaker lists an S3Prefix input with
        the key as given (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html).
        `job_kinds` are (ARN resource type, log group suffix) pairs."""
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        sm = f"arn:{partition}:sagemaker:{region}:{account}"
        role = iam.Role(
            self,
            f"{prefix}Role",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=description,
        )
        objects = lambda p: bucket.arn_for_objects(f"{p}*")  # noqa: E731
        policy = iam.Policy(
            self,
            f"{prefix}Policy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadInputsAndCode",
                    actions=["s3:GetObject"],
                    resources=[objects(p) for p in read],
                ),
                iam.PolicyStatement(
                    sid="WriteOutputs",
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[objects(p) for p in write],
                ),
                iam.PolicyStatement(
                    sid="ListOwnPrefixes",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{p}*" for p in read]}},
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
                        f"arn:{partition}:logs:{region}:{account}:log-group:/aws/sagemaker/{logs_kind}:*"
                        for _kind, logs_kind in job_kinds
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
                    actions=job_actions,
                    # SageMaker Pipelines names every job pipelines-<execution id>-<step>-<hash>.
                    resources=[f"{sm}:{kind}/pipelines-*" for kind, _logs in job_kinds],
                ),
                *(extra or []),
                iam.PolicyStatement(
                    sid="PassSelfToJobs",
                    actions=["iam:PassRole"],
                    resources=[role.role_arn],
                    conditions={"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
                ),
            ],
        )
        policy.attach_to_role(role)
        return role, policy

    def _acknowledge_execution_policy(
        self,
        config: StageConfig,
        policy: iam.Policy,
        *,
        job_kinds: tuple[str, ...],
        log_kinds: tuple[str, ...],
        prefixes: dict[str, str],
    ) -> None:
        """The wildcard findings every execution policy of _execution_role has, one by one, with reasons."""
        acknowledge(
            policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ecr:GetAuthorizationToken has no resource-level permissions; PutMetricData is limited to "
                "the /aws/sagemaker/* namespaces by condition.",
            ),
            *[
                (
                    nag.wildcard_resource(nag.service_arn("logs", f"log-group:/aws/sagemaker/{kind}:*")),
                    f"Each job writes its own streams in SageMaker's {kind} log group.",
                )
                for kind in log_kinds
            ],
            *[
                (
                    nag.wildcard_resource(nag.service_arn("sagemaker", f"{kind}/pipelines-*")),
                    "SageMaker Pipelines names its jobs pipelines-<execution>-<step>-<hash> at run time.",
                )
                for kind in job_kinds
            ],
            *[
                (nag.wildcard_resource(nag.bucket_objects(config, f"{prefix}*")), reason)
                for prefix, reason in prefixes.items()
            ],
        )

    def _cfn_pipeline(
        self,
        construct_id: str,
        bucket: Any,
        *,
        name: str,
        description: str,
        definition: dict[str, Any],
        role: iam.Role,
        policy: iam.Policy,
    ) -> sagemaker.CfnPipeline:
        """A CfnPipeline of a definition built with pipeline.definition.CDK_ARGUMENTS: CloudFormation fills in
        the two placeholders (PLACEHOLDERS) with the bucket and this pipeline's own role."""
        body = json.dumps(definition, sort_keys=True, separators=(",", ":"))
        pipeline = sagemaker.CfnPipeline(
            self,
            construct_id,
            pipeline_name=name,
            pipeline_display_name=name,
            pipeline_description=description,
            role_arn=role.role_arn,
            pipeline_definition={
                "PipelineDefinitionBody": cdk.Fn.sub(
                    body, {"ArtifactBucket": bucket.bucket_name, "PipelineRoleArn": role.role_arn}
                )
            },
        )
        pipeline.node.add_dependency(policy)
        return pipeline

    def _model_package_group(self, config: StageConfig) -> cdk.CustomResource:
        """The group as a custom resource (lambdas/deployer, group_lifecycle): it adopts a group a retaining
        stage kept when it was destroyed, and empties it before deleting it in a stage that does not."""
        group = config.model_package_group_name
        sm = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}"
        function = PythonLambda(
            self,
            "Registry",
            config=config,
            function_name=config.name("registry"),
            description=f"creates or adopts model package group {group}; empties and deletes it if destroyed",
            code=lambda_.Code.from_asset(str(staging.stage_deployer(Path(cdk.Stage.of(self).outdir)))),
            handler="handler.lambda_handler",
            memory_size=256,
            timeout=cdk.Duration.minutes(5),
        )
        policy = iam.Policy(
            self,
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
        policy.attach_to_role(function.role)
        acknowledge(
            policy,
            (
                "AwsSolutions-IAM5[Resource::*]",
                "ListModelPackages has no resource-level permissions; it only lists the group's versions.",
            ),
            (
                nag.wildcard_resource(nag.service_arn("sagemaker", f"model-package/{group}/*")),
                "A destroyed stage deletes every version of its own model package group, then the group.",
            ),
        )
        resource = cdk.CustomResource(
            self,
            "ModelPackageGroup",
            service_token=function.function.function_arn,
            resource_type="Custom::FmrecModelPackageGroup",
            properties={
                "GroupName": group,
                "Description": f"FM recommender models of stage {config.stage}",
                "KeepOnDelete": "true" if config.retain else "false",
            },
        )
        resource.node.add_dependency(policy)
        return resource

    def _code_deployment_role(self, config: StageConfig, bucket: Any) -> iam.Role:
        """The role of CDK's BucketDeployment handler: read the asset zip, write code/, log; nothing else."""
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        self.code_deployment_logs = logs.LogGroup(
            self,
            "CodeDeploymentLogs",
            retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            self,
            "CodeDeploymentRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="copies the processing code asset into code/<version>/ of the artifact bucket",
        )
        qualifier = cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
        assets_bucket = f"arn:{partition}:s3:::cdk-{qualifier}-assets-{account}-{region}"
        self.code_deployment_policy = iam.Policy(
            self,
            "CodeDeploymentPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="ReadCodeAsset", actions=["s3:GetObject"], resources=[f"{assets_bucket}/*"]
                ),
                iam.PolicyStatement(
                    sid="WriteCodeFolder",
                    actions=["s3:PutObject", "s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{CODE_PREFIX}*")],
                ),
                iam.PolicyStatement(
                    sid="ListCodeFolder",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{CODE_PREFIX}*"]}},
                ),
                iam.PolicyStatement(
                    sid="OwnLogGroup",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.code_deployment_logs.log_group_arn],
                ),
            ],
        )
        self.code_deployment_policy.attach_to_role(role)
        return role

    def _acknowledge_bucket_deployment(self, config: StageConfig) -> None:
        """Findings on CDK's BucketDeployment handler (a singleton Lambda at the stack's top level) and on the
        role this stack gives it."""
        handlers = [c for c in self.node.children if c.node.id.startswith("Custom::CDKBucketDeployment")]
        qualifier = cdk.DefaultStackSynthesizer.DEFAULT_QUALIFIER
        assets_bucket = f"arn:{nag.PARTITION}:s3:::cdk-{qualifier}-assets-{nag.ACCOUNT}-{nag.REGION}/*"
        why = "CDK's BucketDeployment handler, which copies the code asset into code/<version>/ on deploy"
        for handler in handlers:
            acknowledge(
                handler,
                ("AwsSolutions-L1", f"{why}: its runtime is chosen by aws-cdk-lib, not by this app."),
            )
        acknowledge(
            self.code_deployment_policy,
            (
                nag.wildcard_resource(assets_bucket),
                f"{why}: it reads the asset zip, named by its hash, from the CDK bootstrap bucket.",
            ),
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{CODE_PREFIX}*")),
                f"{why}: it writes one folder per code version under code/, and nothing outside it.",
            ),
        )
