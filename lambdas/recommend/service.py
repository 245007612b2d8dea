"""The recommend logic: versioned lookup cache, endpoint calls with backoff, fast path, cold start."""

from __future__ import annotations

import gc
import heapq
import json
import logging
import math
import os
import random
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import chain, compress, pairwise
from pathlib import Path
from typing import Any, Protocol

from fmrec.errors import FmrecError, InputError, NotInModelError
from fmrec.serving.artifacts import (
    CURRENT_KEY,
    MODEL_FILE,
    is_variant_name,
    lookup_key,
    model_key,
    parse_current,
)
from fmrec.serving.requests import CONTENT_TYPE, RequestBuilder

try:  # orjson parses the endpoint's answer ~3x faster; the standard library is the fallback.
    import orjson

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - depends on the Lambda package
    _loads = json.loads

log = logging.getLogger(__name__)

PATH_ENDPOINT = "endpoint"
PATH_FAST = "fast_path"
PATH_COLD = "cold_start"
# Bayesian damping for cold start: a movie's mean is pulled toward the global mean by this many ratings.
COLD_START_PRIOR = 25
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
VERSIONS_KEPT = 2  # during a blue/green shift two variants answer; keep both lookups warm.
# Request bodies are split at this size (at most the 6 MB InvokeEndpoint limit) and sent concurrently: a
# 60,000-movie catalog is several MB of JSON; smaller bodies let the endpoint's workers score them at once.
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html (Body: 6 MB)
DEFAULT_REQUEST_BYTES = 1024 * 1024
DEFAULT_ENDPOINT_CONCURRENCY = 8


_FLOAT_TYPE = {float}


def _score(value: Any) -> float:
    """A JSON number as a float; anything else (strings, booleans, null) is an unreadable answer."""
    if type(value) is not int and type(value) is not float:
        raise TypeError(f"score {value!r} is not a number")
    return float(value)


