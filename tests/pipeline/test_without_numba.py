"""The processing steps run where numba is not installed, as in SageMaker's SKLearn processing image."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline.steps import evaluate as ev

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Runs a step with numba (and matplotlib, also absent there) made unimportable, and fails if either loaded.
# The image: https://github.com/aws/sagemaker-scikit-learn-container (docker/1.4-2: numpy, scipy, pandas,
# scikit-learn, pyarrow; no numba), the one pipeline/session.py names (SKLEARN_VERSION).
BLOCKED = """
import importlib.abc, json, sys
from pathlib import Path

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("numba", "matplotlib"):
            raise ImportError(f"No module named {name!r} (not in the processing image)")
        return None

sys.meta_path.insert(0, Absent())
from pipeline.steps import STEP as step
doc = step.main(Path(sys.argv[1]), sys.argv[2:])
assert not {"numba", "matplotlib"} & set(sys.modules), sorted(m for m in sys.modules if "numba" in m)
print(json.dumps({k: doc[k] for k in KEYS}, default=str))
"""


def _run_blocked(step: str, keys: list[str], base: Path, argv: list[str]) -> dict[str, Any]:
    code = BLOCKED.replace("STEP", step).replace("KEYS", repr(keys))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code, str(base), *argv], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_evaluate_without_numba_scores_as_with_it(tiny_run: Any, tmp_path: Path) -> None:
    source = tiny_run.folder / "steps" / "EvaluateModel" / "processing" / "input"
    with_numba, without = tmp_path / "with", tmp_path / "without"
    for base in (with_numba, without):
        shutil.copytree(source, base / "input")
    expected = ev.main(with_numba)
    got = _run_blocked("evaluate", ["model", "popularity", "biases", "ranking"], without, [])
    assert got["ranking"] == json.loads(json.dumps(expected["ranking"]))
    assert got["model"] == expected["model"]
    for name in ("popularity", "biases"):  # scipy's products where the loops were: the same fit
        assert got[name] == pytest.approx(expected[name], rel=1e-9)
    assert "Plots unavailable" in (without / "output" / "evaluation" / "report.html").read_text()


def test_preprocess_without_numba_writes_the_same_channels(tiny_data: Path, tmp_path: Path) -> None:
    from pipeline.steps import preprocess  # local import: the module under test, run in-process as well

    bases = {}
    for name in ("with", "without"):
        base = tmp_path / name
        shutil.copytree(tiny_data, base / "input" / "data")
        bases[name] = base
    preprocess.main(bases["with"], [])
    _run_blocked("preprocess", ["feature_dim"], bases["without"], [])
    for channel in ("train", "test"):
        for part in sorted((bases["with"] / "output" / channel).iterdir()):
            assert (bases["without"] / "output" / channel / part.name).read_bytes() == part.read_bytes()
