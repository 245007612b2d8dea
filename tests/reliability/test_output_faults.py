"""Unwritable outputs and full disks in preprocess and training: a clear error, exit 2, nothing half-written.

Root ignores file permissions, so "unwritable" is a path under a regular file (ENOTDIR for everyone). A full
disk is simulated for real: RLIMIT_FSIZE in a child process (write() fails with EFBIG; Python ignores
SIGXFSZ), and, where the kernel lets us mount, a tiny tmpfs (ENOSPC).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import OutputError
from fmrec.stages.preprocess import OUTPUT_CHANNELS
from fmrec_cli.main import main as fmrec_main
from pipeline.steps.preprocess import main as preprocess_step
from twins.training.job import run_training_job

pytestmark = pytest.mark.slow


def leftovers(folder: Path) -> list[str]:
    """Temporary siblings atomic writes leave behind if they fail to clean up."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


def run_limited(argv: Sequence[str], max_file_bytes: int) -> subprocess.CompletedProcess[str]:
    """Run `fmrec ARGV` in a child whose files cannot grow past max_file_bytes (a disk that fills up)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "fmrec_cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def assert_clean_failure(rc: int, err: str, *names: str) -> None:
    assert rc == 2, err
    assert "Traceback" not in err
    for name in names:
        assert name in err, err


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-regular-file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 96 KiB tmpfs: writes past it fail with ENOSPC. Skipped where mounting is not permitted."""
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# --- preprocess ----------------------------------------------------------------------------------------


def test_preprocess_out_under_a_regular_file(trained: Any, regular_file: Path, capsys: Any) -> None:
    out = regular_file / "prep"
    rc = fmrec_main(["preprocess", "--data-dir", str(trained.data_dir), "--out", str(out)])
    assert_clean_failure(rc, capsys.readouterr().err, str(regular_file))
    assert regular_file.read_text() == "not a folder\n"


def test_preprocess_step_output_is_a_file(trained: Any, tmp_path: Path) -> None:
    base = tmp_path / "processing"
    shutil.copytree(trained.data_dir, base / "input" / "data")
    (base / "output").write_text("a file where the output folder should be\n")
    with pytest.raises(OutputError, match="output"):
        preprocess_step(base)


def test_preprocess_disk_full_rlimit(trained: Any, tmp_path: Path) -> None:
    out = tmp_path / "prep"
    # The lookup files fit; the ~100 KB train shard does not.
    proc = run_limited(["preprocess", "--data-dir", str(trained.data_dir), "--out", str(out)], 32 * 1024)
    assert_clean_failure(proc.returncode, proc.stderr, str(out), "File too large")
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_preprocess_disk_full_tmpfs(trained: Any, tiny_tmpfs: Path, capsys: Any) -> None:
    out = tiny_tmpfs / "prep"
    rc = fmrec_main(["preprocess", "--data-dir", str(trained.data_dir), "--out", str(out)])
    assert_clean_failure(rc, capsys.readouterr().err, str(out), "No space left")
    assert list(tiny_tmpfs.iterdir()) == []


def test_preprocess_step_disk_full_tmpfs(trained: Any, tiny_tmpfs: Path) -> None:
    """The SageMaker entry point with its output on a full disk: the pre-made channels stay empty."""
    base = tiny_tmpfs / "processing"
    (base / "input").mkdir(parents=True)
    os.symlink(trained.data_dir, base / "input" / "data")
    for name in OUTPUT_CHANNELS:  # SageMaker pre-creates the output channels, empty
        (base / "output" / name).mkdir(parents=True)
    with pytest.raises(OutputError, match="No space left"):
        preprocess_step(base)
    assert sorted(p.name for p in (base / "output").iterdir()) == sorted(OUTPUT_CHANNELS)
    assert all(not any((base / "output" / name).iterdir()) for name in OUTPUT_CHANNELS)


# --- training --------------------------------------------------------------------------------------------


