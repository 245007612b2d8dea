"""The recommend handler on API Gateway events, with a botocore-stubbed sagemaker-runtime client."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import ANY, Stubber

from fmrec.serving.requests import RequestBuilder, decode_body
from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import (
    ENDPOINT,
    MOVIES,
    RATINGS,
    endpoint_scores,
    event,
    handle,
    invoke_response,
    runtime_client,
)
from twins.endpoint.server import free_port


class Harness:
    """A Recommender over the world's artifacts whose endpoint client is stubbed; sleeps are recorded."""

    def __init__(self, world: Any, max_attempts: int = 4) -> None:
        self.world = world
        self.client = runtime_client()
        self.stub = Stubber(self.client)
        self.sleeps: list[float] = []
        caller = EndpointCaller(
            self.client, ENDPOINT, max_attempts=max_attempts, sleep=self.sleeps.append, rng=random.Random(3)
        )
        self.recommender = Recommender(DirStore(world.artifacts), caller)
        app.configure(self.recommender)

    def expect(self, body: bytes, variant: str = "v1", model: Any = None, lookup: Any = None) -> list[float]:
        scores = endpoint_scores(model or self.world.model, lookup or self.world.lookup, body)
        self.stub.add_response(
            "invoke_endpoint",
            invoke_response(scores, variant),
            {"EndpointName": ENDPOINT, "Body": body, "ContentType": "application/json", "Accept": ANY},
        )
        return scores

    def body_for(self, user_id: int, exclude_rated: bool = True, lookup: Any = None) -> bytes:
        lookup = lookup or self.world.lookup
        pos = lookup.user_position(user_id)
        rated = set(lookup.rated_positions(pos)) if exclude_rated else set()
        positions = [p for p in range(len(lookup.movie_ids)) if p not in rated]
        (payload,) = RequestBuilder(lookup).build(pos, positions)
        return payload.body


@pytest.fixture
def h(world: Any) -> Harness:
    return Harness(world)


def test_event_shape_matches_a_real_api_gateway_event() -> None:
    real = json.loads((Path(__file__).parent / "events" / "get_recommendations.json").read_text())
    ours = event("/users/1/recommendations", {"k": "3"})
    assert set(ours) == set(real)
    assert set(ours["requestContext"]) == set(real["requestContext"])
    assert set(ours["requestContext"]["identity"]) == set(real["requestContext"]["identity"])
    for key in ("resource", "path", "httpMethod", "pathParameters", "queryStringParameters"):
        assert ours[key] == real[key]
    assert ours["multiValueQueryStringParameters"] == real["multiValueQueryStringParameters"]


def test_recommends_top_k_unrated_movies_from_the_endpoint(world: Any, h: Harness) -> None:
    body = h.body_for(1)
    scores = h.expect(body)
    with h.stub:
        status, headers, doc = handle(event("/users/1/recommendations", {"k": "3"}, request_id="abc-123"))
    h.stub.assert_no_pending_responses()
    assert status == 200, doc
    assert headers["x-request-id"] == "abc-123"
    pairs = decode_body(world.lookup, body)
    assert {u for u, _ in pairs} == {1}
    rated = set(RATINGS[1])
    assert [m for _, m in pairs] == [m for m, _, _ in MOVIES if m not in rated]
    ranked = sorted(zip(scores, [m for _, m in pairs], strict=True), key=lambda t: -t[0])[:3]
    assert [it["movieId"] for it in doc["items"]] == [m for _, m in ranked]
    assert [it["rank"] for it in doc["items"]] == [1, 2, 3]
    assert doc["items"][0]["score"] == pytest.approx(ranked[0][0])
    titles = {m: t for m, t, _ in MOVIES}
    assert all(it["title"] == titles[it["movieId"]] for it in doc["items"])
    assert (doc["userId"], doc["modelVersion"], doc["servingPath"], doc["k"]) == (1, "v1", "endpoint", 3)
    assert doc["candidates"] == len(MOVIES) - len(rated)


