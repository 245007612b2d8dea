"""The pipeline definitions pinned in tests/golden/definition/ (tests/pipeline/test_definition_golden.py).

A refactor of pipeline/ must leave them byte-identical. A change meant to alter a definition (a new parameter,
a new default) rewrites them, and the diff is reviewed with it:
    .venv/bin/python -m tests.golden.definitions
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.batch import get_batch_pipeline
from pipeline.definition import CDK_ARGUMENTS, get_pipeline
from pipeline.tuning import TuningOptions

FOLDER = Path(__file__).parent / "definition"
REGION = "us-east-1"


def _cdk(**kwargs: Any) -> dict[str, Any]:
    return get_pipeline(region=REGION, **CDK_ARGUMENTS, **kwargs)


# name -> builder; the CDK app's arguments (placeholders), with and without the tuning branch, per objective.
CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "cdk-ranking-tuning": lambda: _cdk(tuning=TuningOptions()),
    "cdk-rating": lambda: _cdk(objective="rating"),
    "cdk-ranking-options": lambda: _cdk(
        negatives_per_positive=2,
        negative_exponent=0.5,
        positives="liked",
        history=32,
        below_threshold_negatives=True,
        hyperparameters={"Epochs": 5},
        training_instance_count=2,
    ),
    "batch": lambda: get_batch_pipeline(
        region=REGION,
        role_arn=CDK_ARGUMENTS["role_arn"],
        artifact_bucket=CDK_ARGUMENTS["artifact_bucket"],
        code_uri=CDK_ARGUMENTS["code_uri"],
    ),
}


def render(definition: dict[str, Any]) -> str:
    """As the CDK app and `fmrec pipeline definition` write it: json.dumps with indent 2, key order kept."""
    return json.dumps(definition, indent=2) + "\n"


def write_all() -> None:
    FOLDER.mkdir(exist_ok=True)
    for name, build in CASES.items():
        (FOLDER / f"{name}.json").write_text(render(build()), encoding="utf-8")
        print(f"wrote {FOLDER / name}.json")


if __name__ == "__main__":
    write_all()
