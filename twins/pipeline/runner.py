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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fmrec.io_utils import atomic_write_text
from twins.pipeline.executors import StepExecutor, StepFailed
from twins.pipeline.expressions import text
from twins.pipeline.graph import DefinitionFormatError, all_steps, dependencies, topological_order
from twins.pipeline.parameters import ParameterError, check_before_run, parse_parameters, split_assignments
from twins.pipeline.record import RunResult, new_run_folder, write_run_record
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
        self.status: dict[str, str] = {}

    def run(self) -> RunResult:
        order = topological_order(self.definition)
        deps = dependencies(self.definition)
        steps = {s["Name"]: s for s in all_steps(self.definition)}
        branch_of = {}  # step → (condition, "IfSteps" | "ElseSteps")
        for s in steps.values():
            if s["Type"] == "Condition":
                for arm in ("IfSteps", "ElseSteps"):
                    for child in s["Arguments"].get(arm, []):
                        branch_of[child["Name"]] = (s["Name"], arm)
        outcomes: dict[str, str] = {}
        result = RunResult(self.run_id, self.folder, "Succeeded", self.status)
        for name in order:
            step = steps[name]
            cond = branch_of.get(name)
            if cond and outcomes.get(cond[0]) != cond[1]:
                self.status[name] = "NotExecuted"
                continue
            if any(self.status.get(d) not in ("Succeeded",) for d in deps[name]):
                self.status[name] = "NotExecuted"
                continue
            step_dir = self.folder / "steps" / name
            step_dir.mkdir(parents=True)
            self.progress(f"step {name} ({step['Type']}) ...")
            t0 = time.perf_counter()
            handler = logging.FileHandler(step_dir / "step.log", encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root = logging.getLogger()
            root.addHandler(handler)
            old_level = root.level
            root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
            try:
                kind = step["Type"]
                if kind == "Processing":
                    self._processing(step, step_dir)
                elif kind == "Training":
                    self._training(step, step_dir)
                elif kind == "Tuning":
                    self._tuning(step, step_dir)
                elif kind == "Condition":
                    outcomes[name] = "IfSteps" if self._condition(step) else "ElseSteps"
                    self.properties[name] = {"Outcome": outcomes[name] == "IfSteps"}
                elif kind == "RegisterModel":
                    result.registered.append(self._register(step))
                elif kind == "Fail":
                    reason = text(self.resolve(step["Arguments"].get("ErrorMessage", "")))
                    self.status[name] = "Failed"
                    result.status, result.failure_reason = "Failed", reason
                    log.error("Fail step %s: %s", name, reason)
                    self.progress(f"step {name}: pipeline failed: {reason}")
                    continue
                else:
                    raise DefinitionFormatError(
                        f"step {name}: type {kind} is not supported by the local runner"
                    )
                self.status[name] = "Succeeded"
                result.seconds[name] = time.perf_counter() - t0
                extra = f" → {outcomes[name]}" if name in outcomes else ""
                self.progress(f"step {name} done in {time.perf_counter() - t0:.1f} s{extra}")
            except Exception as exc:
                log.error("step %s failed:\n%s", name, traceback.format_exc())
                self.status[name] = "Failed"
                result.status = "Failed"
                result.failure_reason = f"step {name} failed: {exc}; log: {step_dir / 'step.log'}"
                self._record(result)
                raise StepFailed(result.failure_reason) from exc
            finally:
                root.removeHandler(handler)
                root.setLevel(old_level)
                handler.close()
        evaluation = next(
            (p for files in self.property_files.values() for k, p in files.items() if k == "Evaluation"), None
        )
        if evaluation is not None and evaluation.is_file():
            result.evaluation = json.loads(evaluation.read_text(encoding="utf-8"))
        self._record(result)
        return result

    def _record(self, result: RunResult) -> None:
        write_run_record(self.folder, self.run_id, result, self.parameters)


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
    run_id, folder = new_run_folder(runs_root)
    atomic_write_text(folder / "definition.json", json.dumps(definition, indent=2))
    progress(f"run {run_id}: {folder}")
    return LocalRun(definition, folder, run_id, parameters, registry, progress).run()
