"""The named registry of step entry points: the only pipeline/steps scripts a local Processing step may run.

A definition's ContainerEntrypoint names its script by path (python3 /opt/ml/processing/input/code/pipeline/
steps/<name>.py); the runner looks that path up here instead of importing a name read from the JSON, so every
script it can run is a literal import the import contract (tests/architecture) checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.steps import batch_recommend, carve_validation, evaluate, preprocess
from pipeline.steps.script import StepMain
from twins.pipeline.graph import DefinitionFormatError

PROCESSING_ROOT = "/opt/ml/processing"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"  # the ProcessingInput "code": pipeline/steps and fmrec


@dataclass(frozen=True)
class StepEntryPoint:
    main: StepMain
    # Refuses the step's arguments (InputError) before any step of the run: a bad --param fails at once.
    check_arguments: Callable[[Sequence[str]], object] | None = None


STEP_ENTRY_POINTS: Mapping[str, StepEntryPoint] = {
    "pipeline/steps/batch_recommend.py": StepEntryPoint(batch_recommend.main),
    "pipeline/steps/carve_validation.py": StepEntryPoint(carve_validation.main),
    "pipeline/steps/evaluate.py": StepEntryPoint(evaluate.main),
    "pipeline/steps/preprocess.py": StepEntryPoint(preprocess.main, preprocess.check_arguments),
}


def entry_script(entrypoint: Sequence[object]) -> str | None:
    """The script path (relative to the code input) of a ContainerEntrypoint, None if it runs no code-input
    script."""
    prefix = CODE_DIR + "/"
    return next(
        (str(e)[len(prefix) :] for e in entrypoint if str(e).startswith(prefix) and str(e).endswith(".py")),
        None,
    )


def step_entry_point(script: str, step: str) -> StepEntryPoint:
    try:
        return STEP_ENTRY_POINTS[script]
    except KeyError:
        raise DefinitionFormatError(
            f"step {step}: {CODE_DIR}/{script} is no registered step script; "
            f"known: {', '.join(sorted(STEP_ENTRY_POINTS))} (twins/pipeline/entry_points.py)"
        ) from None