def test_the_original_event_file_is_served(world: Any, h: Harness) -> None:
    real = json.loads((Path(__file__).parent / "events" / "get_recommendations.json").read_text())
    h.expect(h.body_for(1))
    with h.stub:
        status, headers, doc = handle(real)
    assert status == 200 and len(doc["items"]) == 3
    assert headers["x-request-id"] == real["requestContext"]["requestId"]


def test_include_rated_genre_and_min_score(world: Any, h: Harness) -> None:
    body = h.body_for(1, exclude_rated=False)
    scores = h.expect(body)
    threshold = sorted(scores)[len(scores) // 2]
    with h.stub:
        status, _, doc = handle(
            event(
                "/users/1/recommendations",
                {"k": "100", "exclude_rated": "false", "min_score": str(threshold)},
            )
        )
    assert status == 200
    assert doc["candidates"] == len(MOVIES)
    assert all(it["score"] >= threshold for it in doc["items"])
    assert len(doc["items"]) == sum(s >= threshold for s in scores)

    lookup = world.lookup
    pos = lookup.user_position(1)
    rated = set(lookup.rated_positions(pos))
    thrillers = [p for p, (_, _, g) in enumerate(MOVIES) if "Thriller" in g.split("|") and p not in rated]
    (payload,) = RequestBuilder(lookup).build(pos, thrillers)
    h.expect(payload.body)
    with h.stub:
        status, _, doc = handle(event("/users/1/recommendations", {"genre": "thriller"}))
    assert status == 200
    assert {it["movieId"] for it in doc["items"]} == {MOVIES[p][0] for p in thrillers}


def test_a_genre_no_movie_of_this_model_has_is_a_400_listing_its_genres(h: Harness) -> None:
    with h.stub:
        for user in ("1", "777"):  # the endpoint path (not called) and cold start
            status, _, doc = handle(event(f"/users/{user}/recommendations", {"genre": "WESTERN"}))
            assert status == 400 and doc["message"].startswith(
                "genre: no movie of model version v1 has 'WESTERN'"
            )
            assert "Action, Adventure, Animation, Children's, Comedy, Crime, Drama" in doc["message"]
    h.stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/users/abc/recommendations", {}, "userId"),
        ("/users/0/recommendations", {}, "userId"),
        ("/users/-4/recommendations", {}, "userId"),
        (f"/users/{2**63}/recommendations", {}, "userId"),
        ("/users/1/recommendations", {"k": "0"}, "k"),
        ("/users/1/recommendations", {"k": "101"}, "k"),
        ("/users/1/recommendations", {"k": "ten"}, "k"),
        ("/users/1/recommendations", {"k": "2.5"}, "k"),
        ("/users/1/recommendations", {"exclude_rated": "maybe"}, "exclude_rated"),
        ("/users/1/recommendations", {"min_score": "nan"}, "min_score"),
        ("/users/1/recommendations", {"genre": "Noir;drop"}, "genre"),
        ("/users/1/recommendations", {"genre": "Westerns"}, "genre"),
        ("/users/1/recommendations", {"genre": ""}, "genre"),
    ],
)
def test_invalid_parameters_are_400_json(h: Harness, path: str, query: dict[str, str], field: str) -> None:
    with h.stub:
        status, headers, doc = handle(event(path, query, request_id="bad-1"))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert doc["code"] == "BadRequest" and doc["requestId"] == "bad-1"
    assert doc["message"].startswith(field) or field in doc["message"]
    assert "Traceback" not in json.dumps(doc)


def test_unknown_route_and_method_are_404_json(h: Harness) -> None:
    for method, path in (("GET", "/users/1"), ("POST", "/users/1/recommendations"), ("GET", "/")):
        status, _, doc = handle(event(path, method=method))
        assert status == 404 and doc["code"] == "NotFound", (method, path)


def test_cold_start_user_gets_popular_well_rated_movies_without_an_endpoint_call(h: Harness) -> None:
    with h.stub:
        status, _, doc = handle(event("/users/777/recommendations", {"k": "3"}))
    h.stub.assert_no_pending_responses()
    assert status == 200
    assert doc["servingPath"] == "cold_start" and doc["modelVersion"] == "v1"
    # Star Wars: 5 ratings, mean 4.6, the best damped mean of the tiny world.
    assert doc["items"][0]["movieId"] == 50
    scores = [it["score"] for it in doc["items"]]
    assert scores == sorted(scores, reverse=True)
    with h.stub:
        _, _, doc = handle(event("/users/777/recommendations", {"k": "10", "genre": "Drama"}))
    dramas = {m for m, _, g in MOVIES if "Drama" in g}
    assert doc["items"] and {it["movieId"] for it in doc["items"]} <= dramas


