"""The local twin with the real FM trainer: `fmrec tune --local`, parallel trials, repeats, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from fmrec.codec.reader import read_spmatrix
from fmrec.model.artifact import load_model_tar
from fmrec.model.hyperparameters import parse_hyperparameters
from fmrec.tuning.fm_trial import FMTrial, TrialData
from fmrec.tuning.local import TuningConfig, run_search
from fmrec.tuning.space import build_space, parse_range, resolve_objective
from fmrec_cli.main import main as fmrec
from pipeline.steps import carve_validation

pytestmark = pytest.mark.slow

SMALL = ["--range", "epochs=2:5", "--range", "num_factors=2:8", "--range", "mini_batch_size=100:400"]


def test_tune_local_writes_table_plot_best_and_models(tiny_channels: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    argv = ["tune", "--local", "--train", str(tiny_channels / "train"), "--out", str(out)]
    rc = fmrec([*argv, "--max-jobs", "4", "--max-parallel", "2", *SMALL])
    assert rc == 0
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["trial"] for r in rows] == ["1", "2", "3", "4"]
    assert (out / "objective.png").read_bytes().startswith(b"\x89PNG")
    best = json.loads((out / "best_hyperparameters.json").read_text())
    assert best["objective"]["MetricName"] == "test:binary_classification_cross_entropy"
    hp = parse_hyperparameters(best["hyperparameters"])  # usable as they are by the trainer
    assert 2 <= hp.num_factors <= 8 and 2 <= hp.epochs <= 5 and hp.feature_dim == 140
    assert best["pipeline_parameters"]["NumFactors"] == str(hp.num_factors)  # for --param NumFactors=...
    assert best["pipeline_parameters"]["MiniBatchSize"] == str(hp.mini_batch_size)
    model = load_model_tar(out / "trials" / best["training_job"] / "output" / "model.tar.gz")
    assert model.num_factors == hp.num_factors
    record = json.loads((out / "tuning_job.json").read_text())
    assert record["BestTrainingJob"]["TrainingJobName"] == best["training_job"]
    completed = [r for r in rows if r["status"] == "Completed"]
    assert min(float(r["objective"]) for r in completed) == pytest.approx(
        best["objective"]["Value"], abs=1e-6
    )


def _search(train: Path, out: Path, parallel: int) -> list[tuple[str, str, str]]:
    objective = resolve_objective("binary_classifier", "test:binary_classification_accuracy")
    config = TuningConfig(
        objective=objective,
        space=build_space([parse_range("epochs=2:4"), parse_range("num_factors=2:6")]),
        static={"predictor_type": "binary_classifier", "feature_dim": "140"},
        max_jobs=4,
        max_parallel=parallel,
        seed=11,
        startup_trials=2,
    )
    trial = FMTrial(TrialData(str(train)), objective.metric_name, objective.metric_key)
    results = run_search(config, trial, out)
    return [(json.dumps(r.hyperparameters, sort_keys=True), r.status, repr(r.curve)) for r in results]


def test_seeded_search_with_the_trainer_repeats_in_parallel(tiny_channels: Path, tmp_path: Path) -> None:
    first = _search(tiny_channels / "train", tmp_path / "a", parallel=2)
    assert first == _search(tiny_channels / "train", tmp_path / "b", parallel=2)
    assert all(status != "Failed" for _, status, _ in first)


def test_failing_trials_are_recorded_and_every_trial_runs(tiny_channels: Path, tmp_path: Path) -> None:
    out = tmp_path / "tune"
    argv = [
        "tune",
        "--local",
        "--train",
        str(tiny_channels / "train"),
        "--out",
        str(out),
        "--max-parallel",
        "1",
    ]
    # uniform init without its scale: the trainer rejects every trial's hyperparameters.
    rc = fmrec([*argv, "--max-jobs", "3", *SMALL, "--hp", "factors_init_method=uniform"])
    assert rc == 1
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert len(rows) == 3
    assert all(r["status"] == "Failed" and "factors_init_scale" in r["reason"] for r in rows)
    assert not (out / "best_hyperparameters.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--range", "mini_batch_size=10:500"], "outside FM's documented limits [100, 10000]"),
        (["--objective", "test:rmse"], "emitted only by a regressor"),
        (["--max-jobs", "0"], "max_jobs"),
        (["--hp", "epochs=3"], "epochs: set as static values and also tuned"),
    ],
)
def test_bad_requests_fail_before_any_trial(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["tune", "--local", "--train", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), *extra]
    assert fmrec(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_carve_step_splits_train_rows_without_overlap(tiny_channels: Path, tmp_path: Path) -> None:
    base = tmp_path / "carve"
    (base / "input").mkdir(parents=True)
    (base / "input" / "train").symlink_to(tiny_channels / "train")
    info = carve_validation.main(base, ["--fraction", "0.25", "--seed", "3"])
    X, y = read_spmatrix(tiny_channels / "train")
    Xf, yf = read_spmatrix(base / "output" / "train")
    Xv, yv = read_spmatrix(base / "output" / "validation")
    # a quarter of the (user, item) pairs, each with all its rows (the data repeats some pairs)
    assert (info["fit_rows"], info["validation_rows"]) == (Xf.shape[0], Xv.shape[0])
    assert Xf.shape[0] + Xv.shape[0] == 4000 and abs(Xv.shape[0] - 1000) < 50
    assert round(0.25 * info["pairs"]) == len({tuple(r.indices[:2].tolist()) for r in Xv})
    assert not {tuple(r.indices[:2].tolist()) for r in Xv} & {tuple(r.indices[:2].tolist()) for r in Xf}
    assert yf is not None and yv is not None and y is not None
    rows = {(*r.indices.tolist(), float(lab)) for r, lab in zip(X, y, strict=True)}
    fit_rows = [(*r.indices.tolist(), float(lab)) for r, lab in zip(Xf, yf, strict=True)]
    val_rows = [(*r.indices.tolist(), float(lab)) for r, lab in zip(Xv, yv, strict=True)]
    assert set(fit_rows) | set(val_rows) <= rows and len(fit_rows) + len(val_rows) == X.shape[0]
