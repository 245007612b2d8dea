"""A run's bookkeeping: its folder, its result, and run.json (status, steps, timings, parameters)."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmrec.errors import OutputError
from fmrec.io_utils import atomic_write_text


@dataclass
class RunResult:
    run_id: str
    folder: Path
    status: str  # "Running" (in run.json while the run goes on) | "Succeeded" | "Failed"
    steps: dict[str, str]  # step name → Succeeded | Failed | NotExecuted
    failure_reason: str | None = None
    registered: list[Any] = field(default_factory=list)
    evaluation: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each executed step


def write_run_record(folder: Path, run_id: str, result: RunResult, parameters: Mapping[str, Any]) -> None:
    """folder/run.json: the run's status, failure reason, step states and timings, parameters, packages."""
    doc = {
        "run_id": run_id,
        "status": result.status,
        "failure_reason": result.failure_reason,
        "steps": result.steps,
        "seconds": result.seconds,
        "parameters": dict(parameters),
        "registered": [p.arn for p in result.registered],
    }
    try:
        atomic_write_text(folder / "run.json", json.dumps(doc, indent=2, default=str))
    except OSError as exc:  # a full disk: the run.json written before this one stays (atomic writes)
        raise OutputError(f"{folder / 'run.json'}: cannot record the run ({exc.strerror or exc})") from exc


class StepLogHandler(logging.FileHandler):
    """A step's step.log; a failed write (a full disk) is remembered, not printed as logging's traceback."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8")
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.write_error: BaseException | None = None

    def write_failure(self, logger: logging.Logger, message: str) -> None:
        """The failure's traceback, in step.log only: the console gets the CLI's one-line error."""
        self.handle(logger.makeRecord(logger.name, logging.ERROR, "(runner)", 0, message, (), None))

    def handleError(self, record: logging.LogRecord) -> None:
        self.write_error = self.write_error or sys.exc_info()[1]

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:  # the final flush of a full disk's file
            self.write_error = self.write_error or exc


@contextlib.contextmanager
def step_log(path: Path) -> Iterator[StepLogHandler]:
    """The root logger also writes to `path` (at INFO at least) while the step runs."""
    handler = StepLogHandler(path)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def new_run_folder(runs_root: Path) -> tuple[str, Path]:
    """A fresh folder runs_root/<UTC time>-<random>; mkdir without exist_ok, so nothing is ever reused."""
    runs_root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
        folder = runs_root / run_id
        try:
            folder.mkdir()
            return run_id, folder
        except FileExistsError:
            continue
