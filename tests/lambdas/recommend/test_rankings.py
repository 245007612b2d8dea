"""POST /users/{userId}/rankings: the given movies ordered for a user, on both paths, and its 400s."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fmrec.model.fm import predict
from fmrec.serving.ranking import feature_rows
from lambdas.recommend import app
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import MOVIES, build_event, context, lambda_handler
from tests.support.scoring_caller import ScoringCaller


def _post(path: str, body: Any, raw: bool = False) -> tuple[int, dict[str, Any]]:
    data = body if raw else json.dumps(body).encode()
    evt = build_event("POST", path, [], [("content-type", "application/json")], data, request_id="r-1")
    result = lambda_handler(evt, context())
    return result["statusCode"], json.loads(result["body"])


def _exact(world: Any, user: int, movies: list[int]) -> list[tuple[int, float]]:
    """Each movie's FM score for the user's full row (user + movie), best first: the endpoint's numbers."""
    lookup, model = world.lookup, world.model
    pos = lookup.user_position(user)
    side = lookup.user_side(pos)
    keys = [[*side.keys, *lookup.movie_keys(lookup.movie_position(m))] for m in movies]
    values = [[*side.values, 1.0] for _ in movies]
    scores = predict(model.params, feature_rows(keys, values, lookup.feature_dim), model.predictor_type)
    return sorted(zip(movies, scores.tolist(), strict=True), key=lambda t: -t[1])


@pytest.mark.parametrize("path", ["fast", "endpoint"])
def test_rankings_orders_every_given_movie_and_reports_unknown_ones(world: Any, path: str) -> None:
    caller = None if path == "fast" else ScoringCaller(world.model, world.lookup, delay=0)
    app.configure(Recommender(DirStore(world.artifacts), caller, fast_path=path == "fast"))  # type: ignore[arg-type]
    status, doc = _post("/users/13/rankings", {"movieIds": [50, 6, 1, 12, 1, 999, 100]})
    assert status == 200, doc
    expected = _exact(world, 13, [50, 1, 12, 100])
    assert [it["movieId"] for it in doc["items"]] == [m for m, _ in expected]
    assert [it["score"] for it in doc["items"]] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert [it["rank"] for it in doc["items"]] == [1, 2, 3, 4]
    assert doc["unknownMovieIds"] == [6, 999] and doc["candidates"] == 4
    assert doc["servingPath"] == ("fast_path" if path == "fast" else "endpoint")
    assert doc["modelVersion"] == "v1" and doc["userId"] == 13 and "k" not in doc
    if caller is not None:  # the rated movies are ranked too: a re-rank scores what it is given
        assert len(caller.bodies) == 1


def test_rankings_of_only_unknown_movies_is_an_empty_answer(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/13/rankings", {"movieIds": [6, 10]})
    assert status == 200 and doc["items"] == [] and doc["unknownMovieIds"] == [6, 10]


def test_rankings_for_a_user_the_model_does_not_know_is_cold_start(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/4/rankings", {"movieIds": [50, 1, 3]})
    assert status == 200 and doc["servingPath"] == "cold_start"
    bundle = app.get_recommender().current_bundle()
    positions = {m: bundle.lookup.movie_position(m) for m in (50, 1, 3)}
    damped = {m: bundle.popular_score[p] for m, p in positions.items() if p is not None}
    assert [it["movieId"] for it in doc["items"]] == sorted(damped, key=lambda m: -damped[m])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"movieIds": []}, "movieIds: expected an array of 1 to 500"),
        ({"movieIds": list(range(1, 502))}, "movieIds: expected an array of 1 to 500"),
        ({"movieIds": "50,172"}, "movieIds: expected an array"),
        ({"movieIds": [50, "172"]}, "movieIds[1]: expected an integer"),
        ({"movieIds": [50, 1.5]}, "movieIds[1]: expected an integer"),
        ({"movieIds": [True]}, "movieIds[0]: expected an integer"),
        ({"movieIds": [0]}, "movieIds[0]: expected an integer from 1"),
        ({"movieIds": [2**63]}, "movieIds[0]: expected an integer from 1"),
        ({}, "movieIds: required"),
        ({"movieIds": [1], "k": 3}, "body.k: not a field of this body"),
        ([1, 2], "body: expected a JSON object"),
    ],
)
def test_a_bad_movie_list_is_a_400_naming_the_field(world: Any, body: Any, field: str) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/13/rankings", body)
    assert status == 400 and doc["code"] == "BadRequest" and doc["message"].startswith(field), doc


@pytest.mark.parametrize("raw", [b"", b"not json", b'{"movieIds": [1,', "\u00e9".encode("latin-1")])
def test_a_body_that_is_not_json_is_a_400(world: Any, raw: bytes) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/13/rankings", raw, raw=True)
    assert status == 400 and doc["message"].startswith("body:"), doc


def test_a_bad_user_id_is_a_400_and_get_is_no_route(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/abc/rankings", {"movieIds": [1]})
    assert status == 400 and doc["message"].startswith("userId")
    evt = build_event("GET", "/users/1/rankings", [], [], b"", request_id="r-2")
    assert lambda_handler(evt, context())["statusCode"] == 404


def test_the_titles_come_from_the_lookup(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, doc = _post("/users/1/rankings", {"movieIds": [m for m, _, _ in MOVIES]})
    titles = {m: t for m, t, _ in MOVIES}
    assert status == 200 and len(doc["items"]) == len(MOVIES)
    assert all(it["title"] == titles[it["movieId"]] for it in doc["items"])
