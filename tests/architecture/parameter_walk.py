"""Every pipeline parameter walked from the definition to its uses, recorded from the code as it runs."""

# .venv/bin/python -m tests.architecture.parameter_walk prints docs/architecture.md's walk table; that doc's
# "Parameter walks" says what is recorded and how a walk is counted.

from __future__ import annotations

import argparse
import ast
import inspect
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

from fmrec.features import options
from fmrec.features.settings import SETTINGS
from pipeline.definition import CDK_ARGUMENTS, get_pipeline
from pipeline.parameters import PipelineParameters
from pipeline.steps import evaluate as evaluate_step
from pipeline.steps import preprocess as preprocess_step
from pipeline.tuning import TuningOptions
from tests.support.model_files import make_model_tar
from tests.support.trained_world import synth_data

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("fmrec", "pipeline", "lambdas", "twins", "stacks", "fmrec_cli")
DEFINITION = "pipeline/parameters.py"  # where every walk starts
ASSEMBLER = "pipeline/definition.py"  # calls the builders; holds no parameter of its own
MAX_FILES = 6  # the target of issue 25
# The values the step scripts run with: none 0, 1 or a bool, so that identity names one parameter's object.
RUN_VALUES = {
    "LabelThreshold": "3.5",
    "TrainingInstanceCount": "3",
    "NegativesPerPositive": "3",
    "NegativeExponent": "0.6",
    "HistoryLength": "300",
    "SamplingPasses": "2",
}

Stack = tuple[tuple[str, str], ...]  # (file, function), outermost first


def _project_stack(frame: FrameType | None) -> Stack:
    out: list[tuple[str, str]] = []
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_absolute() and path.is_relative_to(ROOT):
            rel = path.relative_to(ROOT)
            if rel.parts[0] in CODE_DIRS or rel.as_posix() == "app.py":
                out.append((rel.as_posix(), frame.f_code.co_qualname))
        frame = frame.f_back
    return tuple(reversed(out))


@dataclass
class Recorder:
    """Call stacks of the reads of each parameter, and the objects read, followed through calls."""

    stacks: dict[str, set[Stack]] = field(default_factory=dict)
    # id(frame) -> id(object) -> (object, its parameters): what each live frame holds of the parameters
    held: dict[int, dict[int, tuple[Any, set[str]]]] = field(default_factory=dict)
    # config class -> the parameters its fields come from: a call that returns one hands it to its caller
    carriers: dict[type, list[str]] = field(default_factory=dict)

    def read(self, parameter: str, frame: FrameType | None, value: Any = None) -> None:
        self.stacks.setdefault(parameter, set()).add(_project_stack(frame))
        if frame is not None and value is not None and not isinstance(value, bool):
            self.hold(frame, value, [parameter])

    def hold(self, frame: FrameType, value: Any, parameters: list[str]) -> None:
        held = self.held.setdefault(id(frame), {})
        if id(value) not in held:
            held[id(value)] = (value, set())
        held[id(value)][1].update(parameters)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        """sys.setprofile hook: a call that receives an object its caller read (or a config built from the
        parameters, returned to it) is a read in the callee."""
        if event == "return":
            self.held.pop(id(frame), None)
            if frame.f_back is not None and type(arg) in self.carriers:
                self.hold(frame.f_back, arg, self.carriers[type(arg)])
            return
        if event != "call" or frame.f_back is None:
            return
        held = self.held.get(id(frame.f_back))
        if not held:
            return
        code = frame.f_code
        n_args = code.co_argcount + code.co_kwonlyargcount
        for name in code.co_varnames[:n_args]:
            value = frame.f_locals.get(name)
            hit = held.get(id(value))
            if hit is not None and hit[0] is value:
                for parameter in sorted(hit[1]):
                    self.read(parameter, frame, value)


@contextmanager
def _hooked(cls: type, names: Callable[[str, Any], list[str]], rec: Recorder) -> Iterator[None]:
    """Record every read of an attribute of `cls` that `names(attr, value)` maps to parameters."""
    original = cls.__getattribute__

    def getattribute(self: Any, attr: str) -> Any:
        value = original(self, attr)
        params = names(attr, value)
        if params:
            frame = sys._getframe(1)
            if isinstance(value, Mapping) and len(params) > 1:
                return _RecordingMapping(value, rec)
            for p in params:
                rec.read(p, frame, value)
        return value

    cls.__getattribute__ = getattribute  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls.__getattribute__ = original  # type: ignore[method-assign]


