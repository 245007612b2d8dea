"""Odd train records and reruns into an existing model folder (issue 14 items 6 and 11).

`fmrec train` must end as the training-job twin does: a clear one-line error, the `failure` file, a non-zero
exit, and never a previous run's model.tar.gz or metrics.json beside the new failure.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fmrec_cli.main import main as cli_main
from tests.support.training_channels import default_hp, make_layout, one_hot, write_channel
from twins.training.job import run_training_job

pytestmark = pytest.mark.slow


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + _varint(len(payload)) + payload


def odd_record(shape: int) -> bytes:
    """One recordIO record in a layout other than the writer's: a Float64 tensor with keys and a shape."""
    tensor = (
        _field(0x0A, np.asarray([1.0], "<f8").tobytes())  # values, packed doubles
        + _field(0x12, _varint(0))  # keys
        + _field(0x1A, _varint(shape))  # shape
    )
    features = _field(0x0A, b"values") + _field(0x12, _field(0x1A, tensor))  # Value.float64_tensor
    label = _field(0x0A, b"values") + _field(0x12, _field(0x12, _field(0x0A, struct.pack("<f", 1.0))))
    record = _field(0x0A, features) + _field(0x12, label)
    return struct.pack("<II", 0xCED7230A, len(record)) + record + b"\0" * (-len(record) % 4)


def _argv(channels: Path, model_dir: Path, **hp: str) -> list[str]:
    params = [f"--hp={k}={v}" for k, v in default_hp(**hp).items()]
    return ["train", "--channels", str(channels), "--model-dir", str(model_dir), "--no-progress", *params]


def test_overflowing_shape_is_a_clear_error_with_a_failure_file(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j", test=False)
    (root / "input" / "data" / "train" / "part-00001.pbr").write_bytes(odd_record(1 << 63))
    model_dir = tmp_path / "m"
    proc = subprocess.run(
        [sys.executable, "-m", "fmrec_cli", *_argv(root / "input" / "data", model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "error" in ln.lower()]
    # the codec refuses the shape itself, naming the file, the record and the byte offset
    assert len(lines) == 1 and "part-00001.pbr: record 0" in lines[0], proc.stderr
    assert "malformed record: feature shape 9223372036854775808 is too large" in lines[0]
    failure = (model_dir / "failure").read_text()
    assert "part-00001.pbr: record 0" in failure and "is too large" in failure
    assert not (model_dir / "model.tar.gz").exists()


def test_the_job_twin_reports_the_same_record_as_a_client_error(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j", test=False)
    (root / "input" / "data" / "train" / "part-00001.pbr").write_bytes(odd_record((1 << 64) - 1))
    assert run_training_job(root) == 2
    failure = (root / "output" / "failure").read_text()
    assert failure.startswith(str(root / "input" / "data" / "train")) and "InternalServerError" not in failure


def test_a_failed_rerun_leaves_no_previous_model(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j", test=False)
    channels, model_dir = root / "input" / "data", tmp_path / "m"
    assert cli_main(_argv(channels, model_dir)) == 0
    assert (model_dir / "model.tar.gz").is_file() and (model_dir / "data" / "metrics.json").is_file()
    assert cli_main(_argv(channels, model_dir, num_factors="zero")) == 2
    assert sorted(p.name for p in model_dir.iterdir() if p.is_file()) == ["failure"]
    assert not (model_dir / "data" / "metrics.json").exists()
    # and the training-job twin behaves the same way
    assert run_training_job(root) == 0
    (root / "input" / "config" / "hyperparameters.json").write_text('{"epochs": "1"}')
    assert run_training_job(root) == 2
    assert not (root / "model" / "model.tar.gz").exists()
    assert not (root / "output" / "data" / "metrics.json").exists()


def test_a_rerun_killed_mid_training_leaves_no_previous_model(tmp_path: Path) -> None:
    X, y = one_hot(20000, 3)
    channels = tmp_path / "channels"
    write_channel(channels / "train", X, y)
    model_dir = tmp_path / "m"
    assert cli_main(_argv(channels, model_dir, epochs="1")) == 0
    old = model_dir / "model.tar.gz"
    assert old.is_file()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fmrec_cli", *_argv(channels, model_dir, epochs="500")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while old.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not old.exists(), "the previous run's model still looks current after the new run was killed"
