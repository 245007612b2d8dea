"""Tiny random FM models written as real model.tar.gz files, for the endpoint twin's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.fm import FMParams

NUM_FACTORS = 4


def make_model_tar(path: Path, predictor_type: str, seed: int, feature_dim: int) -> Path:
    """Write a random FM model.tar.gz (`feature_dim` features, NUM_FACTORS factors) at `path`."""
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
