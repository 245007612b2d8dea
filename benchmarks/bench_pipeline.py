"""Pipeline benchmark: wall time of the local pipeline on ml-100k-sized data, and the quality goal.

The quality goal: with the default pipeline configuration the model passes its own gate and beats both
baselines (popularity, biases-only) on AUC and log loss. The seed notebook's hyperparameters run beside it
in the same process, for comparison.

    .venv/bin/python benchmarks/bench_pipeline.py                      # synthetic ml-100k shape, seeds 0 1 2
    .venv/bin/python benchmarks/bench_pipeline.py --data-dir ~/ml-100k  # real MovieLens 100k (ua split)

Exits 1 when the default configuration misses the goal on any dataset.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fmrec.data.synth import SynthConfig, write_synth
from fmrec.model.hyperparameters import PIPELINE_PARAMETERS
from fmrec_cli.pipeline import local_definition
from pipeline.definition import SEED_HYPERPARAMETERS
from twins.pipeline.runner import run_local
from twins.registry.registry import Registry


def _beats(ev: dict[str, Any]) -> bool:
    return all(
        ev["model"]["auc"] > ev[b]["auc"] and ev["model"]["log_loss"] < ev[b]["log_loss"]
        for b in ("popularity", "biases")
    )


def _run(definition: dict[str, Any], data: Path, root: Path, overrides: dict[str, str]) -> tuple[Any, float]:
    t0 = time.perf_counter()
    result = run_local(
        definition,
        runs_root=root / "pipeline",
        registry=Registry(root / "registry"),
        overrides={"InputDataUrl": str(data), **overrides},
    )
    return result, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="a real MovieLens folder (default: synthetic data)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="synthetic data seeds")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    definition = local_definition()
    build_seconds = time.perf_counter() - t0
    print(f"definition build: {build_seconds:.2f} s, {len(json.dumps(definition)):,} characters")
    seed_overrides = {k: str(v) for k, v in SEED_HYPERPARAMETERS.items()}
    defaults = {h.parameter: h.default for h in PIPELINE_PARAMETERS}
    print(f"default hyperparameters: {defaults}")
    print(f"seed notebook's:         {SEED_HYPERPARAMETERS}")

    rows: list[dict[str, Any]] = []
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        root = Path(tmp)
        datasets: list[tuple[str, Path]] = []
        if args.data_dir:
            datasets.append((f"real {args.data_dir.name}", args.data_dir.resolve()))
        else:
            for seed in args.seeds:
                out = root / f"synth{seed}"
                write_synth(out, SynthConfig(seed=seed))
                datasets.append((f"synthetic ml-100k shape, seed {seed}", out))
        for label, data in datasets:
            for config, overrides in (("default", {}), ("seed notebook", seed_overrides)):
                result, seconds = _run(definition, data, root, overrides)
                ev = result.evaluation or {}
                row = {
                    "data": label,
                    "config": config,
                    "status": result.status,
                    "pipeline_seconds": round(seconds, 2),
                    "step_seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    **{
                        f"{n}_{m}": round(ev[n][m], 4)
                        for n in ("model", "popularity", "biases")
                        for m in ("auc", "log_loss")
                        if ev
                    },
                    "beats_both_baselines": bool(ev) and _beats(ev),
                }
                rows.append(row)
                if config == "default":
                    ok &= result.status == "Succeeded" and row["beats_both_baselines"]
                figures = "  ".join(
                    f"{m} "
                    + " ".join(
                        f"{n} {row.get(f'{n}_{m}', float('nan')):.4f}"
                        for n in ("model", "popularity", "biases")
                    )
                    for m in ("auc", "log_loss")
                )
                print(
                    f"{label:<34} {config:<13} {result.status:<9} pipeline {seconds:5.1f} s  {figures}",
                    flush=True,
                )
                print(f"    beats both baselines: {row['beats_both_baselines']}")
                print(f"    steps: {row['step_seconds']}")
    if args.json:
        args.json.write_text(json.dumps({"definition_build_seconds": build_seconds, "runs": rows}, indent=2))
    print("quality goal met" if ok else "quality goal NOT met by the default configuration")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