class _RecordingMapping(Mapping[str, Any]):
    """A mapping of parameter objects (PipelineParameters.hp, .objective_settings) that records each read."""

    def __init__(self, inner: Mapping[str, Any], rec: Recorder) -> None:
        self._inner, self._rec = inner, rec

    def __getitem__(self, key: str) -> Any:
        value = self._inner[key]
        self._rec.read(value.name, sys._getframe(1))
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._inner)

    def __len__(self) -> int:
        return len(self._inner)

    def values(self) -> Any:
        frame = sys._getframe(1)
        for v in self._inner.values():
            self._rec.read(v.name, frame)
        return self._inner.values()


def _parameter_names(attr: str, value: Any) -> list[str]:
    """The pipeline parameters a PipelineParameters field holds (none for its methods)."""

    if attr not in {f.name for f in fields(PipelineParameters)}:
        return []
    return [v.name for v in value.values()] if isinstance(value, Mapping) else [value.name]


def _steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for s in steps:
        yield s
        for branch in ("IfSteps", "ElseSteps"):
            yield from _steps(s.get("Arguments", {}).get(branch, []))


def _get(value: Any) -> str | None:
    """The parameter a definition value reads ({"Get": "Parameters.X"}, possibly in a Std:Join), or None."""
    found = re.findall(r"Parameters\.(\w+)", json.dumps(value))
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class StepRun:
    step: str  # the step's name in the definition
    script: str  # e.g. pipeline/steps/preprocess.py
    arguments: tuple[tuple[str, str | None], ...]  # (flag, the parameter it carries or None) with values


def step_runs(definition: Mapping[str, Any]) -> list[StepRun]:
    """The Processing steps whose arguments carry a parameter, as the definition gives them."""
    runs = []
    for s in _steps(definition["Steps"]):
        app = s.get("Arguments", {}).get("AppSpecification", {})
        argv = app.get("ContainerArguments") or []
        carried = [(argv[i - 1], _get(a)) for i, a in enumerate(argv) if not isinstance(a, str)]
        if carried:
            script = app["ContainerEntrypoint"][-1].split("/code/", 1)[1]
            runs.append(StepRun(s["Name"], script, tuple(carried)))
    return runs


def builder_of(step: str) -> str:
    """The module of pipeline/ whose `*_STEP` constant names `step` (the longest prefix of it)."""
    best = ("", "")
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.endswith("_STEP")
                and isinstance(node.value, ast.Constant)
                and step.startswith(str(node.value.value))
                and len(str(node.value.value)) > len(best[1])
            ):
                best = (path.relative_to(ROOT).as_posix(), str(node.value.value))
    if not best[0]:
        raise LookupError(f"no pipeline module names the step {step}")
    return best[0]


def derived_fields(config: type) -> dict[tuple[str, str], str]:
    """(class name, field) -> the `config` field it is built from: `Cls(kw=self.field)` in `config`'s own
    methods (PreprocessConfig.sampling() builds SamplingConfig, and so on)."""

    tree = ast.parse(inspect.getsource(config))
    out: dict[tuple[str, str], str] = {}
    for call in ast.walk(tree):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
            for kw in call.keywords:
                v = kw.value
                if (
                    kw.arg
                    and isinstance(v, ast.Attribute)
                    and isinstance(v.value, ast.Name)
                    and v.value.id == "self"
                ):
                    out[(call.func.id, kw.arg)] = v.attr
    return out


def build_definition(rec: Recorder) -> dict[str, Any]:

    with _hooked(PipelineParameters, _parameter_names, rec):
        return get_pipeline(region="us-east-1", **CDK_ARGUMENTS, tuning=TuningOptions())


def _run_steps(definition: Mapping[str, Any], work: Path) -> dict[str, dict[str, set[Stack]]]:
    """step name -> parameter -> the stacks of its reads while the step's script ran."""

    defaults = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    by_flag = {s.flag: s.field for s in SETTINGS}
    derived = derived_fields(options.PreprocessConfig)
    mains = {
        "pipeline/steps/preprocess.py": preprocess_step.main,
        "pipeline/steps/evaluate.py": evaluate_step.main,
    }
    synth_data(work / "preprocess" / "input" / "data")  # the trained world's small data set
    out: dict[str, dict[str, set[Stack]]] = {}
    done: dict[tuple[str, tuple[tuple[str, str | None], ...]], dict[str, set[Stack]]] = {}
    for run in sorted(step_runs(definition), key=lambda r: r.script != "pipeline/steps/preprocess.py"):
        key = (run.script, run.arguments)
        if key not in done:  # the tuned branch's evaluate step is the same run
            argv: list[str] = []
            names: dict[type, dict[str, str]] = {argparse.Namespace: {}, options.PreprocessConfig: {}}
            for flag, param in run.arguments:
                if param is not None:
                    value = RUN_VALUES.get(param, str(defaults[param]).lower())
                    argv += [flag, "".join(list(value))]  # a fresh string: its identity is this parameter's
                    names[argparse.Namespace][flag.lstrip("-").replace("-", "_")] = param
                    if flag in by_flag:
                        names[options.PreprocessConfig][by_flag[flag]] = param
            for (cls_name, attr), source in derived.items():
                if source in names[options.PreprocessConfig]:
                    cls = getattr(options, cls_name)
                    names.setdefault(cls, {})[attr] = names[options.PreprocessConfig][source]
            if run.script == "pipeline/steps/evaluate.py":
                _evaluate_inputs(work / "preprocess" / "output", work / run.step)
            base = work / ("preprocess" if run.script == "pipeline/steps/preprocess.py" else run.step)
            done[key] = _record(lambda: mains[run.script](base, argv), names)  # noqa: B023 (called at once)
        out[run.step] = done[key]
    return out


