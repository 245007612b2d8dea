"""Item 2 of issue 24: `fmrec train --channels P --model-dir M --hp epochs=30` trains as the pipeline does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec.model.artifact import load_model_tar
from fmrec.model.hyperparameters import RECOMMENDED
from fmrec_cli.main import main

pytestmark = pytest.mark.slow  # trains a model


def test_train_takes_the_predictor_from_the_manifest_and_the_recommended_settings(
    pre: Path, trained: Path
) -> None:
    hp = load_model_tar(trained).hyperparameters
    manifest = json.loads((pre / "manifest" / "manifest.json").read_text())
    assert hp["feature_dim"] == str(manifest["feature_dim"])
    assert hp["predictor_type"] == "binary_classifier"  # binary labels, as the pipeline trains them
    assert hp["epochs"] == "3"  # what the user gave wins
    for name in ("num_factors", "mini_batch_size", "factors_lr", "linear_lr", "factors_wd"):
        assert float(hp[name]) == float(RECOMMENDED[name]), name


def test_sagemaker_defaults_need_num_factors_as_sagemaker_does(
    pre: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--channels", str(pre), "--model-dir", str(tmp_path / "m"), "--sagemaker-defaults"]
    assert main([*args, "--hp", "epochs=1"]) != 0
    assert "num_factors" in capsys.readouterr().err
    assert main([*args, "--hp", "epochs=1", "--hp", "num_factors=4"]) == 0
    hp = load_model_tar(tmp_path / "m" / "model.tar.gz").hyperparameters
    assert hp["predictor_type"] == "binary_classifier" and hp["factors_lr"] == "0.0001"
