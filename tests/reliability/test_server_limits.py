"""Resource bounds of both twins (issue 14): slow clients, huge heads and bodies, many connections."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.trained_world import ENDPOINT
from twins.api.server import start_in_background as start_api
from twins.endpoint.server import start_in_background as start_endpoint
from twins.http_limits import GATEWAY_STYLE, Limits

pytestmark = pytest.mark.slow

SHORT = 1.5  # seconds: the request-read timeout of these tests


def exchange(
    port: int, data: bytes, *, wait: float = 15.0, then: bytes = b""
) -> tuple[int, dict[str, str], Any]:
    """Send `data` (and `then`, unless the server closed), read until the server closes; parse the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
            if then:
                sock.sendall(then)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before taking everything
        raw = b""
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass
    return parse(raw)


def parse(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), raw[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


@pytest.fixture(scope="module")
def endpoint(trained: Any) -> Iterator[Any]:
    limits = Limits(max_connections=6, max_head_bytes=4096, request_timeout=SHORT)
    with start_endpoint(trained.model_path, name=ENDPOINT, limits=limits) as server:
        yield server


@pytest.fixture(scope="module")
def api(trained: Any) -> Iterator[Any]:
    limits = Limits(
        max_connections=6,
        max_head_bytes=16384,
        request_timeout=SHORT,
        style=GATEWAY_STYLE,
        max_head_values=10240,
    )
    with start_api(trained.artifacts, None, fast_path=True, limits=limits) as server:
        yield server


def post_head(path: str, length: int, content_type: str = "application/json") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: {content_type}\r\n"
    return (head + f"Content-Length: {length}\r\n\r\n").encode()


# --- the request-read timeout ---------------------------------------------------------------------------


@pytest.mark.parametrize("twin", ["endpoint", "api"])
@pytest.mark.parametrize(
    "data",
    [b"", b"POST /invocations HTTP/1.1\r\nHost: t\r\nX-Slow: ", post_head("/invocations", 1000) + b'{"inst'],
    ids=["silent", "slow-head", "slow-body"],
)
def test_a_request_not_received_in_time_is_408_and_closed(
    request: pytest.FixtureRequest, twin: str, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    server = request.getfixturevalue(twin)
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        status, headers, doc = exchange(server.port, data)
    elapsed = time.monotonic() - started
    assert status == 408 and headers["connection"] == "close"
    assert "not received within 1.5 seconds" in doc["message"]
    assert SHORT - 0.2 <= elapsed < SHORT + 5
    time.sleep(0.2)
    # the app saw the disconnect of a half-read body: no traceback, no "invocation failed"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text


def test_a_slow_keep_alive_client_cannot_stretch_the_deadline(endpoint: Any) -> None:
    # one byte every 0.5 s restarts no timer: the deadline counts from the request's first byte
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=15) as sock:
        started = time.monotonic()
        raw = b""
        for byte in b"GET /ping HTTP/1.1\r\nHost: t\r\nX-A: bbbbbbbbbbbbbbbbbbbbbbbbb":
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.25)
            if time.monotonic() - started > 10:
                break
        while chunk := sock.recv(65536):
            raw += chunk
    assert parse(raw)[0] == 408
    assert time.monotonic() - started < SHORT + 2


def test_a_request_received_in_time_is_served_after_an_idle_keep_alive(endpoint: Any) -> None:
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=15) as sock:
        for _ in range(3):
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n")
            reply = sock.recv(65536)
            assert reply.startswith(b"HTTP/1.1 200"), reply
            time.sleep(SHORT / 2)


# --- heads ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("twin", ["endpoint", "api"])
def test_a_long_url_is_a_json_414(request: pytest.FixtureRequest, twin: str) -> None:
    server = request.getfixturevalue(twin)
    status, headers, doc = exchange(
        server.port, b"GET /users/1/recommendations?x=" + b"a" * 100_000 + b" HTTP/1.1\r\n"
    )
    assert status == 414 and headers["content-type"] == "application/json", doc
    assert "request line" in doc["message"]


@pytest.mark.parametrize("twin", ["endpoint", "api"])
def test_an_endless_head_is_cut_off_with_a_json_431(request: pytest.FixtureRequest, twin: str) -> None:
    server = request.getfixturevalue(twin)
    head = b"GET /ping HTTP/1.1\r\nHost: t\r\n" + b"".join(
        b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(5000)
    )
    status, _, doc = exchange(server.port, head)  # 1 MB, never finished
    assert status == 431, doc
    assert "request head" in doc["message"]