def _record(run: Callable[[], object], names: Mapping[type, Mapping[str, str]]) -> dict[str, set[Stack]]:
    """The stacks of every read `names` (class -> attribute -> parameter) maps while `run` runs."""
    rec = Recorder()
    for cls, by_attr in names.items():
        if cls is not argparse.Namespace and cls.__name__ != "PreprocessConfig":
            rec.carriers[cls] = sorted(set(by_attr.values()))
    with ExitStack() as hooks:
        for cls, by_attr in names.items():
            hooks.enter_context(
                _hooked(cls, lambda attr, _value, m=by_attr: [m[attr]] if attr in m else [], rec)
            )
        sys.setprofile(rec.profile)
        try:
            run()
        finally:
            sys.setprofile(None)
    return rec.stacks


def _evaluate_inputs(pre: Path, base: Path) -> None:
    """The evaluate step's inputs: the preprocess run's channels and a random model of their width."""

    manifest = json.loads((pre / "manifest" / "manifest.json").read_text(encoding="utf-8"))
    for channel in ("test", "train", "lookup", "holdout"):
        shutil.copytree(pre / channel, base / "input" / channel)
    (base / "input" / "model").mkdir(parents=True)
    make_model_tar(base / "input" / "model" / "model.tar.gz", "binary_classifier", 0, manifest["feature_dim"])


def files_of(stack: Stack, prefix: tuple[str, ...] = (DEFINITION,)) -> tuple[str, ...]:
    """The walk's files in order: `prefix`, then the stack's (consecutive repeats merged), no assembler."""
    out = list(prefix)
    for file, _ in stack:
        if file != ASSEMBLER and out[-1] != file:
            out.append(file)
    return tuple(out)


def returns(walk: tuple[str, ...]) -> list[str]:
    """The files a walk comes back to after leaving them."""
    return [f for i, f in enumerate(walk) if f in walk[:i]]


@dataclass(frozen=True)
class Walks:
    parameter: str
    walks: frozenset[tuple[str, ...]]

    @property
    def longest(self) -> tuple[str, ...]:
        return max(self.walks, key=lambda w: (len(set(w)), len(w), w))

    @property
    def files(self) -> int:
        return len(set(self.longest))

    @property
    def all_files(self) -> int:
        return len({f for w in self.walks for f in w})

    @property
    def returning(self) -> list[tuple[str, ...]]:
        return sorted(w for w in self.walks if returns(w))


def measure() -> list[Walks]:
    """Every pipeline parameter's walks, in the definition's order."""
    rec = Recorder()
    definition = build_definition(rec)
    walks: dict[str, set[tuple[str, ...]]] = {p["Name"]: set() for p in definition["Parameters"]}
    for param, stacks in rec.stacks.items():
        walks[param].update(files_of(s) for s in stacks)
    with tempfile.TemporaryDirectory(prefix="fmrec-walk-") as tmp:
        step_stacks = _run_steps(definition, Path(tmp))
    for step, by_param in step_stacks.items():
        prefix = (DEFINITION, builder_of(step))
        for param, stacks in by_param.items():
            walks[param].update(files_of(s, prefix) for s in stacks)
    return [Walks(name, frozenset(w)) for name, w in walks.items() if w]


def short(path: str) -> str:
    return path.removesuffix(".py")


def markdown_table(measured: list[Walks]) -> str:
    rows = [
        "| parameter | files | returns | walks | files in all | the longest walk |",
        "|---|---|---|---|---|---|",
    ]
    for w in measured:
        back = sorted({f for walk in w.returning for f in returns(walk)})
        rows.append(
            f"| `{w.parameter}` | {w.files} | {', '.join(f'`{short(f)}`' for f in back) or 'none'} | "
            f"{len(w.walks)} | {w.all_files} | {' → '.join(f'`{short(f)}`' for f in w.longest)} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(measure()), end="")
