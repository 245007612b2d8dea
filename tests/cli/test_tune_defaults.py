"""Item 13 of issue 24: the local tuner optimises the gate's metric and weighs its best against defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec_cli.main import main

pytestmark = pytest.mark.slow

SMALL = ["--range", "epochs=1:3", "--range", "num_factors=2:6", "--range", "mini_batch_size=100:300"]


def test_tune_defaults_to_ndcg_and_compares_with_the_default_settings(
    pre: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tune"
    argv = ["tune", "--local", "--train", str(pre / "train"), "--out", str(out), "--max-jobs", "2"]
    assert main([*argv, "--max-parallel", "1", *SMALL]) == 0
    stdout, stderr = capsys.readouterr()
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["objective"]["MetricName"] == "validation:ndcg_at_10"  # the gate's metric, unasked
    assert "the metric the pipeline's gate judges" in stderr
    default = json.loads((out / "default_settings.json").read_text())
    assert default["objective"] == "validation:ndcg_at_10" and 0.0 <= default["value"] <= 1.0
    assert f"the default settings score {default['value']:.6f}" in stdout
    if best["objective"]["Value"] > default["value"]:
        assert "pipeline run --local --data-dir" in stdout
    else:
        assert "keep them" in stdout and "pipeline run" not in stdout