class ServiceUnavailable(FmrecError):
    """The endpoint is down, still throttled after the retries, or the artifacts are not published."""

    def __init__(self, message: str, retry_after: int = 5, detail: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.detail = detail  # for the log only: it may name buckets and keys the caller need not see


class ArtifactStore(Protocol):
    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def describe(self, key: str) -> str: ...


@dataclass
class S3Store:
    """Serving artifacts under s3://bucket/prefix (see docs/api.md for the layout)."""

    bucket: str
    prefix: str
    client: Any

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
        except self.client.exceptions.NoSuchKey:
            return None
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("NoSuchKey", "404"):
                return None
            raise ServiceUnavailable(
                "the serving artifacts cannot be read", 5, f"{self.describe(key)}: {code or exc}"
            ) from exc
        return bytes(response["Body"].read())

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"


@dataclass
class DirStore:
    """The same layout in a local folder (the API twin's --artifacts)."""

    root: Path

    def get(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            # a folder where a file belongs, no permission: the service's fault, not the caller's
            raise ServiceUnavailable(
                "the serving artifacts cannot be read", 5, f"{self.describe(key)}: {exc.strerror or exc}"
            ) from exc

    def describe(self, key: str) -> str:
        return str(self.root / key)


def _genre_names(value: Any) -> list[str]:
    if isinstance(value, str):
        return [g for g in value.split("|") if g]
    return [str(g) for g in value]


@dataclass
class Bundle:
    """Everything served for one model version: the lookup, its request builder, cold-start ranking, model."""

    version: str | None
    lookup: Any
    builder: RequestBuilder
    popular: list[int]  # movie positions, best damped mean rating first
    popular_score: list[float]
    genre_index: dict[str, tuple[int, ...]]  # lower-cased genre -> movie positions, ascending
    fast_model: Any = None  # fmrec.model.artifact.FMModel, loaded on first fast-path or similar-movies use
    item_terms: Any = None  # fmrec.model.fm.SideTerms of every movie, for score_user_items
    similar_index: Any = None  # fmrec.serving.similar.SimilarIndex
    genre_masks: dict[str, Any] = field(default_factory=dict)  # lower-cased genre -> numpy bool mask
    fingerprint: tuple[Any, ...] = field(default=())

    @classmethod
    def build(
        cls, version: str | None, lookup: Any, max_request_bytes: int = DEFAULT_REQUEST_BYTES
    ) -> Bundle:
        counts = [float(c) for c in lookup.movie_count]
        means = [float(m) for m in lookup.movie_mean]
        total = sum(counts)
        global_mean = sum(c * m for c, m in zip(counts, means, strict=True)) / total if total else 0.0
        damped = [
            (c * m + COLD_START_PRIOR * global_mean) / (c + COLD_START_PRIOR)
            for c, m in zip(counts, means, strict=True)
        ]
        popular = sorted((p for p in range(len(damped)) if counts[p] > 0), key=lambda p: (-damped[p], p))
        index: dict[str, set[int]] = {}
        for pos, value in enumerate(lookup.genres):
            for genre in _genre_names(value):
                index.setdefault(genre.lower(), set()).add(pos)
        return cls(
            version=version,
            lookup=lookup,
            builder=RequestBuilder(lookup, max_request_bytes),
            popular=popular,
            popular_score=damped,
            genre_index={g: tuple(sorted(p)) for g, p in index.items()},
            fingerprint=(lookup.feature_dim, tuple(lookup.user_ids), tuple(lookup.movie_ids)),
        )


@dataclass(frozen=True)
class Query:
    user_id: int
    k: int = 10
    exclude_rated: bool = True
    min_score: float | None = None
    genre: str | None = None


@dataclass(frozen=True)
class SimilarQuery:
    movie_id: int
    k: int = 10
    genre: str | None = None


@dataclass(frozen=True)
class Item:
    movie_id: int
    title: str
    score: float
    rank: int


@dataclass(frozen=True)
class Recommendation:
    user_id: int
    model_version: str | None
    serving_path: str
    items: list[Item]
    candidates: int


@dataclass(frozen=True)
class Similar:
    movie_id: int
    title: str
    model_version: str | None
    items: list[Item]
    candidates: int


def top_k(scores: Sequence[float], k: int, min_score: float | None) -> list[int]:
    """Indices of the k best scores (ties: lower index first) that are at least min_score."""
    if len(scores) > k:
        # A threshold from the k largest values, then a sort of the few survivors: cheaper than nlargest
        # with a key function (most of all on already-sorted scores), and ties keep candidate order.
        kth = heapq.nlargest(k, scores)[-1]
        order = list(compress(range(len(scores)), map(kth.__le__, scores)))
    else:
        order = list(range(len(scores)))
    order.sort(key=lambda i: (-scores[i], i))
    del order[k:]
    if min_score is not None:
        order = [i for i in order if scores[i] >= min_score]
    return order


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


class Recommender:
    """Recommendations from versioned artifacts, the endpoint (or the fast path) and the cold-start list."""

    def __init__(
        self,
        store: ArtifactStore,
        caller: EndpointCaller | None,
        *,
        fast_path: bool = False,
        version_check_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        max_request_bytes: int = DEFAULT_REQUEST_BYTES,
        endpoint_concurrency: int = DEFAULT_ENDPOINT_CONCURRENCY,
    ) -> None:
        if caller is None and not fast_path:
            raise InputError("the recommender needs an endpoint (FMREC_ENDPOINT_NAME) or the fast path")
        self.store = store
        self.caller = caller
        self.fast_path = fast_path
        self.version_check_seconds = version_check_seconds
        self.clock = clock
        self._bundles: OrderedDict[str | None, Bundle] = OrderedDict()
        self._current: str | None = None
        self._checked_at: float | None = None
        self._no_lookup: set[str] = set()
        self._lock = threading.Lock()  # the twin calls one handler from several threads
        from fmrec.serving.requests import MAX_PAYLOAD_BYTES

        if not 1 <= max_request_bytes <= MAX_PAYLOAD_BYTES:
            raise InputError(f"max_request_bytes {max_request_bytes}: expected 1..{MAX_PAYLOAD_BYTES}")
        self.max_request_bytes = max_request_bytes
        self.endpoint_concurrency = max(1, endpoint_concurrency)
        self._executor: ThreadPoolExecutor | None = None

    # --- artifacts -------------------------------------------------------------------------------------
    def _read_current(self) -> str | None:
        """The published version from current.json; None for a bare lookup folder (no versions)."""
        raw = self.store.get(CURRENT_KEY)
        if raw is None:
            return None
        try:
            return parse_current(raw, self.store.describe(CURRENT_KEY))
        except InputError as exc:
            raise ServiceUnavailable("the published model version is unreadable", 5, str(exc)) from exc

    def _load_bundle(self, version: str | None) -> Bundle | None:
        from fmrec.serving.lookup import LOOKUP_FILES, Lookup

        blobs: dict[str, bytes] = {}
        for name in LOOKUP_FILES:
            data = self.store.get(lookup_key(version, name))
            if data is None:
                return None
            blobs[name] = data
        started = time.perf_counter()
        try:
            bundle = Bundle.build(version, Lookup.from_blobs(blobs), self.max_request_bytes)
        except InputError as exc:
            # A broken published artifact is the service's fault, not the caller's: 503, details in the log.
            log.error("unreadable lookup for model version %s: %s", version, exc)
            raise ServiceUnavailable(f"the lookup of model version {version} is unreadable", 30) from exc
        # The lookup and its fragments live as long as the container: keep them out of every later collection.
        gc.collect()
        gc.freeze()
        log.info(
            "loaded lookup for model version %s: %d users, %d movies, feature_dim %d in %.1f ms",
            version,
            len(bundle.lookup.user_ids),
            len(bundle.lookup.movie_ids),
            bundle.lookup.feature_dim,
            (time.perf_counter() - started) * 1e3,
        )
        return bundle

    def _remember(self, bundle: Bundle) -> None:
        self._bundles[bundle.version] = bundle
        self._bundles.move_to_end(bundle.version)
        while len(self._bundles) > VERSIONS_KEPT:
            self._bundles.popitem(last=False)

    def current_bundle(self) -> Bundle:
        """The published version's bundle; current.json is re-read at most every version_check_seconds."""
        now = self.clock()
        with self._lock:
            # Also re-check while nothing is loaded: a failed first load must not count as a version check.
            due = self._checked_at is None or now - self._checked_at >= self.version_check_seconds
            if due or self._current not in self._bundles:
                version = self._read_current()
                self._checked_at = now
                self._no_lookup.clear()
                if version != self._current or version not in self._bundles:
                    bundle = self._bundles.get(version) or self._load_bundle(version)
                    if bundle is None:
                        raise ServiceUnavailable(
                            "no lookup published for the current model version",
                            30,
                            f"no lookup at {self.store.describe(lookup_key(version, ''))}",
                        )
                    self._remember(bundle)
                    self._current = version
            return self._bundles[self._current]

    def bundle_for_variant(self, variant: str, fallback: Bundle) -> Bundle:
        """The lookup of the version an endpoint variant serves; the fallback when that version has none."""
        with self._lock:
            bundle = self._bundles.get(variant)
            if bundle is None:
                if variant in self._no_lookup:
                    return fallback
                bundle = self._load_bundle(variant) if is_variant_name(variant) else None
                if bundle is None:
                    # Remembered until the next current.json check, so a bare folder costs one miss, not one
                    # per request.
                    self._no_lookup.add(variant)
                    log.warning(
                        "no lookup for variant %s; scoring with version %s", variant, fallback.version
                    )
                    return fallback
                self._remember(bundle)
                if self._current is not None and self._current != variant:
                    # The endpoint already serves a newer version than current.json said: follow the endpoint.
                    self._current = variant
            return bundle

    # --- scoring ---------------------------------------------------------------------------------------
    def candidates(self, bundle: Bundle, user_pos: int | None, query: Query) -> list[int]:
        n = len(bundle.lookup.movie_ids)
        allowed: tuple[int, ...] | None = None
        if query.genre is not None:
            # A genre no movie of this model has (the API's enum allows it) matches nothing.
            allowed = bundle.genre_index.get(query.genre.lower(), ())
        rated: list[int] = []
        if query.exclude_rated and user_pos is not None:
            rated = bundle.lookup.rated_positions(user_pos)
        if allowed is None:
            # rated is ascending: the candidates are the gaps between rated positions, as C-level ranges.
            bounds = [-1, *rated, n]
            return list(chain.from_iterable(range(a + 1, b) for a, b in pairwise(bounds)))
        skip = set(rated)
        return [p for p in allowed if p not in skip]

    def _model_terms(self, bundle: Bundle) -> tuple[Any, Any]:
        """The bundle's model and its movie-side FM terms, loaded once per version (fast path, similar)."""
        with self._lock:
            if bundle.item_terms is None:
                try:
                    from fmrec.model.fm import side_terms
                    from fmrec.serving.ranking import movie_rows
                except ImportError as exc:  # the Lambda package without the numpy layer
                    raise ServiceUnavailable(
                        "scoring in the Lambda needs numpy (the fast-path layer)", 30, str(exc)
                    ) from exc
                model = self._load_model(bundle.version)
                bundle.item_terms = side_terms(model.params, movie_rows(bundle.lookup)).compact()
                bundle.fast_model = model
            return bundle.fast_model, bundle.item_terms

    def _genre_mask(self, bundle: Bundle, genre: str) -> Any:
        import numpy as np

        key = genre.lower()
        mask = bundle.genre_masks.get(key)
        if mask is None:
            mask = np.zeros(len(bundle.lookup.movie_ids), dtype=bool)
            mask[list(bundle.genre_index.get(key, ()))] = True
            bundle.genre_masks[key] = mask  # a benign race: two threads build the same array
        return mask

    def _fast_rank(self, bundle: Bundle, user_pos: int, query: Query) -> tuple[list[Item], int]:
        """Every movie scored by one matrix-vector product, the excluded ones masked, then a partial sort."""
        model, terms = self._model_terms(bundle)  # a 503 when numpy is missing; past it, numpy imports
        import numpy as np

        from fmrec.model.fm import score_user_items
        from fmrec.serving.ranking import top_k_indices

        lookup = bundle.lookup
        scores = score_user_items(
            model.params,
            terms,
            lookup.user_keys(user_pos),
            model.predictor_type,
            lookup.user_values(user_pos),
        )
        if query.genre is not None:
            mask = self._genre_mask(bundle, query.genre).copy()
        else:
            mask = np.ones(scores.shape[0], dtype=bool)
        if query.exclude_rated:
            mask[np.asarray(lookup.rated_positions(user_pos), dtype=np.int64)] = False
        scores[~mask] = -np.inf
        top = top_k_indices(scores, query.k, query.min_score)
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], float(scores[p]), rank)
            for rank, p in enumerate(top.tolist(), start=1)
        ]
        return items, int(np.count_nonzero(mask))

    def _load_model(self, version: str | None) -> Any:
        from fmrec.model.artifact import load_model_tar

        key = model_key(version)
        data = self.store.get(key)
        if data is None:
            raise ServiceUnavailable(
                f"fast path: no model for version {version}", 30, f"no model at {self.store.describe(key)}"
            )
        # load_model_tar reads a path; /tmp is the Lambda's only writable place.
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, MODEL_FILE)
            Path(path).write_bytes(data)
            try:
                return load_model_tar(path)
            except InputError as exc:
                log.error("unreadable model for version %s: %s", version, exc)
                raise ServiceUnavailable(
                    f"fast path: the model of version {version} is unreadable", 30
                ) from exc

    def _endpoint_scores(
        self, bundle: Bundle, user_pos: int, query: Query
    ) -> tuple[Bundle, list[int], list[float], str | None]:
        assert self.caller is not None
        for attempt in (1, 2):
            positions = self.candidates(bundle, user_pos, query)
            payloads = bundle.builder.build(user_pos, positions)  # user values: from the lookup, if any
            answers = self._invoke_all([p.body for p in payloads])
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
            answering = self.bundle_for_variant(variant, bundle)
            if answering is bundle or answering.fingerprint == bundle.fingerprint:
                # Same feature layout: the scores are valid for the answering version.
                return answering, positions, scores, variant
            if attempt == 2:
                break
            log.info("endpoint serves %s, request was built for %s; rebuilding", variant, bundle.version)
            bundle = answering
            new_pos = bundle.lookup.user_position(query.user_id)
            if new_pos is None:
                raise _ColdStart(bundle)
            user_pos = new_pos
        raise ServiceUnavailable("the model is being updated; try again shortly", 1)

    def _invoke_all(self, bodies: list[bytes]) -> list[tuple[list[float], str | None]]:
        """Every body through the endpoint, concurrently when there are several; answers in body order."""
        assert self.caller is not None
        if len(bodies) <= 1:
            return [self.caller.invoke(b) for b in bodies]
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.endpoint_concurrency, thread_name_prefix="invoke")
        # The first failure (in body order) is re-raised; the request fails as a whole, as with one body.
        return list(self._executor.map(self.caller.invoke, bodies))

    def recommend(self, query: Query) -> Recommendation:
        bundle = self.current_bundle()
        user_pos = bundle.lookup.user_position(query.user_id)
        try:
            if user_pos is None:
                raise _ColdStart(bundle)
            if self.fast_path:
                items, count = self._fast_rank(bundle, user_pos, query)
                return Recommendation(query.user_id, bundle.version, PATH_FAST, items, count)
            bundle, positions, scores, variant = self._endpoint_scores(bundle, user_pos, query)
        except _ColdStart as cold:
            return self._cold_start(cold.bundle, query)
        lookup = bundle.lookup
        items = []
        for rank, i in enumerate(top_k(scores, query.k, query.min_score), start=1):
            pos = positions[i]
            items.append(Item(lookup.movie_ids[pos], lookup.titles[pos], scores[i], rank))
        return Recommendation(query.user_id, variant or bundle.version, PATH_ENDPOINT, items, len(positions))

    def similar(self, query: SimilarQuery) -> Similar:
        """The k movies whose factor vectors are closest (cosine) to the movie's, in the published model.

        From the model artifact in the Lambda, on either serving path: the endpoint has no such operation.
        """
        bundle = self.current_bundle()
        lookup = bundle.lookup
        pos = lookup.movie_position(query.movie_id)
        if pos is None:
            raise NotInModelError(f"movie {query.movie_id} is not in model version {bundle.version}")
        _, terms = self._model_terms(bundle)  # a 503 when numpy is missing; past it, numpy imports
        from fmrec.serving.similar import SimilarIndex

        with self._lock:
            if bundle.similar_index is None:
                bundle.similar_index = SimilarIndex.from_factors(terms.factors)
        index = bundle.similar_index
        allowed = self._genre_mask(bundle, query.genre) if query.genre is not None else None
        ranked, count = index.similar(pos, query.k, allowed, movie_id=query.movie_id)
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score, rank)
            for rank, (p, score) in enumerate(ranked, start=1)
        ]
        return Similar(query.movie_id, lookup.titles[pos], bundle.version, items, count)

    def _cold_start(self, bundle: Bundle, query: Query) -> Recommendation:
        ranked = bundle.popular
        if query.genre is not None:
            allowed = set(self.candidates(bundle, None, query))
            ranked = [p for p in ranked if p in allowed]
        lookup, score = bundle.lookup, bundle.popular_score
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score[p], rank)
            for rank, p in enumerate(ranked[: query.k], start=1)
        ]
        return Recommendation(query.user_id, bundle.version, PATH_COLD, items, len(ranked))


