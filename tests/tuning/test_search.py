"""The search loop: failed trials are recorded and the search goes on; seeded searches repeat; early stop."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from fmrec.tuning.early_stopping import should_stop
from fmrec.tuning.local import (
    BEST_HYPERPARAMETERS_FILE,
    COMPLETE,
    FAILED,
    PLOT_FILE,
    PRUNED,
    TRIALS_CSV,
    TUNING_JOB_FILE,
    TrialStopped,
    TuningConfig,
    run_search,
    write_outputs,
)
from fmrec.tuning.space import TuningError, build_space, parse_range, resolve_objective

STATIC = {"predictor_type": "binary_classifier", "feature_dim": "10"}


def analytic_trial(
    hp: dict[str, str], stop: Callable[[list[float]], bool], model: Path
) -> tuple[list[float], float]:
    """A stand-in trainer with a known optimum (factors_lr 1e-2) whose loss falls as 1/epoch."""
    if int(hp["mini_batch_size"]) > 2000:
        raise ValueError("mini-batch does not fit in memory")
    if int(hp["num_factors"]) > 64:
        final = math.nan
    else:
        final = (math.log10(float(hp["factors_lr"])) + 2.0) ** 2 + 0.1
    curve: list[float] = []
    for epoch in range(1, int(hp["epochs"]) + 1):
        curve.append(final + 1.0 / epoch)
        if stop(curve):
            raise TrialStopped
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(json.dumps(hp).encode())
    return curve, curve[-1]


def config(**kw: object) -> TuningConfig:
    base: dict[str, object] = {
        "objective": resolve_objective("binary_classifier"),
        "space": build_space([parse_range("epochs=2:8")]),
        "static": STATIC,
        "max_jobs": 12,
        "max_parallel": 1,
        "seed": 7,
        "startup_trials": 4,
        "min_completed": 2,
    }
    base.update(kw)
    return TuningConfig(**base)  # type: ignore[arg-type]


@pytest.mark.slow
def test_failed_trials_are_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    cfg = config()
    results = run_search(cfg, analytic_trial, tmp_path)
    assert len(results) == cfg.max_jobs
    failed = [r for r in results if r.status == FAILED]
    assert failed, "the space holds failing settings; some trial should hit one"
    for r in failed:
        assert ("ValueError: mini-batch does not fit in memory" in r.reason) or ("diverged" in r.reason)
    assert any(r.status == COMPLETE for r in results)
    record = write_outputs(cfg, results, tmp_path)
    assert record["TrainingJobStatusCounters"]["NonRetryableError"] == len(failed)
    rows = (tmp_path / TRIALS_CSV).read_text().splitlines()
    assert len(rows) == 1 + cfg.max_jobs and "reason" in rows[0]
    assert (tmp_path / PLOT_FILE).read_bytes().startswith(b"\x89PNG")
    best = json.loads((tmp_path / BEST_HYPERPARAMETERS_FILE).read_text())
    summaries = record["TrainingJobSummaries"]
    assert (
        best["training_job"]
        == summaries[0]["TrainingJobName"]
        == record["BestTrainingJob"]["TrainingJobName"]
    )
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries]
    assert values == sorted(values)  # cross entropy: minimised, best first
    assert best["hyperparameters"]["predictor_type"] == "binary_classifier"
    on_disk = json.loads((tmp_path / TUNING_JOB_FILE).read_text())
    assert on_disk["BestTrainingJob"] == record["BestTrainingJob"]


def test_seeded_search_repeats_exactly(tmp_path: Path) -> None:
    a = run_search(config(), analytic_trial, tmp_path / "a")
    b = run_search(config(), analytic_trial, tmp_path / "b")
    c = run_search(config(seed=8), analytic_trial, tmp_path / "c")
    key = [(r.hyperparameters, r.status, str(r.curve)) for r in a]
    assert key == [(r.hyperparameters, r.status, str(r.curve)) for r in b]
    assert key != [(r.hyperparameters, r.status, str(r.curve)) for r in c]


def test_early_stopping_stops_trials_worse_than_the_median(tmp_path: Path) -> None:
    results = run_search(config(max_jobs=16, seed=3), analytic_trial, tmp_path)
    stopped = [r for r in results if r.status == PRUNED]
    assert stopped and all("early stopping" in r.reason for r in stopped)
    off = run_search(config(max_jobs=16, seed=3, early_stopping=False), analytic_trial, tmp_path / "off")
    assert not [r for r in off if r.status == PRUNED]


def test_should_stop_follows_the_median_of_running_averages() -> None:
    done = [[1.0, 0.8, 0.6], [1.0, 0.6, 0.5], [0.9, 0.7, 0.65]]
    # running averages at epoch 2: 0.9, 0.8, 0.8 -> median 0.8
    assert should_stop([1.0, 0.7], done, maximize=False)  # 0.85 > 0.8
    assert not should_stop([0.9, 0.6], done, maximize=False)  # 0.75
    assert not should_stop([5.0], done, maximize=False)  # warm-up epoch
    assert not should_stop([1.0, 0.7], done[:2], maximize=False)  # fewer than 3 completed peers
    assert should_stop([0.5, 0.5], [[0.9, 0.9]] * 3, maximize=True)


def test_bad_config_fails_before_any_trial(tmp_path: Path) -> None:
    calls: list[int] = []

    def counting(
        hp: dict[str, str], stop: Callable[[list[float]], bool], model: Path
    ) -> tuple[list[float], float]:
        calls.append(1)
        return [0.5], 0.5

    with pytest.raises(TuningError, match="predictor_type is 'regressor'"):
        run_search(config(static={**STATIC, "predictor_type": "regressor"}), counting, tmp_path)
    with pytest.raises(TuningError, match="max_jobs"):
        run_search(config(max_jobs=0), counting, tmp_path)
    with pytest.raises(TuningError, match="also tuned"):
        run_search(config(static={**STATIC, "num_factors": "8"}), counting, tmp_path)
    assert not calls
