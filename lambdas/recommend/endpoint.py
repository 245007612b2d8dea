"""The model endpoint: InvokeEndpoint with backoff, a shortlist's bodies fanned out, one variant's answers."""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fmrec.errors import InputError
from fmrec.serving.lookup import UserSide
from fmrec.serving.requests import CONTENT_TYPE
from lambdas.recommend.bundle import Bundle
from lambdas.recommend.errors import Misconfigured, ServiceUnavailable
from lambdas.recommend.queries import PATH_ENDPOINT, Scored
from lambdas.recommend.versions import VersionCache

try:  # orjson parses the endpoint's answer ~3x faster; the standard library is the fallback.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the Lambda package
    _loads = json.loads

log = logging.getLogger(__name__)

# Throttling-type errors worth retrying; anything else fails fast.
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ModelNotReadyException",
    }
)
DEFAULT_ENDPOINT_CONCURRENCY = 8


_FLOAT_TYPE = {float}


def _score(value: Any) -> float:
    """A JSON number as a float; anything else (strings, booleans, null) is an unreadable answer."""
    if type(value) is not int and type(value) is not float:
        raise TypeError(f"score {value!r} is not a number")
    return float(value)


class ModelSwapped(Exception):
    """The endpoint answered from another model version than the shortlist was retrieved with (a traffic
    shift): the service retrieves again with `bundle` (the answering version's), once."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__("model swapped")
        self.bundle = bundle


class EndpointCaller:
    """InvokeEndpoint with a per-call timeout (set on the client) and full-jitter backoff on throttling."""

    def __init__(
        self,
        client: Any,
        endpoint_name: str,
        max_attempts: int = 4,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.endpoint_name = endpoint_name
        self.max_attempts = max(1, max_attempts)
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.rng = rng or random.Random()

    def invoke(self, body: bytes) -> tuple[list[float], str | None]:
        """(scores in instance order, the production variant that answered)."""
        # local import: botocore costs cold start, and the fast path and the twin's folder never call it
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.invoke_endpoint(
                    EndpointName=self.endpoint_name,
                    Body=body,
                    ContentType=CONTENT_TYPE,
                    Accept=CONTENT_TYPE,
                )
                payload = response["Body"].read()
                break
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = error.get("Code", "")
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                retryable = code in _RETRYABLE or status in (429, 503)
                if not retryable:
                    log.error("InvokeEndpoint failed: %s %s", code, error.get("Message", ""))
                    raise ServiceUnavailable(f"the model endpoint failed ({code or status})", 5) from exc
                if attempt == self.max_attempts:
                    raise ServiceUnavailable(
                        f"the model endpoint is still throttling after {attempt} attempts", 1
                    ) from exc
                delay = self.rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
                log.warning(
                    "InvokeEndpoint throttled (%s), attempt %d; retrying in %.3f s", code, attempt, delay
                )
                self.sleep(delay)
            except BotoCoreError as exc:
                # Connection refused or timed out: the endpoint is down; retrying here would only add latency.
                log.error("InvokeEndpoint unreachable: %s", exc)
                raise ServiceUnavailable("the model endpoint is unreachable", 5) from exc
        try:
            predictions = _loads(payload)["predictions"]
            scores = [p["score"] for p in predictions]
            if set(map(type, scores)) - _FLOAT_TYPE:
                scores = [_score(s) for s in scores]
            if not all(map(math.isfinite, scores)):
                raise ValueError("a score is not a finite number")
        except (ValueError, KeyError, TypeError) as exc:
            raise ServiceUnavailable("the model endpoint returned an unreadable answer", 5) from exc
        return scores, response.get("InvokedProductionVariant")


class EndpointScorer:
    """A user's shortlist scored by the endpoint as the seed's sparse rows: bodies of at most the request
    size sent concurrently, the answers of one variant only."""

    serving_path = PATH_ENDPOINT

    def __init__(
        self, caller: EndpointCaller, versions: VersionCache, concurrency: int = DEFAULT_ENDPOINT_CONCURRENCY
    ) -> None:
        self.caller = caller
        self.versions = versions
        self.concurrency = max(1, concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def score(self, bundle: Bundle, side: UserSide, positions: Sequence[int]) -> Scored:
        try:
            table = bundle.lookup.neighbours
            extra = None if table is None else (table.column, table.values(side.rated, positions))
            payloads = bundle.builder.build_rows(side.keys, side.values, positions, extra)
        except InputError as exc:  # a row over FMREC_REQUEST_MAX_BYTES: the configuration, not the caller
            raise Misconfigured(f"FMREC_REQUEST_MAX_BYTES {bundle.builder.max_bytes}: {exc}") from exc
        answers = self.invoke_all([p.body for p in payloads])
        scores: list[float] = []
        for payload, (part, _) in zip(payloads, answers, strict=True):
            asked = len(payload.movie_positions)
            if len(part) != asked:
                raise ServiceUnavailable(f"the model endpoint returned {len(part)} scores for {asked} movies")
            scores.extend(part)
        variants = {v for _, v in answers}
        if len(variants) > 1:
            # Bodies of one request answered by different variants: a traffic shift is under way.
            log.info("endpoint variants %s answered one request; retrying", sorted(map(str, variants)))
            raise ModelSwapped(bundle)
        variant = variants.pop() if variants else None
        if variant is None or variant == bundle.version:
            return Scored(bundle, scores, variant or bundle.version, PATH_ENDPOINT)
        answering = self.versions.bundle_for_variant(variant, bundle)
        if answering is bundle:
            # A variant without its own artifacts (a bare lookup folder): scored with this version's layout.
            return Scored(bundle, scores, variant, PATH_ENDPOINT)
        log.info("endpoint serves %s, the shortlist was retrieved with %s; retrying", variant, bundle.version)
        raise ModelSwapped(answering)

    def invoke_all(self, bodies: list[bytes]) -> list[tuple[list[float], str | None]]:
        """Every body through the endpoint, concurrently when there are several; answers in body order."""
        if len(bodies) <= 1:
            return [self.caller.invoke(b) for b in bodies]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="invoke")
        # The first failure (in body order) is re-raised; the request fails as a whole, as with one body.
        return list(self._executor.map(self.caller.invoke, bodies))
