"""A run's bookkeeping: its folder, its result, and run.json (status, steps, timings, parameters)."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmrec.io_utils import atomic_write_text


@dataclass
class RunResult:
    run_id: str
    folder: Path
    status: str  # "Succeeded" | "Failed"
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
    atomic_write_text(folder / "run.json", json.dumps(doc, indent=2, default=str))


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
