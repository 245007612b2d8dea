"""The stage config the stacks read: fmrec.deploy.stage (the CLI's preflight reads the same), re-exported."""

from __future__ import annotations

from fmrec.deploy.layers import NUMPY_LAYER_KEY
from fmrec.deploy.stage import (
    BATCH_PREFIX,
    CAPTURE_PREFIX,
    CODE_PREFIX,
    DATA_PREFIX,
    MODELS_PREFIX,
    PIPELINE_PREFIX,
    SERVING_PREFIX,
    STAGE_KEY,
    STAGES_KEY,
    ConfigError,
    StageConfig,
    load_stage,
)

__all__ = [
    "BATCH_PREFIX",
    "CAPTURE_PREFIX",
    "CODE_PREFIX",
    "DATA_PREFIX",
    "MODELS_PREFIX",
    "NUMPY_LAYER_KEY",
    "PIPELINE_PREFIX",
    "SERVING_PREFIX",
    "STAGES_KEY",
    "STAGE_KEY",
    "ConfigError",
    "StageConfig",
    "load_stage",
]
