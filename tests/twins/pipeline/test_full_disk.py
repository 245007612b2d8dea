"""A full disk during a local pipeline run: one error line, run.json kept, no traceback (issue 23 item 7)."""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import FmrecError
from twins.pipeline import record
from twins.pipeline.executors import Outcome, StepExecutor
from twins.pipeline.runner import StepFailed, run_local
from twins.registry.registry import Registry

DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [],
    "Steps": [
        {"Name": "First", "Type": "Processing", "Arguments": {}},
        {"Name": "Second", "Type": "Processing", "Arguments": {}, "DependsOn": ["First"]},
    ],
}


def _full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


class FullFile:
    """A file on a full disk: every write and flush fails as ext4 and tmpfs fail them."""

    def write(self, data: str) -> int:
        raise _full()

    def flush(self) -> None:
        raise _full()

    def close(self) -> None:
        raise _full()


def _disk_fills_at(monkeypatch: pytest.MonkeyPatch, failing_step: str, record_too: bool) -> None:
    """Step `failing_step` hits ENOSPC while step.log is written; with record_too, every later run.json write
    fails as well (the first, written before any step, succeeds)."""

    def execute(self: StepExecutor, step: Mapping[str, Any], step_dir: Path) -> Outcome:
        if step["Name"] == failing_step:
            monkeypatch.setattr(record.StepLogHandler, "_open", lambda self: FullFile())
            if record_too:
                monkeypatch.setattr(
                    record, "atomic_write_text", lambda *a, **k: (_ for _ in ()).throw(_full())
                )
            raise _full()
        return Outcome()

    monkeypatch.setattr(StepExecutor, "execute", execute)


def _run(tmp_path: Path) -> Any:
    return run_local(DEFINITION, runs_root=tmp_path / "runs", registry=Registry(tmp_path / "registry"))


def _run_json(tmp_path: Path) -> dict[str, Any]:
    (folder,) = (tmp_path / "runs").iterdir()
    return dict(json.loads((folder / "run.json").read_text(encoding="utf-8")))


def test_a_full_disk_in_a_step_is_one_error_and_run_json_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _disk_fills_at(monkeypatch, "Second", record_too=False)
    with pytest.raises(StepFailed, match=r"step Second failed: \[Errno 28\] No space left on device"):
        _run(tmp_path)
    doc = _run_json(tmp_path)
    assert doc["status"] == "Failed" and doc["steps"] == {"First": "Succeeded", "Second": "Failed"}
    assert "No space left on device" in doc["failure_reason"]
    assert "Traceback" not in capsys.readouterr().err  # not even logging's "--- Logging error ---"


def test_when_run_json_cannot_be_written_the_last_one_stays_and_the_error_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _disk_fills_at(monkeypatch, "Second", record_too=True)
    with pytest.raises(FmrecError) as caught:  # the CLI prints an FmrecError as one `fmrec: error:` line
        _run(tmp_path)
    message = str(caught.value)
    assert message.startswith("step Second failed: [Errno 28] No space left on device; log: ")
    assert "run.json: cannot record the run (No space left on device): run.json keeps the state" in message
    doc = _run_json(tmp_path)
    assert doc["status"] == "Running" and doc["steps"] == {"First": "Succeeded"}  # written after First
    assert "Traceback" not in capsys.readouterr().err
    assert not list((tmp_path / "runs").glob("*/*.tmp*"))  # the failed write left no temporary file


def test_a_run_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "runs").write_text("a file where the runs folder should be")
    with pytest.raises(FmrecError, match=r"runs: cannot start a run there"):
        _run(tmp_path)
