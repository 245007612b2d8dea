"""Run a CreateHyperParameterTuningJob request locally: the local pipeline runner's TuningStep."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmrec.tuning.fm_trial import FMTrial, TrialData
from fmrec.tuning.local import TrialResult, TuningConfig, default_parallelism, run_search, write_outputs
from fmrec.tuning.space import ParamRange, TuningError, build_space, resolve_objective, validate_range

log = logging.getLogger(__name__)


def _field(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            raise TuningError(f"tuning request: missing {'.'.join(path)}")
        value = value[key]
    return value


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise TuningError(f"tuning request: {name} must be a whole number, got {value!r}") from None


def ranges_from_request(ranges: Mapping[str, Any]) -> tuple[ParamRange, ...]:
    """ParameterRanges (Integer/Continuous) → validated ParamRanges; categorical ranges are not offered."""
    if ranges.get("CategoricalParameterRanges"):
        raise TuningError("tuning request: CategoricalParameterRanges are not supported by the local tuner")
    out = []
    for kind, key in (("int", "IntegerParameterRanges"), ("float", "ContinuousParameterRanges")):
        for item in ranges.get(key, []):
            try:
                low, high = float(item["MinValue"]), float(item["MaxValue"])
            except (KeyError, TypeError, ValueError):
                raise TuningError(
                    f"tuning request: {key} item {item!r} needs numeric MinValue and MaxValue"
                ) from None
            out.append(
                validate_range(ParamRange(item["Name"], kind, low, high, item.get("ScalingType", "Auto")))
            )
    return build_space(out, base=())


def config_from_request(request: Mapping[str, Any], default_parallel: int | None = None) -> TuningConfig:
    """A TuningConfig from the (resolved) arguments of a TuningStep; every check runs before any trial."""
    job = _field(request, "HyperParameterTuningJobConfig")
    definition = _field(request, "TrainingJobDefinition")
    static = {str(k): str(v) for k, v in definition.get("StaticHyperParameters", {}).items()}
    strategy = job.get("Strategy")
    if strategy != "Bayesian":
        raise TuningError(f"tuning request: Strategy {strategy!r}; the local tuner runs Bayesian (TPE) only")
    objective_spec = _field(job, "HyperParameterTuningJobObjective")
    objective = resolve_objective(static.get("predictor_type", ""), objective_spec.get("MetricName"))
    if objective_spec.get("Type") != objective.direction:
        raise TuningError(
            f"tuning request: {objective.metric_name} must be {objective.direction}d, "
            f"not {objective_spec.get('Type')}d"
        )
    limits = _field(job, "ResourceLimits")
    max_jobs = _int(limits.get("MaxNumberOfTrainingJobs", 1), "ResourceLimits.MaxNumberOfTrainingJobs")
    parallel = _int(_field(limits, "MaxParallelTrainingJobs"), "ResourceLimits.MaxParallelTrainingJobs")
    # SageMaker runs MaxParallelTrainingJobs on separate instances; here they share this machine's cores.
    parallel = min(parallel, default_parallel or default_parallelism())
    config = TuningConfig(
        objective=objective,
        space=ranges_from_request(_field(job, "ParameterRanges")),
        static=static,
        max_jobs=max_jobs,
        max_parallel=max(1, parallel),
        early_stopping=job.get("TrainingJobEarlyStoppingType", "Off") == "Auto",
        seed=_int(job.get("RandomSeed", 0), "RandomSeed"),
        job_name=str(request.get("HyperParameterTuningJobName", "fmrec-tuning")),
    )
    config.validate()
    return config


def run_tuning_job(
    request: Mapping[str, Any],
    train_dir: Path,
    test_dir: Path,
    output_dir: Path,
    record_dir: Path,
    default_parallel: int | None = None,
) -> tuple[dict[str, Any], list[TrialResult]]:
    """Run the request on local channels; each trial's model goes to output_dir/<job>/output/model.tar.gz.

    output_dir stands for the request's S3OutputPath. record_dir gets tuning_job.json (with the sorted
    TrainingJobSummaries the pipeline reads), trials.csv, objective.png and best_hyperparameters.json.
    """
    config = config_from_request(request, default_parallel)
    trial = FMTrial(
        TrialData(str(train_dir), str(test_dir)), config.objective.metric_name, config.objective.metric_key
    )
    results = run_search(config, trial, record_dir, models_dir=output_dir)
    return write_outputs(config, results, record_dir), results
