"""The recommend service: the published version scored by the endpoint or the fast path, or cold start."""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import compress
from pathlib import Path
from typing import Any

from fmrec.errors import InputError, NotInModelError
from fmrec.ratings.fold_in import fold_in
from fmrec.ratings.store import Rating, RatingsStore, StoreUnavailable
from fmrec.serving.requests import MAX_PAYLOAD_BYTES
from lambdas.recommend.bundle import DEFAULT_REQUEST_BYTES, Bundle
from lambdas.recommend.endpoint import DEFAULT_ENDPOINT_CONCURRENCY, ColdStart, EndpointCaller, EndpointScorer
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.fast_path import FastPath
from lambdas.recommend.queries import (
    PATH_COLD,
    PATH_ENDPOINT,
    PATH_FAST,
    PATH_FOLD_IN,
    Item,
    Query,
    RatingsPosted,
    Recommendation,
    Similar,
    SimilarQuery,
)
from lambdas.recommend.store import ArtifactStore, DirStore, S3Store
from lambdas.recommend.versions import VersionCache

log = logging.getLogger(__name__)


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
        ratings: RatingsStore | None = None,
    ) -> None:
        if caller is None and not fast_path:
            raise InputError("the recommender needs an endpoint (FMREC_ENDPOINT_NAME) or the fast path")
        if not 1 <= max_request_bytes <= MAX_PAYLOAD_BYTES:
            raise InputError(f"max_request_bytes {max_request_bytes}: expected 1..{MAX_PAYLOAD_BYTES}")
        self.store = store
        self.ratings = ratings  # stored ratings (POST /users/{userId}/ratings); None: the route answers 503
        self.caller = caller
        self.fast_path = fast_path
        self.max_request_bytes = max_request_bytes
        self.versions = VersionCache(
            store,
            version_check_seconds=version_check_seconds,
            clock=clock,
            max_request_bytes=max_request_bytes,
        )
        self.fast = FastPath(self.versions)
        self.endpoint = (
            None if caller is None else EndpointScorer(caller, self.versions, endpoint_concurrency)
        )

    def current_bundle(self) -> Bundle:
        """The published version's bundle; current.json is re-read at most every version_check_seconds."""
        return self.versions.current_bundle()

    def bundle_for_variant(self, variant: str, fallback: Bundle) -> Bundle:
        """The bundle of the version an endpoint variant serves; the fallback when that version has none."""
        return self.versions.bundle_for_variant(variant, fallback)

    def recommend(self, query: Query) -> Recommendation:
        bundle = self.current_bundle()
        user_pos = bundle.lookup.user_position(query.user_id)
        stored = self.stored_ratings(query.user_id)
        # The fold-in seam: the user's side (keys, values, rated movies) from the lookup and stored ratings.
        side = fold_in(bundle.lookup, user_pos, stored)
        try:
            if side is None:
                raise ColdStart(bundle)
            if self.fast_path:
                items, count = self.fast.rank(bundle, side, query)
                path = PATH_FAST if user_pos is not None else PATH_FOLD_IN
                return Recommendation(query.user_id, bundle.version, path, items, count, side.folded)
            assert self.endpoint is not None
            bundle, positions, scores, variant = self.endpoint.scores(bundle, side, query, stored)
        except ColdStart as cold:
            return self._cold_start(cold.bundle, query, stored)
        lookup = bundle.lookup
        items = []
        for rank, i in enumerate(top_k(scores, query.k, query.min_score), start=1):
            pos = positions[i]
            items.append(Item(lookup.movie_ids[pos], lookup.titles[pos], scores[i], rank))
        path = PATH_ENDPOINT if lookup.user_position(query.user_id) is not None else PATH_FOLD_IN
        return Recommendation(
            query.user_id, variant or bundle.version, path, items, len(positions), side.folded
        )

    def stored_ratings(self, user_id: int) -> list[Rating]:
        """The user's stored ratings; none when there is no store, or it cannot be read (logged): the
        recommendations are still served, from the model alone."""
        if self.ratings is None:
            return []
        try:
            return self.ratings.get(user_id)
        except StoreUnavailable as exc:
            log.warning("stored ratings of user %d not read (%s: %s)", user_id, exc, exc.detail)
            return []

    def rate(self, user_id: int, ratings: list[Rating]) -> RatingsPosted:
        """Store a user's batch (whole or not at all); movies the served model lacks are stored and named."""
        if self.ratings is None:
            raise StoreUnavailable("ratings are not enabled in this deployment (no ratings store)", 300)
        try:
            lookup = self.current_bundle().lookup
        except ServiceUnavailable as exc:  # no model published yet: the ratings are kept for the first one
            log.warning("ratings stored without a served model (%s)", exc)
            lookup = None
        result = self.ratings.put(user_id, ratings)
        unknown = sorted(
            {r.movie_id for r in ratings if lookup is None or lookup.movie_position(r.movie_id) is None}
        )
        return RatingsPosted(user_id, result.stored, result.ignored, unknown)

    def similar(self, query: SimilarQuery) -> Similar:
        """The k movies whose factor vectors are closest (cosine) to the movie's, in the published model.

        From the model artifact in the Lambda, on either serving path: the endpoint has no such operation.
        """
        bundle = self.current_bundle()
        lookup = bundle.lookup
        pos = lookup.movie_position(query.movie_id)
        if pos is None:
            raise NotInModelError(f"movie {query.movie_id} is not in model version {bundle.version}")
        index = self.fast.similar_index(bundle)
        allowed = self.fast.genre_mask(bundle, query.genre) if query.genre is not None else None
        ranked, count = index.similar(pos, query.k, allowed, movie_id=query.movie_id)
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score, rank)
            for rank, (p, score) in enumerate(ranked, start=1)
        ]
        return Similar(query.movie_id, lookup.titles[pos], bundle.version, items, count)

    def _cold_start(self, bundle: Bundle, query: Query, stored: list[Rating]) -> Recommendation:
        ranked = bundle.popular
        rated = [bundle.lookup.movie_position(r.movie_id) for r in stored] if query.exclude_rated else []
        if query.genre is not None or any(p is not None for p in rated):
            allowed = set(bundle.candidates(None, query.genre, False)).difference(rated)
            ranked = [p for p in ranked if p in allowed]
        lookup, score = bundle.lookup, bundle.popular_score
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score[p], rank)
            for rank, p in enumerate(ranked[: query.k], start=1)
        ]
        return Recommendation(query.user_id, bundle.version, PATH_COLD, items, len(ranked))


