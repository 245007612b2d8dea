"""Schemathesis against the running API twin: every response conforms to openapi.json (200, 400, 404, 503)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lambdas.recommend.params import OPENAPI_PATH
from tests.support.lambda_world import ENDPOINT, USERS, build_world, make_lookup
from tests.support.openapi_genres import with_model_genres
from twins.api.server import start_in_background
from twins.endpoint import server as endpoint_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    world = build_world(tmp_path_factory.mktemp("fuzz"))
    with endpoint_server.start_in_background(world.model_path, name=ENDPOINT, variant="v1") as endpoint:
        api = start_in_background(world.artifacts, endpoint.url, endpoint_name=ENDPOINT)
        try:
            yield api.url
        finally:
            api.stop()


# genre: the genres of build_world's model (a schema-valid genre it lacks is a 400 by design)
schema = schemathesis.openapi.from_dict(
    with_model_genres(json.loads(OPENAPI_PATH.read_text()), make_lookup(USERS))
)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_responses_conform_to_the_openapi_document(case: Any, api_url: str) -> None:
    response = case.call_and_validate(base_url=api_url)
    assert response.status_code in (200, 400, 404)
    assert "Traceback" not in response.text
