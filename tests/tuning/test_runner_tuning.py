"""The local pipeline runner takes the tuning branch (UseTuning=true) on tiny synthetic data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fmrec_cli.main import main as fmrec
from fmrec_cli.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def test_runner_executes_the_tuning_branch_and_registers_the_best_model(tmp_path: Path) -> None:
    data = tmp_path / "synth"
    assert (
        fmrec(["data", "synth", "--out", str(data), "--users", "60", "--items", "90", "--ratings", "3000"])
        == 0
    )
    params = ["UseTuning=true", "TuningMaxJobs=3", "TuningMaxParallelJobs=1", "GateMinAuc=0.0"]
    result = run_pipeline(data, params, tmp_path / "runs", progress=lambda msg: None)
    steps = result.steps
    assert steps["TuneModel"] == steps["CarveValidation"] == steps["EvaluateModelTuned"] == "Succeeded"
    assert steps["TrainModel"] == steps["EvaluateModel"] == "NotExecuted"

    record_dir = result.folder / "steps" / "TuneModel" / "tuning"
    record = json.loads((record_dir / "tuning_job.json").read_text())
    assert len(list(csv.DictReader((record_dir / "trials.csv").open()))) == 3
    assert record["HyperParameterTuningJobConfig"]["Strategy"] == "Bayesian"
    # Off: FM has no early stopping on SageMaker (pipeline/tuning.py), so the twin runs every trial too.
    assert record["HyperParameterTuningJobConfig"]["TrainingJobEarlyStoppingType"] == "Off"
    assert "num_factors" not in {
        r["Name"] for g in record["HyperParameterTuningJobConfig"]["ParameterRanges"].values() for r in g
    }
    best = record["TrainingJobSummaries"][0]["TrainingJobName"]
    assert best == record["BestTrainingJob"]["TrainingJobName"]
    best_model = result.folder / "s3" / "fmrec-local" / "models" / "tuning" / best / "output" / "model.tar.gz"
    assert best_model.is_file()
    if (
        result.status == "Succeeded"
    ):  # the gate may reject a 3-trial model on tiny data: then nothing registers
        assert steps["RegisterModelTuned-RegisterModel"] == "Succeeded"
        assert result.registered[0].model_tar.read_bytes() == best_model.read_bytes()
    else:
        assert steps["QualityGateFailedTuned"] == "Failed" and not result.registered
    # The tuning job's "test" channel is carved from the train channel (90% fit, 10% validation).
    carve_out = result.folder / "steps" / "CarveValidation" / "processing" / "output"
    split = json.loads((carve_out / "validation_split.json").read_text())
    assert split["fit_rows"] + split["validation_rows"] == split["rows"] and split["fraction"] == 0.1