def test_api_head_values_over_api_gateways_10240_bytes_are_431(api: Any) -> None:
    values = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(11))  # 11,000 bytes of values
    status, _, doc = exchange(
        api.port, b"GET /users/1/recommendations HTTP/1.1\r\nHost: t\r\n" + values + b"\r\n"
    )
    assert status == 431 and doc == {"message": doc["message"]}
    assert "request line and header values" in doc["message"] and "10240" in doc["message"]
    ok = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(9))
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(
            b"GET /users/1/recommendations HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + ok + b"\r\n"
        )
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    assert parse(raw)[0] == 200


def test_api_url_over_api_gateways_10240_bytes_is_414(api: Any) -> None:
    status, _, doc = exchange(api.port, b"GET /x?q=" + b"a" * 12_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 414 and doc["message"].startswith("request line of 12018 bytes; the limit is 10240")


@pytest.mark.parametrize("twin", ["endpoint", "api"])
def test_a_malformed_request_is_a_json_400(request: pytest.FixtureRequest, twin: str) -> None:
    server = request.getfixturevalue(twin)
    status, _, doc = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n")
    assert status == 400 and "malformed HTTP request" in doc["message"]


# --- connections ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("twin", ["endpoint", "api"])
def test_connections_over_the_limit_are_503_and_the_rest_still_served(
    request: pytest.FixtureRequest, twin: str
) -> None:
    server = request.getfixturevalue(twin)
    time.sleep(SHORT + 0.5)  # connections of earlier tests are gone
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(6)]
    try:
        time.sleep(0.2)
        status, headers, doc = exchange(server.port, b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n", wait=5)
        assert status == 503 and headers["retry-after"] == "1", doc
        assert "6 open connections" in doc["message"]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    path = b"/ping" if twin == "endpoint" else b"/openapi.json"
    status, _, _ = exchange(
        server.port, b"GET " + path + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status == 200


# --- bodies ---------------------------------------------------------------------------------------------


def test_api_body_over_10_mb_is_413_before_it_is_sent(api: Any) -> None:
    started = time.monotonic()
    status, _, doc = exchange(api.port, post_head("/users/1/recommendations", 200 * 1024 * 1024))
    assert status == 413 and doc == {"message": "HTTP content length exceeded 10485760 bytes."}
    assert time.monotonic() - started < 5  # answered on the declared length, nothing buffered


def test_api_chunked_body_over_10_mb_is_413(api: Any) -> None:
    chunk = b"x" * (1024 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(11)) + b"0\r\n\r\n"
    head = b"POST /users/1/recommendations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
    head += b"Connection: close\r\n\r\n"
    status, _, doc = exchange(api.port, head, then=body)
    assert status == 413 and "10485760" in doc["message"]


def test_api_body_at_the_limit_reaches_the_handler(api: Any) -> None:
    body = b"x" * (10 * 1024 * 1024)
    head = post_head("/users/1/recommendations", len(body)).replace(
        b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"
    )
    status, _, doc = exchange(api.port, head, then=body)
    assert status == 404 and doc["code"] == "NotFound"  # the Lambda's answer: POST has no route


@pytest.mark.parametrize("twin", ["endpoint", "api"])
def test_with_the_default_limits_a_100_kb_url_is_a_json_414(trained: Any, twin: str) -> None:
    server = (
        start_endpoint(trained.model_path, name=ENDPOINT)
        if twin == "endpoint"
        else start_api(trained.artifacts, None, fast_path=True)
    )
    with server:
        status, _, doc = exchange(
            server.port, b"GET /x?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n"
        )
    assert status == 414 and "the limit is 32768" in doc["message"]


@pytest.mark.parametrize(
    "path", ["/invocations", "/endpoints/fmrec-endpoint/invocations", "/endpoints/nope/invocations"]
)
def test_a_client_that_goes_away_mid_body_is_not_logged_as_a_failure(
    endpoint: Any, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        with socket.create_connection(("127.0.0.1", endpoint.port), timeout=10) as sock:
            sock.sendall(post_head(path, 100_000) + b'{"instances": [')
            time.sleep(0.3)
        time.sleep(0.5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "invocation failed" not in caplog.text and "Traceback" not in caplog.text
    if "nope" not in path:
        assert "client disconnected before sending the whole request" in caplog.text
