"""`fmrec tune --local`: the pipeline's hyperparameter search, run here with the local trainer."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from fmrec_cli.hints import command


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="hyperparameter search (Bayesian/TPE, early stopping) with the local trainer",
        description=(
            "Run the same search the pipeline's TuningStep runs on SageMaker, with the local trainer: "
            "the same ranges, objective, Bayesian strategy (Optuna TPE) and early-stopping rule. "
            "The validation channel is carved from the train channel unless --validation is given."
        ),
    )
    p.add_argument("--local", action="store_true", help="run locally (the only mode offline; required)")
    p.add_argument("--train", type=Path, required=True, help="train channel: a recordIO file or folder")
    p.add_argument("--validation", type=Path, help="validation channel (default: carve it from --train)")
    p.add_argument(
        "--validation-fraction", type=float, default=None, help="share of train rows held out (0.1)"
    )
    p.add_argument("--split-seed", type=int, default=None, help="seed of the validation carve (0)")
    p.add_argument("--out", type=Path, required=True, help="new folder for the results")
    p.add_argument(
        "--predictor-type", default="binary_classifier", choices=["binary_classifier", "regressor"]
    )
    p.add_argument(
        "--objective-metric",
        "--objective",
        dest="objective",
        help="FM metric: test:binary_classification_accuracy | ..._cross_entropy | test:rmse; or "
        "validation:ndcg_at_10 (maximize): NDCG@10 on ratings carved from train (docs/tuning.md)",
    )
    p.add_argument(
        "--data-dir",
        type=Path,
        help="validation:ndcg_at_10: the MovieLens folder --train was preprocessed from (default: the one "
        "its manifest names)",
    )
    p.add_argument(
        "--validation-per-user",
        type=int,
        default=None,
        help="validation:ndcg_at_10: train ratings held out per user for the validation split (10)",
    )
    p.add_argument(
        "--range",
        dest="ranges",
        action="append",
        default=[],
        metavar="NAME=MIN:MAX[:SCALING]",
        help="override or add a search range (SCALING Auto|Linear|Logarithmic); repeatable",
    )
    p.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="static hyperparameter")
    p.add_argument("--max-jobs", type=int, default=20, help="trials in all (20)")
    p.add_argument("--max-parallel", type=int, default=None, help="trials at once (default: the cores here)")
    p.add_argument("--no-early-stopping", action="store_true", help="train every trial to its last epoch")
    p.add_argument("--seed", type=int, default=0, help="seed of the search (0)")
    p.add_argument("--json", action="store_true", help="print the tuning-job record as JSON, not a table")
    p.set_defaults(func=run)


def _static(pairs: list[str], predictor_type: str) -> dict[str, str]:
    static = {"predictor_type": predictor_type}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--hp {pair!r}: expected name=value")
        static[name.strip()] = value.strip()
    return static


def run(args: argparse.Namespace) -> int:
    # local import: CLI start-up (numpy, scipy and optuna load only when this command runs)
    from fmrec.io_utils import atomic_dir
    from fmrec.tuning.fm_trial import TrialData
    from fmrec.tuning.local import default_parallelism
    from fmrec.tuning.space import build_space, check_budget, check_static, parse_range, resolve_objective
    from fmrec.tuning.split import DEFAULT_SPLIT_SEED, DEFAULT_VALIDATION_FRACTION

    if not args.local:
        raise InputError(
            "fmrec tune: pass --local; on AWS the pipeline's TuningStep runs the search (UseTuning=true)"
        )
    if args.validation is not None and (args.validation_fraction is not None or args.split_seed is not None):
        raise InputError(
            "--validation-fraction/--split-seed carve a split from --train; not with --validation"
        )
    # Every check that needs no data runs first, so a bad range or objective fails before anything is read.
    args.objective = args.objective or _default_objective(args)
    objective = resolve_objective(args.predictor_type, args.objective, local=True)
    if objective.emitted_by_fm and (args.data_dir is not None or args.validation_per_user is not None):
        raise InputError(
            "--data-dir/--validation-per-user carve validation ratings for --objective-metric "
            "validation:ndcg_at_10; FM's own metrics use --validation or --validation-fraction"
        )
    if not objective.emitted_by_fm and (args.validation is not None or args.validation_fraction is not None):
        raise InputError(
            f"--objective-metric {objective.metric_name}: the validation split is ratings carved from train "
            "(--validation-per-user, --split-seed), not rows (--validation, --validation-fraction)"
        )
    space = build_space(parse_range(text) for text in args.ranges)
    parallel = (
        args.max_parallel if args.max_parallel is not None else min(default_parallelism(), args.max_jobs)
    )
    check_budget(args.max_jobs, parallel)
    static = _static(args.hp, args.predictor_type)
    check_static(static, space)
    for path in (args.train, args.validation):
        if path is not None and not path.exists():
            raise InputError(f"{path}: no such file or folder")

    split_seed = args.split_seed if args.split_seed is not None else DEFAULT_SPLIT_SEED
    with atomic_dir(args.out) as tmp:
        ranking = None
        if objective.emitted_by_fm:
            data = TrialData(
                str(args.train),
                None if args.validation is None else str(args.validation),
                args.validation_fraction
                if args.validation_fraction is not None
                else DEFAULT_VALIDATION_FRACTION,
                split_seed,
            )
        else:
            ranking = _carve_ratings(args, tmp / RANKING_VALIDATION_DIR, split_seed)
            data = TrialData(ranking.train, ranking.validation)
        results, record, config = _search(args, objective, space, static, parallel, data, ranking, tmp)
    return _report(args, results, record, config)


RANKING_VALIDATION_DIR = "validation"


def _param_flags(parameters: dict[str, Any]) -> list[str]:
    """`--param NAME=VALUE` for each pipeline parameter, as `fmrec pipeline run` takes them."""
    return [w for k, v in parameters.items() for w in ("--param", f"{k}={v}")]


def _data_dir_flag(args: argparse.Namespace) -> list[str]:
    """`--data-dir DIR` for the printed pipeline command: the folder --train was preprocessed from."""
    if args.data_dir is not None:
        return ["--data-dir", str(args.data_dir)]
    for manifest in (args.train.parent / "manifest" / "manifest.json", args.train / "manifest.json"):
        try:
            source = json.loads(manifest.read_text(encoding="utf-8"))["source"]["data_dir"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        return ["--data-dir", str(source)]
    return ["--data-dir", "DATA_DIR"]  # no manifest: the user must name the MovieLens folder


def _carve_ratings(args: argparse.Namespace, folder: Path, seed: int) -> Any:
    """Preprocess train minus the carved validation ratings into `folder`, with --train's settings."""
    # local import: CLI start-up (numpy and scipy load only when this command runs)
    from fmrec.io_utils import atomic_write_text
    from fmrec.stages.preprocess import preprocess
    from fmrec.tuning.ranking import (
        CARVE_FILE,
        DEFAULT_VALIDATION_PER_USER,
        RankingData,
        carve_dataset,
        carve_record,
        manifest_config,
    )

    cfg, manifest = manifest_config(args.train.parent)
    data_dir = (
        args.data_dir if args.data_dir is not None else Path(manifest.get("source", {}).get("data_dir", ""))
    )
    if not data_dir.is_dir():
        raise InputError(
            f"{data_dir}: no such folder; pass --data-dir, the MovieLens folder {args.train} was "
            "preprocessed from"
        )
    per_user = (
        args.validation_per_user if args.validation_per_user is not None else DEFAULT_VALIDATION_PER_USER
    )
    carved = carve_dataset(data_dir, cfg, per_user, seed)
    folder.mkdir(parents=True)
    preprocess(data_dir, folder, cfg, dataset=carved)
    atomic_write_text(folder / CARVE_FILE, json.dumps(carve_record(carved, per_user, seed), indent=2) + "\n")
    return RankingData(str(folder), float(cfg.threshold))


