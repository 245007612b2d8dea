"""A fault inside scoring: a clean 500 in the error shape of each path, never a stack trace."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from twins.endpoint.app import ServedEndpoint, create_app


def asgi_post(app: Any, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """One POST straight through the ASGI interface, without a server."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return (
        start["status"],
        headers,
        b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
    )


@pytest.fixture
def broken_app() -> Any:
    # params that fm.predict cannot use: the scoring step itself fails, after a valid request was parsed.
    model = SimpleNamespace(params=SimpleNamespace(w0=0.0, w=None, V=None, feature_dim=4))
    return create_app([ServedEndpoint("fm", "v1", model, 4, "binary_classifier")])


BODY = orjson.dumps({"instances": [{"features": [1, 0, 0, 1]}]})


def test_container_path_fault_is_a_json_500(broken_app: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="twins.endpoint.app"):
        status, _, out = asgi_post(broken_app, "/invocations", BODY)
    assert status == 500
    doc = orjson.loads(out)
    assert doc["type"] == "InternalFailure" and "see the server log" in doc["message"]
    assert b"Traceback" not in out
    assert "invocation failed on fm" in caplog.text  # the trace goes to the log, not to the client


def test_runtime_path_fault_is_internal_failure(broken_app: Any) -> None:
    status, headers, out = asgi_post(broken_app, "/endpoints/fm/invocations", BODY)
    assert status == 500
    assert headers["x-amzn-errortype"] == "InternalFailure"
    assert orjson.loads(out)["message"] == "An internal error occurred while scoring the request."
