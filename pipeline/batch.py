"""A separate one-step pipeline: every user's top k from an approved model, written to S3 (docs/pipeline.md).

    BatchRecommend (SKLearn processing: pipeline/steps/batch_recommend.py over fmrec.serving.batch)
        inputs:  ModelDataUrl (the approved model package's model.tar.gz), LookupUrl (its run's lookup/)
        output:  s3://BUCKET/batch/<execution id>/recommendations/{recommendations.jsonl,summary.json}

Kept apart from the training pipeline on purpose: batch output is wanted for an *approved* model, and approval
happens after RegisterModel, outside the training pipeline's execution (a person or a process approves the
package later). The approval event that starts the deployer can start this pipeline too, with the model
package's ModelDataUrl and the lookup of the run that produced it. It is also rerunnable on its own (a new
k, a refreshed lookup) without retraining. Why a processing step and not Batch Transform: docs/pipeline.md.

AWS pages relied on:
- processing jobs (inputs copied from S3 to local paths, outputs uploaded from them):
  https://docs.aws.amazon.com/sagemaker/latest/dg/processing-job.html
- the model package approval event:
  https://docs.aws.amazon.com/sagemaker/latest/dg/automating-sagemaker-with-eventbridge.html
- Batch Transform's request limits (MaxPayloadInMB):
  https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateTransformJob.html
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.sdk import (
    ExecutionVariables,
    Join,
    ParameterInteger,
    ParameterString,
    Pipeline,
    PipelineDefinitionConfig,
    ProcessingInput,
    ProcessingOutput,
    ProcessingStep,
    Processor,
)
from pipeline.session import (
    CODE_DIR,
    MAX_DEFINITION_CHARS,
    PROCESSING_ROOT,
    DefinitionError,
    check_arguments,
    image_uris,
    offline_session,
    quiet_sdk,
)

BATCH_STEP = "BatchRecommend"


def get_batch_pipeline(
    *,
    region: str,
    role_arn: str,
    artifact_bucket: str,
    code_uri: str,
    pipeline_name: str = "fmrec-batch-recommend",
    model_data_url: str | None = None,
    lookup_url: str | None = None,
    k: int = 10,
    processing_instance_type: str = "ml.m5.xlarge",
) -> dict[str, Any]:
    """The batch pipeline's definition as a JSON-ready dict (for CfnPipeline or the local runner)."""
    check_arguments(region, artifact_bucket, code_uri, role_arn)
    if not 1 <= k <= 1000:
        raise DefinitionError(f"k: expected 1..1000, got {k}")
    with quiet_sdk():
        session = offline_session(region, artifact_bucket)
        model_data = ParameterString(
            "ModelDataUrl",
            default_value=model_data_url or f"s3://{artifact_bucket}/models/approved/model.tar.gz",
        )
        lookup = ParameterString("LookupUrl", default_value=lookup_url or f"s3://{artifact_bucket}/lookup")
        top_k = ParameterInteger("TopK", default_value=int(k))
        exclude = ParameterString("ExcludeRated", default_value="true", enum_values=["true", "false"])
        proc_type = ParameterString("ProcessingInstanceType", default_value=processing_instance_type)
        processor = Processor(
            role=role_arn,
            image_uri=image_uris(region)["sklearn"],
            instance_count=1,
            instance_type=proc_type,
            entrypoint=["python3", f"{CODE_DIR}/pipeline/steps/batch_recommend.py"],
            env={"PYTHONPATH": CODE_DIR},
            volume_size_in_gb=30,
            sagemaker_session=session,
        )
        step = ProcessingStep(
            name=BATCH_STEP,
            step_args=processor.run(
                inputs=[
                    ProcessingInput(model_data, f"{PROCESSING_ROOT}/input/model", input_name="model"),
                    ProcessingInput(lookup, f"{PROCESSING_ROOT}/input/lookup", input_name="lookup"),
                    ProcessingInput(code_uri, CODE_DIR, input_name="code"),
                ],
                outputs=[
                    ProcessingOutput(
                        output_name="recommendations",
                        source=f"{PROCESSING_ROOT}/output/recommendations",
                        destination=Join(
                            on="/",
                            values=[
                                "s3:/",
                                artifact_bucket,
                                "batch",
                                ExecutionVariables.PIPELINE_EXECUTION_ID,
                                "recommendations",
                            ],
                        ),
                    )
                ],
                arguments=["--k", top_k.to_string(), "--exclude-rated", exclude],
            ),
        )
        pipeline = Pipeline(
            name=pipeline_name,
            parameters=[model_data, lookup, top_k, exclude, proc_type],
            steps=[step],
            sagemaker_session=session,
            pipeline_experiment_config=None,
            pipeline_definition_config=PipelineDefinitionConfig(use_custom_job_prefix=False),
        )
        definition: dict[str, Any] = json.loads(pipeline.definition())
    if definition.get("PipelineExperimentConfig") is None:
        definition.pop("PipelineExperimentConfig", None)
    if len(json.dumps(definition)) > MAX_DEFINITION_CHARS:
        raise DefinitionError(f"definition exceeds {MAX_DEFINITION_CHARS} characters")
    return definition
