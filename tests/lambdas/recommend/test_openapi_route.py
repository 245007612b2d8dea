"""GET /openapi.json through the Lambda's handler: the deployed REST API routes it there (issue 23 item 5)."""

from __future__ import annotations

import json

from lambdas.recommend.app import lambda_handler
from lambdas.recommend.params import OPENAPI_PATH
from tests.support.lambda_world import context, event


def test_the_lambda_serves_its_openapi_document() -> None:
    result = lambda_handler(event("/openapi.json"), context())
    assert result["statusCode"] == 200
    headers = {k.lower(): v for k, v in (result.get("multiValueHeaders") or {}).items()}
    assert headers["content-type"] == ["application/json"]
    assert json.loads(result["body"]) == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def test_other_methods_on_it_are_404_json() -> None:
    result = lambda_handler(event("/openapi.json", method="POST"), context())
    assert result["statusCode"] == 404
    assert json.loads(result["body"])["code"] == "NotFound"
