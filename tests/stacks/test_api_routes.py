"""Every path and method of the deployed REST API reaches the Lambda, so an unknown one answers its JSON 404,
not API Gateway's 403 "Missing Authentication Token"; GET /openapi.json serves the contract (issue 23, 5)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.cdk import Assembly


def _methods(template: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, METHOD) -> the method's properties, the path rebuilt from the resources' PathParts."""
    resources = template["Resources"]
    parts = {k: r["Properties"] for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::Resource"}

    def path(ref: Any) -> str:
        if isinstance(ref, dict) and "Fn::GetAtt" in ref:
            return ""  # the root resource
        props = parts[ref["Ref"]]
        return path(props["ParentId"]) + "/" + props["PathPart"]

    return {
        (path(r["Properties"]["ResourceId"]) or "/", r["Properties"]["HttpMethod"]): r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
    }


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_path_and_method_reaches_the_lambda_with_iam_auth(
    assemblies: dict[str, Assembly], stage: str
) -> None:
    methods = _methods(assemblies[stage].stack("Api"))
    expected = {
        ("/", "ANY"),
        ("/{proxy+}", "ANY"),
        ("/openapi.json", "GET"),
        ("/users", "ANY"),
        ("/users/{userId}", "ANY"),
        ("/users/{userId}/recommendations", "ANY"),
        ("/movies", "ANY"),
        ("/movies/{movieId}", "ANY"),
        ("/movies/{movieId}/similar", "ANY"),
    }
    assert expected <= set(methods), sorted(expected - set(methods))
    for key, props in methods.items():
        assert props["AuthorizationType"] == "AWS_IAM", key
        assert props["Integration"]["Type"] == "AWS_PROXY", key


def test_the_catch_all_routes_share_one_invoke_permission(dev: Assembly) -> None:
    permissions = [
        r["Properties"]["SourceArn"]["Fn::Join"][1][-1]
        for r in dev.resources("Api", "AWS::Lambda::Permission").values()
    ]
    assert permissions.count("/*/*/*") == 1, permissions
