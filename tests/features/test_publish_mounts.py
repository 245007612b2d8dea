"""The preprocess step's entry point with its output channels as real mount points, as in a Processing job."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fmrec.stages.preprocess import OUTPUT_CHANNELS
from tests.support.seed import SEED, seed_data

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

# Runs inside `unshare -m`: bind-mounts a folder of `mounts` on each output channel (SageMaker mounts each
# ProcessingOutput LocalPath before the entry point starts), then runs the step's main().
SCRIPT = r"""
import json, subprocess, sys
from pathlib import Path
from fmrec.errors import FmrecError
from fmrec.stages.preprocess import OUTPUT_CHANNELS
from pipeline.steps import preprocess as step

base, mounts, argv = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
subprocess.run(["mount", "--make-rprivate", "/"], check=True)
for name in OUTPUT_CHANNELS:
    (base / "output" / name).mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "--bind", str(mounts / name), str(base / "output" / name)], check=True)
try:
    manifest = step.main(base, argv)
    print(json.dumps({"ok": manifest["counts"]}))
except FmrecError as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


def _unshare() -> str:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare(1) to make mount points")
    if subprocess.run([unshare, "-m", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("this machine does not allow a private mount namespace")
    return unshare


def _run_mounted(base: Path, mounts: Path, *argv: str) -> dict[str, object]:
    proc = subprocess.run(
        [_unshare(), "-m", sys.executable, "-c", SCRIPT, str(base), str(mounts), *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_outputs_land_in_the_mounted_channels(tmp_path: Path) -> None:
    base, mounts = tmp_path / "processing", tmp_path / "mounts"
    seed_data(base / "input" / "data")
    for name in OUTPUT_CHANNELS:
        (mounts / name).mkdir(parents=True)
    # the rating objective: its train channel is byte-identical to the seed's SDK 2.x output
    result = _run_mounted(base, mounts, "--shards", "2", "--objective", "rating")
    assert "ok" in result, result
    # What SageMaker would upload is what is in the mounted folders (seen here from outside the namespace).
    assert (
        b"".join(p.read_bytes() for p in sorted((mounts / "train").iterdir()))
        == (SEED / "train.pbr").read_bytes()
    )
    assert (mounts / "manifest" / "manifest.json").is_file()
    assert any((mounts / "lookup").iterdir()) and any((mounts / "test").iterdir())
    # Nothing else is left beside the channels (the temporary build folder is gone).
    assert sorted(p.name for p in (base / "output").iterdir()) == sorted(OUTPUT_CHANNELS)
    assert not any(p.name.startswith(".") for m in mounts.iterdir() for p in m.rglob("*"))


def test_a_channel_that_already_holds_files_is_refused_and_nothing_is_published(tmp_path: Path) -> None:
    base, mounts = tmp_path / "processing", tmp_path / "mounts"
    seed_data(base / "input" / "data")
    for name in OUTPUT_CHANNELS:
        (mounts / name).mkdir(parents=True)
    (mounts / "lookup" / "stale.json").write_text("{}")
    result = _run_mounted(base, mounts)
    assert "already holds files" in str(result.get("error")), result
    assert [p.name for p in (mounts / "lookup").iterdir()] == ["stale.json"]
    assert all(not any((mounts / name).iterdir()) for name in ("train", "test", "manifest"))
