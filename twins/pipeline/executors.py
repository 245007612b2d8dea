"""How the local runner executes each kind of step: Processing (a pipeline/steps script), Training (the FM
training-job twin), Tuning, Condition and RegisterModel (twins.registry)."""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmrec.errors import FmrecError, InputError
from fmrec.io_utils import atomic_write_text
from pipeline.steps.script import call_main
from twins.pipeline.entry_points import CODE_DIR, PROCESSING_ROOT, entry_script, step_entry_point
from twins.pipeline.expressions import Expressions, text
from twins.pipeline.graph import DefinitionFormatError
from twins.pipeline.staging import stage
from twins.registry.registry import Registry
from twins.training.job import run_training_job

log = logging.getLogger("fmrec.pipeline")


class StepFailed(FmrecError):
    """A step failed: the run stopped there; the message names the step and its kept log."""


@dataclass(frozen=True)
class Outcome:
    """What a step that ran leaves for the run's bookkeeping."""

    branch: str | None = None  # a Condition step: "IfSteps" | "ElseSteps"
    package: Any = None  # a RegisterModel step: the registered twins.registry package
    failure: str | None = None  # a Fail step: its resolved ErrorMessage


class StepExecutor(Expressions):
    """Runs one step at a time, recording each step's properties for the expressions of later steps."""

    def __init__(
        self,
        definition: Mapping[str, Any],
        folder: Path,
        run_id: str,
        parameters: Mapping[str, Any],
        registry: Registry,
        progress: Callable[[str], None],
    ) -> None:
        super().__init__(definition, folder, run_id, parameters)
        self.registry = registry
        self.progress = progress

    def execute(self, step: Mapping[str, Any], step_dir: Path) -> Outcome:
        """Run one step of any supported type; its properties become readable by later steps."""
        name, kind = step["Name"], step["Type"]
        if kind == "Processing":
            self._processing(step, step_dir)
        elif kind == "Training":
            self._training(step, step_dir)
        elif kind == "Tuning":
            self._tuning(step, step_dir)
        elif kind == "Condition":
            branch = "IfSteps" if self._condition(step) else "ElseSteps"
            self.properties[name] = {"Outcome": branch == "IfSteps"}
            return Outcome(branch=branch)
        elif kind == "RegisterModel":
            return Outcome(package=self._register(step))
        elif kind == "Fail":
            return Outcome(failure=text(self.resolve(step["Arguments"].get("ErrorMessage", ""))))
        else:
            raise DefinitionFormatError(f"step {name}: type {kind} is not supported by the local runner")
        return Outcome()

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
        count = int(args.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1))
        if count > 1:
            # On SageMaker each instance writes its users' rows (resourceconfig.json); one local process with
            # no resourceconfig.json writes every user's, the single-instance equivalent.
            log.info("InstanceCount %d: the local twin runs step %s as one instance", count, step["Name"])
        for item in args.get("ProcessingInputs", []):
            local = item["S3Input"]["LocalPath"]
            if local == CODE_DIR:
                continue  # the code input: this checkout's own pipeline/steps and fmrec package
            self._copy_in(item["S3Input"]["S3Uri"], base / _relative(local), f"input {item['InputName']}")
        entry = args["AppSpecification"]["ContainerEntrypoint"]
        script = entry_script(entry)
        if script is None:
            raise DefinitionFormatError(
                f"step {step['Name']}: entrypoint {entry} runs no script from {CODE_DIR}"
            )
        argv = [str(a) for a in args["AppSpecification"].get("ContainerArguments", [])]
        call_main(step_entry_point(script, step["Name"]).main, base, argv, f"step {step['Name']}: {script}")
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
        code = run_training_job(root, report=lambda line: self.progress(f"step {step['Name']}: {line}"))
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
