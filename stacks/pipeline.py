"""Pipeline stack: execution roles, processing code, model package group, training and batch CfnPipelines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from constructs import Construct

from pipeline.batch import get_batch_pipeline
from pipeline.definition import CDK_ARGUMENTS, get_pipeline
from pipeline.tuning import TuningOptions
from stacks import staging
from stacks.config import CODE_PREFIX, MODELS_PREFIX, StageConfig
from stacks.images import ecr_repository_arn
from stacks.parts.model_registry import ModelPackageGroup
from stacks.parts.pipeline_roles import batch_execution_role, training_execution_role
from stacks.parts.processing_code import ProcessingCode
from stacks.parts.sagemaker_pipeline import PipelineSchedule, SageMakerPipeline
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
    return get_pipeline(
        region=config.region,
        pipeline_name=config.pipeline_name,
        model_package_group_name=config.model_package_group_name,
        gate_min_auc=config.gate_threshold,
        processing_instance_type=config.processing_instance_type,
        processing_instance_count=config.processing_instance_count,
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

        # --- the execution roles of the training and the batch pipeline (stacks/parts/pipeline_roles.py) ---
        self.execution = training_execution_role(
            self, config=config, bucket=bucket, image_repository_arns=image_repository_arns
        )
        self.role = self.execution.role
        self.batch_execution = batch_execution_role(
            self,
            config=config,
            bucket=bucket,
            image_repository_arns=[ecr_repository_arn(uri) for uri in definition_images(batch_definition)],
        )
        self.batch_role = self.batch_execution.role

        self.code = ProcessingCode(
            self, config=config, bucket=bucket, code_dir=code_dir, version=self.code_version
        )

        # --- the model registry and the pipelines --------------------------------------------------------
        self.group = ModelPackageGroup(self, config=config)
        self.pipeline = SageMakerPipeline(
            self,
            "Pipeline",
            bucket=bucket,
            name=config.pipeline_name,
            description="preprocess → train (FM) → evaluate → quality gate → register",
            definition=definition,
            execution=self.execution,
        )
        self.pipeline.resource.node.add_dependency(self.group.resource)
        # No EventBridge trigger on approval: the documented approval event carries the package's
        # ModelDataUrl but not its CustomerMetadataProperties (LookupS3Uri), which this pipeline needs
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html,
        # "Model package state change"). It is started per package: docs/deploy.md, "Batch recommendations".
        self.batch_pipeline = SageMakerPipeline(
            self,
            "BatchPipeline",
            bucket=bucket,
            name=config.batch_pipeline_name,
            description="every user's top k from an approved model package, as JSON Lines under batch/",
            definition=batch_definition,
            execution=self.batch_execution,
        )
        if config.schedule:
            self.schedule = PipelineSchedule(self, pipeline=self.pipeline, expression=config.schedule)

        cdk.CfnOutput(self, "PipelineName", value=config.pipeline_name, description="the SageMaker pipeline")
        cdk.CfnOutput(
            self,
            "BatchPipelineName",
            value=config.batch_pipeline_name,
            description="the batch recommendation pipeline (start it per approved model package)",
        )
        cdk.CfnOutput(self, "ModelPackageGroupName", value=group, description="the model registry group")
