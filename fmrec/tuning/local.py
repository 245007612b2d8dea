"""The local twin of a SageMaker tuning job: Optuna TPE over FM's ranges, trials run by the local trainer."""

from __future__ import annotations

import concurrent.futures as cf
import csv
import io
import json
import logging
import math
import multiprocessing
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna

from fmrec.io_utils import atomic_open, atomic_write_text
from fmrec.machine import usable_cores
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from fmrec.tuning.early_stopping import (
    DEFAULT_MIN_COMPLETED,
    DEFAULT_WARMUP_EPOCHS,
    MedianRunningAveragePruner,
    should_stop,
)
from fmrec.tuning.space import Objective, ParamRange, TuningError, check_budget, check_static

log = logging.getLogger(__name__)

COMPLETE, PRUNED, FAILED = "Completed", "Stopped", "Failed"  # SageMaker's TrainingJobStatus words

BEST_HYPERPARAMETERS_FILE = "best_hyperparameters.json"
TUNING_JOB_FILE = "tuning_job.json"
TRIALS_CSV = "trials.csv"
PLOT_FILE = "objective.png"


@dataclass(frozen=True)
class TuningConfig:
    """What a tuning job needs besides its data: the same fields the SageMaker request carries."""

    objective: Objective
    space: tuple[ParamRange, ...]
    static: Mapping[
        str, str
    ]  # hyperparameters passed unchanged to every trial, as strings (SageMaker's form)
    max_jobs: int = 20
    max_parallel: int = 2
    early_stopping: bool = True
    seed: int = 0
    job_name: str = "fmrec-tuning"
    startup_trials: int = (
        5  # random trials before TPE models the objective (SageMaker Bayesian does the same)
    )
    min_completed: int = DEFAULT_MIN_COMPLETED
    warmup_epochs: int = DEFAULT_WARMUP_EPOCHS

    def validate(self) -> None:
        check_budget(self.max_jobs, self.max_parallel)
        check_static(self.static, self.space)
        predictor = self.static.get("predictor_type")
        if predictor != self.objective.predictor_type:
            raise TuningError(
                f"objective: {self.objective.metric_name} is emitted by a {self.objective.predictor_type}, "
                f"but predictor_type is {predictor!r}"
            )


@dataclass
class TrialResult:
    """One training job of the search, as the results table shows it."""

    number: int
    name: str
    status: str
    hyperparameters: dict[str, str]
    objective: float | None = None
    curve: list[float] = field(default_factory=list)
    epochs_run: int = 0
    seconds: float = 0.0
    reason: str = ""
    model_path: str | None = None


# A trial function trains one job: (hyperparameters, stop_rule(curve) -> bool, model_path) -> (curve, final),
# the per-epoch objective curve and the final objective; it writes the model only if it completes.
TrialFn = Callable[[dict[str, str], Callable[[list[float]], bool], Path], tuple[list[float], float]]


class TrialStopped(Exception):
    """Raised inside a trial when the early-stopping rule fires."""


def _sample(trial: optuna.trial.Trial, space: Sequence[ParamRange]) -> dict[str, str]:
    values: dict[str, str] = {}
    for r in space:
        if r.kind == "int":
            values[r.name] = str(trial.suggest_int(r.name, int(r.low), int(r.high), log=r.log))
        else:
            values[r.name] = repr(trial.suggest_float(r.name, r.low, r.high, log=r.log))
    return values


