"""Fixtures of the pipeline tests: the definition as the CDK app builds it (built once per session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fmrec.data.synth import SynthConfig, write_synth
from fmrec_cli.pipeline import local_definition as build_local_definition
from twins.registry.registry import Registry


@pytest.fixture(scope="session")
def cdk_definition(offline_pipeline: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """get_pipeline with the CDK placeholders, built with no credentials and every socket connect refused."""
    return offline_pipeline()


TINY = {
    "users": 100,
    "items": 150,
    "ratings": 6000,
    "seed": 0,
}  # small, and the default model passes its gate


@pytest.fixture(scope="session")
def local_definition() -> dict[str, Any]:
    return build_local_definition()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("tiny") / "ml"
    write_synth(out, SynthConfig(**TINY))
    return out


# The rating objective on the tiny data: its 4 mini-batches an epoch need Epochs 15 (the default 4, three
# passes of the ranking channel each, leave a one-pass rating model short of the biases-only fit's log loss
# here; on the ml-100k preset 4 epochs give it a better AUC than 15: 0.760 against 0.743, docs/training.md).
TINY_RATING = {"Objective": "rating", "Epochs": "15"}


@pytest.fixture(scope="session")
def tiny_run(
    tmp_path_factory: pytest.TempPathFactory, local_definition: dict[str, Any], tiny_data: Any
) -> Any:
    """One pipeline run on the tiny data, shared by the tests that only read its outputs.

    Objective rating: these tests check the pointwise gate and outputs; test_runner.py runs both gates.
    """
    # local import: the runner pulls in the numba-compiled trainer (~1 s); only pipeline-running tests need it
    from twins.pipeline.runner import run_local

    root = tmp_path_factory.mktemp("runs")
    return run_local(
        local_definition,
        runs_root=root / "pipeline",
        registry=Registry(root / "registry"),
        # The AUC gate is the rating objective gate; test_ranking_objective_* runs the ranking objective.
        overrides={"InputDataUrl": str(tiny_data), **TINY_RATING},
    )
