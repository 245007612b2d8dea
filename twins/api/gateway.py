"""API Gateway's part of the API twin: HTTP requests to REST proxy (v1) events, Lambda results to replies."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from twins.http_limits import GATEWAY_STYLE, Limits

log = logging.getLogger(__name__)

STAGE = "local"
ACCOUNT_ID = "000000000000"
API_ID = "fmrectwin0"
FUNCTION_NAME = "fmrec-recommend"
# The REST API's resources, as the CDK API stack declares them; anything else goes to the catch-all proxy.
RESOURCES = (
    ("/users/{userId}/recommendations", re.compile(r"^/users/(?P<userId>[^/]+)/recommendations$")),
    ("/users/{userId}/rankings", re.compile(r"^/users/(?P<userId>[^/]+)/rankings$")),
    ("/movies/{movieId}/similar", re.compile(r"^/movies/(?P<movieId>[^/]+)/similar$")),
    ("/users/{userId}/ratings", re.compile(r"^/users/(?P<userId>[^/]+)/ratings$")),
)
PROXY_RESOURCE = "/{proxy+}"
_BAD_GATEWAY = {"message": "Internal server error"}
# API Gateway's REST API quotas (https://docs.aws.amazon.com/apigateway/latest/developerguide/
# api-gateway-execution-service-limits-table.html): payload size 10 MB, total combined size of request line
# and header values 10240 bytes. Connections and the read timeout are the twin's own (docs/api.md, "Limits").
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024
API_LIMITS = Limits(
    max_connections=128,
    max_head_bytes=32 * 1024,
    request_timeout=30.0,
    style=GATEWAY_STYLE,
    max_head_values=10240,
)


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools read."""

    aws_request_id: str
    function_name: str = FUNCTION_NAME
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 10.0
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{FUNCTION_NAME}"
    log_group_name: str = f"/aws/lambda/{FUNCTION_NAME}"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _multi(pairs: list[tuple[str, str]]) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    """API Gateway's single-value (last wins) and multi-value maps; both null when there is nothing."""
    if not pairs:
        return None, None
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for key, value in pairs:
        single[key] = value
        multi.setdefault(key, []).append(value)
    return single, multi


def build_event(
    method: str,
    path: str,
    query_pairs: list[tuple[str, str]],
    header_pairs: list[tuple[str, str]],
    body: bytes,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The REST API proxy-integration event (payload format 1.0) API Gateway sends for this request."""
    request_id = request_id or str(uuid.uuid4())
    now = now or datetime.now(UTC)
    resource, path_parameters = PROXY_RESOURCE, {"proxy": path.lstrip("/")}
    for template, pattern in RESOURCES:
        match = pattern.match(path)
        if match:
            resource, path_parameters = template, match.groupdict()
            break
    headers, multi_headers = _multi(header_pairs)
    query, multi_query = _multi(query_pairs)
    text_body: str | None = None
    is_base64 = False
    if body:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    user_agent = (headers or {}).get("user-agent") or (headers or {}).get("User-Agent")
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "twin00",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode("ascii"),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{STAGE}{path}",
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": API_ID,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": f"{API_ID}.execute-api.us-east-1.amazonaws.com",
            "apiId": API_ID,
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body API Gateway makes of a proxy-integration result (502 when malformed)."""
    try:
        status = int(result["statusCode"])
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for key, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(str(key), str(v)) for v in values]
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("malformed Lambda proxy response: %.200r", result)
        return 502, [("content-type", "application/json")], json.dumps(_BAD_GATEWAY).encode()
    return status, headers, data


Handler = Callable[[dict[str, Any], Any], Any]


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The body; past MAX_PAYLOAD_BYTES (by Content-Length, or as it arrives) a _TooLarge, not a buffer."""
    message = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."  # API Gateway's wording
    for key, value in scope["headers"]:
        if key == b"content-length" and value.isdigit() and int(value) > MAX_PAYLOAD_BYTES:
            raise _TooLarge(message)
    chunks: list[bytes] = []
    total = 0
    more = True
    while more:
        received = await receive()
        if received["type"] == "http.disconnect":
            raise _Disconnected
        chunk = received.get("body", b"")
        total += len(chunk)
        if total > MAX_PAYLOAD_BYTES:
            raise _TooLarge(message)
        chunks.append(chunk)
        more = received.get("more_body", False)
    return b"".join(chunks)


async def _reply(send: Send, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
    """One response: Content-Length first, then `headers` (names lower-cased, as HTTP/1.1 servers send)."""
    raw = [(b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_JSON_HEADERS = (("content-type", "application/json"),)


def _path(scope: Scope) -> str:
    # What the request's URL path reads as (Starlette's URL escapes these three before splitting the URL).
    return str(scope["path"]).replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")


def create_app(handlers: Handler | Sequence[Handler], openapi: bytes) -> ASGIApp:
    """An ASGI app that invokes `handler` (a Lambda handler) once per request, as API Gateway would."""

    # Each handler is one Lambda execution environment and takes one event at a time: a handler (and
    # Powertools' resolver, which keeps the current event on a module-level app) is not written for
    # concurrent events. Concurrency comes from several environments, as Lambda scales.
    pool = [handlers] if callable(handlers) else list(handlers)
    idle: asyncio.Queue[Handler] | None = None
    # One thread per environment: a handler blocks on the endpoint call, and the event loop stays free
    # meanwhile. A plain executor: anyio's thread pool (Starlette's run_in_threadpool) costs more per call.
    threads = ThreadPoolExecutor(max_workers=len(pool), thread_name_prefix="lambda-environment")

    async def invoke(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(scope, receive)
        except _TooLarge as exc:
            # API Gateway answers this itself, without invoking the Lambda.
            await _reply(send, 413, json.dumps({"message": str(exc)}).encode(), _JSON_HEADERS)
            return
        except _Disconnected:
            log.info("client disconnected before sending the whole request")
            await _reply(send, 400, b"")  # nobody reads it
            return
        client = scope.get("client")
        query = scope.get("query_string", b"").decode("latin-1")
        event = build_event(
            scope["method"],
            _path(scope),
            parse_qsl(query, keep_blank_values=True),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]],
            body,
            source_ip=client[0] if client else "127.0.0.1",
        )
        context = LambdaContext(aws_request_id=str(uuid.uuid4()))
        try:
            nonlocal idle
            if idle is None:  # created on the serving loop
                idle = asyncio.Queue()
                for h in pool:
                    idle.put_nowait(h)
            handler = await idle.get()
            try:
                result = await asyncio.get_running_loop().run_in_executor(threads, handler, event, context)
            finally:
                idle.put_nowait(handler)
        except Exception:
            log.exception("the Lambda handler raised")
            status, headers, data = 502, list(_JSON_HEADERS), json.dumps(_BAD_GATEWAY).encode()
        else:
            status, headers, data = proxy_response(result)
        # API Gateway sets the length itself; its request id replaces any the function sent.
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "x-amzn-requestid")]
        headers.append(("x-amzn-RequestId", event["requestContext"]["requestId"]))
        await _reply(send, status, data, headers)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Every method and path reaches the handler, as through a /{proxy+} ANY resource; only GET
        # /openapi.json is the twin's own.
        if scope["type"] != "http":
            return
        if scope["method"] == "GET" and _path(scope) == "/openapi.json":
            await _reply(send, 200, openapi, _JSON_HEADERS)
        else:
            await invoke(scope, receive, send)

    return app