def _execute(
    trial_fn: TrialFn,
    number: int,
    name: str,
    hp: dict[str, str],
    completed_curves: list[list[float]],
    maximize: bool,
    early_stopping: bool,
    min_completed: int,
    warmup_epochs: int,
    model_path: str,
) -> TrialResult:
    """Run one trial and turn every outcome (completed, early-stopped, failed) into a TrialResult."""
    started = time.perf_counter()
    seen: list[float] = []

    def stop_rule(curve: list[float]) -> bool:
        seen[:] = curve
        if any(not math.isfinite(v) for v in curve):
            raise TuningError(f"objective is {curve[-1]} at epoch {len(curve)} (training diverged)")
        return early_stopping and should_stop(
            curve, completed_curves, maximize, min_completed=min_completed, warmup_epochs=warmup_epochs
        )

    result = TrialResult(number=number, name=name, status=FAILED, hyperparameters=hp)
    try:
        curve, final = trial_fn(hp, stop_rule, Path(model_path))
        if not math.isfinite(final):
            raise TuningError(f"final objective is {final} (training diverged)")
        result.status, result.curve, result.objective, result.model_path = (
            COMPLETE,
            list(curve),
            final,
            model_path,
        )
    except TrialStopped:
        result.status, result.curve = PRUNED, list(seen)
        result.objective = seen[-1] if seen else None
        result.reason = f"early stopping after epoch {len(seen)}: running average worse than the median"
    except Exception as exc:  # a failed trial is recorded with its reason; the search goes on
        result.curve = list(seen)
        result.reason = f"{type(exc).__name__}: {exc}".strip()
        log.debug("trial %s failed:\n%s", name, traceback.format_exc())
    result.epochs_run = len(result.curve)
    result.seconds = time.perf_counter() - started
    return result


def run_search(
    config: TuningConfig, trial_fn: TrialFn, out_dir: Path, models_dir: Path | None = None
) -> list[TrialResult]:
    """Run the search; trials go in batches of max_parallel, in processes when max_parallel > 1.

    Batches make the search reproducible for a given seed and max_parallel: TPE asks for a whole batch before
    any of it is told, and early stopping compares a trial with trials of earlier batches only.
    """
    config.validate()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own log line per trial says more
    maximize = config.objective.direction == "Maximize"
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=config.startup_trials, constant_liar=True, multivariate=True
    )
    study = optuna.create_study(
        direction=optuna.study.StudyDirection.MAXIMIZE if maximize else optuna.study.StudyDirection.MINIMIZE,
        sampler=sampler,
        pruner=MedianRunningAveragePruner(config.min_completed, config.warmup_epochs),
        study_name=config.job_name,
    )
    results: list[TrialResult] = []
    models = models_dir if models_dir is not None else out_dir / "trials"
    models.mkdir(parents=True, exist_ok=True)
    pool: cf.ProcessPoolExecutor | None = None
    if config.max_parallel > 1:
        pool = cf.ProcessPoolExecutor(config.max_parallel, mp_context=_process_context())
    try:
        while len(results) < config.max_jobs:
            batch = min(config.max_parallel, config.max_jobs - len(results))
            completed_curves = [r.curve for r in results if r.status == COMPLETE]
            asked = []
            for _ in range(batch):
                trial = study.ask()
                hp = {**config.static, **_sample(trial, config.space)}
                name = f"{config.job_name}-{trial.number + 1:03d}"
                model_path = str(models / name / "output" / "model.tar.gz")
                args = (trial_fn, trial.number, name, hp, completed_curves, maximize, config.early_stopping,
                        config.min_completed, config.warmup_epochs, model_path)  # fmt: skip
                asked.append((trial, args))
            outcomes = _run_batch(pool, [a for _, a in asked])
            if pool is not None and any(o.reason.startswith("trial process died") for o in outcomes):
                pool.shutdown(cancel_futures=True)
                pool = cf.ProcessPoolExecutor(
                    config.max_parallel, mp_context=multiprocessing.get_context("spawn")
                )
            for (trial, _), outcome in zip(asked, outcomes, strict=True):
                if outcome.model_path is not None:  # relative, so the record survives moving the folder
                    outcome.model_path = str(Path(outcome.model_path).relative_to(models))
                _tell(study, trial, outcome)
                results.append(outcome)
                log.info(
                    "trial %s: %s %s%s",
                    outcome.name,
                    outcome.status,
                    ""
                    if outcome.objective is None
                    else f"{config.objective.metric_name}={outcome.objective:.5f}",
                    f" ({outcome.reason})" if outcome.reason else "",
                )
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return results


