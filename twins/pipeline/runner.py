"""The local pipeline runner: executes a SageMaker Pipeline definition JSON step by step on this machine.

A local folder stands in for S3 (run/s3/<bucket>/<key>), the training-job twin for the built-in FM container,
the project's own pipeline/steps modules for the processing code input, and twins.registry for the Model
Registry. Every run gets its own folder; nothing an earlier run wrote is touched.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import re
import secrets
import shutil
import tarfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec.io_utils import atomic_write_text
from fmrec.model.hyperparameters import HYPERPARAMETERS, parse_hyperparameters
from fmrec.numbers import parse_float, parse_int
from twins.pipeline.graph import DefinitionFormatError, all_steps, dependencies, topological_order
from twins.pipeline.staging import stage
from twins.registry.registry import Registry
from twins.training.job import run_training_job

log = logging.getLogger("fmrec.pipeline")

PROCESSING_ROOT = "/opt/ml/processing"
LOCAL_ARN = "arn:aws:sagemaker:local:000000000000:"
CODE_DIR = f"{PROCESSING_ROOT}/input/code"
_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class ParameterError(InputError):
    """A --param names no parameter of the definition, or its value has the wrong type."""


class StepFailed(FmrecError):
    """A step failed: the run stopped there; the message names the step and its kept log."""


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


# ---------------------------------------------------------------- parameters


def parse_parameters(definition: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
    """Defaults of the definition's parameters with `overrides` applied, converted to their declared types."""
    declared = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise ParameterError(
            f"--param {', '.join(unknown)}: unknown parameter; known: {', '.join(sorted(declared))}"
        )
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        kind = spec.get("Type", "String")
        if name not in overrides:
            values[name] = spec.get("DefaultValue")
            continue
        raw = str(overrides[name])
        try:
            if kind == "Integer":  # strict: '0_1' is no 1, nan/inf no Float (the API's parser too)
                values[name] = parse_int(raw)
            elif kind == "Float":
                values[name] = parse_float(raw)
            elif kind == "Boolean":
                if raw.lower() not in ("true", "false"):
                    raise ValueError(raw)
                values[name] = raw.lower() == "true"
            else:
                values[name] = raw
        except ValueError:
            raise ParameterError(f"--param {name}={raw}: expected {kind.lower()} value") from None
    missing = [n for n, v in values.items() if v is None]
    if missing:
        raise ParameterError(f"parameter(s) {', '.join(missing)} have no default; pass --param NAME=VALUE")
    return values


