"""The per-stage config: cdk.json's stages load, and bad values fail with the field named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.definition import GATE_CHECKS
from stacks.config import ConfigError, StageConfig, load_stage

REPO = Path(__file__).resolve().parents[2]


def _context() -> dict[str, Any]:
    return dict(json.loads((REPO / "cdk.json").read_text())["context"])


def test_cdk_json_stages_load() -> None:
    context = _context()
    dev = load_stage(context)
    prod = load_stage(context, "prod")
    assert (dev.stage, dev.retain, dev.schedule, dev.api_auth) == ("dev", False, None, "iam")
    assert (prod.stage, prod.retain, prod.api_auth) == ("prod", True, "iam")
    assert prod.schedule and prod.schedule.startswith("cron(")
    assert dev.endpoint_instance_type == "ml.c4.xlarge" == prod.endpoint_instance_type
    assert dev.endpoint_name == "fmrec-dev-endpoint"
    assert dev.bucket_name("123456789012") == "fmrec-dev-artifacts-123456789012-us-east-1"
    assert len(prod.bucket_name("123456789012")) <= 63


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("region", "mars-1", "region: expected an AWS region"),
        ("name_prefix", "Fmrec_Dev", "name_prefix: expected 3-20"),
        ("name_prefix", "a-very-long-name-prefix-x", "name_prefix: expected 3-20"),
        ("removal_policy", "snapshot", "removal_policy: expected 'destroy' or 'retain'"),
        ("api_auth", "cognito", "api_auth: expected 'iam' or 'api_key'"),
        ("gate_threshold", 1.5, "gate_threshold: expected 0 < x < 1"),
        ("endpoint_instance_type", "c4.xlarge", "endpoint_instance_type: expected 'ml.<family>.<size>'"),
        (
            "endpoint_instance_count",
            5,
            "endpoint_instance_count: expected 1 <= it <= endpoint_max_instance_count",
        ),
        ("schedule", "every day", "schedule: expected null, 'rate(...)' or 'cron(...)'"),
        ("data_capture_percent", 101, "data_capture_percent: expected 0..100"),
        ("log_retention_days", 0, "log_retention_days: expected a positive integer"),
        ("account", "12345", "account: expected 12 digits"),
        ("fast_path", "yes", "fast_path: expected true or false"),
    ],
)
def test_bad_values_name_the_field(field: str, value: Any, message: str) -> None:
    raw = dict(_context()["fmrec:stages"]["dev"])
    raw[field] = value
    with pytest.raises(
        ConfigError, match=r"fmrec:stages\.dev: " + message.replace("(", r"\(").replace(")", r"\)")
    ):
        StageConfig.from_mapping("dev", raw)


def test_unknown_and_missing_fields() -> None:
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['instance_typo'\]"):
        StageConfig.from_mapping("dev", {"region": "us-east-1", "name_prefix": "fmrec-x", "instance_typo": 1})
    with pytest.raises(ConfigError, match="missing field 'name_prefix'"):
        StageConfig.from_mapping("dev", {"region": "us-east-1"})
    with pytest.raises(ConfigError, match=r"no stage 'qa'; expected one of \['dev', 'prod'\]"):
        load_stage(_context(), "qa")
    with pytest.raises(ConfigError, match="expected a non-empty object 'fmrec:stages'"):
        load_stage({})


def test_the_stage_table_says_which_objective_each_gate_parameter_gates() -> None:
    """docs/deploy.md once implied that gate_threshold (GateMinAuc) gates the default ranking objective."""
    doc = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `gate_threshold`"))
    for check in GATE_CHECKS:
        if check.right_is_parameter:
            assert f"`{check.right}`" in row and f"`{check.objective}`" in row, (check, row)
