"""The EvaluateModel step: metrics of the model to serve against both baselines, and that model itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.build.context import BuildContext
from pipeline.sdk import Join, JsonGet, ProcessingInput, ProcessingOutput, ProcessingStep, PropertyFile
from pipeline.session import PROCESSING_ROOT

EVALUATE_STEP = "EvaluateModel"


def evaluate_step(
    ctx: BuildContext, model_output_uri: Any, pre_uri: Callable[[str], Any], suffix: str = ""
) -> tuple[Any, Callable[[str], Any], list[Any], Any]:
    """(the step, metric(json path) -> its JsonGet on evaluation.json, the S3 parts of its output folder, the
    S3 URI of the model it judged: the training job's, or with a neighbour table its served copy, under
    models/ where the model role reads)."""
    name = EVALUATE_STEP + suffix
    report = PropertyFile(name="Evaluation", output_name="evaluation", path="evaluation.json")
    eval_parts = ctx.s3_out(f"evaluate{suffix.lower()}", "evaluation")
    model_parts = ctx.kept_out(f"evaluate{suffix.lower()}", "model")
    inputs = [
        ProcessingInput(
            source=model_output_uri, destination=f"{PROCESSING_ROOT}/input/model", input_name="model"
        ),
        *(
            ProcessingInput(source=pre_uri(c), destination=f"{PROCESSING_ROOT}/input/{c}", input_name=c)
            for c in ("test", "train", "lookup", "holdout")
        ),
        ctx.code_input,
    ]
    step = ProcessingStep(
        name=name,
        step_args=ctx.processor("evaluate.py").run(
            inputs=inputs,
            outputs=[
                ProcessingOutput(
                    output_name="evaluation",
                    source=f"{PROCESSING_ROOT}/output/evaluation",
                    destination=Join(on="/", values=eval_parts),
                ),
                ProcessingOutput(
                    output_name="model",
                    source=f"{PROCESSING_ROOT}/output/model",
                    destination=Join(on="/", values=model_parts),
                ),
            ],
            # relevance: held-out rating >= LabelThreshold, the same cut the binary labels use
            arguments=[
                *("--objective", ctx.params.objective_settings["objective"]),
                *("--threshold", ctx.params.threshold.to_string()),
            ],
        ),
        property_files=[report],
    )

    def metric(path: str) -> Any:
        return JsonGet(step_name=name, property_file=report, json_path=path)

    return step, metric, eval_parts, Join(on="/", values=[*model_parts, "model.tar.gz"])
