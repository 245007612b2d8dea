"""Expressions of a definition resolved as SageMaker does: Get, Std:Join, Std:JsonGet, property paths."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fmrec.errors import InputError
from twins.pipeline.graph import DefinitionFormatError

LOCAL_ARN = "arn:aws:sagemaker:local:000000000000:"
_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


class Expressions:
    """The values a run's expressions read: its parameters, its steps' properties and property files, and a
    local folder standing in for S3 (folder/s3/<bucket>/<key>)."""

    def __init__(
        self, definition: Mapping[str, Any], folder: Path, run_id: str, parameters: Mapping[str, Any]
    ) -> None:
        self.definition = definition
        self.folder = folder
        self.s3_root = folder / "s3"
        self.run_id = run_id
        self.parameters = dict(parameters)
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[str, dict[str, Path]] = {}

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
                return str(spec.get("On", "")).join(text(self.resolve(v)) for v in spec.get("Values", []))
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
            return walk(self.properties[step], prop, path)
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
        return walk(doc, str(spec["Path"]), f"{path} at {spec['Path']}")

    # ---- steps


def text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def walk(doc: Any, path: str, where: str) -> Any:
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