class _ColdStart(Exception):
    def __init__(self, bundle: Bundle) -> None:
        super().__init__("cold start")
        self.bundle = bundle


def recommender_from_env(
    environ: Mapping[str, str] | None = None, client_kwargs: Mapping[str, Any] | None = None
) -> Recommender:
    """Build the recommender from the Lambda's environment (docs/api.md lists the variables).

    client_kwargs go to both boto3 clients (the API twin passes endpoint_url and twin credentials).
    """
    import boto3
    from botocore.config import Config

    env = dict(os.environ if environ is None else environ)
    extra = dict(client_kwargs or {})
    store: ArtifactStore
    if env.get("FMREC_ARTIFACT_DIR"):
        store = DirStore(Path(env["FMREC_ARTIFACT_DIR"]))
    else:
        bucket = env.get("FMREC_ARTIFACT_BUCKET", "")
        if not bucket:
            raise InputError("FMREC_ARTIFACT_BUCKET is not set (or FMREC_ARTIFACT_DIR for a local folder)")
        prefix = env.get("FMREC_ARTIFACT_PREFIX", "serving/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        s3_kwargs = {k: v for k, v in extra.items() if k != "endpoint_url"}
        s3 = boto3.client(
            "s3", config=Config(connect_timeout=2, read_timeout=10, retries={"mode": "standard"}), **s3_kwargs
        )
        store = S3Store(bucket, prefix, s3)
    fast_path = env.get("FMREC_FAST_PATH", "0").lower() in ("1", "true", "yes", "on")
    caller = None
    endpoint_name = env.get("FMREC_ENDPOINT_NAME", "")
    if endpoint_name:
        timeout = float(env.get("FMREC_ENDPOINT_TIMEOUT_SECONDS", "2"))
        runtime = boto3.client(
            "sagemaker-runtime",
            config=Config(
                connect_timeout=min(timeout, 1.0),
                read_timeout=timeout,
                # Our own loop retries throttling with jitter; botocore's retries would double the delay.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=int(env.get("FMREC_MAX_POOL_CONNECTIONS", "16")),
                tcp_keepalive=True,
            ),
            **extra,
        )
        caller = EndpointCaller(
            runtime, endpoint_name, max_attempts=int(env.get("FMREC_ENDPOINT_MAX_ATTEMPTS", "4"))
        )
    return Recommender(
        store,
        caller,
        fast_path=fast_path,
        version_check_seconds=float(env.get("FMREC_VERSION_CHECK_SECONDS", "300")),
        max_request_bytes=int(env.get("FMREC_REQUEST_MAX_BYTES", str(DEFAULT_REQUEST_BYTES))),
        endpoint_concurrency=int(env.get("FMREC_ENDPOINT_CONCURRENCY", str(DEFAULT_ENDPOINT_CONCURRENCY))),
    )
