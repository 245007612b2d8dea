"""Tuning benchmark: a bounded local search on synthetic ml-100k-shaped data, then tuned vs seed settings.

Run: .venv/bin/python benchmarks/bench_tuning.py [--trials 32] [--parallel 2] [--seed 0]
     [--data-seed 0 | --data-dir ML100K_FOLDER] [--workdir DIR] [--range NAME=MIN:MAX[:SCALING] ...]
     [--candidates named-settings.json]

1. `fmrec data synth` (943 users, 1,682 items, 100,000 ratings) and `fmrec preprocess` (label rating >= 4).
2. The pipeline's search (default ranges, objective test:binary_classification_cross_entropy, TPE, early
   stopping) on the train channel, with a validation split carved from it.
3. Train on the whole train channel with (a) the seed settings (num_factors 64, epochs 30, mini_batch_size
   200, other defaults), (b) the pipeline's current defaults, (c) the trainer's RECOMMENDED set, (d) the best
   trial's settings and (e) the named settings in --candidates, and score each on the validation split (fit on
   the other 90%: the number to choose by) and on the test channel the gate uses (never seen by the search or
   the choice). One table; all sides run in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SEED_SETTINGS = {"num_factors": "64", "epochs": "30", "mini_batch_size": "200"}


def prepare(workdir: Path, seed: int, data_dir: Path | None = None) -> Path:
    from fmrec_cli.main import main as fmrec

    if (
        data_dir is not None
    ):  # a MovieLens folder (e.g. ml-100k with ua.base/ua.test) instead of synthetic data
        processed = workdir / f"processed-{data_dir.name}"
        if not (processed / "train").exists() and fmrec(
            ["preprocess", "--data-dir", str(data_dir), "--out", str(processed)]
        ):
            sys.exit(f"preprocess of {data_dir} failed")
        return processed

    # Named by the data seed only, so searches with other seeds reuse the same data.
    raw, processed = workdir / "raw" if seed == 0 else workdir / f"raw-{seed}", workdir / "processed"
    if seed != 0:
        processed = workdir / f"processed-{seed}"
    if not (processed / "train").exists():
        rc = fmrec(["data", "synth", "--out", str(raw), "--seed", str(seed)])
        rc = rc or fmrec(["preprocess", "--data-dir", str(raw), "--out", str(processed)])
        if rc:
            sys.exit(f"data preparation failed (exit {rc})")
    return processed


def fit_and_score(processed: Path, hp: dict[str, str]) -> dict[str, Any]:
    """Validation log loss (fit on the 90% split) to choose by; test metrics (fit on all) to report."""
    from fmrec.codec.reader import read_spmatrix
    from fmrec.model.fm import predict
    from fmrec.model.hyperparameters import parse_hyperparameters
    from fmrec.model.metrics import binary_metrics
    from fmrec.model.trainer import train
    from fmrec.tuning.fm_trial import TrialData, load_channels

    X, y = read_spmatrix(processed / "train")
    Xt, yt = read_spmatrix(processed / "test")
    if yt is None:
        raise SystemExit(f"{processed / 'test'}: the test channel has no labels")
    parsed = parse_hyperparameters(
        {"predictor_type": "binary_classifier", "feature_dim": str(X.shape[1]), **hp}
    )
    X_fit, y_fit, X_val, y_val = load_channels(TrialData(str(processed / "train")))
    val_params, _ = train(X_fit, y_fit, parsed)
    validation = binary_metrics(y_val, predict(val_params, X_val, "binary_classifier"))
    started = time.perf_counter()
    params, _ = train(X, y, parsed)
    seconds = time.perf_counter() - started
    metrics = binary_metrics(yt, predict(params, Xt, "binary_classifier"))
    return {**metrics, "train_seconds": seconds, "val_log_loss": validation["cross_entropy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=32)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="seed of the search")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--data-dir", type=Path, help="a MovieLens folder to use instead of synthetic data")
    parser.add_argument("--workdir", type=Path, help="keep data and results here (default: temporary)")
    parser.add_argument("--no-early-stopping", action="store_true", help="train every trial to its end")
    parser.add_argument(
        "--candidates",
        type=Path,
        default=Path(__file__).with_name("tuning_candidates.json"),
        help='JSON {"name": {hyperparameters}} to score as well (default: benchmarks/tuning_candidates.json)',
    )
    parser.add_argument("--range", dest="ranges", action="append", default=[], help="NAME=MIN:MAX[:SCALING]")
    args = parser.parse_args()

    from fmrec.tuning.fm_trial import FMTrial, TrialData
    from fmrec.tuning.local import (
        TuningConfig,
        best_result,
        format_table,
        results_table,
        run_search,
        write_outputs,
    )
    from fmrec.tuning.space import build_space, parse_range, resolve_objective

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    load = os.getloadavg()
    processed = prepare(workdir, args.data_seed, args.data_dir)
    objective = resolve_objective("binary_classifier")
    from fmrec.codec.reader import read_spmatrix

    feature_dim = read_spmatrix(processed / "train")[0].shape[1]
    config = TuningConfig(
        objective=objective,
        space=build_space(parse_range(text) for text in args.ranges),
        static={"predictor_type": "binary_classifier", "feature_dim": str(feature_dim)},
        max_jobs=args.trials,
        max_parallel=args.parallel,
        seed=args.seed,
        early_stopping=not args.no_early_stopping,
    )
    data_name = args.data_dir.name if args.data_dir is not None else f"data{args.data_seed}"
    out = workdir / f"search-{data_name}-seed{args.seed}{'-no-es' if args.no_early_stopping else ''}"
    started = time.perf_counter()
    data = TrialData(str(processed / "train"))
    results = run_search(config, FMTrial(data, objective.metric_name, objective.metric_key), out)
    search_seconds = time.perf_counter() - started
    write_outputs(config, results, out)
    print(format_table(results_table(results, config)))
    best = best_result(results, objective)
    if best is None:
        sys.exit("no trial completed")
    tuned = {p.name: best.hyperparameters[p.name] for p in config.space}

    from fmrec.model.hyperparameters import PIPELINE_PARAMETERS, RECOMMENDED

    current = {h.hyperparameter: str(h.default) for h in PIPELINE_PARAMETERS}
    sides: dict[str, dict[str, str]] = {"seed settings": SEED_SETTINGS, "pipeline defaults": current}
    sides["trainer RECOMMENDED"] = dict(RECOMMENDED)
    sides["best trial"] = tuned
    if args.candidates is not None:
        for name, hp in json.loads(args.candidates.read_text()).items():
            sides[name] = {k: str(v) for k, v in hp.items()}
    scores = {name: fit_and_score(processed, hp) for name, hp in sides.items()}
    counts = {s: sum(1 for r in results if r.status == s) for s in ("Completed", "Stopped", "Failed")}
    print(
        f"\nsearch: {args.trials} trials, {args.parallel} in parallel, seed {args.seed}: "
        f"{search_seconds:.1f} s wall; {counts}; load average at start {load[0]:.2f}"
    )
    print(f"best trial {best.name}: validation {objective.metric_name} = {best.objective:.4f}")
    print(json.dumps(tuned))
    print(
        "\nval log loss: fit on the search's 90% split, scored on its validation split (what to choose by);"
    )
    print("the rest: fit on the whole train channel, scored on the gate's test channel (reported only):")
    for name, hp in sides.items():
        print(f"{name}: {json.dumps(hp)}")
    print(f"{'settings':<20} {'val log loss':>12} {'accuracy':>9} {'auc':>7} {'log loss':>9} {'train s':>8}")
    for name, m in scores.items():
        print(
            f"{name:<20} {m['val_log_loss']:12.4f} {m['accuracy']:9.4f} {m['auc']:7.4f} "
            f"{m['cross_entropy']:9.4f} {m['train_seconds']:8.2f}"
        )
    seed_ll = scores["seed settings"]["cross_entropy"]
    for name, m in scores.items():
        if name != "seed settings":
            print(f"{name}: log loss {m['cross_entropy'] / seed_ll:.3f}x the seed settings'")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
