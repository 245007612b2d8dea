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
        self._in_head = True  # between the end of the previous request and the end of this one's headers
        self._head_bytes = 0  # of this request's head, as received
        self._tail = b""  # the last 3 head bytes fed, to find a CRLF CRLF split across reads
        self._body_left: int | None = None  # Content-Length bytes still to come; None: not known (chunked)
        self._body_fed = 0  # body bytes the parser reported during the current feed
        self._completed = 0  # requests read whole on this connection
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._refusal: bytes | None = None  # an answer held back until the earlier pipelined ones are sent

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
        # The parser is fed one request at a time, cut where each head and Content-Length body ends, so each
        # request of a pipelined stream is held to the head limit on its own. While a head arrives it is fed
        # no more than the limit (+1 byte, to see it crossed), so an over-long head is refused here, not by
        # the parser (httptools fails URLs over 64 KiB as "invalid").
        while data and not self._refused:
            if self._in_head:
                part = self._head_part(data)
                self._head_bytes += len(part)
                self._tail = (self._tail + part)[-3:]
                super().data_received(part)
            else:
                # A body: a Content-Length one exactly; a chunked one (its end is the parser's to find) in
                # pieces of a quarter of the head limit, so what follows its end is counted to within that
                chunked = self._body_left is None
                piece = self._body_left or max(1, self.limits.max_head_bytes // 4)
                part = data[:piece]
                if self._body_left:
                    self._body_left -= len(part)
                done, self._body_fed = self._completed, 0
                super().data_received(part)
                if chunked and self._completed > done and self._in_head:
                    # the body ended inside `part`: what followed it counts toward the next head (at most
                    # the piece: the requests it may hold whole and the chunk framing are counted too)
                    self._head_bytes = max(0, len(part) - self._body_fed)
                    self._tail = part[-3:]
            if self._in_head and not self._refused and self._head_bytes > self.limits.max_head_bytes:
                # no header complete yet: the request line alone is too long
                what = "request line" if not self.headers else "request head"
                self._refuse(
                    414 if not self.headers else 431,
                    f"{what} of more than {self.limits.max_head_bytes} bytes; the limit is "
                    f"{self.limits.max_head_bytes}",
                )
            data = data[len(part) :]

    def _head_part(self, data: bytes) -> bytes:
        """The bytes of `data` up to the end of this head (CRLF CRLF), at most one past the head limit."""
        window = data[: self.limits.max_head_bytes - self._head_bytes + 1]
        end = (self._tail + window).find(b"\r\n\r\n")
        return window if end < 0 else window[: end + 4 - len(self._tail)]

    # --- parser callbacks -------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._refused:  # a request pipelined behind a refused one is not read
            return
        super().on_message_begin()
        if self._deadline is None:  # a connection's first request counts from the connection's opening
            self._arm()

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._head_bytes, self._tail = 0, b""
        fields = dict(self.headers)
        length = fields.get(b"content-length", b"0")
        chunked = b"transfer-encoding" in fields or not length.isdigit()
        self._body_left = None if chunked else int(length)
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
        self._body_fed += len(body)
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        super().on_message_complete()
        self._in_head = True
        self._head_bytes, self._tail, self._body_left = 0, b"", None
        self._completed += 1
        self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal is not None and not self._answers_owed() and not self.transport.is_closing():
            self._send_refusal()

    # --- refusals ---------------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._refuse(400, f"malformed HTTP request: {msg}")

    def _on_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if not self._in_head and self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # this request's answer is on its way; only stop waiting for its body
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
        self._refusal = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        if self._answers_owed():
            # Requests pipelined ahead of this one are answered first, in order (RFC 9112, section 9.3.2:
            # https://www.rfc-editor.org/rfc/rfc9112#section-9.3.2); this answer follows the last of them.
            self.flow.pause_reading()
            return
        self._send_refusal()

    def _answers_owed(self) -> bool:
        """Whether a request ahead of the refused one still waits for (the end of) its response."""
        if self._in_head:  # the refused request has no cycle yet: every cycle is ahead of it
            return bool(self.pipeline) or (self.cycle is not None and not self.cycle.response_complete)
        # Refused mid-body: self.cycle is the refused request. Queued behind a running one, it must never
        # start, and the running one is owed its answer; otherwise it runs already and nothing is owed.
        queued = [(c, a) for c, a in self.pipeline if c is not self.cycle]
        if len(queued) == len(self.pipeline):
            return False
        self.pipeline.clear()
        self.pipeline.extend(queued)
        return True

    def _send_refusal(self) -> None:
        assert self._refusal is not None
        self.transport.write(self._refusal)
        self._refusal = None
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
