"""cdk-nag acknowledgements: narrow, each on one construct with a reason; removing one fails the synth."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

import stacks.lambda_function
from stacks.config import StageConfig
from tests.support.cdk import Assembly, api_stack, new_app

ACK_KEY = "aws:cdk:acknowledged-rules"


def acknowledgements(assembly: Assembly) -> list[tuple[str, str, str]]:
    """(construct path, finding id, reason) of every acknowledgement recorded in the assembly's metadata."""
    found = []
    for path in sorted(assembly.outdir.glob("*.metadata.json")):
        for construct, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == ACK_KEY:
                    for finding, reason in entry["data"].items():
                        found.append((construct, finding.removeprefix("Annotation::"), reason))
    return found


def test_acknowledgements_are_narrow_and_explained(dev: Assembly) -> None:
    acks = acknowledgements(dev)
    assert acks, "no acknowledgement recorded: the metadata format changed?"
    for construct, finding, reason in acks:
        # never on a whole stack: always a construct inside one
        assert construct.count("/") >= 2, (construct, finding)
        # wildcard findings are acknowledged one wildcard at a time, never the whole rule
        if finding.startswith("AwsSolutions-IAM5"):
            assert "[" in finding and finding.endswith("]"), finding
        assert len(reason) >= 40, (finding, reason)
    # The full list is pinned so that a new acknowledgement is a reviewed change, not an accident.
    rules = Counter(finding.split("[")[0] for _c, finding, _r in acks)
    assert rules == {
        "AwsSolutions-IAM5": 36,  # 6 on the batch pipeline's role (stacks/pipeline.py)
        "AwsSolutions-L1": 4,
        "AwsSolutions-APIG3": 1,
        "AwsSolutions-COG4": 1,
        "AwsSolutions-SQS3": 1,
    }, rules


def test_api_key_mode_adds_only_its_own_acknowledgement(tmp_path: Path) -> None:
    """The API stack alone in api_key mode: synthesizes clean under AwsSolutionsChecks, with a usage plan."""
    config = StageConfig(
        stage="dev",
        region="us-east-1",
        name_prefix="fmrec-key",
        api_auth="api_key",
    )
    app = new_app(tmp_path / "out")
    stack = api_stack(app, "KeyApi", config, tmp_path)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::ApiGateway::Method", {"AuthorizationType": "NONE", "ApiKeyRequired": True}
    )
    t.resource_count_is("AWS::ApiGateway::UsagePlan", 1)
    t.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    t.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {"Quota": {"Limit": config.api_key_quota_per_day, "Period": "DAY"}},
    )


def test_an_unacknowledged_finding_fails_the_synth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PythonLambda's acknowledgements its two findings stop the synth: the checks are live."""
    monkeypatch.setattr(stacks.lambda_function, "acknowledge", lambda *args, **kwargs: None)
    config = StageConfig(stage="dev", region="us-east-1", name_prefix="fmrec-nag")
    app = new_app(tmp_path / "out")
    stack = cdk.Stack(app, "NagLambda", env=cdk.Environment(region=config.region))
    stacks.lambda_function.PythonLambda(
        stack,
        "Fn",
        config=config,
        function_name="fmrec-nag-fn",
        description="nag probe",
        code=lambda_.Code.from_inline("def handler(event, context):\n    return None\n"),
        handler="index.handler",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "out" / "validation-report.json").read_text())
    rules = {v["ruleName"] for p in report["pluginReports"] for v in p["violations"]}
    assert rules == {"AwsSolutions-L1", "AwsSolutions-IAM5[Resource::*]"}
