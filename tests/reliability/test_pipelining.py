"""Pipelined requests and the head limit (issue 23 item 11): each request is judged and answered in order."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.trained_world import ENDPOINT
from twins.api.server import start_in_background as start_api
from twins.endpoint.server import ENDPOINT_LIMITS
from twins.endpoint.server import start_in_background as start_endpoint
from twins.http_limits import GATEWAY_STYLE, Limits

pytestmark = pytest.mark.slow

PING = b"GET /ping HTTP/1.1\r\nHost: t\r\n\r\n"


def big_head(path: bytes, size: int, close: bool = False) -> bytes:
    """A complete, well-formed GET head of about `size` bytes (one long header)."""
    head = b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + (b"Connection: close\r\n" if close else b"")
    return head + b"X-Big: " + b"v" * (size - len(head) - 11) + b"\r\n\r\n"


def responses(port: int, data: bytes, count: int) -> list[tuple[int, Any]]:
    """Send `data` in one write; read until `count` responses or the server closes; (status, JSON body)."""
    out: list[tuple[int, Any]] = []
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        raw = b""
        while len(out) < count:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            raw += chunk
            while b"\r\n\r\n" in raw:
                head, _, rest = raw.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                length = int(fields.get("content-length", "0"))
                if len(rest) < length:
                    break
                body, raw = rest[:length], rest[length:]
                out.append((int(lines[0].split()[1]), json.loads(body) if body else None))
            if not chunk:
                break
    return out


@pytest.fixture(scope="module")
def endpoint(trained: Any) -> Iterator[Any]:
    with start_endpoint(trained.model_path, name=ENDPOINT, limits=ENDPOINT_LIMITS) as server:
        yield server


@pytest.fixture(scope="module")
def api(trained: Any) -> Iterator[Any]:
    limits = Limits(
        max_connections=16,
        max_head_bytes=16384,
        request_timeout=10,
        style=GATEWAY_STYLE,
        max_head_values=10240,
    )
    with start_api(trained.artifacts, None, fast_path=True, limits=limits) as server:
        yield server


def test_a_valid_request_ahead_of_an_oversized_head_gets_its_answer_first(endpoint: Any) -> None:
    answers = responses(endpoint.port, PING + big_head(b"/ping", 40 * 1024), 2)
    assert [status for status, _ in answers] == [200, 431], answers
    assert "the limit is 32768" in answers[1][1]["message"]


def test_a_40_kb_head_behind_a_ping_is_held_to_the_32_kib_limit(endpoint: Any) -> None:
    """The head limit counts each request of the stream from its own first byte, not from the read."""
    for size in (33 * 1024, 40 * 1024, 60 * 1024):
        answers = responses(endpoint.port, PING + big_head(b"/ping", size), 2)
        assert [status for status, _ in answers] == [200, 431], (size, answers)
    answers = responses(endpoint.port, PING + big_head(b"/ping", 31 * 1024, close=True), 2)
    assert [status for status, _ in answers] == [200, 200], answers


def test_heads_behind_a_content_length_body_are_counted_from_their_own_start(endpoint: Any) -> None:
    body = b'{"instances": []}' + b" " * 30_000  # a body is no head: it does not count toward the limit
    post = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    post += b"Content-Length: %d\r\n\r\n" % len(body) + body
    answers = responses(
        endpoint.port, post + big_head(b"/ping", 31 * 1024) + PING + big_head(b"/ping", 33 * 1024), 4
    )
    assert [status for status, _ in answers][1:] == [200, 200, 431], answers
    assert answers[0][0] != 431


def test_heads_behind_a_chunked_body_are_held_to_the_limit(endpoint: Any) -> None:
    body = b'{"instances": []}' + b" " * 50_000
    post = b"POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    post += b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    answers = responses(endpoint.port, post + PING + big_head(b"/ping", 40 * 1024), 3)
    assert [status for status, _ in answers][1:] == [200, 431], answers
    answers = responses(endpoint.port, post + PING + big_head(b"/ping", 20 * 1024, close=True), 3)
    assert [status for status, _ in answers][1:] == [200, 200], answers


def test_many_small_pipelined_requests_are_all_answered_in_order(endpoint: Any) -> None:
    answers = responses(endpoint.port, PING * 20 + big_head(b"/ping", 1024, close=True), 21)
    assert [status for status, _ in answers] == [200] * 21


def test_the_api_twin_answers_the_valid_request_then_its_431(api: Any) -> None:
    first = b"GET /users/1/recommendations?k=2 HTTP/1.1\r\nHost: t\r\n\r\n"
    answers = responses(api.port, first + big_head(b"/users/1/recommendations", 20 * 1024), 2)
    assert [status for status, _ in answers] == [200, 431], answers
    assert len(answers[0][1]["items"]) == 2 and set(answers[1][1]) == {"message"}
