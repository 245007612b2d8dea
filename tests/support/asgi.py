"""One HTTP POST straight through an ASGI app, in process: what uvicorn would hand the endpoint twin's app."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any


def asgi_post(
    app: Any,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    loop: asyncio.AbstractEventLoop | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased response headers, body) of one POST; `loop` reuses an event loop across calls."""
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
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
        "headers": raw,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    if loop is None:
        asyncio.run(app(scope, receive, send))
    else:
        loop.run_until_complete(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), {k.decode().lower(): v.decode() for k, v in start["headers"]}, out