def recommender_from_env(
    environ: Mapping[str, str] | None = None, client_kwargs: Mapping[str, Any] | None = None
) -> Recommender:
    """Build the recommender from the Lambda's environment (docs/api.md lists the variables).

    client_kwargs go to both boto3 clients (the API twin passes endpoint_url and twin credentials).
    """
    # local import: boto3 takes a few hundred ms; importing the service (the twin, tests) must not pay it
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
        ratings=ratings_from_env(env, extra),
        fast_path=fast_path,
        version_check_seconds=float(env.get("FMREC_VERSION_CHECK_SECONDS", "300")),
        max_request_bytes=int(env.get("FMREC_REQUEST_MAX_BYTES", str(DEFAULT_REQUEST_BYTES))),
        endpoint_concurrency=int(env.get("FMREC_ENDPOINT_CONCURRENCY", str(DEFAULT_ENDPOINT_CONCURRENCY))),
    )


def ratings_from_env(env: Mapping[str, str], client_kwargs: Mapping[str, Any]) -> RatingsStore | None:
    """The ratings store: the DynamoDB table FMREC_RATINGS_TABLE (AWS), the SQLite file FMREC_RATINGS_DB (the
    twin), or none (POST /users/{userId}/ratings answers 503, recommendations come from the model alone)."""
    table = env.get("FMREC_RATINGS_TABLE", "")
    if table:
        # local import: boto3 and botocore cost cold start; only a deployment with a ratings table loads them
        import boto3
        from botocore.config import Config

        # local import: Lambda cold start (botocore), as above
        from fmrec.ratings.dynamodb import DynamoRatings

        kwargs = {k: v for k, v in client_kwargs.items() if k != "endpoint_url"}
        client = boto3.client(
            "dynamodb",
            config=Config(
                connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 2}
            ),
            **kwargs,
        )
        return DynamoRatings(client, table)
    path = env.get("FMREC_RATINGS_DB", "")
    if path:
        # local import: sqlite3 is only the twin's store; the Lambda never opens one
        from fmrec.ratings.sqlite import SqliteRatings

        return SqliteRatings(path)
    return None
