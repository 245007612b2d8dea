"""The model endpoint: InvokeEndpoint with backoff, request bodies fanned out, answers checked per variant."""

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

from fmrec.ratings.fold_in import UserSide, fold_in
from fmrec.ratings.store import Rating
from fmrec.serving.requests import CONTENT_TYPE
from lambdas.recommend.bundle import Bundle
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.queries import Query
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


class ColdStart(Exception):
    """The user is not in the bundle's lookup: answer from its cold-start list."""

    def __init__(self, bundle: Bundle) -> None:
        super().__init__("cold start")
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
    """One user's candidates scored by the endpoint: bodies sent concurrently, answers of one variant only."""

    def __init__(
        self, caller: EndpointCaller, versions: VersionCache, concurrency: int = DEFAULT_ENDPOINT_CONCURRENCY
    ) -> None:
        self.caller = caller
        self.versions = versions
        self.concurrency = max(1, concurrency)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def scores(
        self, bundle: Bundle, side: UserSide, query: Query, stored: Sequence[Rating] = ()
    ) -> tuple[Bundle, list[int], list[float], str | None]:
        """(the bundle the scores belong to, candidate positions, their scores, the answering variant).

        `side`: the user's side in `bundle` (fmrec.ratings.fold_in), rebuilt from `stored` when another
        version answers."""
        for attempt in (1, 2):
            positions = bundle.candidates(None, query.genre, query.exclude_rated, side.rated)
            payloads = bundle.builder.build_for(side.keys, side.values, positions)
            answers = self.invoke_all([p.body for p in payloads])
            scores: list[float] = []
            for payload, (part, _) in zip(payloads, answers, strict=True):
                if len(part) != len(payload.movie_positions):
                    raise ServiceUnavailable(
                        f"the model endpoint returned {len(part)} scores "
                        f"for {len(payload.movie_positions)} movies"
                    )
                scores.extend(part)
            variants = {v for _, v in answers}
            if len(variants) > 1:
                # Bodies of one request answered by different variants: a traffic shift is under way.
                if attempt == 2:
                    break
                log.info("endpoint variants %s answered one request; rebuilding", sorted(map(str, variants)))
                continue
            variant = variants.pop() if variants else None
            if variant is None or variant == bundle.version:
                return bundle, positions, scores, variant
            answering = self.versions.bundle_for_variant(variant, bundle)
            if answering is bundle or answering.fingerprint == bundle.fingerprint:
                # Same feature layout: the scores are valid for the answering version.
                return answering, positions, scores, variant
            if attempt == 2:
                break
            log.info("endpoint serves %s, request was built for %s; rebuilding", variant, bundle.version)
            bundle = answering
            new_side = fold_in(bundle.lookup, bundle.lookup.user_position(query.user_id), stored)
            if new_side is None:
                raise ColdStart(bundle)
            side = new_side
        raise ServiceUnavailable("the model is being updated; try again shortly", 1)

    def invoke_all(self, bodies: list[bytes]) -> list[tuple[list[float], str | None]]:
        """Every body through the endpoint, concurrently when there are several; answers in body order."""
        if len(bodies) <= 1:
            return [self.caller.invoke(b) for b in bodies]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="invoke")
        # The first failure (in body order) is re-raised; the request fails as a whole, as with one body.
        return list(self._executor.map(self.caller.invoke, bodies))
