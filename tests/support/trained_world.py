"""A small trained serving world built by fmrec itself: synthetic ratings, preprocess, training, publish."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmrec.data.synth import SynthConfig, write_synth
from fmrec.features.options import PreprocessConfig
from fmrec.serving.lookup import read_lookup
from fmrec.stages.preprocess import run as preprocess
from twins.api.publish import publish_version

ENDPOINT = "fmrec-endpoint"
VERSION = "v1"
# Small enough to build in a few seconds, large enough for several genres, cold-start users and real training.
SYNTH = {"users": 40, "items": 80, "ratings": 2000, "seed": 7, "factors": 4, "test_per_user": 5}
HYPERPARAMETERS = {
    "num_factors": "4",
    "predictor_type": "binary_classifier",
    "epochs": "3",
    "mini_batch_size": "200",
}


@dataclass
class TrainedWorld:
    root: Path
    data_dir: Path  # the synthetic MovieLens (ml-100k format) folder
    prep_dir: Path  # preprocess output: train/ test/ lookup/ manifest/
    model_path: Path
    artifacts: Path  # the serving layout (current.json, v1/lookup/, v1/model.tar.gz)
    lookup: Any
    feature_dim: int


def synth_data(folder: Path) -> Path:
    write_synth(folder, SynthConfig(**SYNTH))  # type: ignore[arg-type]
    return folder


def build(root: Path) -> TrainedWorld:
    # local import: the numba-compiled trainer (~1 s); the fuzz and reliability conftests import this module
    from twins.training.job import run_training

    data_dir = synth_data(root / "ml-synth")
    prep = root / "prep"
    manifest = preprocess(data_dir, prep, PreprocessConfig())
    feature_dim = int(manifest["feature_dim"])
    hp = {"feature_dim": str(feature_dim), **HYPERPARAMETERS}
    channels = {"train": prep / "train", "test": prep / "test"}
    run_training(hp, channels, root / "model", root / "model-output")
    model_path = root / "model" / "model.tar.gz"
    artifacts = root / "serving"
    publish_version(artifacts, VERSION, prep / "lookup", model_path)
    assert json.loads((artifacts / "current.json").read_text())["modelVersion"] == VERSION
    return TrainedWorld(
        root, data_dir, prep, model_path, artifacts, read_lookup(prep / "lookup"), feature_dim
    )
