"""The recommend API's Lambda: API Gateway REST proxy events to top-k recommendations."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths

from fmrec.errors import ConflictError, InputError, NotInModelError
from fmrec.ratings import body as ratings_body
from fmrec.ratings.store import StoreUnavailable
from lambdas.recommend.errors import Misconfigured, ServiceUnavailable
from lambdas.recommend.params import (
    OPENAPI_PATH,
    body_schema,
    load_openapi,
    parse_body,
    parse_parameters,
    route_parameters,
)
from lambdas.recommend.queries import Query, RankQuery, Recommendation, Similar, SimilarQuery
from lambdas.recommend.service import Recommender, recommender_from_env

logger = Logger(service="fmrec-recommend")
app = APIGatewayRestResolver(debug=False)
SIMILAR_ROUTE = "/movies/{movieId}/similar"
RANKINGS_ROUTE = "/users/{userId}/rankings"
_OPENAPI = load_openapi()
PARAMETERS = route_parameters(_OPENAPI)
SIMILAR_PARAMETERS = route_parameters(_OPENAPI, SIMILAR_ROUTE)
RANKINGS_PARAMETERS = route_parameters(_OPENAPI, RANKINGS_ROUTE, "post")
RANKINGS_BODY = body_schema(_OPENAPI, RANKINGS_ROUTE)
RATINGS_BODY = body_schema(_OPENAPI, "/users/{userId}/ratings")
JSON_TYPE = "application/json"

_state_lock = threading.Lock()
_recommender: Recommender | None = None


def configure(recommender: Recommender | None) -> None:
    """Use this recommender (twin, tests); None: the next request builds one from the environment."""
    global _recommender
    with _state_lock:
        _recommender = recommender


def get_recommender() -> Recommender:
    global _recommender
    if _recommender is None:
        with _state_lock:
            if _recommender is None:
                try:
                    _recommender = recommender_from_env()
                except Misconfigured as exc:
                    # The environment the stack set is wrong: every request fails the same way until it is
                    # fixed, so each says why in the log (the caller gets a 500 that does not blame it).
                    logger.error("configuration error: the function cannot start", extra={"reason": str(exc)})
                    raise
    return _recommender


def _request_id() -> str | None:
    try:
        return str(app.current_event.request_context.request_id)
    except (AttributeError, KeyError, TypeError):
        return None


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    request_id = _request_id()
    out = {"X-Request-Id": request_id} if request_id else {}
    out.update(headers or {})
    return Response(status, JSON_TYPE, json.dumps(body, separators=(",", ":")), out)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(status, {"code": code, "message": message, "requestId": _request_id()}, headers)


def _route_values(params: list[Any]) -> dict[str, Any]:
    """The route's parameter values; a request without its path parameters is a 404, as any unknown path.

    Powertools routes "/movies/50/similar/" to "/movies/<movieId>/similar", but an event of the catch-all
    proxy resource (the API twin's, docs/api.md) carries only {proxy}: such a path is no resource of the API.
    """
    event = app.current_event
    given = event.path_parameters or {}
    if any(p.location == "path" and p.name not in given for p in params):
        raise NotFoundError()
    return parse_parameters(params, given, event.query_string_parameters)


def _body() -> str | bytes | None:
    """The request body; a base64 one (a binary media type) as bytes: text that is not UTF-8 is then a 400
    from the body's parser, not a 500 from decoding it here."""
    event = app.current_event
    body: str | bytes | None = event.body
    if event.is_base64_encoded and body:
        body = base64.b64decode(body)
    return body


def render(rec: Recommendation, k: int) -> dict[str, Any]:
    return {
        "userId": rec.user_id,
        "modelVersion": rec.model_version,
        "servingPath": rec.serving_path,
        "k": k,
        "candidates": rec.candidates,
        "storedRatings": rec.stored_ratings,
        "items": [
            {"movieId": it.movie_id, "title": it.title, "score": it.score, "rank": it.rank}
            for it in rec.items
        ],
    }


@app.post("/users/<userId>/ratings")
def post_ratings(userId: str) -> Response:
    """The body checked against openapi.json (400 naming the field, nothing stored), kept by fmrec.ratings."""
    user_id = ratings_body.parse_user(userId)
    items = parse_body(RATINGS_BODY, _body())["ratings"]
    ratings = ratings_body.to_ratings(user_id, items, int(time.time()))
    posted = get_recommender().rate(user_id, ratings)
    logger.info(
        "ratings stored",
        extra={"user_id": user_id, "stored": posted.stored, "ignored": posted.ignored, "items": len(ratings)},
    )
    return _json(
        200,
        {
            "userId": user_id,
            "stored": posted.stored,
            "ignored": posted.ignored,
            "unknownMovies": posted.unknown_movies,
        },
    )


@app.get("/users/<userId>/recommendations")
def recommendations(userId: str) -> Response:
    started = time.perf_counter()
    values = _route_values(PARAMETERS)
    query = Query(
        user_id=values["userId"],
        k=values["k"],
        exclude_rated=values["exclude_rated"],
        min_score=values["min_score"],
        genre=values["genre"],
    )
    rec = get_recommender().recommend(query)
    logger.info(
        "recommendations served",
        extra={
            "user_id": rec.user_id,
            "serving_path": rec.serving_path,
            "model_version": rec.model_version,
            "k": query.k,
            "candidates": rec.candidates,
            "items": len(rec.items),
            "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
        },
    )
    return _json(200, render(rec, query.k))


def render_similar(result: Similar, k: int) -> dict[str, Any]:
    return {
        "movieId": result.movie_id,
        "title": result.title,
        "modelVersion": result.model_version,
        "similarity": "cosine",
        "k": k,
        "candidates": result.candidates,
        "items": [
            {"movieId": it.movie_id, "title": it.title, "score": it.score, "rank": it.rank}
            for it in result.items
        ],
    }


@app.get("/movies/<movieId>/similar")
def similar_movies(movieId: str) -> Response:
    started = time.perf_counter()
    values = _route_values(SIMILAR_PARAMETERS)
    query = SimilarQuery(movie_id=values["movieId"], k=values["k"], genre=values["genre"])
    result = get_recommender().similar(query)
    logger.info(
        "similar movies served",
        extra={
            "movie_id": result.movie_id,
            "model_version": result.model_version,
            "k": query.k,
            "candidates": result.candidates,
            "items": len(result.items),
            "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
        },
    )
    return _json(200, render_similar(result, query.k))


def render_rankings(rec: Recommendation) -> dict[str, Any]:
    body = render(rec, 1)
    del body["k"]
    body["unknownMovieIds"] = rec.unknown_movie_ids
    return body


@app.post("/users/<userId>/rankings")
def rankings(userId: str) -> Response:
    started = time.perf_counter()
    event = app.current_event
    values = parse_parameters(RANKINGS_PARAMETERS, event.path_parameters, event.query_string_parameters)
    movie_ids = parse_body(RANKINGS_BODY, _body())["movieIds"]
    rec = get_recommender().rank(RankQuery(user_id=values["userId"], movie_ids=tuple(movie_ids)))
    logger.info(
        "rankings served",
        extra={
            "user_id": rec.user_id,
            "serving_path": rec.serving_path,
            "model_version": rec.model_version,
            "movies": len(movie_ids),
            "unknown": len(rec.unknown_movie_ids),
            "duration_ms": round((time.perf_counter() - started) * 1e3, 3),
        },
    )
    return _json(200, render_rankings(rec))


@app.exception_handler(Misconfigured)
def _misconfigured(exc: Misconfigured) -> Response:
    logger.error("configuration error", extra={"reason": str(exc)})
    return _error(500, "InternalError", "the service is misconfigured; quote the requestId when reporting it")


@app.get("/openapi.json")
def openapi_document() -> Response:
    """The API's own contract, as the twin serves it: the deployed REST API routes GET /openapi.json here."""
    return Response(200, JSON_TYPE, OPENAPI_PATH.read_text(encoding="utf-8"))


@app.exception_handler(NotInModelError)
def _unknown_id(exc: NotInModelError) -> Response:
    return _error(404, "NotFound", str(exc))


@app.exception_handler(ConflictError)
def _conflict(exc: ConflictError) -> Response:
    logger.info("conflict", extra={"reason": str(exc)})
    return _error(409, "Conflict", str(exc))


@app.exception_handler(InputError)
def _bad_request(exc: InputError) -> Response:
    logger.info("bad request", extra={"reason": str(exc)})
    return _error(400, "BadRequest", str(exc))


@app.exception_handler(ServiceUnavailable)
def _unavailable(exc: ServiceUnavailable) -> Response:
    reason = f"{exc}: {exc.detail}" if exc.detail else str(exc)
    logger.warning("service unavailable", extra={"reason": reason, "retry_after": exc.retry_after})
    return _error(503, "ServiceUnavailable", str(exc), {"Retry-After": str(exc.retry_after)})


@app.exception_handler(StoreUnavailable)
def _store_unavailable(exc: StoreUnavailable) -> Response:
    logger.warning("ratings store unavailable", extra={"reason": f"{exc}: {exc.detail}"})
    return _error(503, "ServiceUnavailable", str(exc), {"Retry-After": str(exc.retry_after)})


@app.exception_handler(NotFoundError)
def _not_found(exc: NotFoundError) -> Response:
    event = app.current_event
    return _error(404, "NotFound", f"no route for {event.http_method} {event.path}")


@app.exception_handler(Exception)
def _internal(exc: Exception) -> Response:
    logger.exception("unhandled error")
    return _error(500, "InternalError", "internal error; quote the requestId when reporting it")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
