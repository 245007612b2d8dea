"""The endpoint twin's ASGI app: the container contract and the SageMaker Runtime InvokeEndpoint path."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fmrec.errors import InputError
from fmrec.model import fm
from fmrec.model.artifact import load_model_tar
from twins.endpoint import protocol
from twins.endpoint.protocol import EndpointRequestError

log = logging.getLogger(__name__)

DEFAULT_NAME = "fmrec-endpoint"
DEFAULT_VARIANT = "AllTraffic"
# The account id in runtime error messages, as SageMaker words them; the twin has no account.
TWIN_ACCOUNT = "000000000000"
VARIANT_HEADER = "X-Amzn-Invoked-Production-Variant"
SPECS_ENV = "FMREC_ENDPOINT_SPECS"
# Past the limit the body is still read (and dropped) up to this size, so the client sees the 413 instead of a
# reset connection; anything larger is cut off.
_DRAIN_LIMIT = 64 * 1024 * 1024
# A worker buffers each request's first FREE_BODY_BYTES without asking; the bytes beyond them (large bodies,
# until they are scored) share BODY_BUDGET_BYTES per worker. Past it: 503, so clients that send large bodies
# slowly cannot hold more than that (plus FREE_BODY_BYTES per connection). The recommend Lambda splits its
# bodies at 256 KiB (FMREC_REQUEST_MAX_BYTES), so they never wait for that budget.
FREE_BODY_BYTES = 256 * 1024
BODY_BUDGET_BYTES = 64 * 1024 * 1024
# A body up to this size is scored on the event loop (about 1 ms for 64 KiB; the recommend Lambda's shortlist
# of 20 movies is about 37 KB): the hop to the scoring thread and back costs as much CPU as scoring it. Larger
# bodies go to the scoring thread, so /ping never waits behind them.
INLINE_BODY_BYTES = 64 * 1024
# InvokeEndpoint's path (SageMaker Runtime): served without Starlette's routing and middleware, the hot path.
_RUNTIME_PATH = re.compile(r"^/endpoints/(?P<name>[^/]+)/invocations$")


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint name served by the twin: its model.tar.gz and the production variant name it reports."""

    name: str
    model_path: Path
    variant: str = DEFAULT_VARIANT


@dataclass(frozen=True)
class ServedEndpoint:
    name: str
    variant: str
    model: Any  # fmrec.model.artifact.FMModel
    feature_dim: int
    predictor_type: str
    # invoke() is arithmetic on a loaded model (no I/O, no model loading): small bodies may be scored inline.
    scores_inline = True

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        """Score one invocation body; returns (response body, response content type)."""
        media = protocol.request_content_type(content_type)
        out_type = protocol.response_content_type(accept)
        X = protocol.parse_request(body, media, self.feature_dim)
        # The raw score is checked, not the probability: the sigmoid would hide an overflow as 0 or 1.
        raw = fm.raw_scores(self.model.params, X)
        protocol.check_scores(raw, body, media)
        scores = np.asarray(fm.link(raw, self.predictor_type), dtype=np.float32)
        return protocol.encode_response(scores, self.predictor_type, out_type), out_type


def load_endpoint(spec: EndpointSpec) -> ServedEndpoint:
    model = load_model_tar(spec.model_path)
    predictor_type = model.predictor_type
    if predictor_type not in (protocol.BINARY, protocol.REGRESSOR):
        raise InputError(
            f"{spec.model_path}: predictor_type {predictor_type!r} is not one the endpoint serves "
            f"({protocol.BINARY} or {protocol.REGRESSOR})"
        )
    return ServedEndpoint(
        name=spec.name,
        variant=spec.variant,
        model=model,
        feature_dim=int(model.params.feature_dim),
        predictor_type=predictor_type,
    )


def _container_error(exc: EndpointRequestError, variant: str) -> Response:
    body = orjson.dumps({"code": exc.status, "type": exc.error_type, "message": str(exc)})
    headers = {VARIANT_HEADER: variant, **_closing(exc)}
    return Response(body, exc.status, media_type=protocol.JSON, headers=headers)


def _closing(exc: EndpointRequestError) -> dict[str, str]:
    # Refused for lack of room: the rest of the body is not read, so the connection cannot carry on.
    return {"Connection": "close", "Retry-After": "1"} if exc.status == 503 else {}