def _search(
    args: argparse.Namespace,
    objective: Any,
    space: Any,
    static: dict[str, str],
    parallel: int,
    data: Any,
    ranking: Any,
    tmp: Path,
) -> tuple[Any, dict[str, Any], Any]:
    # local import: CLI start-up (numpy, scipy and optuna load only when this command runs)
    from fmrec.io_utils import atomic_write_text
    from fmrec.tuning.fm_trial import FMTrial, load_channels
    from fmrec.tuning.local import TuningConfig, run_search, write_outputs

    X_fit, _, X_val, _ = load_channels(data)
    config = TuningConfig(
        objective=objective,
        space=space,
        static={"feature_dim": str(X_fit.shape[1]), **static},
        max_jobs=args.max_jobs,
        max_parallel=parallel,
        early_stopping=not args.no_early_stopping,
        seed=args.seed,
    )
    config.validate()
    print(
        f"tuning {objective.metric_name} ({objective.direction.lower()}): {args.max_jobs} trials, "
        f"{parallel} at a time; fit rows {X_fit.shape[0]:,}, validation rows {X_val.shape[0]:,}",
        file=sys.stderr,
    )
    trial = FMTrial(data, objective.metric_name, objective.metric_key, ranking)
    results = run_search(config, trial, tmp)
    record = write_outputs(config, results, tmp)
    if record.get("BestTrainingJob") is not None:
        record["DefaultSettings"] = _default_trial(trial, config, tmp)
        atomic_write_text(tmp / DEFAULT_TRIAL_FILE, json.dumps(record["DefaultSettings"], indent=2) + "\n")
        grid = _neighbour_settings(ranking, results, config, record["DefaultSettings"], tmp)
        if grid is not None:
            record["NeighbourSettings"] = grid
            atomic_write_text(tmp / NEIGHBOUR_SETTINGS_FILE, json.dumps(grid, indent=2) + "\n")
    return results, record, config


