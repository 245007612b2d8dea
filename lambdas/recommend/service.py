"""The recommend service: the published version scored by the endpoint or the fast path, or cold start."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fmrec.errors import NotInModelError
from fmrec.ratings.fold_in import folded, stored_history
from fmrec.ratings.store import MAX_ID, Rating, RatingsStore, StoreUnavailable
from fmrec.serving.lookup import UserSide
from fmrec.serving.requests import MAX_PAYLOAD_BYTES
from lambdas.recommend.bundle import DEFAULT_REQUEST_BYTES, DEFAULT_SHORTLIST, Bundle
from lambdas.recommend.endpoint import (
    DEFAULT_ENDPOINT_CONCURRENCY,
    EndpointCaller,
    EndpointScorer,
    ModelSwapped,
)
from lambdas.recommend.errors import Misconfigured, ServiceUnavailable
from lambdas.recommend.fast_path import FastScorer, Models
from lambdas.recommend.queries import (
    PATH_COLD,
    PATH_FOLD_IN,
    Item,
    Query,
    RankQuery,
    RatingsPosted,
    Recommendation,
    Scored,
    Scorer,
    Similar,
    SimilarQuery,
)
from lambdas.recommend.store import ArtifactStore, DirStore, S3Store
from lambdas.recommend.versions import VersionCache

log = logging.getLogger(__name__)

# The largest shortlist: 500, as many movies as a re-rank request may send.
MAX_SHORTLIST = 500


class Recommender:
    """Recommendations from versioned artifacts: every path retrieves from the model's item terms
    (fmrec.serving.retrieval), one scorer (the endpoint or the fast path) scores, ranking happens once."""

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
        shortlist: int = DEFAULT_SHORTLIST,
        ratings: RatingsStore | None = None,
    ) -> None:
        if caller is None and not fast_path:
            raise Misconfigured("the recommender needs an endpoint (FMREC_ENDPOINT_NAME) or the fast path")
        if not 1 <= max_request_bytes <= MAX_PAYLOAD_BYTES:
            raise Misconfigured(
                f"FMREC_REQUEST_MAX_BYTES {max_request_bytes}: expected 1..{MAX_PAYLOAD_BYTES}"
            )
        if not 1 <= shortlist <= MAX_SHORTLIST:
            raise Misconfigured(f"FMREC_SHORTLIST {shortlist}: expected 1..{MAX_SHORTLIST}")
        self.store = store
        self.ratings = ratings  # stored ratings (POST /users/{userId}/ratings); None: the route answers 503
        self.fast_path = fast_path
        self.max_request_bytes = max_request_bytes
        self.shortlist = shortlist
        self.versions = VersionCache(
            store,
            version_check_seconds=version_check_seconds,
            clock=clock,
            max_request_bytes=max_request_bytes,
        )
        self.models = Models(self.versions)
        self.endpoint = (
            None if caller is None else EndpointScorer(caller, self.versions, endpoint_concurrency)
        )
        self.scorer: Scorer = FastScorer(self.models) if fast_path or self.endpoint is None else self.endpoint

    def current_bundle(self) -> Bundle:
        """The published version's bundle; current.json is re-read at most every version_check_seconds."""
        return self.versions.current_bundle()

    def bundle_for_variant(self, variant: str, fallback: Bundle) -> Bundle:
        """The bundle of the version an endpoint variant serves; the fallback when that version has none."""
        return self.versions.bundle_for_variant(variant, fallback)

    def recommend(self, query: Query) -> Recommendation:
        """The top k: the exact top N of the catalogue retrieved, scored by the scorer, the k best kept."""
        n = query.k if self.fast_path else max(self.shortlist, query.k)

        def ask(bundle: Bundle, side: UserSide) -> tuple[list[int], Scored, int]:
            shortlist = self.models.retrieval(bundle).top(
                side, n, exclude_rated=query.exclude_rated, genre=query.genre
            )
            # Sent in catalogue order: the answer does not depend on the retrieval's float32 ties.
            positions = sorted(shortlist.positions)
            return positions, self.scorer.score(bundle, side, positions), shortlist.candidates

        stored = self.stored_ratings(query.user_id)
        bundle = self.current_bundle()
        for _attempt in (1, 2):
            bundle.check_genre(query.genre)
            side, extra = _user_side(bundle, query.user_id, stored)  # folded in again for a swapped version
            if side is None:
                return self._cold_start(bundle, query, extra)
            try:
                positions, scored, candidates = ask(bundle, side)
            except ModelSwapped as swapped:
                bundle = swapped.bundle
                continue
            scored = _folded_in(scored, side)
            count = folded(bundle.lookup, side, extra)
            return _result(
                query.user_id, scored, positions, query.k, query.min_score, candidates, None, count
            )
        raise ServiceUnavailable("the model is being updated; try again shortly", 1)

    def rank(self, query: RankQuery) -> Recommendation:
        """The given movies ordered for the user (re-ranking); ids the model has not got are reported."""
        stored = self.stored_ratings(query.user_id)
        bundle = self.current_bundle()
        for _attempt in (1, 2):
            lookup = bundle.lookup
            known: dict[int, int] = {}
            unknown: list[int] = []
            for movie_id in query.movie_ids:
                pos = lookup.movie_position(movie_id)
                if pos is None:
                    if movie_id not in unknown:
                        unknown.append(movie_id)
                else:
                    known.setdefault(movie_id, pos)
            positions = list(known.values())
            side, extra = _user_side(bundle, query.user_id, stored)
            if side is None:
                scores = [bundle.popular_score[p] for p in positions]
                cold = Scored(bundle, scores, bundle.version, PATH_COLD)
                return _result(query.user_id, cold, positions, len(positions), None, len(positions), unknown)
            try:
                scored = self.scorer.score(bundle, side, positions) if positions else None
            except ModelSwapped as swapped:
                bundle = swapped.bundle
                continue
            if scored is None:
                scored = Scored(bundle, [], bundle.version, self.scorer.serving_path)
            n, count = len(positions), folded(bundle.lookup, side, extra)
            return _result(query.user_id, _folded_in(scored, side), positions, n, None, n, unknown, count)
        raise ServiceUnavailable("the model is being updated; try again shortly", 1)

    def stored_ratings(self, user_id: int) -> list[Rating]:
        """The user's stored ratings; none when there is no store, or it cannot be read (logged): the
        recommendations are still served, from the model alone."""
        if self.ratings is None or user_id > MAX_ID:  # a POST refuses such ids: nothing can be stored
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
        bundle.check_genre(query.genre)
        lookup = bundle.lookup
        pos = lookup.movie_position(query.movie_id)
        if pos is None:
            raise NotInModelError(f"movie {query.movie_id} is not in model version {bundle.version}")
        index = self.models.similar_index(bundle)
        allowed = None
        if query.genre is not None:
            allowed = self.models.retrieval(bundle).genre_mask(query.genre)
        ranked, count = index.similar(pos, query.k, allowed, movie_id=query.movie_id)
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score, rank)
            for rank, (p, score) in enumerate(ranked, start=1)
        ]
        return Similar(query.movie_id, lookup.titles[pos], bundle.version, items, count)

    def _cold_start(self, bundle: Bundle, query: Query, stored: Sequence[int]) -> Recommendation:
        """The popular movies; `stored`: the movie positions of the user's stored ratings (exclude_rated)."""
        ranked = bundle.popular
        skip = set(stored) if query.exclude_rated else set()
        if query.genre is not None or skip:
            allowed = set(bundle.candidates(None, query.genre, query.exclude_rated)) - skip
            ranked = [p for p in ranked if p in allowed]
        lookup, score = bundle.lookup, bundle.popular_score
        items = [
            Item(lookup.movie_ids[p], lookup.titles[p], score[p], rank)
            for rank, p in enumerate(ranked[: query.k], start=1)
        ]
        return Recommendation(query.user_id, bundle.version, PATH_COLD, items, len(ranked))


