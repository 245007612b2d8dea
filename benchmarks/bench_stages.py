"""The pipeline's three steps (Preprocess, TrainModel, EvaluateModel) on a local run's own inputs, one child
process per step, this tree and a base commit one after the other: CPU seconds (user + sys), wall seconds,
peak RSS, and whether each step's outputs are byte-identical between the two trees (TrainModel: its weights;
Preprocess: its channels and lookups, the manifests naming their input folder).

    .venv/bin/python -m fmrec_cli demo --no-serve --runs-dir /tmp/demo     # or any `pipeline run --local`
    nice .venv/bin/python benchmarks/bench_stages.py --run /tmp/demo/pipeline/<run id> --base 1f6f230

The base commit is exported with `git archive` (its numba kernels are compiled first, as `make setup` does);
both trees run with this venv. `--steps train` or `--epochs 1` keep a loaded machine's run short.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("preprocess", "train", "evaluate")
CODE = {
    "preprocess": "import pipeline.steps.preprocess as s; s.main(Path(sys.argv[1]))",
    "train": "from twins.training.job import run_training_job as r; sys.exit(r(sys.argv[1]))",
    "evaluate": "import pipeline.steps.evaluate as s; s.main(Path(sys.argv[1]), ['--objective', 'ranking'])",
}
OUTPUTS = {"preprocess": "output", "train": "model", "evaluate": "output/evaluation/evaluation.json"}
COMPILE = (
    "from twins.training.job import compile_kernels; compile_kernels()\n"
    "try:\n    from fmrec.evaluation.sparse_products import compile_kernels as c; c()\n"
    "except ImportError:\n    pass"
)


def stage_dirs(run: Path, work: Path, epochs: int | None, steps_run: list[str]) -> dict[str, Path]:
    """Each step's folder as the run gave it its inputs (copied, outputs left out)."""
    steps = run / "steps"
    dirs = {
        "preprocess": (steps / "Preprocess" / "processing", ["input"]),
        "train": (steps / "TrainModel" / "job", ["input"]),
        "evaluate": (steps / "EvaluateModel" / "processing", ["input"]),
    }
    out = {}
    for name, (src, keep) in dirs.items():
        if name not in steps_run:
            continue
        dst = work / name
        if not dst.is_dir():
            for part in keep:
                shutil.copytree(src / part, dst / part)
        out[name] = dst
    if epochs is not None and "train" in out:
        path = out["train"] / "input" / "config" / "hyperparameters.json"
        hp = json.loads(path.read_text())
        hp["epochs"] = str(epochs)
        path.write_text(json.dumps(hp))
    return out


def run_child(tree: Path, code: str, arg: str) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, peak RSS MB) of `python -c code arg` run from `tree`."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    prelude = "import sys\nfrom pathlib import Path\n"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", prelude + code, arg], cwd=tree, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: step failed (exit {os.waitstatus_to_exitcode(status)})")
    return usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024


def differing(a: Path, b: Path) -> list[str]:
    """Files under a and b (or the files a and b) whose bytes differ, or that one side lacks."""
    if a.is_file():
        return [] if filecmp.cmp(a, b, shallow=False) else [a.name]
    cmp = filecmp.dircmp(a, b)
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    out = [*cmp.left_only, *cmp.right_only, *mismatch, *errors]
    return out + [f"{d}/{f}" for d in cmp.common_dirs for f in differing(a / d, b / d)]


def same_weights(a: Path, b: Path) -> bool:
    """model.tar.gz of the two trees: the same w0, w and V bit for bit (each archive has its own mtime)."""
    import numpy as np  # local import: the parent needs numpy for this comparison alone

    from fmrec.model.artifact import load_model_tar  # local import: this tree's loader, for this check

    pa, pb = (load_model_tar(p / "model.tar.gz").params for p in (a, b))
    return pa.w0 == pb.w0 and np.array_equal(pa.w, pb.w) and np.array_equal(pa.V, pb.V)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, help="a local pipeline run's folder")
    parser.add_argument("--base", help="a commit to compare with (git archive); default: this tree alone")
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--epochs", type=int, help="override the training job's epochs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        work = Path(tmp)
        trees = {"this": ROOT}
        if args.base:
            base = work / "base-src"
            base.mkdir()
            tar = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.base], check=True, capture_output=True
            )
            subprocess.run(["tar", "-x", "-C", str(base)], input=tar.stdout, check=True)
            trees = {"base": base, "this": ROOT}
        for tree in trees.values():
            run_child(tree, COMPILE, "")
        print(f"load average {os.getloadavg()[0]:.2f} at the start", flush=True)
        for rep in range(args.repeat):
            for name, tree in trees.items():
                dirs = stage_dirs(args.run, work / f"{name}-{rep}", args.epochs, args.steps)
                for step in args.steps:
                    cpu, wall, rss = run_child(tree, CODE[step], str(dirs[step]))
                    load = os.getloadavg()[0]
                    print(
                        f"{name:4} {step:10} {cpu:6.1f} CPU-s {wall:6.1f} s wall  peak RSS {rss:6.0f} MB  "
                        f"(load {load:.1f})",
                        flush=True,
                    )
            if "base" in trees:
                for step in args.steps:
                    a, b = (work / f"{n}-{rep}" / step / OUTPUTS[step] for n in ("base", "this"))
                    if step == "train":
                        print(f"train: weights {'bit-identical' if same_weights(a, b) else 'DIFFER'}")
                    else:
                        # the manifests name the step's input folder, which differs between the two runs
                        diff = [f for f in differing(a, b) if not f.startswith("manifest/")]
                        print(f"{step}: outputs {'byte-identical' if not diff else f'differ: {diff}'}")


if __name__ == "__main__":
    main()
