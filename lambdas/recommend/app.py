"""The recommend API's Lambda: API Gateway REST proxy events to top-k recommendations."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths

from fmrec.errors import ConflictError, InputError, NotInModelError
from fmrec.ratings.body import parse_body, parse_user
from fmrec.ratings.store import StoreUnavailable
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.params import load_openapi, parse_parameters, route_parameters
from lambdas.recommend.queries import Query, Recommendation, Similar, SimilarQuery
from lambdas.recommend.service import Recommender, recommender_from_env

logger = Logger(service="fmrec-recommend")
app = APIGatewayRestResolver(debug=False)
SIMILAR_ROUTE = "/movies/{movieId}/similar"
PARAMETERS = route_parameters(load_openapi())
SIMILAR_PARAMETERS = route_parameters(load_openapi(), SIMILAR_ROUTE)
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
                _recommender = recommender_from_env()
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
    """Validation and storage live in the library (fmrec.ratings): 400 naming the field, nothing stored."""
    user_id = parse_user(userId)
    ratings = parse_body(user_id, app.current_event.decoded_body, int(time.time()))
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
    event = app.current_event
    values = parse_parameters(PARAMETERS, event.path_parameters, event.query_string_parameters)
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
    event = app.current_event
    values = parse_parameters(SIMILAR_PARAMETERS, event.path_parameters, event.query_string_parameters)
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
