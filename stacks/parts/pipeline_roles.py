"""The pipeline stack's execution roles and their IAM statements: the training pipeline's and the batch's."""

from __future__ import annotations

from collections.abc import Sequence

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import nag
from stacks.config import BATCH_PREFIX, CODE_PREFIX, DATA_PREFIX, MODELS_PREFIX, PIPELINE_PREFIX, StageConfig
from stacks.nag import acknowledge
from stacks.parts.execution_role import PROCESSING_JOBS, TRAINING_JOBS, PipelineExecutionRole


def training_execution_role(
    scope: Construct, *, config: StageConfig, bucket: s3.IBucket, image_repository_arns: Sequence[str]
) -> PipelineExecutionRole:
    """The role of the training pipeline and of every job it starts: processing, training, tuning, and the
    registration of the stack's own model package group (construct "Pipeline")."""
    sm = f"arn:{cdk.Aws.PARTITION}:sagemaker:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID}"
    group = config.model_package_group_name
    execution = PipelineExecutionRole(
        scope,
        "Pipeline",
        config=config,
        bucket=bucket,
        description=f"runs {config.pipeline_name}: processing and training jobs, model registration",
        read=(DATA_PREFIX, CODE_PREFIX, PIPELINE_PREFIX, MODELS_PREFIX),
        write=(PIPELINE_PREFIX, MODELS_PREFIX),
        prefix_reasons={
            DATA_PREFIX: "Input data sets are folders under data/ chosen per execution (InputDataUrl).",
            CODE_PREFIX: "The processing jobs mount the whole code tree under code/.",
            PIPELINE_PREFIX: "Each execution writes its step outputs under pipeline/<execution id>/.",
            MODELS_PREFIX: "Each training job writes models/<job name>/output/model.tar.gz.",
        },
        image_repository_arns=image_repository_arns,
        job_kinds=(PROCESSING_JOBS, TRAINING_JOBS),
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
    acknowledge(
        execution.policy,
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

    return execution


def batch_execution_role(
    scope: Construct, *, config: StageConfig, bucket: s3.IBucket, image_repository_arns: Sequence[str]
) -> PipelineExecutionRole:
    """The batch pipeline's role: one processing job reads a registered model, writes batch/ (construct
    "BatchPipeline")."""
    # A registered package's ModelDataUrl (models/<training job>/output/model.tar.gz) and LookupS3Uri
    # (models/<execution id>/preprocess/lookup/) are both under models/; it writes batch/<execution id>/.
    return PipelineExecutionRole(
        scope,
        "BatchPipeline",
        config=config,
        bucket=bucket,
        description=f"runs {config.batch_pipeline_name}: reads a registered model, writes batch/",
        read=(CODE_PREFIX, MODELS_PREFIX),
        write=(BATCH_PREFIX,),
        prefix_reasons={
            CODE_PREFIX: "The batch processing job mounts the whole code tree under code/.",
            MODELS_PREFIX: "An execution reads the approved package's model and lookup, under models/.",
            BATCH_PREFIX: "Each execution writes its recommendations under batch/<execution id>/.",
        },
        image_repository_arns=image_repository_arns,
        job_kinds=(PROCESSING_JOBS,),
        job_actions=[
            "sagemaker:CreateProcessingJob",
            "sagemaker:DescribeProcessingJob",
            "sagemaker:StopProcessingJob",
            "sagemaker:AddTags",
        ],
    )
