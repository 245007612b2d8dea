"""The ratings table: on demand, PITR, encrypted; the recommend Lambda may only Query and Put it; the export
schedule (off by default) synthesizes clean under cdk-nag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks

from stacks.config import ConfigError, StageConfig
from stacks.storage import StorageStack
from tests.stacks.test_iam import render, statements
from tests.support.cdk import Assembly, new_app


def test_the_table_is_on_demand_recoverable_and_encrypted(dev: Assembly) -> None:
    (table,) = dev.resources("Storage", "AWS::DynamoDB::Table").values()
    props = table["Properties"]
    assert props["TableName"] == "fmrec-dev-ratings" and props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["KeySchema"] == [
        {"AttributeName": "userId", "KeyType": "HASH"},
        {"AttributeName": "movieId", "KeyType": "RANGE"},
    ]
    assert table["DeletionPolicy"] == "Delete"
    assert not dev.resources("Storage", "AWS::Scheduler::Schedule")  # the export is off by default


def test_prod_retains_the_table(prod: Assembly) -> None:
    (table,) = prod.resources("Storage", "AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"


def test_only_the_recommend_function_touches_the_table_and_only_query_and_put(dev: Assembly) -> None:
    grants: list[tuple[str, list[str], list[str]]] = []
    for _stack, logical_id, st in statements(dev):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if any(str(a).startswith("dynamodb:") for a in actions):
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            grants.append((logical_id, sorted(actions), [render(r) for r in resources]))
    assert len(grants) == 1, grants
    logical_id, actions, resources = grants[0]
    assert logical_id.startswith("RecommendPolicy")
    assert actions == ["dynamodb:PutItem", "dynamodb:Query"]
    table = "arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/fmrec-dev-ratings"
    assert resources == [table]
    (function,) = dev.resources("Api", "AWS::Lambda::Function").values()
    assert function["Properties"]["Environment"]["Variables"]["FMREC_RATINGS_TABLE"] == "fmrec-dev-ratings"


def _config(**extra: Any) -> StageConfig:
    return StageConfig(stage="dev", region="us-east-1", name_prefix="fmrec-rx", **extra)


def test_the_export_schedule_exports_to_the_folder_preprocess_merges(tmp_path: Path) -> None:
    config = _config(ratings_export_schedule="cron(0 1 ? * MON *)")
    app = new_app(tmp_path / "out")
    stack = StorageStack(app, "RxStorage", config=config, env=cdk.Environment(region="us-east-1"))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # fails on any unacknowledged cdk-nag finding
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "ScheduleExpression": "cron(0 1 ? * MON *)",
            "Target": {"Arn": "arn:aws:scheduler:::aws-sdk:dynamodb:exportTableToPointInTime"},
        },
    )
    schedule = next(iter(t.find_resources("AWS::Scheduler::Schedule").values()))
    raw = schedule["Properties"]["Target"]["Input"]
    text = raw if isinstance(raw, str) else json.dumps(raw)
    assert "data/ml-100k/extra-ratings" in text and "DYNAMODB_JSON" in text
    t.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Action": "dynamodb:ExportTableToPointInTime", "Sid": "ExportTable"})]
                )
            }
        },
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [("ratings_export_schedule", "every monday"), ("ratings_export_prefix", "data/ml-100k/ratings")],
)
def test_bad_export_settings_are_named(field: str, value: str) -> None:
    with pytest.raises(ConfigError, match=field):
        _config(**{field: value})
