"""The local pipeline runner: executes a SageMaker Pipeline definition JSON step by step on this machine.

A local folder stands in for S3 (run/s3/<bucket>/<key>), the training-job twin for the built-in FM container,
the project's own pipeline/steps modules for the processing code input, and twins.registry for the Model
Registry. Every run gets its own folder; nothing an earlier run wrote is touched.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fmrec.codec.reader import reusing_reads
from fmrec.errors import OutputError
from fmrec.io_utils import atomic_write_text
from twins.pipeline.executors import StepExecutor, StepFailed
from twins.pipeline.graph import all_steps, dependencies, topological_order
from twins.pipeline.parameters import ParameterError, check_before_run, parse_parameters, split_assignments
from twins.pipeline.record import RunResult, new_run_folder, step_log, write_run_record
from twins.registry.registry import Registry

# The runner's interface, wherever each part lives (importers use these names from here).
__all__ = [
    "LocalRun",
    "ParameterError",
    "RunResult",
    "StepFailed",
    "new_run_folder",
    "parse_parameters",
    "run_local",
    "split_assignments",
]

log = logging.getLogger("fmrec.pipeline")


class LocalRun(StepExecutor):
    """One execution of a definition: runs its steps in order and records everything in its folder."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        folder: Path,
        run_id: str,
        parameters: Mapping[str, Any],
        registry: Registry,
        progress: Callable[[str], None],
    ) -> None:
        super().__init__(definition, folder, run_id, parameters, registry, progress)
        self.status: dict[str, str] = {}  # step → Succeeded | Failed | NotExecuted
        self.branches: dict[str, str] = {}  # Condition step → the arm it took

    def run(self) -> RunResult:
        """Every step in dependency order; run.json is written before the first step and after each one, so a
        run that dies (a full disk, a kill) leaves its last known state."""
        steps = {s["Name"]: s for s in all_steps(self.definition)}
        deps = dependencies(self.definition)
        branch_of = _branches(steps.values())
        result = RunResult(self.run_id, self.folder, "Running", self.status)
        self._save(result)
        # The steps run in this process and their inputs are hard links of the earlier steps' outputs: a
        # channel is decoded once per run (TrainModel's train channel is EvaluateModel's), not once a step.
        with reusing_reads():
            for name in topological_order(self.definition):
                cond = branch_of.get(name)
                taken = cond is None or self.branches.get(cond[0]) == cond[1]
                if not taken or any(self.status.get(d) != "Succeeded" for d in deps[name]):
                    self.status[name] = "NotExecuted"
                    continue
                self._run_step(steps[name], result)
                self._save(result)
        evaluation = next(
            (p for files in self.property_files.values() for k, p in files.items() if k == "Evaluation"), None
        )
        if evaluation is not None and evaluation.is_file():
            result.evaluation = json.loads(evaluation.read_text(encoding="utf-8"))
        if result.status == "Running":
            result.status = "Succeeded"
        self._save(result)
        return result

    def _run_step(self, step: Mapping[str, Any], result: RunResult) -> None:
        """One step with its own step.log; a failure is recorded in run.json and raised as StepFailed."""
        name = step["Name"]
        step_dir = self.folder / "steps" / name
        step_dir.mkdir(parents=True)
        self.progress(f"step {name} ({step['Type']}) ... log: {step_dir / 'step.log'}")
        t0 = time.perf_counter()
        with step_log(step_dir / "step.log") as step_log_file:
            try:
                outcome = self.execute(step, step_dir)
            except Exception as exc:
                step_log_file.write_failure(log, f"step {name} failed:\n{traceback.format_exc()}")
                self.status[name] = "Failed"
                result.status = "Failed"
                result.failure_reason = f"step {name} failed: {exc}; log: {step_dir / 'step.log'}"
                raise StepFailed(result.failure_reason + self._save_after_failure(result, name)) from exc
        if outcome.failure is not None:
            self.status[name] = "Failed"
            result.status, result.failure_reason = "Failed", outcome.failure
            log.error("Fail step %s: %s", name, outcome.failure)
            self.progress(f"step {name}: pipeline failed: {outcome.failure}")
            return
        if outcome.branch is not None:
            self.branches[name] = outcome.branch
        if outcome.package is not None:
            result.registered.append(outcome.package)
        self.status[name] = "Succeeded"
        result.seconds[name] = time.perf_counter() - t0
        extra = f" → {outcome.branch}" if outcome.branch else ""
        self.progress(f"step {name} done in {time.perf_counter() - t0:.1f} s{extra}")

    def _save(self, result: RunResult) -> None:
        write_run_record(self.folder, self.run_id, result, self.parameters)

    def _save_after_failure(self, result: RunResult, step: str) -> str:
        """Record a failed step; when even that cannot be written, say so in the step's error instead."""
        try:
            self._save(result)
        except OutputError as exc:
            return f"; {exc}: run.json keeps the state before step {step}"
        return ""


def _branches(steps: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
    """step -> (its Condition step, "IfSteps" | "ElseSteps") for every step inside a condition's arm."""
    branch_of = {}
    for s in steps:
        if s["Type"] == "Condition":
            for arm in ("IfSteps", "ElseSteps"):
                for child in s["Arguments"].get(arm, []):
                    branch_of[child["Name"]] = (s["Name"], arm)
    return branch_of


def run_local(
    definition: Mapping[str, Any],
    *,
    runs_root: Path,
    registry: Registry,
    overrides: Mapping[str, str] | None = None,
    progress: Callable[[str], None] = lambda msg: None,
) -> RunResult:
    """Validate parameters and the graph (before any step), then run every step in a new run folder."""
    parameters = parse_parameters(definition, overrides or {})
    topological_order(definition)
    check_before_run(definition, parameters)
    try:
        run_id, folder = new_run_folder(runs_root)
        atomic_write_text(folder / "definition.json", json.dumps(definition, indent=2))
    except OSError as exc:
        raise OutputError(f"{runs_root}: cannot start a run there ({exc.strerror or exc})") from exc
    progress(f"run {run_id}: {folder}")
    return LocalRun(definition, folder, run_id, parameters, registry, progress).run()
