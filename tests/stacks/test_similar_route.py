"""The API stack serves GET /movies/{movieId}/similar from the OpenAPI document, like the user route."""

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


def test_similar_movies_route_is_a_validated_proxy_get_to_the_recommend_lambda(dev: Assembly) -> None:
    doc = dev.stack("Api")
    resources = doc["Resources"]
    (api_id,) = [rid for rid, r in resources.items() if r["Type"] == "AWS::ApiGateway::RestApi"]
    movies = _resource_id(resources, "movies", {"Fn::GetAtt": [api_id, "RootResourceId"]})
    movie = _resource_id(resources, "{movieId}", {"Ref": movies})
    similar = _resource_id(resources, "similar", {"Ref": movie})
    (method,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
        and r["Properties"]["ResourceId"] == {"Ref": similar}
        and r["Properties"]["HttpMethod"] == "GET"  # ANY beside it: the Lambda's 404 (test_api_routes.py)
    ]
    assert method["HttpMethod"] == "GET" and method["OperationName"] == "getSimilarMovies"
    assert method["RequestParameters"] == {
        "method.request.path.movieId": True,
        "method.request.querystring.k": False,
        "method.request.querystring.genre": False,
    }
    assert method["Integration"]["Type"] == "AWS_PROXY"
    methods = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"]
    (user_method,) = [m for m in methods if m.get("OperationName") == "getRecommendations"]
    # Same function, same authorization and validator as the user route.
    assert method["Integration"]["Uri"] == user_method["Integration"]["Uri"]
    assert method["AuthorizationType"] == user_method["AuthorizationType"]
    assert method["RequestValidatorId"] == user_method["RequestValidatorId"]
    # API Gateway may invoke the function for this path (LambdaIntegration adds one permission per method).
    Template.from_json(doc).has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "SourceArn": Match.object_like(
                {"Fn::Join": ["", Match.array_with([Match.string_like_regexp("/GET/movies/\\*/similar")])]}
            ),
        },
    )
