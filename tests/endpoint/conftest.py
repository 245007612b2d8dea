"""Fixtures for the endpoint twin: tiny FM models written as real model.tar.gz, and a running twin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

FEATURE_DIM = 40
NUM_FACTORS = 4


def make_model_tar(path: Path, predictor_type: str, seed: int, feature_dim: int = FEATURE_DIM) -> Path:
    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams

    rng = np.random.default_rng(seed)
    params = FMParams(
        w0=float(rng.normal(0, 0.5)),
        w=rng.normal(0, 0.5, feature_dim).astype(np.float32),
        V=rng.normal(0, 0.5, (feature_dim, NUM_FACTORS)).astype(np.float32),
    )
    hyperparameters = {
        "feature_dim": str(feature_dim),
        "num_factors": str(NUM_FACTORS),
        "predictor_type": predictor_type,
    }
    save_model_tar(FMModel(params, predictor_type, hyperparameters, {}), path)
    return path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("endpoint-models")
    return {
        "binary": make_model_tar(root / "binary.tar.gz", "binary_classifier", seed=1),
        "regressor": make_model_tar(root / "regressor.tar.gz", "regressor", seed=2),
    }


@pytest.fixture(scope="session")
def twin(models: dict[str, Path]) -> Iterator[object]:
    """One in-process twin for the session: "fm-binary" (variant Blue, also /invocations) and "fm-reg"."""
    from twins.endpoint.server import start_in_background

    server = start_in_background(
        [models["binary"], models["regressor"]], name=["fm-binary", "fm-reg"], variant=["Blue", "Green"]
    )
    yield server
    server.stop()
