"""The Preprocess step: MovieLens (or synthetic) → recordIO channels, lookup, holdout and the manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fmrec.features.settings import BY_FIELD, OBJECTIVE_FIELDS
from fmrec.stages.preprocess import OUTPUT_CHANNELS
from pipeline.build.context import BuildContext
from pipeline.parameters import PREDICTOR_TYPE, PipelineParameters
from pipeline.sdk import Join, ProcessingInput, ProcessingOutput, ProcessingStep, PropertyFile
from pipeline.session import PROCESSING_ROOT

PREPROCESS_STEP = "Preprocess"


def preprocess_step(ctx: BuildContext) -> tuple[Any, Any, Callable[[str], Any]]:
    """(the step, its "Manifest" property file, the S3 URI of one of its outputs by name)."""
    p = ctx.params
    manifest = PropertyFile(name="Manifest", output_name="manifest", path="manifest.json")
    step = ProcessingStep(
        name=PREPROCESS_STEP,
        step_args=ctx.processor("preprocess.py", p.proc_count).run(
            inputs=[
                ProcessingInput(
                    source=p.input_data, destination=f"{PROCESSING_ROOT}/input/data", input_name="data"
                ),
                ctx.code_input,
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=f"{PROCESSING_ROOT}/output/{name}",
                    destination=Join(
                        on="/", values=(ctx.kept_out if name == "lookup" else ctx.s3_out)("preprocess", name)
                    ),
                )
                for name in OUTPUT_CHANNELS
            ],
            # One train shard per training instance, so ShardedByS3Key hands every host its own file.
            arguments=[
                *("--threshold", p.threshold.to_string(), "--shards", p.train_count.to_string()),
                *_objective_arguments(p),
            ],
        ),
        property_files=[manifest],
    )

    def output_uri(name: str) -> Any:
        return step.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    return step, manifest, output_uri


def _objective_arguments(p: PipelineParameters) -> list[Any]:
    """The objective settings' flags and values, in the settings table's order; a setting the pipeline has no
    parameter for (predictor_type) is fixed."""
    fixed = {"predictor_type": PREDICTOR_TYPE}
    out: list[Any] = []
    for field in OBJECTIVE_FIELDS:
        s = BY_FIELD[field]
        if s.parameter is None:
            out += [s.flag, fixed[field]]
        else:
            param = p.objective_settings[field]
            out += [s.flag, param.to_string() if s.kind in ("Integer", "Float") else param]
    return out
