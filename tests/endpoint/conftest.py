"""Fixtures for the endpoint twin: tiny FM models written as real model.tar.gz files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

NUM_FACTORS = 4


def _make_model_tar(path: Path, predictor_type: str, seed: int, feature_dim: int) -> Path:
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
def make_model_tar() -> Callable[[Path, str, int, int], Path]:
    """make_model_tar(path, predictor_type, seed, feature_dim) writes a random FM model.tar.gz."""
    return _make_model_tar
