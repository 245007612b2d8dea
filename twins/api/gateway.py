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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
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


async def _read_body(request: Request) -> bytes:
    """The body; past MAX_PAYLOAD_BYTES (by Content-Length, or as it arrives) a _TooLarge, not a buffer."""
    message = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."  # API Gateway's wording
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_PAYLOAD_BYTES:
        raise _TooLarge(message)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > MAX_PAYLOAD_BYTES:
            raise _TooLarge(message)
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(handlers: Handler | Sequence[Handler], openapi: bytes) -> ASGIApp:
    """An ASGI app that invokes `handler` (a Lambda handler) once per request, as API Gateway would."""

    # Each handler is one Lambda execution environment and takes one event at a time: a handler (and
    # Powertools' resolver, which keeps the current event on a module-level app) is not written for
    # concurrent events. Concurrency comes from several environments, as Lambda scales.
    pool = [handlers] if callable(handlers) else list(handlers)
    idle: asyncio.Queue[Handler] | None = None

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, 200, media_type="application/json")

    async def invoke(request: Request) -> Response:
        try:
            body = await _read_body(request)
        except _TooLarge as exc:
            # API Gateway answers this itself, without invoking the Lambda.
            return Response(json.dumps({"message": str(exc)}).encode(), 413, media_type="application/json")
        except ClientDisconnect:
            log.info("client disconnected before sending the whole request")
            return Response(b"", 400)  # nobody reads it
        client = request.client
        event = build_event(
            request.method,
            request.url.path,
            [(k, v) for k, v in request.query_params.multi_items()],
            [(k, v) for k, v in request.headers.items()],
            body,
            source_ip=client.host if client else "127.0.0.1",
        )
        context = LambdaContext(aws_request_id=str(uuid.uuid4()))
        try:
            # The handler blocks on the endpoint call: a worker thread keeps the event loop free meanwhile.
            nonlocal idle
            if idle is None:  # created on the serving loop
                idle = asyncio.Queue()
                for h in pool:
                    idle.put_nowait(h)
            handler = await idle.get()
            try:
                result = await run_in_threadpool(handler, event, context)
            finally:
                idle.put_nowait(handler)
        except Exception:
            log.exception("the Lambda handler raised")
            status, headers, data = (
                502,
                [("content-type", "application/json")],
                json.dumps(_BAD_GATEWAY).encode(),
            )
        else:
            status, headers, data = proxy_response(result)
        response = Response(data, status)
        for key, value in headers:
            response.headers.append(key, value)
        response.headers["x-amzn-RequestId"] = event["requestContext"]["requestId"]
        return response

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # Every method and path reaches the handler, as through a /{proxy+} ANY resource; only GET
        # /openapi.json is the twin's own.
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        if request.method == "GET" and request.url.path == "/openapi.json":
            response = await openapi_json(request)
        else:
            response = await invoke(request)
        await response(scope, receive, send)

    return app
