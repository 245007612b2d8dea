"""Per-stage settings of the CDK app, read from cdk.json context into a typed, validated dataclass (the stacks
and `fmrec deploy preflight` read the same one)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from fmrec.errors import InputError

STAGES_KEY = "fmrec:stages"
STAGE_KEY = "fmrec:stage"

# The bucket layout: every IAM grant is scoped to one of these prefixes.
DATA_PREFIX = "data/"  # MovieLens (or synthetic) input the pipeline reads
PIPELINE_PREFIX = "pipeline/"  # step outputs of every execution (expire after artifact_expiration_days)
MODELS_PREFIX = "models/"  # training jobs' model.tar.gz (kept: registered packages point here)
CAPTURE_PREFIX = "datacapture/"  # endpoint data capture
CODE_PREFIX = "code/"  # the processing steps' code tree, one content-addressed folder per version
BATCH_PREFIX = "batch/"  # the batch pipeline's output, batch/<execution id>/recommendations/
SERVING_PREFIX = (
    "serving/"  # what the recommend Lambda reads: current.json, <variant>/lookup/, <variant>/model.tar.gz
)

_PREFIX_RE = re.compile(r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$")  # short enough for the bucket name
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_INSTANCE_RE = re.compile(r"^ml\.[a-z0-9]+\.[a-z0-9]+$")


class ConfigError(InputError):
    """A stage in cdk.json context is missing a field or has a value of the wrong kind."""


@dataclass(frozen=True)
class StageConfig:
    """One deployment stage (dev, prod): where it goes, how big it is and how it is protected."""

    stage: str
    region: str
    name_prefix: str
    account: str | None = None
    removal_policy: str = "destroy"  # "destroy" | "retain"; prod retains the bucket and the model registry
    artifact_expiration_days: int = 30
    noncurrent_version_expiration_days: int = 30
    access_log_expiration_days: int = 90
    log_retention_days: int = 30
    processing_instance_type: str = "ml.m5.xlarge"
    processing_instance_count: int = 1
    training_instance_type: str = "ml.c5.xlarge"
    training_instance_count: int = 1
    gate_threshold: float = 0.6
    schedule: str | None = None  # an EventBridge schedule expression; None: no scheduled runs
    endpoint_instance_type: str = "ml.c4.xlarge"
    endpoint_instance_count: int = 1
    endpoint_max_instance_count: int = 2
    invocations_per_instance: int = 1000  # target of SageMakerVariantInvocationsPerInstance (per minute)
    data_capture_percent: int = 0  # 0: data capture off
    api_auth: str = "iam"  # "iam" | "api_key"
    throttle_rate_limit: float = 50.0
    throttle_burst_limit: int = 100
    api_key_quota_per_day: int = 10000
    fast_path: bool = False  # FMREC_FAST_PATH: score in the Lambda instead of the endpoint (docs/api.md)
    # An EventBridge Scheduler expression exporting the ratings table to <bucket>/<ratings_export_prefix>/,
    # which preprocess merges when it is the input's extra-ratings/ folder; None: no export (docs/deploy.md).
    ratings_export_schedule: str | None = None
    ratings_export_prefix: str = "data/ml-100k/extra-ratings"

    def __post_init__(self) -> None:
        where = f"cdk.json context {STAGES_KEY}.{self.stage}"
        checks: list[tuple[bool, str]] = [
            (
                bool(_REGION_RE.match(self.region)),
                f"region: expected an AWS region name, got {self.region!r}",
            ),
            (
                bool(_PREFIX_RE.match(self.name_prefix)),
                f"name_prefix: expected 3-20 lowercase letters, digits or '-', got {self.name_prefix!r}",
            ),
            (
                self.account is None or bool(_ACCOUNT_RE.match(self.account)),
                f"account: expected 12 digits or null, got {self.account!r}",
            ),
            (
                self.removal_policy in ("destroy", "retain"),
                f"removal_policy: expected 'destroy' or 'retain', got {self.removal_policy!r}",
            ),
            (
                self.api_auth in ("iam", "api_key"),
                f"api_auth: expected 'iam' or 'api_key', got {self.api_auth!r}",
            ),
            (
                0.0 < self.gate_threshold < 1.0,
                f"gate_threshold: expected 0 < x < 1, got {self.gate_threshold!r}",
            ),
            (
                0 <= self.data_capture_percent <= 100,
                f"data_capture_percent: expected 0..100, got {self.data_capture_percent!r}",
            ),
            (
                1 <= self.endpoint_instance_count <= self.endpoint_max_instance_count,
                "endpoint_instance_count: expected 1 <= it <= endpoint_max_instance_count, "
                f"got {self.endpoint_instance_count} and {self.endpoint_max_instance_count}",
            ),
            (
                self.schedule is None or self.schedule.startswith(("rate(", "cron(")),
                f"schedule: expected null, 'rate(...)' or 'cron(...)', got {self.schedule!r}",
            ),
            (
                self.ratings_export_schedule is None
                or str(self.ratings_export_schedule).startswith(("rate(", "cron(", "at(")),
                "ratings_export_schedule: expected null, 'rate(...)', 'cron(...)' or 'at(...)', "
                f"got {self.ratings_export_schedule!r}",
            ),
            (
                isinstance(self.ratings_export_prefix, str)
                and self.ratings_export_prefix.startswith(DATA_PREFIX)
                and self.ratings_export_prefix.rstrip("/").endswith("/extra-ratings"),
                f"ratings_export_prefix: expected '{DATA_PREFIX}<data set>/extra-ratings' (the folder "
                f"preprocess merges), got {self.ratings_export_prefix!r}",
            ),
        ]
        for name in ("processing_instance_type", "training_instance_type", "endpoint_instance_type"):
            value = getattr(self, name)
            checks.append(
                (bool(_INSTANCE_RE.match(value)), f"{name}: expected 'ml.<family>.<size>', got {value!r}")
            )
        for name in (
            "artifact_expiration_days",
            "noncurrent_version_expiration_days",
            "access_log_expiration_days",
            "log_retention_days",
            "processing_instance_count",
            "training_instance_count",
            "invocations_per_instance",
            "throttle_burst_limit",
            "api_key_quota_per_day",
        ):
            value = getattr(self, name)
            checks.append(
                (isinstance(value, int) and value >= 1, f"{name}: expected a positive integer, got {value!r}")
            )
        checks.append(
            (isinstance(self.fast_path, bool), f"fast_path: expected true or false, got {self.fast_path!r}")
        )
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{where}: {message}")

    @property
    def retain(self) -> bool:
        return self.removal_policy == "retain"

    def name(self, suffix: str) -> str:
        """A deterministic resource name: <name_prefix>-<suffix>."""
        return f"{self.name_prefix}-{suffix}"

    def bucket_name(self, account: str) -> str:
        """<prefix>-artifacts-<account>-<region>: globally unique, and known to every stack without an export
        (`account` is the stack's account, a token when the stage leaves it to the deploying credentials)."""
        return f"{self.name_prefix}-artifacts-{account}-{self.region}"

    @property
    def pipeline_name(self) -> str:
        return self.name("pipeline")

    @property
    def batch_pipeline_name(self) -> str:
        return self.name("batch-recommend")

    @property
    def model_package_group_name(self) -> str:
        return self.name("models")

    @property
    def endpoint_name(self) -> str:
        return self.name("endpoint")

    @classmethod
    def from_mapping(cls, stage: str, raw: Mapping[str, Any]) -> StageConfig:
        where = f"cdk.json context {STAGES_KEY}.{stage}"
        known = {f.name for f in fields(cls)} - {"stage"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
        for required in ("region", "name_prefix"):
            if required not in raw:
                raise ConfigError(f"{where}: missing field {required!r}")
        try:
            return cls(stage=stage, **raw)
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def load_stage(context: Mapping[str, Any], stage: str | None = None) -> StageConfig:
    """The StageConfig named by `stage` (default: the context's fmrec:stage) from the fmrec:stages context."""
    stages = context.get(STAGES_KEY)
    if not isinstance(stages, Mapping) or not stages:
        raise ConfigError(f"cdk.json context: expected a non-empty object {STAGES_KEY!r}")
    name = stage or context.get(STAGE_KEY) or "dev"
    if name not in stages:
        raise ConfigError(
            f"cdk.json context {STAGES_KEY}: no stage {name!r}; expected one of {sorted(stages)}"
        )
    return StageConfig.from_mapping(str(name), stages[name])


def read_cdk_context(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The context of a cdk.json (what `cdk synth` gives the app before any -c)."""
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from None
    context = raw.get("context", {}) if isinstance(raw, dict) else None
    if not isinstance(context, dict):
        raise ConfigError(f"{path}: expected an object with a 'context' object")
    return dict(context)
