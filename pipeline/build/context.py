"""What every step builder shares: the offline session, images, role, bucket, code input and parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.parameters import PipelineParameters
from pipeline.sdk import ExecutionVariables, ProcessingInput, Processor
from pipeline.session import CODE_DIR


@dataclass(frozen=True)
class BuildContext:
    session: Any
    images: Mapping[str, str]  # "fm", "sklearn": image URIs of the region
    role_arn: str
    bucket: str
    group: str  # the model package group
    params: PipelineParameters
    code_input: Any  # the ProcessingInput "code": pipeline/steps and fmrec, at CODE_DIR

    @classmethod
    def create(
        cls,
        *,
        session: Any,
        images: Mapping[str, str],
        role_arn: str,
        bucket: str,
        group: str,
        params: PipelineParameters,
        code_uri: str,
    ) -> BuildContext:
        code_input = ProcessingInput(source=code_uri, destination=CODE_DIR, input_name="code")
        return cls(session, images, role_arn, bucket, group, params, code_input)

    def s3_out(self, *parts: str) -> list[Any]:
        # Each execution writes under its own id, so reruns never overwrite an earlier run's outputs.
        # The parts stay a flat list: Std:Join takes plain values and references, not a nested Join.
        return ["s3:/", self.bucket, "pipeline", ExecutionVariables.PIPELINE_EXECUTION_ID, *parts]

    def kept_out(self, *parts: str) -> list[Any]:
        # What a registered package needs later (its lookup) goes under models/, which never expires:
        # pipeline/ does, and a package may be approved, or its endpoint rebuilt, long after its run.
        return ["s3:/", self.bucket, "models", ExecutionVariables.PIPELINE_EXECUTION_ID, *parts]

    def processor(self, script: str, instance_count: Any = 1) -> Any:
        """A Processing job running `script`; one instance unless `instance_count` (preprocess's
        ProcessingInstanceCount: every instance reads the whole input and writes its users' rows)."""
        return Processor(
            role=self.role_arn,
            image_uri=self.images["sklearn"],
            instance_count=instance_count,
            instance_type=self.params.proc_type,
            entrypoint=["python3", f"{CODE_DIR}/pipeline/steps/{script}"],
            env={"PYTHONPATH": CODE_DIR},  # the code tree ships the fmrec package beside the scripts
            volume_size_in_gb=30,
            sagemaker_session=self.session,
        )