def _process_context() -> Any:
    """Worker processes forked from a clean single-threaded server that has imported the trainer already.

    Plain fork would copy whatever threads and locks the caller holds; spawn re-imports numpy, numba and the
    trainer in every worker. Where there is no forkserver, spawn.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["fmrec.tuning.fm_trial", "fmrec.model.trainer", "fmrec.codec.reader"])
    return ctx


def _run_batch(pool: cf.ProcessPoolExecutor | None, jobs: list[tuple[Any, ...]]) -> list[TrialResult]:
    if pool is None:
        return [_execute(*job) for job in jobs]
    futures = [pool.submit(_execute, *job) for job in jobs]
    outcomes = []
    for job, future in zip(jobs, futures, strict=True):
        try:
            outcomes.append(future.result())
        except Exception as exc:  # the process itself died (killed, out of memory): the trial failed
            outcomes.append(
                TrialResult(
                    number=job[1],
                    name=job[2],
                    status=FAILED,
                    hyperparameters=job[3],
                    reason=f"trial process died: {type(exc).__name__}: {exc}",
                )
            )
    return outcomes


def _tell(study: optuna.study.Study, trial: optuna.trial.Trial, outcome: TrialResult) -> None:
    for step, value in enumerate(outcome.curve, start=1):
        if math.isfinite(value):
            trial.report(value, step)
    trial.set_user_attr("name", outcome.name)
    if outcome.reason:
        trial.set_user_attr("reason", outcome.reason)
    if outcome.status == COMPLETE:
        study.tell(trial, outcome.objective)
    elif outcome.status == PRUNED:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def best_result(results: Sequence[TrialResult], objective: Objective) -> TrialResult | None:
    """The best completed trial; ties go to the earlier trial, as in a sorted SageMaker listing."""
    best: TrialResult | None = None
    for r in results:
        if r.status != COMPLETE or r.objective is None:
            continue
        if best is None or objective.better(r.objective, best.objective):  # type: ignore[arg-type]
            best = r
    return best


def sorted_summaries(results: Sequence[TrialResult], objective: Objective) -> list[TrialResult]:
    """Completed trials best first, as ListTrainingJobsForHyperParameterTuningJob sorts by final objective."""
    done = [r for r in results if r.status == COMPLETE and r.objective is not None]
    sign = -1.0 if objective.direction == "Maximize" else 1.0
    return sorted(done, key=lambda r: (sign * r.objective, r.number))  # type: ignore[operator]


def describe(config: TuningConfig, results: Sequence[TrialResult]) -> dict[str, Any]:
    """A DescribeHyperParameterTuningJob-like record plus the sorted TrainingJobSummaries of a TuningStep."""
    best = best_result(results, config.objective)

    def summary(r: TrialResult) -> dict[str, Any]:
        item: dict[str, Any] = {
            "TrainingJobName": r.name,
            "TrainingJobStatus": r.status,
            "TunedHyperParameters": {p.name: r.hyperparameters[p.name] for p in config.space},
        }
        if r.objective is not None:
            item["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "MetricName": config.objective.metric_name,
                "Value": r.objective,
            }
        if r.reason:
            item["FailureReason"] = r.reason
        return item

    counters = {s: sum(1 for r in results if r.status == s) for s in (COMPLETE, PRUNED, FAILED)}
    return {
        "HyperParameterTuningJobName": config.job_name,
        "HyperParameterTuningJobStatus": "Completed" if best is not None else "Failed",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {
                "Type": config.objective.direction,
                "MetricName": config.objective.metric_name,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": config.max_jobs,
                "MaxParallelTrainingJobs": config.max_parallel,
            },
            "ParameterRanges": _ranges_json(config.space),
            "TrainingJobEarlyStoppingType": "Auto" if config.early_stopping else "Off",
            "RandomSeed": config.seed,
        },
        "StaticHyperParameters": dict(config.static),
        "TrainingJobStatusCounters": {
            "Completed": counters[COMPLETE],
            "Stopped": counters[PRUNED],
            "NonRetryableError": counters[FAILED],
        },
        "BestTrainingJob": summary(best) if best is not None else None,
        "TrainingJobSummaries": [summary(r) for r in sorted_summaries(results, config.objective)],
        "Trials": [asdict(r) for r in results],
        "FailureReason": None if best is not None else "no trial completed; see Trials for each reason",
    }


def _ranges_json(space: Sequence[ParamRange]) -> dict[str, list[dict[str, str]]]:
    return {
        "IntegerParameterRanges": [r.to_sagemaker() for r in space if r.kind == "int"],
        "ContinuousParameterRanges": [r.to_sagemaker() for r in space if r.kind == "float"],
    }


def results_table(results: Sequence[TrialResult], config: TuningConfig) -> list[dict[str, Any]]:
    """One row per trial: number, name, status, objective, epochs run, seconds, tuned values, reason."""
    rows = []
    for r in results:
        row: dict[str, Any] = {
            "trial": r.number + 1,
            "name": r.name,
            "status": r.status,
            "objective": "" if r.objective is None else f"{r.objective:.6f}",
            "epochs_run": r.epochs_run,
            "seconds": f"{r.seconds:.2f}",
        }
        for p in config.space:
            value = r.hyperparameters[p.name]
            row[p.name] = value if p.kind == "int" else f"{float(value):.3g}"
        row["reason"] = r.reason
        rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no trials)"
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols).rstrip()]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in cols).rstrip() for r in rows]
    return "\n".join(lines)


def write_outputs(config: TuningConfig, results: Sequence[TrialResult], out_dir: Path) -> dict[str, Any]:
    """Write tuning_job.json, trials.csv, objective.png and (a trial completed) best_hyperparameters.json."""
    record = describe(config, results)
    atomic_write_text(out_dir / TUNING_JOB_FILE, json.dumps(record, indent=2) + "\n")
    rows = results_table(results, config)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(out_dir / TRIALS_CSV, buf.getvalue())
    plot_objective(results, config.objective, out_dir / PLOT_FILE)
    best = best_result(results, config.objective)
    if best is not None:
        tuned = {p.name: best.hyperparameters[p.name] for p in config.space}
        params, unmapped = pipeline_parameters(tuned)
        payload = {
            "objective": {"MetricName": config.objective.metric_name, "Value": best.objective},
            "training_job": best.name,
            "hyperparameters": best.hyperparameters,
            "tuned": tuned,
            # For `fmrec pipeline run --local --param NAME=VALUE ...` (the plain branch's parameters).
            "pipeline_parameters": params,
            "not_pipeline_parameters": unmapped,
        }
        atomic_write_text(out_dir / BEST_HYPERPARAMETERS_FILE, json.dumps(payload, indent=2) + "\n")
    return record


def pipeline_parameters(tuned: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split tuned values into the pipeline parameters that set them and those no parameter sets (yet)."""
    by_hp = {h.hyperparameter: h.parameter for h in PIPELINE_PARAMETERS}
    params = {by_hp[name]: value for name, value in tuned.items() if name in by_hp}
    return params, {name: value for name, value in tuned.items() if name not in by_hp}