DEFAULT_TRIAL_FILE = "default_settings.json"
NEIGHBOUR_SETTINGS_FILE = "neighbour_settings.json"


def _neighbour_settings(
    ranking: Any, results: Any, config: Any, default: dict[str, Any], tmp: Path
) -> dict[str, Any] | None:
    """The recommended model (the best trial's, or the default settings' when they score as well) served
    with each neighbour table and weight on the carve (fmrec.tuning.ranking.neighbour_grid)."""
    if ranking is None:
        return None
    # local import: CLI start-up (numpy, scipy and optuna load only when this command runs)
    from fmrec.tuning.local import best_result
    from fmrec.tuning.ranking import neighbour_grid

    best = best_result(results, config.objective)
    if best is None or best.objective is None or best.model_path is None:
        return None
    keep_default = default["value"] is not None and not _beats(best.objective, default["value"], config)
    name, path = (
        ("the default settings", tmp / "default-model.tar.gz")
        if keep_default
        else (best.name, tmp / "trials" / best.model_path)
    )
    print(f"scoring the model of {name} with each neighbour setting on the same split ...", file=sys.stderr)
    try:
        grid = neighbour_grid(ranking, path)
    except Exception as exc:  # advice, as _default_trial's: its failure must not lose the search's results
        print(f"  (the neighbour settings could not be scored: {type(exc).__name__}: {exc})", file=sys.stderr)
        return None
    return None if grid is None else {"model": name, **grid}


def _default_objective(args: argparse.Namespace) -> str | None:
    """NDCG@10, the gate's metric, when --train has the preprocess manifest its carve needs; else FM's own."""
    manifest = args.train.parent / "manifest" / "manifest.json"
    carving = args.validation is None and args.validation_fraction is None
    if args.predictor_type == "binary_classifier" and carving and manifest.is_file():
        print(
            "objective: validation:ndcg_at_10, the metric the pipeline's gate judges (pass "
            "--objective-metric test:binary_classification_cross_entropy for FM's own)",
            file=sys.stderr,
        )
        return "validation:ndcg_at_10"
    if args.predictor_type == "binary_classifier":
        print(
            f"warning: no preprocess manifest at {manifest}, so the search optimises FM's cross-entropy "
            "while the pipeline's gate judges NDCG@10",
            file=sys.stderr,
        )
    return None