def _user_side(bundle: Bundle, user_id: int, stored: Sequence[Rating]) -> tuple[UserSide | None, list[int]]:
    """The user's side in this version with their stored ratings folded in (None: cold start), and the movie
    positions fold-in added to the training history (fmrec.ratings.fold_in)."""
    extra = stored_history(bundle.lookup, bundle.lookup.user_position(user_id), stored)
    return bundle.user_side(user_id, extra), extra


def _folded_in(scored: Scored, side: UserSide) -> Scored:
    """A user this version was not trained on is scored from their stored ratings alone: path fold_in."""
    return scored if side.user_pos is not None else replace(scored, serving_path=PATH_FOLD_IN)


def best_first(
    positions: Sequence[int], scores: Sequence[float], k: int, min_score: float | None = None
) -> list[int]:
    """Indices into `positions` of the k best `scores`, best first (ties: lower movie position first), those
    under min_score dropped: the one final ordering of every path (fast, endpoint, re-rank)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], positions[i]))[:k]
    if min_score is not None:
        order = [i for i in order if scores[i] >= min_score]
    return order


def _result(
    user_id: int,
    scored: Scored,
    positions: Sequence[int],
    k: int,
    min_score: float | None,
    candidates: int,
    unknown: list[int] | None = None,
    stored_ratings: int = 0,
) -> Recommendation:
    """The one place a scored list becomes the answer: its k best."""
    lookup, scores = scored.bundle.lookup, scored.scores
    items = [
        Item(lookup.movie_ids[positions[i]], lookup.titles[positions[i]], scores[i], rank)
        for rank, i in enumerate(best_first(positions, scores, k, min_score), start=1)
    ]
    return Recommendation(
        user_id,
        scored.model_version,
        scored.serving_path,
        items,
        candidates,
        list(unknown or ()),
        stored_ratings,
    )


def _setting(env: Mapping[str, str], name: str, default: str, kind: Callable[[str], Any], low: float) -> Any:
    """One numeric environment variable, checked: a bad value is the deployment's fault (Misconfigured)."""
    raw = env.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not value >= low or value != value:  # NaN is not >= anything
        raise Misconfigured(f"{name}={raw!r}: expected a number of at least {low}")
    return value


