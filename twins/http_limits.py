"""Per-worker connection, header-size and request-read-time limits for the twins' uvicorn servers."""

from __future__ import annotations

import asyncio
import functools
import http
import json
import logging
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)

ENDPOINT_STYLE = "endpoint"  # {"code": 431, "type": "RequestHeaderFieldsTooLarge", "message": ...}
GATEWAY_STYLE = "gateway"  # {"message": ...}, as API Gateway's own (gateway) responses


@dataclass(frozen=True)
class Limits:
    """What one worker process accepts before the app sees a request; each refusal is a JSON error.

    - max_connections: open connections per worker; one more is answered 503 at once and closed, before its
      request is read, so idle or slow clients cannot hold unbounded memory.
    - max_head_bytes: request line + headers as received; over it: 414 when the request line alone is too
      long, else 431. Checked while the head arrives, so a never-ending head is cut off, not buffered.
    - max_head_values: API Gateway's quota counts the request line and the header *values*; None: no such
      check (the endpoint twin).
    - request_timeout: seconds from a request's first byte (or the connection's opening) to the last byte of
      its body; past it: 408 and the connection is closed (slow-header and slow-body clients).
    """

    max_connections: int
    max_head_bytes: int
    request_timeout: float
    style: str = ENDPOINT_STYLE
    max_head_values: int | None = None


def error_body(style: str, status: int, message: str) -> bytes:
    if style == GATEWAY_STYLE:
        return json.dumps({"message": message}).encode()
    kind = http.HTTPStatus(status).phrase.replace(" ", "").replace("-", "")
    return json.dumps({"code": status, "type": kind, "message": message}).encode()


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with `Limits`; its plain-text 400 for an unparsable request is JSON."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._in_head = True  # between a request's first byte and the end of its headers
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # --- connection -------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open, the limit per worker", self.limits.max_connections)
            self._refuse(
                503,
                f"the server has {self.limits.max_connections} open connections, its limit per worker; "
                "retry shortly",
                retry_after=1,
            )
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # While a head arrives the parser is fed no more than the limit (+1 byte, to see it crossed), so an
        # over-long head is refused here, not by the parser (httptools fails URLs over 64 KiB as "invalid").
        while data and self._in_head and not self._refused:
            room = self.limits.max_head_bytes - self._head_bytes + 1
            part, data = data[:room], data[room:]
            self._head_bytes += len(part)
            super().data_received(part)
            if self._in_head and not self._refused and self._head_bytes > self.limits.max_head_bytes:
                # no header complete yet: the request line alone is too long
                what = "request line" if not self.headers else "request head"
                self._refuse(
                    414 if not self.headers else 431,
                    f"{what} of more than {self.limits.max_head_bytes} bytes; the limit is "
                    f"{self.limits.max_head_bytes}",
                )
        if data and not self._refused:
            super().data_received(data)

    # --- parser callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a connection's first request counts from the connection's opening
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        limit = self.limits.max_head_values
        if limit is not None:
            # API Gateway: "Total combined size of request line and header values: 10240 bytes"
            # (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-execution-service-limits-table.html)
            line = len(self.parser.get_method()) + len(self.url) + 10
            size = line + sum(len(v) for _, v in self.headers)
            if size > limit:
                if line > limit:
                    self._refuse(414, f"request line of {line} bytes; the limit is {limit}")
                else:
                    self._refuse(431, f"request line and header values of {size} bytes; the limit is {limit}")
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True
        self._disarm()

    # --- refusals ---------------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"malformed HTTP request: {msg}")

    def _on_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # an answer is on its way already; only stop waiting for the body
            return
        log.info("request not received within %.0f s; closing the connection", self.limits.request_timeout)
        self._refuse(
            408, f"the request was not received within {self.limits.request_timeout:g} seconds; send it whole"
        )

    def _refuse(self, status: int, message: str, retry_after: int | None = None) -> None:
        if self._refused:
            return
        self._refused = True
        self._disarm()
        body = error_body(self.limits.style, status, message)
        head = [
            f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
        ]
        if retry_after is not None:
            head.append(f"retry-after: {retry_after}")
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        self.transport.close()

    # --- the request-read deadline ----------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._on_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def protocol_factory(limits: Limits) -> Any:
    """uvicorn's `http=` setting for these limits (picklable, for uvicorn's worker processes)."""
    return functools.partial(LimitedHttpToolsProtocol, limits=limits)
