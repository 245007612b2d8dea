"""The API stack serves POST /users/{userId}/rankings from the OpenAPI document, like the other routes."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match, Template

from tests.support.cdk import Assembly


def _resource_id(resources: dict[str, Any], part: str, parent: Any) -> str:
    (found,) = [
        rid
        for rid, r in resources.items()
        if r["Type"] == "AWS::ApiGateway::Resource"
        and r["Properties"]["PathPart"] == part
        and r["Properties"]["ParentId"] == parent
    ]
    return found


def test_rankings_route_is_a_validated_proxy_post_with_the_user_routes_auth(dev: Assembly) -> None:
    doc = dev.stack("Api")
    resources = doc["Resources"]
    (api_id,) = [rid for rid, r in resources.items() if r["Type"] == "AWS::ApiGateway::RestApi"]
    users = _resource_id(resources, "users", {"Fn::GetAtt": [api_id, "RootResourceId"]})
    user = _resource_id(resources, "{userId}", {"Ref": users})
    rankings = _resource_id(resources, "rankings", {"Ref": user})
    (method,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
        and r["Properties"]["ResourceId"] == {"Ref": rankings}
        and r["Properties"]["HttpMethod"] != "ANY"  # the catch-all beside it answers 404
    ]
    assert method["HttpMethod"] == "POST" and method["OperationName"] == "rankMovies"
    assert method["RequestParameters"] == {"method.request.path.userId": True}
    assert method["Integration"]["Type"] == "AWS_PROXY"
    methods = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    (user_method,) = [m for m in methods if m.get("OperationName") == "getRecommendations"]
    assert method["Integration"]["Uri"] == user_method["Integration"]["Uri"]
    assert method["AuthorizationType"] == user_method["AuthorizationType"] == "AWS_IAM"
    assert method["RequestValidatorId"] == user_method["RequestValidatorId"]
    Template.from_json(doc).has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "SourceArn": Match.object_like(
                {"Fn::Join": ["", Match.array_with([Match.string_like_regexp("/POST/users/\\*/rankings")])]}
            ),
        },
    )
