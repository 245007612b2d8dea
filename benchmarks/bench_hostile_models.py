"""Peak memory of loading hostile model artifacts: each one is refused, within a small bounded RSS.

The artifacts are the ones tests/model/test_artifact_hostile.py builds (a corrupt deflate stream, a shape
product that overflows, a row_sparse v declaring (2625, 2^18), a zip bomb and a gzip bomb of 256 MiB of zeros,
NaN weights). Each is loaded by `load_model_tar` in a fresh child process, which prints what it raised and its
peak RSS (VmHWM: a fresh exec starts its own high-water mark, unlike getrusage's ru_maxrss, which a forked
child inherits). A normal 200,000 x 64 model is measured too, for comparison.

    .venv/bin/python benchmarks/bench_hostile_models.py [--tree DIR]

--tree runs another checkout's fmrec (for example the code before a fix) on the same artifacts.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = ("corrupt_zip_deflate", "shape_overflow", "row_sparse_huge", "zip_bomb", "gzip_bomb", "nan_weights")
CHILD = """
import sys
sys.path.insert(0, sys.argv[1])
from fmrec.model.artifact import load_model_tar
try:
    load_model_tar(sys.argv[2])
    out = "loaded"
except Exception as exc:
    out = type(exc).__name__
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1]
print(out, int(hwm) // 1024)
"""


def builders() -> dict[str, object]:
    """The hostile-artifact builders of the tests (one definition of each artifact, not two)."""
    path = ROOT / "tests" / "model" / "test_artifact_hostile.py"
    spec = importlib.util.spec_from_file_location("fmrec_hostile_artifacts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: module.HOSTILE[name][0] for name in CASES} | {"normal_200k_x_64": _normal}


def _normal(folder: Path) -> Path:
    import numpy as np

    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams

    rng = np.random.default_rng(0)
    dim, k = 200_000, 64
    params = FMParams(
        0.0, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, k)).astype(np.float32)
    )
    hp = {"feature_dim": str(dim), "num_factors": str(k), "predictor_type": "regressor"}
    path = folder / "model.tar.gz"
    save_model_tar(FMModel(params, "regressor", hp), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose fmrec is measured")
    args = parser.parse_args()
    print(f"{'artifact':22s} {'bytes':>10s}  {'outcome':22s} {'peak RSS':>9s}")
    for name, build in builders().items():
        with tempfile.TemporaryDirectory() as tmp:
            path = build(Path(tmp))  # type: ignore[operator]
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(args.tree), str(path)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                outcome, peak = proc.stderr.strip().splitlines()[-1][:22], "?"
            else:
                outcome, peak = proc.stdout.split()
            print(f"{name:22s} {path.stat().st_size:>10,}  {outcome:22s} {peak:>5s} MiB")


if __name__ == "__main__":
    main()
