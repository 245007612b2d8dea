"""Every pipeline parameter reaches its uses through at most 6 files, never coming back to one it left."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import tuning
from pipeline.definition import CDK_ARGUMENTS, get_pipeline
from tests.architecture import parameter_walk as walk

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
# Defined and used in pipeline/tuning.py alone (the optional tuning branch), not in pipeline/parameters.py.
TUNING_PARAMETERS = {tuning.USE_TUNING, tuning.MAX_JOBS, tuning.MAX_PARALLEL}

pytestmark = pytest.mark.slow  # builds the definition and runs the preprocess and evaluate steps (~10 s)


@pytest.fixture(scope="module")
def measured() -> list[walk.Walks]:
    return walk.measure()


def test_every_walk_is_at_most_six_files_and_never_returns(measured: list[walk.Walks]) -> None:
    too_long = {w.parameter: w.longest for w in measured if w.files > walk.MAX_FILES}
    returning = {w.parameter: w.returning for w in measured if w.returning}
    assert not too_long, f"walks over {walk.MAX_FILES} files: {too_long}"
    assert not returning, f"walks that come back to a file they left: {returning}"


def test_every_parameter_of_the_definition_is_walked(measured: list[walk.Walks]) -> None:
    names = [p["Name"] for p in get_pipeline(region="us-east-1", **CDK_ARGUMENTS)["Parameters"]]
    assert [w.parameter for w in measured] == [n for n in names if n not in TUNING_PARAMETERS]


def test_the_recorder_follows_values_into_the_library(measured: list[walk.Walks]) -> None:
    """A recorder that lost the values would pass the target trivially: each step-side parameter reaches the
    module that uses it."""
    reached = {w.parameter: {f for path in w.walks for f in path} for w in measured}
    assert "fmrec/features/history.py" in reached["HistoryLength"]
    assert "fmrec/features/layout.py" in reached["HistoryLength"]  # the history block of the encoding
    for name in (
        "NegativesPerPositive",
        "NegativeExponent",
        "PositiveRule",
        "BelowThresholdNegatives",
        "SamplingPasses",
    ):
        assert "fmrec/features/sampling.py" in reached[name], name
    assert {"fmrec/features/channels.py", "fmrec/stages/evaluate.py"} <= reached["LabelThreshold"]
    assert "fmrec/features/channels.py" in reached["TrainingInstanceCount"]  # --shards: the train files
    assert "pipeline/build/gate.py" in reached["GateNdcgMargin"]


def test_the_doc_shows_the_measured_walks(measured: list[walk.Walks]) -> None:
    assert walk.markdown_table(measured) in DOC.read_text(encoding="utf-8"), (
        "docs/architecture.md's walk table is stale: paste what "
        "`.venv/bin/python -m tests.architecture.parameter_walk` prints"
    )


def test_a_return_is_a_file_met_again_after_another() -> None:
    assert walk.returns(("a", "b", "c")) == []
    assert walk.returns(("a", "b", "a", "c", "b")) == ["a", "b"]
    stack = (("pipeline/steps/x.py", "main"), ("pipeline/definition.py", "_build"), ("fmrec/a.py", "f"))
    assert walk.files_of(stack) == ("pipeline/parameters.py", "pipeline/steps/x.py", "fmrec/a.py")
    assert walk.files_of((("fmrec/a.py", "f"), ("fmrec/a.py", "g")), ("p.py",)) == ("p.py", "fmrec/a.py")