def split_assignments(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ParameterError(f"--param {item!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


# ---------------------------------------------------------------- the run


class LocalRun:
    """One execution of a definition: resolves expressions, runs steps, records everything in its folder."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        folder: Path,
        run_id: str,
        parameters: Mapping[str, Any],
        registry: Registry,
        progress: Callable[[str], None],
    ) -> None:
        self.definition = definition
        self.folder = folder
        self.s3_root = folder / "s3"
        self.run_id = run_id
        self.parameters = dict(parameters)
        self.registry = registry
        self.progress = progress
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[str, dict[str, Path]] = {}
        self.status: dict[str, str] = {}

    # ---- S3 stand-in

    def local_path(self, uri: str) -> Path:
        if uri.startswith("s3://"):
            bucket, _, key = uri[5:].partition("/")
            return self.s3_root / bucket / key
        if uri.startswith("file://"):
            return Path(uri[7:])
        if uri.startswith("/"):
            return Path(uri)
        raise InputError(f"{uri}: expected an s3:// URI or an absolute local path")

    # ---- expressions

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            if set(value) == {"Get"}:
                return self.get(str(value["Get"]))
            if set(value) == {"Std:Join"}:
                spec = value["Std:Join"]
                return str(spec.get("On", "")).join(_text(self.resolve(v)) for v in spec.get("Values", []))
            if set(value) == {"Std:JsonGet"}:
                return self.json_get(value["Std:JsonGet"])
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def get(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise DefinitionFormatError(f"pipeline definition: unknown parameter reference {path}")
            return self.parameters[rest]
        if head == "Execution":
            execution = {
                "PipelineExecutionId": self.run_id,
                "PipelineExecutionArn": f"{LOCAL_ARN}pipeline/local/execution/{self.run_id}",
                "PipelineName": "local",
                "StartDateTime": self.run_id[:15],
            }
            return execution[rest]
        if head == "Steps":
            step, _, prop = rest.partition(".")
            if step not in self.properties:
                raise DefinitionFormatError(f"{path}: step {step} has not run (yet)")
            return _walk(self.properties[step], prop, path)
        raise DefinitionFormatError(f"pipeline definition: cannot resolve {path}")

    def json_get(self, spec: Mapping[str, Any]) -> Any:
        ref = spec["PropertyFile"]
        ref = ref["Get"] if isinstance(ref, Mapping) else str(ref)
        match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.([^.]+)", ref)
        if not match or match.group(2) not in self.property_files.get(match.group(1), {}):
            raise DefinitionFormatError(f"JsonGet: no property file {ref}")
        path = self.property_files[match.group(1)][match.group(2)]
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: property file {match.group(2)} is not readable JSON ({exc})") from exc
        return _walk(doc, str(spec["Path"]), f"{path} at {spec['Path']}")

    # ---- steps

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
                    reason = _text(self.resolve(step["Arguments"].get("ErrorMessage", "")))
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
        doc = {
            "run_id": self.run_id,
            "status": result.status,
            "failure_reason": result.failure_reason,
            "steps": self.status,
            "seconds": result.seconds,
            "parameters": self.parameters,
            "registered": [p.arn for p in result.registered],
        }
        atomic_write_text(self.folder / "run.json", json.dumps(doc, indent=2, default=str))

    def _copy_in(self, uri: str, dest: Path, what: str) -> None:
        src = self.local_path(uri)
        if src.is_dir():
            stage(src, dest, self.folder, dirs_exist_ok=True)
        elif src.is_file():
            dest.mkdir(parents=True, exist_ok=True)
            stage(src, dest / src.name, self.folder)
        else:
            raise InputError(f"{uri}: {what} has no data (local path {src} does not exist)")

    def _processing(self, step: Mapping[str, Any], step_dir: Path) -> None:
        args = self.resolve(step["Arguments"])
        base = step_dir / "processing"
        for item in args.get("ProcessingInputs", []):
            local = item["S3Input"]["LocalPath"]
            if local == CODE_DIR:
                continue  # the code input: this checkout's own pipeline/steps and fmrec package
            self._copy_in(item["S3Input"]["S3Uri"], base / _relative(local), f"input {item['InputName']}")
        entry = args["AppSpecification"]["ContainerEntrypoint"]
        script = next((e for e in entry if e.startswith(CODE_DIR + "/") and e.endswith(".py")), None)
        if script is None:
            raise DefinitionFormatError(
                f"step {step['Name']}: entrypoint {entry} runs no script from {CODE_DIR}"
            )
        module = importlib.import_module(script[len(CODE_DIR) + 1 : -3].replace("/", "."))
        argv = [str(a) for a in args["AppSpecification"].get("ContainerArguments", [])]
        if len(inspect.signature(module.main).parameters) >= 2:
            module.main(base, argv)
        elif argv:
            raise DefinitionFormatError(f"step {step['Name']}: {script} takes no arguments, got {argv}")
        else:
            module.main(base)
        for out in args.get("ProcessingOutputConfig", {}).get("Outputs", []):
            src = base / _relative(out["S3Output"]["LocalPath"])
            dest = self.local_path(out["S3Output"]["S3Uri"])
            if src.is_dir():
                stage(src, dest, self.folder)
        self.properties[step["Name"]] = {**args, "ProcessingJobName": f"{self.run_id}-{step['Name']}"}
        self.property_files[step["Name"]] = {}
        outputs = {o["OutputName"]: o for o in args.get("ProcessingOutputConfig", {}).get("Outputs", [])}
        for pf in step.get("PropertyFiles", []):
            out = outputs[pf["OutputName"]]
            self.property_files[step["Name"]][pf["PropertyFileName"]] = (
                self.local_path(out["S3Output"]["S3Uri"]) / pf["FilePath"]
            )

    def _training(self, step: Mapping[str, Any], step_dir: Path) -> None:
        args = self.resolve(step["Arguments"])
        image = args["AlgorithmSpecification"]["TrainingImage"]
        if "factorization-machines" not in image:
            raise DefinitionFormatError(
                f"step {step['Name']}: image {image}; the local twin runs only the FM image"
            )
        job = f"{self.run_id}-{step['Name']}"
        root = step_dir / "job"
        config = root / "input" / "config"
        config.mkdir(parents=True)
        hp = {k: str(v) for k, v in args.get("HyperParameters", {}).items()}
        atomic_write_text(config / "hyperparameters.json", json.dumps(hp, indent=2))
        idc = {}
        for channel in args.get("InputDataConfig", []):
            name = channel["ChannelName"]
            idc[name] = {"ContentType": channel.get("ContentType", "")}
            self._copy_in(
                channel["DataSource"]["S3DataSource"]["S3Uri"], root / "input" / "data" / name, name
            )
        atomic_write_text(config / "inputdataconfig.json", json.dumps(idc, indent=2))
        count = int(args["ResourceConfig"]["InstanceCount"])
        if count > 1:
            # SageMaker gives each host its own S3 shards and averages the hosts' models; one local process
            # reading every shard is the single-host equivalent.
            log.info(
                "InstanceCount %d: the local twin trains one process on all shards of the train channel",
                count,
            )
        code = run_training_job(root)
        if code != 0:
            failure = root / "output" / "failure"
            reason = failure.read_text(encoding="utf-8").strip() if failure.is_file() else f"exit code {code}"
            raise StepFailed(f"training job {job}: {reason}")
        out = self.local_path(f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output")
        out.mkdir(parents=True)
        shutil.copy2(root / "model" / "model.tar.gz", out / "model.tar.gz")
        data = root / "output" / "data"
        if data.is_dir():
            with tarfile.open(out / "output.tar.gz", "w:gz") as tar:
                tar.add(data, arcname="data")
        metrics = (
            json.loads((data / "metrics.json").read_text("utf-8"))
            if (data / "metrics.json").is_file()
            else {}
        )
        model_uri = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output/model.tar.gz"
        self.properties[step["Name"]] = {
            **args,
            "TrainingJobName": job,
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
            "FinalMetricDataList": metrics.get("FinalMetricDataList", []),
        }

    def _tuning(self, step: Mapping[str, Any], step_dir: Path) -> None:
        # The local twin of a TuningStep (fmrec/tuning/job.py): the same request, trials by the local trainer.
        # local import: optuna and the tuner (~1 s) load only when a run takes the optional tuning branch
        from fmrec.tuning.job import run_tuning_job

        args = self.resolve(step["Arguments"])
        definition = args["TrainingJobDefinition"]
        image = definition["AlgorithmSpecification"]["TrainingImage"]
        if "factorization-machines" not in image:
            raise DefinitionFormatError(
                f"step {step['Name']}: image {image}; the local twin runs only the FM image"
            )
        channels = {
            c["ChannelName"]: self.local_path(c["DataSource"]["S3DataSource"]["S3Uri"])
            for c in definition.get("InputDataConfig", [])
        }
        if "train" not in channels or "test" not in channels:
            raise DefinitionFormatError(f"step {step['Name']}: a tuning job needs train and test channels")
        job = f"{self.run_id}-{step['Name']}"
        record, _ = run_tuning_job(
            {**args, "HyperParameterTuningJobName": job},
            train_dir=channels["train"],
            test_dir=channels["test"],
            output_dir=self.local_path(definition["OutputDataConfig"]["S3OutputPath"]),
            record_dir=step_dir / "tuning",
        )
        if record["BestTrainingJob"] is None:
            raise StepFailed(
                f"tuning job {job}: {record['FailureReason']}; see {step_dir / 'tuning' / 'trials.csv'}"
            )
        self.properties[step["Name"]] = {**args, **record}

    def _condition(self, step: Mapping[str, Any]) -> bool:
        results = [self._check(c) for c in step["Arguments"].get("Conditions", [])]
        for cond, ok in zip(step["Arguments"].get("Conditions", []), results, strict=True):
            log.info("condition %s %s: %s", cond["Type"], json.dumps(self.resolve(cond), default=str), ok)
        return all(results)

    def _check(self, cond: Mapping[str, Any]) -> bool:
        kind = cond["Type"]
        if kind == "Not":
            return not self._check(cond["Expression"])
        if kind == "Or":
            return any(self._check(c) for c in cond["Conditions"])
        if kind == "In":
            return self.resolve(cond["QueryValue"]) in [self.resolve(v) for v in cond["Values"]]
        left, right = self.resolve(cond["LeftValue"]), self.resolve(cond["RightValue"])
        if kind == "Equals":
            return bool(left == right)
        compare = {
            "GreaterThan": lambda a, b: a > b,
            "GreaterThanOrEqualTo": lambda a, b: a >= b,
            "LessThan": lambda a, b: a < b,
            "LessThanOrEqualTo": lambda a, b: a <= b,
        }
        if kind not in compare:
            raise DefinitionFormatError(f"condition type {kind} is not supported by the local runner")
        if left is None or right is None:
            raise InputError(f"condition {kind}: a value is missing ({left!r} vs {right!r})")
        return bool(compare[kind](float(left), float(right)))

    def _register(self, step: Mapping[str, Any]) -> Any:
        args = self.resolve(step["Arguments"])
        container = args["InferenceSpecification"]["Containers"][0]
        metrics_uri = args.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
        meta = args.get("CustomerMetadataProperties", {})
        package = self.registry.register(
            args["ModelPackageGroupName"],
            model_tar=self.local_path(container["ModelDataUrl"]),
            status=str(args.get("ModelApprovalStatus", "PendingManualApproval")),
            request=args,
            metrics_file=self.local_path(metrics_uri) if metrics_uri else None,
            lookup_dir=self.local_path(meta["LookupS3Uri"]) if "LookupS3Uri" in meta else None,
            source={"run_id": self.run_id, "run_folder": str(self.folder)},
        )
        self.properties[step["Name"]] = {"ModelPackageArn": package.arn}
        self.progress(f"registered {package.arn} ({package.status})")
        return package


def _relative(local_path: str) -> str:
    if not local_path.startswith(PROCESSING_ROOT + "/"):
        raise DefinitionFormatError(f"{local_path}: processing paths must be under {PROCESSING_ROOT}")
    return local_path[len(PROCESSING_ROOT) + 1 :]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _walk(doc: Any, path: str, where: str) -> Any:
    """Follow a property path such as `ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`."""
    value = doc
    pos = 0
    while pos < len(path):
        match = _TOKEN.match(path, pos)
        if not match:
            raise DefinitionFormatError(f"{where}: cannot parse property path {path!r}")
        pos = match.end()
        name, index, key1, key2 = match.groups()
        key = key1 if key1 is not None else key2
        try:
            if name is not None:
                value = value[name]
            elif index is not None:
                value = value[int(index)]
            elif isinstance(value, list):
                # Outputs['train']: SageMaker indexes named lists by their *Name field
                value = next(v for v in value if key in [x for k, x in v.items() if k.endswith("Name")])
            else:
                value = value[key]
        except (KeyError, IndexError, TypeError, StopIteration):
            raise InputError(f"{where}: no value at {path!r}") from None
    return value


def _check_parameter_inputs(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """A step input given by a parameter (InputDataUrl) must exist locally before the first step runs."""
    for step in all_steps(definition):
        for item in step.get("Arguments", {}).get("ProcessingInputs", []):
            ref = item.get("S3Input", {}).get("S3Uri")
            if isinstance(ref, Mapping) and str(ref.get("Get", "")).startswith("Parameters."):
                name = ref["Get"].split(".", 1)[1]
                uri = str(parameters[name])
                probe = LocalRun(
                    definition, Path("/nonexistent"), "", parameters, Registry("/nonexistent"), print
                )
                path = probe.local_path(uri) if uri.startswith(("/", "file://")) else None
                if path is not None and not path.exists():
                    raise ParameterError(f"--param {name}={uri}: {path} does not exist")
                if path is None:
                    raise ParameterError(
                        f"--param {name}={uri}: the local runner reads local data; pass --data-dir DIR "
                        f"or --param {name}=/absolute/path"
                    )


def _parameter_names(value: Any) -> set[str]:
    """Names of the pipeline parameters an expression reads ({"Get": "Parameters.Epochs"} -> Epochs)."""
    if isinstance(value, Mapping):
        ref = value.get("Get")
        if set(value) == {"Get"} and str(ref).startswith("Parameters."):
            return {str(ref).split(".", 1)[1]}
        return set().union(*(_parameter_names(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_parameter_names(v) for v in value)) if value else set()
    return set()


def _check_parameter_hyperparameters(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """Hyperparameters set by pipeline parameters (Epochs -> epochs) are validated before the first step runs:
    --param Epochs=-1 fails at once instead of at TrainModel, after preprocess has run."""
    probe = LocalRun(definition, Path("/nonexistent"), "", parameters, Registry("/nonexistent"), print)
    # parse_hyperparameters checks a whole set; these stand in for the required ones a step computes later.
    stand_ins = {"feature_dim": "1", "num_factors": "1", "predictor_type": "regressor"}
    for step in all_steps(definition):
        args = step.get("Arguments", {})
        if step.get("Type") == "Training":
            hps = args.get("HyperParameters")
        else:
            hps = (args.get("TrainingJobDefinition") or {}).get("StaticHyperParameters")
        for key, value in (hps or {}).items():
            names = _parameter_names(value)
            if not names or key not in HYPERPARAMETERS:
                continue
            try:
                resolved = probe.resolve(value)
            except FmrecError:
                continue  # it also reads a step's output: checked when that step has run
            try:
                parse_hyperparameters({**stand_ins, key: resolved})
            except InputError as exc:
                given = ", ".join(f"{n}={parameters[n]}" for n in sorted(names))
                raise ParameterError(f"--param {given}: {exc} (step {step.get('Name')})") from None


def _check_step_arguments(definition: Mapping[str, Any], parameters: Mapping[str, Any]) -> None:
    """A processing script with a `check_arguments(argv)` refuses its resolved arguments before any step runs.

    Only arguments made of literals and parameters are checked here (those that depend on an earlier step's
    output are known only when it has run); the step checks its arguments again when it runs, as on AWS.
    """
    probe = LocalRun(definition, Path("/nonexistent"), "", parameters, Registry("/nonexistent"), print)
    for step in all_steps(definition):
        if step.get("Type") != "Processing":
            continue
        app = step.get("Arguments", {}).get("AppSpecification", {})
        script = next((e for e in app.get("ContainerEntrypoint", []) if str(e).endswith(".py")), None)
        if script is None or not str(script).startswith(CODE_DIR + "/"):
            continue
        try:
            argv = [_text(a) for a in probe.resolve(app.get("ContainerArguments", []))]
        except (DefinitionFormatError, InputError):
            continue
        module = importlib.import_module(str(script)[len(CODE_DIR) + 1 : -3].replace("/", "."))
        check = getattr(module, "check_arguments", None)
        if check is None:
            continue
        try:
            check(argv)
        except InputError as exc:
            raise ParameterError(f"step {step['Name']}: {exc} (checked before any step ran)") from exc


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
    _check_parameter_inputs(definition, parameters)
    _check_parameter_hyperparameters(definition, parameters)
    _check_step_arguments(definition, parameters)
    run_id, folder = new_run_folder(runs_root)
    atomic_write_text(folder / "definition.json", json.dumps(definition, indent=2))
    progress(f"run {run_id}: {folder}")
    return LocalRun(definition, folder, run_id, parameters, registry, progress).run()
