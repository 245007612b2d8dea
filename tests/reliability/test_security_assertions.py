"""CDK assertions behind docs/security.md not made in tests/stacks: auth on every method, who may invoke
the recommend Lambda, the exact grants of its role, no deletes or data writes by the app's own roles."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.cdk import build_stage, cdk_json_context, stage_templates

pytestmark = pytest.mark.slow

SECRETISH = ("SECRET", "PASSWORD", "TOKEN", "ACCESS_KEY", "PRIVATE")


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, Any]]]:
    """auth mode -> stack name -> synthesized template, for the dev stage in both API auth modes."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    stages = cdk_json_context()["fmrec:stages"]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for mode in ("iam", "api_key"):
        override = {
            "fmrec:stage": "dev",
            "fmrec:stages": {**stages, "dev": {**stages["dev"], "api_auth": mode}},
        }
        out[mode] = stage_templates(build_stage(tmp_path_factory.mktemp(f"sec-{mode}"), override))
    return out


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template.get("Resources", {}).items() if v["Type"] == kind}


def api_stack(templates: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (name,) = [n for n in templates if n.endswith("Api")]
    return templates[name]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: dict[str, Any]) -> Iterator[tuple[str, list[Any], dict[str, Any]]]:
    """(policy logical id, the roles it is attached to, statement) for every IAM policy of a template."""
    for lid, res in template.get("Resources", {}).items():
        if res["Type"] == "AWS::IAM::Policy":
            for statement in res["Properties"]["PolicyDocument"]["Statement"]:
                yield lid, res["Properties"].get("Roles", []), statement
        elif res["Type"] == "AWS::IAM::Role":
            for inline in res["Properties"].get("Policies", []):
                for statement in inline["PolicyDocument"]["Statement"]:
                    yield lid, [{"Ref": lid}], statement


def is_cdk_managed(roles: list[Any]) -> bool:
    """Roles of CDK's own singleton handlers (BucketDeployment, auto-delete, log retention...)."""
    return all("Ref" in r and r["Ref"].startswith(("Custom", "AWS679f53fac")) for r in roles) and bool(roles)


@pytest.mark.parametrize("mode", ["iam", "api_key"])
def test_every_method_requires_authentication(templates: Any, mode: str) -> None:
    api = api_stack(templates[mode])
    methods = resources(api, "AWS::ApiGateway::Method")
    assert methods
    for lid, method in methods.items():
        props = method["Properties"]
        if mode == "iam":
            assert props["AuthorizationType"] == "AWS_IAM", lid
        else:
            assert props.get("ApiKeyRequired") is True, lid
            assert props["AuthorizationType"] in ("NONE", "AWS_IAM"), lid
    if mode == "api_key":
        (plan,) = resources(api, "AWS::ApiGateway::UsagePlan").values()
        assert plan["Properties"]["Throttle"]["RateLimit"] > 0
        assert plan["Properties"]["Quota"]["Limit"] > 0
        assert resources(api, "AWS::ApiGateway::UsagePlanKey")
    else:
        assert not resources(api, "AWS::ApiGateway::ApiKey")


@pytest.mark.parametrize("mode", ["iam", "api_key"])
def test_only_this_api_may_invoke_the_recommend_lambda(templates: Any, mode: str) -> None:
    api = api_stack(templates[mode])
    (rest_api,) = resources(api, "AWS::ApiGateway::RestApi")
    functions = resources(api, "AWS::Lambda::Function")
    (recommend,) = [
        k for k, f in functions.items() if f["Properties"]["Handler"].startswith("lambdas.recommend")
    ]
    permissions = [
        p["Properties"]
        for p in resources(api, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [recommend, "Arn"]}
    ]
    assert permissions
    for perm in permissions:
        assert perm["Action"] == "lambda:InvokeFunction"
        assert perm["Principal"] == "apigateway.amazonaws.com"
        # The source ARN is built from this REST API's id: no other API (or account) may invoke the function.
        assert {"Ref": rest_api} in json.loads(json.dumps(perm["SourceArn"]))["Fn::Join"][1]
    for template in templates[mode].values():
        assert not resources(template, "AWS::Lambda::Url")
        for perm in resources(template, "AWS::Lambda::Permission").values():
            assert perm["Properties"]["Principal"] != "*"


def test_recommend_role_has_exactly_its_grants(templates: Any) -> None:
    api = api_stack(templates["iam"])
    functions = resources(api, "AWS::Lambda::Function")
    (fn,) = [f for f in functions.values() if f["Properties"]["Handler"].startswith("lambdas.recommend")]
    role_ref = fn["Properties"]["Role"]["Fn::GetAtt"][0]
    role = api["Resources"][role_ref]["Properties"]
    assert not role.get("ManagedPolicyArns")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"
    }
    actions = sorted(
        a
        for _lid, roles, s in policy_statements(api)
        if {"Ref": role_ref} in roles
        for a in as_list(s["Action"])
        if s["Effect"] == "Allow"
    )
    assert actions == sorted(
        [
            "logs:CreateLogStream",
            "logs:PutLogEvents",
            "xray:PutTraceSegments",
            "xray:PutTelemetryRecords",
            "sagemaker:InvokeEndpoint",
            "s3:GetObject",
            "s3:ListBucket",
            # the ratings table only (issue 21): the route stores, fold-in reads
            "dynamodb:PutItem",
            "dynamodb:Query",
        ]
    )
    for _lid, roles, s in policy_statements(api):
        if {"Ref": role_ref} in roles and any(a.startswith("dynamodb:") for a in as_list(s["Action"])):
            assert all("ratings" in str(r).lower() for r in as_list(s["Resource"])), s


@pytest.mark.parametrize("mode", ["iam"])
def test_no_own_role_deletes_objects_or_writes_input_data(templates: Any, mode: str) -> None:
    checked = 0
    for name, template in templates[mode].items():
        for lid, roles, s in policy_statements(template):
            if is_cdk_managed(roles) or s["Effect"] != "Allow":
                continue
            actions = as_list(s["Action"])
            checked += 1
            assert not [a for a in actions if a.startswith("s3:Delete") or a in ("s3:*", "*")], (name, lid, s)
            if any(a.startswith("s3:Put") for a in actions):
                text = json.dumps(s["Resource"])
                assert "/data/" not in text and '"data/' not in text, (name, lid, s)
    assert checked > 20


@pytest.mark.parametrize("mode", ["iam", "api_key"])
def test_no_secrets_in_function_environments(templates: Any, mode: str) -> None:
    for name, template in templates[mode].items():
        for lid, fn in resources(template, "AWS::Lambda::Function").items():
            variables = fn["Properties"].get("Environment", {}).get("Variables", {})
            assert not [v for v in variables if any(word in v.upper() for word in SECRETISH)], (name, lid)
