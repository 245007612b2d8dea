"""A fault inside scoring: a clean 500 in the error shape of each path, never a stack trace."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from tests.support.asgi import asgi_post
from twins.endpoint.app import ServedEndpoint, create_app


@pytest.fixture
def broken_app() -> Any:
    # params that fm.predict cannot use: the scoring step itself fails, after a valid request was parsed.
    model = SimpleNamespace(params=SimpleNamespace(w0=0.0, w=None, V=None, feature_dim=4))
    return create_app([ServedEndpoint("fm", "v1", model, 4, "binary_classifier")])


JSON_HEADERS = {"content-type": "application/json"}
BODY = orjson.dumps({"instances": [{"features": [1, 0, 0, 1]}]})


def test_container_path_fault_is_a_json_500(broken_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="twins.endpoint.app"):
        status, _, out = asgi_post(broken_app, "/invocations", BODY, JSON_HEADERS)
    assert status == 500
    doc = orjson.loads(out)
    assert doc["type"] == "InternalFailure" and "see the server log" in doc["message"]
    assert b"Traceback" not in out
    assert "invocation failed on fm" in caplog.text  # the trace goes to the log, not to the client


def test_runtime_path_fault_is_internal_failure(broken_app: Any) -> None:
    status, headers, out = asgi_post(broken_app, "/endpoints/fm/invocations", BODY, JSON_HEADERS)
    assert status == 500
    assert headers["x-amzn-errortype"] == "InternalFailure"
    assert orjson.loads(out)["message"] == "An internal error occurred while scoring the request."