def _runtime_error(
    status: int,
    error_type: str,
    message: str,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """An error as the SageMaker Runtime API sends it: botocore reads the code from x-amzn-ErrorType."""
    doc: dict[str, Any] = {"__type": error_type, "message": message, "Message": message}
    if extra:
        doc.update(extra)
    headers = {"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})}
    return Response(orjson.dumps(doc), status, media_type=protocol.JSON, headers=headers)


def _model_error(exc: EndpointRequestError) -> Response:
    # A container 4xx reaches InvokeEndpoint callers as ModelError (HTTP 424) with the original status, text.
    message = f'Received client error ({exc.status}) from primary with message "{exc}".'
    extra = {
        "ErrorCode": "CLIENT_ERROR_FROM_MODEL",
        "OriginalStatusCode": exc.status,
        "OriginalMessage": str(exc),
    }
    return _runtime_error(424, "ModelError", message, extra)


class BodyBudget:
    """The body bytes beyond FREE_BODY_BYTES a worker holds at once (one event loop: no lock needed)."""

    def __init__(self, capacity: int = BODY_BUDGET_BYTES) -> None:
        self.capacity = capacity
        self.used = 0

    def take(self, n: int) -> None:
        if self.used + n > self.capacity:
            raise EndpointRequestError(
                f"the endpoint is busy receiving and scoring large requests ({self.used} bytes held, "
                f"{self.capacity} at most per worker); retry shortly",
                503,
                "ServiceUnavailable",
            )
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


async def _read_body(request: Request, budget: BodyBudget, held: list[int]) -> bytes:
    """The body; `held[0]` is what it took from `budget` (the caller gives it back once it is scored)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise EndpointRequestError(f"Content-Length {declared!r} is not a number") from None
        if size > protocol.MAX_PAYLOAD_BYTES:
            await _drain(request)
            raise _too_large(size)
        budget.take(max(0, size - FREE_BODY_BYTES))  # all at once, before a byte of it is buffered
        held[0] = max(0, size - FREE_BODY_BYTES)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > protocol.MAX_PAYLOAD_BYTES:
            total += await _drain(request)
            raise _too_large(total)
        more = max(0, total - FREE_BODY_BYTES) - held[0]
        if more > 0:  # no Content-Length (chunked), or more than it said
            budget.take(more)
            held[0] += more
        chunks.append(chunk)
    return b"".join(chunks)


async def _drain(request: Request) -> int:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > _DRAIN_LIMIT:
            break
    return seen


def _too_large(size: int) -> EndpointRequestError:
    return EndpointRequestError(
        f"request payload of {size} bytes exceeds the real-time invocation limit of "
        f"{protocol.MAX_PAYLOAD_BYTES} bytes (6 MB); split the instances over several requests",
        413,
        "PayloadTooLarge",
    )


def _gone(name: str) -> Response:
    # The client closed the connection (or the server did, on a request-read limit) before the body was in:
    # nobody reads this answer, and it is not the server's failure.
    log.info("client disconnected before sending the whole request to %s", name)
    return Response(b"", 400)


def create_app(endpoints: Sequence[ServedEndpoint], body_budget: int = BODY_BUDGET_BYTES) -> ASGIApp:
    """The ASGI app serving `endpoints`; the first one also answers the container path /invocations."""
    if not endpoints:
        raise InputError("the endpoint twin needs at least one endpoint to serve")
    by_name = {ep.name: ep for ep in endpoints}
    default = endpoints[0]
    # Scoring runs on one side thread, one request at a time, so the event loop stays free for /ping and I/O.
    scorer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="endpoint-scorer")
    budget = BodyBudget(body_budget)

    async def invoke(endpoint: ServedEndpoint, request: Request, body: bytes) -> tuple[bytes, str]:
        headers = request.headers
        content_type, accept = headers.get("content-type"), headers.get("accept")
        if len(body) <= INLINE_BODY_BYTES and getattr(endpoint, "scores_inline", False):
            return endpoint.invoke(body, content_type, accept)
        return await asyncio.get_running_loop().run_in_executor(
            scorer, endpoint.invoke, body, content_type, accept
        )

    async def ping(request: Request) -> Response:
        return Response(b"", 200, media_type=protocol.JSON)

    async def container_invocations(request: Request) -> Response:
        held = [0]
        try:
            body = await _read_body(request, budget, held)
            out, media = await invoke(default, request, body)
        except EndpointRequestError as exc:
            return _container_error(exc, default.variant)
        except ClientDisconnect:
            return _gone(default.name)
        except Exception:
            log.exception("invocation failed on %s", default.name)
            err = EndpointRequestError(
                "internal error while scoring; see the server log", 500, "InternalFailure"
            )
            return _container_error(err, default.variant)
        finally:
            budget.give(held[0])
        return Response(out, 200, media_type=media, headers={VARIANT_HEADER: default.variant})

    async def runtime_invocations(request: Request) -> Response:
        return await runtime(request.path_params["name"], request)

    async def runtime(name: str, request: Request) -> Response:
        endpoint = by_name.get(name)
        held = [0]
        try:
            if endpoint is None:
                await _drain(request)
                return _runtime_error(
                    400, "ValidationError", f"Endpoint {name} of account {TWIN_ACCOUNT} not found."
                )
            body = await _read_body(request, budget, held)
        except ClientDisconnect:
            budget.give(held[0])
            return _gone(name)
        except EndpointRequestError as exc:
            budget.give(held[0])
            if exc.status == 503:
                # botocore and the recommend Lambda retry ServiceUnavailable, with backoff
                return _runtime_error(503, "ServiceUnavailable", str(exc), headers=_closing(exc))
            if exc.status == 413:
                return _runtime_error(413, "ValidationError", str(exc))
            return _runtime_error(400, "ValidationError", str(exc))
        try:
            out, media = await invoke(endpoint, request, body)
        except EndpointRequestError as exc:
            return _model_error(exc)
        except Exception:
            log.exception("invocation failed on %s", endpoint.name)
            return _runtime_error(
                500, "InternalFailure", "An internal error occurred while scoring the request."
            )
        finally:
            budget.give(held[0])
        headers = {VARIANT_HEADER: endpoint.variant, "x-amzn-RequestId": str(uuid.uuid4())}
        return Response(out, 200, media_type=media, headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        message = f"{request.method} {request.url.path}: {detail}"
        if request.url.path.startswith("/endpoints/"):
            return _runtime_error(status, "UnknownOperationException", message)
        return Response(
            orjson.dumps(
                {"code": status, "type": "NotFound" if status == 404 else "Error", "message": message}
            ),
            status,
            media_type=protocol.JSON,
        )

    routes = [
        Route("/ping", ping, methods=["GET"]),
        Route("/invocations", container_invocations, methods=["POST"]),
        Route("/endpoints/{name}/invocations", runtime_invocations, methods=["POST"]),
    ]
    routed = Starlette(routes=routes, exception_handlers={HTTPException: http_error})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        match = _RUNTIME_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if match is None or scope["method"] != "POST":
            await routed(scope, receive, send)
            return
        try:
            response = await runtime(match.group("name"), Request(scope, receive))
        except Exception:
            # As Starlette's ServerErrorMiddleware does for the other routes: a plain 500, then the traceback.
            await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise
        await response(scope, receive, send)

    return app


def specs_to_env(specs: Sequence[EndpointSpec]) -> str:
    return json.dumps([{"name": s.name, "model": str(s.model_path), "variant": s.variant} for s in specs])


def specs_from_env(text: str) -> list[EndpointSpec]:
    return [EndpointSpec(d["name"], Path(d["model"]), d["variant"]) for d in json.loads(text)]


def load_endpoints(specs: Sequence[EndpointSpec]) -> list[ServedEndpoint]:
    cache: dict[Path, Any] = {}
    served = []
    for spec in specs:
        # Names sharing one artifact share one loaded model.
        key = Path(spec.model_path).resolve()
        if key not in cache:
            cache[key] = load_endpoint(spec)
        ep = cache[key]
        served.append(ServedEndpoint(spec.name, spec.variant, ep.model, ep.feature_dim, ep.predictor_type))
    return served


def app_from_env() -> ASGIApp:
    """App factory for uvicorn workers: the endpoints come from $FMREC_ENDPOINT_SPECS (set by the server)."""
    text = os.environ.get(SPECS_ENV)
    if not text:
        raise InputError(f"${SPECS_ENV} is not set; start the twin with `fmrec serve endpoint`")
    app = create_app(load_endpoints(specs_from_env(text)))
    # The model and the app live as long as the worker: keep them out of every later collection.
    gc.collect()
    gc.freeze()
    return app
