"""The API Gateway twin: HTTP requests become REST proxy (v1) events for the recommend Lambda's handler."""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from fmrec.errors import InputError
from twins.api import DEFAULT_ENVIRONMENTS
from twins.background import (
    GRACEFUL_SHUTDOWN_SECONDS,
    Running,
    answers,
    free_port,
    start_process,
    start_thread,
)
from twins.http_limits import GATEWAY_STYLE, Limits, protocol_factory

log = logging.getLogger(__name__)

STAGE = "local"
ACCOUNT_ID = "000000000000"
API_ID = "fmrectwin0"
FUNCTION_NAME = "fmrec-recommend"
CONFIG_ENV = "FMREC_API_TWIN_CONFIG"
# The REST API's resources, as the CDK API stack declares them; anything else goes to the catch-all proxy.
RESOURCES = (
    ("/users/{userId}/recommendations", re.compile(r"^/users/(?P<userId>[^/]+)/recommendations$")),
    ("/movies/{movieId}/similar", re.compile(r"^/movies/(?P<movieId>[^/]+)/similar$")),
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


@dataclass(frozen=True)
class ApiTwinConfig:
    """What a twin process needs to build its handler (passed to uvicorn workers through the environment)."""

    artifacts: str
    endpoint_url: str | None
    endpoint_name: str
    fast_path: bool = False
    log_level: str = "WARNING"
    # Lambda environments per twin process: each takes one event at a time (see create_app).
    environments: int = DEFAULT_ENVIRONMENTS

    def to_env(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_env(cls, text: str) -> ApiTwinConfig:
        return cls(**json.loads(text))

    def lambda_environment(self) -> dict[str, str]:
        """The Lambda environment variables the CDK stack would set, pointed at local twins."""
        env = {"FMREC_ARTIFACT_DIR": self.artifacts, "FMREC_FAST_PATH": "1" if self.fast_path else "0"}
        if self.endpoint_url:
            env["FMREC_ENDPOINT_NAME"] = self.endpoint_name
        return env


def _environment() -> Any:
    """A fresh instance of the Lambda's handler module: its own resolver, as a new execution environment."""
    spec = importlib.util.find_spec("lambdas.recommend.app")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_handlers(config: ApiTwinConfig, environments: int = 1) -> list[Handler]:
    """`environments` copies of the recommend Lambda's own handler, configured for the twin."""
    # The Recommender is thread-safe, so the environments share one: the lookup loads once per process.
    recommender = make_recommender(config)
    return [_configure(config, _environment(), recommender) for _ in range(environments)]


def make_handler(config: ApiTwinConfig) -> Handler:
    """The recommend Lambda's own handler, configured with the twin's artifacts folder and endpoint URL."""
    from lambdas.recommend import app as lambda_app

    return _configure(config, lambda_app, make_recommender(config))


def _configure(config: ApiTwinConfig, lambda_app: Any, recommender: Any) -> Handler:
    lambda_app.configure(recommender)
    lambda_app.logger.setLevel(config.log_level.upper())
    return cast(Handler, lambda_app.lambda_handler)


def make_recommender(config: ApiTwinConfig) -> Any:
    """The Lambda's Recommender over the twin's artifacts folder, calling the endpoint twin through boto3."""
    from lambdas.recommend.service import recommender_from_env

    if not Path(config.artifacts).is_dir():
        raise InputError(
            f"--artifacts {config.artifacts}: no such folder (expected a serving-artifacts folder)"
        )
    if not config.endpoint_url and not config.fast_path:
        raise InputError("give --endpoint-url (the endpoint twin) or --fast-path")
    env = dict(os.environ)
    env.update(config.lambda_environment())
    client_kwargs: dict[str, Any] = {
        "region_name": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    }
    if config.endpoint_url:
        client_kwargs["endpoint_url"] = config.endpoint_url
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        # The endpoint twin does not check signatures, but botocore will not sign without some credentials.
        client_kwargs.update(aws_access_key_id="twin", aws_secret_access_key="twin")
    return recommender_from_env(env, client_kwargs)


def openapi_bytes() -> bytes:
    from lambdas.recommend.params import OPENAPI_PATH

    return OPENAPI_PATH.read_bytes()


def app_from_env() -> ASGIApp:
    """App factory for uvicorn workers: the configuration comes from $FMREC_API_TWIN_CONFIG."""
    text = os.environ.get(CONFIG_ENV)
    if not text:
        raise InputError(f"${CONFIG_ENV} is not set; start the twin with `fmrec serve api`")
    config = ApiTwinConfig.from_env(text)
    return create_app(make_handlers(config, config.environments), openapi_bytes())


def serve(config: ApiTwinConfig, host: str = "127.0.0.1", port: int = 3000, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM."""
    import uvicorn

    make_handler(config)  # fail here, with a clear message, rather than in every worker
    os.environ[CONFIG_ENV] = config.to_env()
    log.info(
        "API twin on http://%s:%d -> endpoint %s at %s; artifacts %s; %d worker(s)",
        host,
        port,
        config.endpoint_name,
        config.endpoint_url or "(fast path)",
        config.artifacts,
        workers,
    )
    uvicorn.run(
        "twins.api.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        http=protocol_factory(API_LIMITS),
    )


def ready(host: str, port: int, timeout: float = 2.0) -> bool:
    return answers(host, port, "/openapi.json", timeout)


class BackgroundApi(Running):
    """A running API twin (see twins.background.Running)."""


def start_in_background(
    artifacts: str | os.PathLike[str],
    endpoint_url: str | None,
    *,
    endpoint_name: str = "fmrec-endpoint",
    port: int = 0,
    host: str = "127.0.0.1",
    fast_path: bool = False,
    process: bool = False,
    workers: int = 1,
    startup_timeout: float = 60.0,
    limits: Limits = API_LIMITS,
) -> BackgroundApi:
    """Start the API twin and return once it answers; port 0 picks a free loopback port (see `.url`).

    In-process (a uvicorn thread) by default; `process=True` runs `fmrec serve api` as a child process.
    `limits` applies in-process; a child process always has API_LIMITS.
    """
    config = ApiTwinConfig(str(artifacts), endpoint_url, endpoint_name, fast_path)
    if process:
        return _start_process(config, host, port or free_port(host), workers, startup_timeout)
    return _start_thread(config, host, port, startup_timeout, limits)


def _start_thread(
    config: ApiTwinConfig, host: str, port: int, timeout: float, limits: Limits
) -> BackgroundApi:
    app = create_app(make_handlers(config, config.environments), openapi_bytes())
    bound, stop = start_thread(app, host, port, label="API twin", timeout=timeout, limits=limits)
    return BackgroundApi(host, bound, stop)


def _start_process(
    config: ApiTwinConfig, host: str, port: int, workers: int, timeout: float
) -> BackgroundApi:
    args = ["serve", "api", "--host", host, "--port", str(port), "--artifacts", config.artifacts]
    args += ["--endpoint-name", config.endpoint_name, "--workers", str(workers)]
    if config.endpoint_url:
        args += ["--endpoint-url", config.endpoint_url]
    if config.fast_path:
        args.append("--fast-path")
    _, stop = start_process(args, host, port, probe_path="/openapi.json", label="API twin", timeout=timeout)
    return BackgroundApi(host, port, stop)


def publish_version(
    artifacts: str | os.PathLike[str],
    version: str,
    lookup_dir: str | os.PathLike[str],
    model_tar: str | os.PathLike[str] | None = None,
) -> Path:
    """Lay out one model version in a local serving-artifacts folder (the S3 layout of docs/api.md).

    Copies the lookup files (and the model for the fast path), then points current.json at the version last,
    so a reader never sees a version whose files are incomplete.
    """
    from fmrec.io_utils import atomic_dir, atomic_write_bytes, atomic_write_text
    from fmrec.serving.lookup import LOOKUP_FILES
    from lambdas.recommend.versions import VERSION_NAME

    if not VERSION_NAME.fullmatch(version):
        raise InputError(f"model version {version!r}: must be a valid SageMaker production variant name")
    root = Path(artifacts)
    source = Path(lookup_dir)
    missing = [name for name in LOOKUP_FILES if not (source / name).is_file()]
    if missing:
        raise InputError(f"{source}: not a lookup folder (missing {', '.join(missing)})")
    with atomic_dir(root / version / "lookup", replace=True) as tmp:
        for name in LOOKUP_FILES:
            (tmp / name).write_bytes((source / name).read_bytes())
    if model_tar is not None:
        atomic_write_bytes(root / version / "model.tar.gz", Path(model_tar).read_bytes())
    atomic_write_text(root / "current.json", json.dumps({"modelVersion": version}) + "\n")
    return root