def _default_trial(trial: Any, config: Any, tmp: Path) -> dict[str, Any]:
    """The recommended settings (what the pipeline trains by default) scored on the search's own split."""
    # local import: CLI start-up (numpy, scipy and optuna load only when this command runs)
    from fmrec.model.hyperparameters import RECOMMENDED

    hp = {**RECOMMENDED, **config.static}
    print("scoring the default settings on the same split, for comparison ...", file=sys.stderr)
    doc: dict[str, Any] = {"objective": config.objective.metric_name, "value": None, "hyperparameters": hp}
    try:
        _, doc["value"] = trial(hp, lambda _curve: False, tmp / "default-model.tar.gz")
    except Exception as exc:  # the comparison is advice: its failure must not lose the search's results
        doc["error"] = f"{type(exc).__name__}: {exc}"
    return doc


def _beats(best: float, default: float, config: Any) -> bool:
    return best > default if config.objective.direction == "Maximize" else best < default


def _report(args: argparse.Namespace, results: Any, record: dict[str, Any], config: Any) -> int:
    # local import: CLI start-up (numpy, scipy and optuna load only when this command runs)
    from fmrec.tuning.local import (
        BEST_HYPERPARAMETERS_FILE,
        PLOT_FILE,
        TRIALS_CSV,
        format_table,
        results_table,
    )

    if args.json:
        record = {k: v for k, v in record.items() if k != "Trials"}
        print(json.dumps(record, indent=2))
    else:
        print(format_table(results_table(results, config)))
        best = record["BestTrainingJob"]
        trial_flags: list[str] = []  # the best trial's --params, when it is recommended over the defaults
        if best is not None:
            metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
            print(f"\nbest: {best['TrainingJobName']} {metric['MetricName']}={metric['Value']:.6f}")
            print("  " + " ".join(f"{k}={v}" for k, v in best["TunedHyperParameters"].items()))
            saved = json.loads((args.out / BEST_HYPERPARAMETERS_FILE).read_text(encoding="utf-8"))
            default = record.get("DefaultSettings")
            if default is not None and default["value"] is None:
                print(f"  (the default settings could not be scored here: {default.get('error')})")
            if (
                default is not None
                and default["value"] is not None
                and not _beats(metric["Value"], default["value"], config)
            ):
                print(
                    f"  the default settings score {default['value']:.6f} on the same split, as good or "
                    "better: keep them (the pipeline's defaults; no --param needed)"
                )
            else:
                if default is not None and default["value"] is not None:
                    print(f"  (the default settings score {default['value']:.6f} on the same split)")
                trial_flags = _param_flags(saved["pipeline_parameters"])
                run = command("pipeline", "run", "--local", *_data_dir_flag(args), *trial_flags)
                print(f"  pipeline: {run}")
        nb = record.get("NeighbourSettings")
        if nb is not None:
            best, own = nb["best"], nb["lookup"]
            print(
                f"  neighbour column, the model of {nb['model']} on the same split: lambda {best['l2']:g}, "
                f"{best['keep']} targets, weight {best['weight']:g} score {best['ndcg_at_10']:.4f} (the "
                f"lookup's {own['l2']:g} / {own['keep']} / {own['weight']:g}: {own['ndcg_at_10']:.4f})"
            )
            # one command with both choices: the recommended model's settings and its neighbour cell
            flags = [*trial_flags, *_param_flags(nb["pipeline_parameters"])]
            run = command("pipeline", "run", "--local", *_data_dir_flag(args), *flags)
            print(f"  pipeline with that cell: {run}")
            print(f"  (every neighbour cell's figure: {args.out / NEIGHBOUR_SETTINGS_FILE})")
        print(
            f"\nwrote {args.out / TRIALS_CSV}, {args.out / PLOT_FILE}, {args.out / BEST_HYPERPARAMETERS_FILE}"
        )
    if record["BestTrainingJob"] is None:
        print("fmrec: error: no trial completed; the reasons are in trials.csv", file=sys.stderr)
        return 1
    return 0
