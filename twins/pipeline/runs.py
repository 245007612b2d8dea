"""The local runs folder: list runs with their figures, compare them, and remove old ones."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmrec.errors import InputError

RUN_FILE = "run.json"
FINISHED = ("Succeeded", "Failed")


@dataclass(frozen=True)
class Run:
    """One run folder: run.json, and evaluation.json when the evaluate step wrote one."""

    folder: Path
    doc: dict[str, Any]
    evaluation: dict[str, Any] | None

    @property
    def run_id(self) -> str:
        return str(self.doc.get("run_id", self.folder.name))

    @property
    def status(self) -> str:
        return str(self.doc.get("status", "?"))

    def figures(self) -> dict[str, float]:
        """NDCG@10 (model, popularity, lift) and the model's pointwise metrics; {} without an evaluation."""
        ev = self.evaluation or {}
        ranking = ev.get("ranking") or {}
        out: dict[str, float] = {}
        for name in ("model", "popularity"):
            if isinstance(ranking.get(name), dict) and "ndcg_at_10" in ranking[name]:
                out[f"{name} ndcg_at_10"] = float(ranking[name]["ndcg_at_10"])
        if "ndcg_at_10_lift" in ranking:
            out["ndcg_at_10 lift"] = float(ranking["ndcg_at_10_lift"])
        for key, value in (ev.get("model") or {}).items():
            if isinstance(value, int | float):
                out[f"model {key}"] = float(value)
        return out


def read_run(folder: Path) -> Run:
    try:
        doc = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / RUN_FILE}: not a readable run record ({exc})") from None
    evaluation = None
    for path in sorted(folder.glob("s3/*/pipeline/*/evaluate*/evaluation/evaluation.json")):
        try:
            evaluation = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return Run(folder, doc, evaluation)


def list_runs(pipeline_dir: Path) -> list[Run]:
    """Every run with a run.json under `pipeline_dir` (runs/pipeline), oldest first (run ids start with the
    UTC time)."""
    if not pipeline_dir.is_dir():
        return []
    return [read_run(p) for p in sorted(pipeline_dir.iterdir()) if (p / RUN_FILE).is_file()]


def find_run(pipeline_dir: Path, run_id: str) -> Run:
    matches = [r for r in list_runs(pipeline_dir) if r.run_id.startswith(run_id)]
    if len(matches) != 1:
        known = ", ".join(r.run_id for r in list_runs(pipeline_dir)[-5:]) or "none"
        what = "no run" if not matches else f"{len(matches)} runs"
        raise InputError(f"{run_id!r}: {what} in {pipeline_dir} starts with it (latest: {known})")
    return matches[0]


def disk_bytes(folder: Path) -> int:
    """Bytes the folder holds on disk, each hard-linked file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            st = os.lstat(os.path.join(root, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def differing_parameters(runs: list[Run]) -> dict[str, list[Any]]:
    """The parameters whose values differ between the runs, in the runs' order."""
    names = sorted({k for r in runs for k in (r.doc.get("parameters") or {})})
    out = {}
    for name in names:
        values = [(r.doc.get("parameters") or {}).get(name) for r in runs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            out[name] = values
    return out


def clean(pipeline_dir: Path, keep: int, dry_run: bool = False) -> list[tuple[Run, int]]:
    """Remove all finished runs but the `keep` newest; returns what was (or would be) removed and its bytes.

    A run still in progress (no finished status) is never removed. The registry and the serving folder keep
    their own copies of a registered model, so removing its run leaves them whole.
    """
    if keep < 0:
        raise InputError(f"--keep {keep}: expected 0 or more")
    finished = [r for r in list_runs(pipeline_dir) if r.status in FINISHED]
    doomed = finished[: max(0, len(finished) - keep)]
    out = []
    for run in doomed:
        size = disk_bytes(run.folder)
        if not dry_run:
            shutil.rmtree(run.folder)
        out.append((run, size))
    return out