def recommender_from_env(
    environ: Mapping[str, str] | None = None, client_kwargs: Mapping[str, Any] | None = None
) -> Recommender:
    """Build the recommender from the Lambda's environment (docs/api.md lists the variables).

    client_kwargs go to both boto3 clients (the API twin passes endpoint_url and twin credentials). A
    variable that is missing or malformed raises Misconfigured, naming it.
    """
    # local import: boto3 takes a few hundred ms; importing the service (the twin, tests) must not pay it
    import boto3
    from botocore.config import Config

    env = dict(os.environ if environ is None else environ)
    extra = dict(client_kwargs or {})
    version_check = _setting(env, "FMREC_VERSION_CHECK_SECONDS", "300", float, 0)
    max_bytes = _setting(env, "FMREC_REQUEST_MAX_BYTES", str(DEFAULT_REQUEST_BYTES), int, 1)
    concurrency = _setting(env, "FMREC_ENDPOINT_CONCURRENCY", str(DEFAULT_ENDPOINT_CONCURRENCY), int, 1)
    shortlist = _setting(env, "FMREC_SHORTLIST", str(DEFAULT_SHORTLIST), int, 1)
    store: ArtifactStore
    if env.get("FMREC_ARTIFACT_DIR"):
        store = DirStore(Path(env["FMREC_ARTIFACT_DIR"]))
    else:
        bucket = env.get("FMREC_ARTIFACT_BUCKET", "")
        if not bucket:
            raise Misconfigured("FMREC_ARTIFACT_BUCKET is not set (or FMREC_ARTIFACT_DIR for a local folder)")
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
        timeout = _setting(env, "FMREC_ENDPOINT_TIMEOUT_SECONDS", "2", float, 0.001)
        runtime = boto3.client(
            "sagemaker-runtime",
            config=Config(
                connect_timeout=min(timeout, 1.0),
                read_timeout=timeout,
                # Our own loop retries throttling with jitter; botocore's retries would double the delay.
                retries={"total_max_attempts": 1, "mode": "standard"},
                max_pool_connections=_setting(env, "FMREC_MAX_POOL_CONNECTIONS", "16", int, 1),
                tcp_keepalive=True,
            ),
            **extra,
        )
        attempts = _setting(env, "FMREC_ENDPOINT_MAX_ATTEMPTS", "4", int, 1)
        caller = EndpointCaller(runtime, endpoint_name, max_attempts=attempts)
    return Recommender(
        store,
        caller,
        ratings=ratings_from_env(env, extra),
        fast_path=fast_path,
        version_check_seconds=version_check,
        max_request_bytes=max_bytes,
        endpoint_concurrency=concurrency,
        shortlist=shortlist,
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