def test_throttling_is_retried_with_jittered_backoff(h: Harness) -> None:
    for _ in range(2):
        h.stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
    h.expect(h.body_for(2))
    with h.stub:
        status, _, doc = handle(event("/users/2/recommendations"))
    assert status == 200, doc
    assert len(h.sleeps) == 2
    assert 0 <= h.sleeps[0] <= 0.05 and 0 <= h.sleeps[1] <= 0.1
    assert len(set(h.sleeps)) == 2


def test_still_throttled_after_retries_is_503_with_retry_after(h: Harness) -> None:
    for _ in range(4):
        h.stub.add_client_error("invoke_endpoint", "ThrottlingException", "Rate exceeded", 400)
    with h.stub:
        status, headers, doc = handle(event("/users/2/recommendations"))
    h.stub.assert_no_pending_responses()
    assert status == 503 and headers["retry-after"] == "1"
    assert doc["code"] == "ServiceUnavailable" and "Traceback" not in doc["message"]
    assert len(h.sleeps) == 3


@pytest.mark.parametrize(
    ("code", "status"), [("ModelError", 424), ("ValidationError", 400), ("InternalFailure", 500)]
)
def test_endpoint_failures_are_503_without_retry(h: Harness, code: str, status: int) -> None:
    h.stub.add_client_error("invoke_endpoint", code, "boom", status)
    with h.stub:
        got, headers, doc = handle(event("/users/2/recommendations"))
    assert got == 503 and int(headers["retry-after"]) >= 1 and doc["code"] == "ServiceUnavailable"
    assert h.sleeps == []


def test_unreachable_endpoint_is_503(world: Any) -> None:
    client = boto3.client(
        "sagemaker-runtime",
        region_name="us-east-1",
        aws_access_key_id="t",
        aws_secret_access_key="t",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"total_max_attempts": 1}),
    )
    app.configure(Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT)))
    status, headers, doc = handle(event("/users/2/recommendations"))
    assert status == 503 and headers["retry-after"] == "5"
    assert "unreachable" in doc["message"]


def test_unexpected_error_is_500_without_details(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(query: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(h.recommender, "recommend", broken)
    status, _, doc = handle(event("/users/2/recommendations", request_id="boom-1"))
    assert status == 500 and doc["code"] == "InternalError" and doc["requestId"] == "boom-1"
    assert "secret" not in json.dumps(doc)
    logged = [json.loads(app.logger.registered_formatter.format(r)) for r in caplog.records]
    errors = [rec for rec in logged if rec["level"] == "ERROR"]
    # The log keeps what the response hides, under the request's correlation id.
    assert (
        errors and "secret internals" in errors[-1]["exception"] and errors[-1]["correlation_id"] == "boom-1"
    )


def test_logs_are_structured_with_the_correlation_id(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    app.logger.setLevel("INFO")
    h.expect(h.body_for(3))
    with h.stub:
        status, _, _ = handle(event("/users/3/recommendations", request_id="corr-42"))
    assert status == 200
    lines = [json.loads(app.logger.registered_formatter.format(r)) for r in caplog.records]
    served = [rec for rec in lines if rec.get("message") == "recommendations served"]
    assert served and served[-1]["correlation_id"] == "corr-42"
    assert served[-1]["serving_path"] == "endpoint" and served[-1]["user_id"] == 3


def test_no_published_version_is_503(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    empty.mkdir()
    app.configure(Recommender(DirStore(empty), EndpointCaller(runtime_client(), ENDPOINT)))
    status, headers, doc = handle(event("/users/1/recommendations"))
    assert status == 503 and headers["retry-after"] == "30"
    assert "no lookup published" in doc["message"] and str(tmp_path) not in json.dumps(doc)