def train_argv(trained: Any, model_dir: Path, output_dir: Path | None = None, *hp: str) -> list[str]:
    argv = ["train", "--channels", str(trained.prep_dir), "--model-dir", str(model_dir), "--no-progress"]
    if output_dir is not None:
        argv += ["--output-dir", str(output_dir)]
    for item in ("predictor_type=binary_classifier", "num_factors=4", "epochs=2", "mini_batch_size=200", *hp):
        argv += ["--hp", item]
    return argv


def test_train_model_dir_under_a_regular_file(trained: Any, regular_file: Path, capsys: Any) -> None:
    rc = fmrec_main(train_argv(trained, regular_file / "model"))
    assert_clean_failure(rc, capsys.readouterr().err, str(regular_file))


def test_train_output_dir_unwritable_leaves_no_model(
    trained: Any, tmp_path: Path, regular_file: Path, capsys: Any
) -> None:
    model_dir = tmp_path / "model"
    rc = fmrec_main(train_argv(trained, model_dir, regular_file / "out"))
    assert_clean_failure(rc, capsys.readouterr().err, str(regular_file))
    # A model without its metrics is a half-written training output.
    assert not (model_dir / "model.tar.gz").exists()
    assert not model_dir.exists() or leftovers(model_dir) == []


def test_train_disk_full_on_the_model(trained: Any, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    # num_factors 64: a ~30 KB model; the limit stops it.
    proc = run_limited(train_argv(trained, model_dir, None, "num_factors=64"), 16 * 1024)
    assert_clean_failure(proc.returncode, proc.stderr, "model.tar.gz", "File too large")
    assert not (model_dir / "model.tar.gz").exists()
    assert not (model_dir / "data" / "metrics.json").exists()
    assert leftovers(model_dir) == []


def test_train_disk_full_on_the_metrics(trained: Any, tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    # A ~3.5 KB model fits; 80 epochs of history in metrics.json (~20 KB: train metrics per epoch, the test
    # metrics once) do not.
    proc = run_limited(train_argv(trained, model_dir, None, "epochs=80"), 8 * 1024)
    assert_clean_failure(proc.returncode, proc.stderr, "metrics.json", "File too large")
    assert not (model_dir / "model.tar.gz").exists()
    assert not (model_dir / "data" / "metrics.json").exists()
    assert leftovers(model_dir) == [] and leftovers(model_dir / "data") == []


def test_training_job_metrics_unwritable(trained: Any, tmp_path: Path) -> None:
    """The SageMaker container layout: the model must not survive a job that failed to write its metrics."""
    root = tmp_path / "job"
    (root / "input" / "config").mkdir(parents=True)
    hp = {
        "feature_dim": str(trained.feature_dim),
        "predictor_type": "binary_classifier",
        "num_factors": "4",
        "epochs": "2",
        "mini_batch_size": "200",
    }
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    shutil.copytree(trained.prep_dir / "train", root / "input" / "data" / "train")
    (root / "output").mkdir()
    (root / "output" / "data").write_text("a file where output/data/ should be\n")
    assert run_training_job(root) == 2
    assert not (root / "model" / "model.tar.gz").exists()
    failure = (root / "output" / "failure").read_text()
    assert "output/data" in failure and "Traceback" not in failure


def test_training_job_output_is_a_file(trained: Any, tmp_path: Path) -> None:
    root = tmp_path / "job"
    (root / "input" / "config").mkdir(parents=True)
    hp = {
        "feature_dim": str(trained.feature_dim),
        "predictor_type": "binary_classifier",
        "num_factors": "4",
        "epochs": "1",
        "mini_batch_size": "200",
    }
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    shutil.copytree(trained.prep_dir / "train", root / "input" / "data" / "train")
    (root / "output").write_text("a file where output/ should be\n")
    assert run_training_job(root) == 2
    assert not (root / "model" / "model.tar.gz").exists()