def plot_objective(results: Sequence[TrialResult], objective: Objective, path: Path) -> None:
    """Objective against trial number: completed, early-stopped and failed trials, and the best so far."""
    # local import: matplotlib is needed for the plot alone and slow to import; Agg must precede pyplot
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local import: after matplotlib.use("Agg")

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    styles = {
        COMPLETE: ("o", "tab:blue", "completed"),
        PRUNED: ("x", "tab:orange", "stopped early (last epoch)"),
    }
    for status, (marker, color, label) in styles.items():
        pts = [(r.number + 1, r.objective) for r in results if r.status == status and r.objective is not None]
        if pts:
            ax.scatter(*zip(*pts, strict=True), marker=marker, color=color, label=label, zorder=3)
    best_x, best_y, current = [], [], None
    for r in sorted(results, key=lambda r: r.number):
        if (
            r.status == COMPLETE
            and r.objective is not None
            and (current is None or objective.better(r.objective, current))
        ):
            current = r.objective
        if current is not None:
            best_x.append(r.number + 1)
            best_y.append(current)
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:green", label="best so far")
    failed = [r.number + 1 for r in results if r.status == FAILED]
    for i, x in enumerate(failed):
        ax.axvline(x, color="tab:red", alpha=0.3, linestyle="--", label="failed" if i == 0 else None)
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{objective.metric_name}\n(on the validation split)")
    ax.set_title(f"{objective.metric_name} ({objective.direction.lower()}) by trial")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png")
    plt.close(fig)


def default_parallelism() -> int:
    return usable_cores()
