"""POST /users/{userId}/ratings and fold-in through the Lambda's handler, on the endpoint and fast path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fmrec.ratings.fold_in import stored_history
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import (
    MAX_BATCH,
    MAX_ID,
    MAX_TIMESTAMP,
    RATING_MAX,
    RATING_MIN,
    Rating,
    StoreUnavailable,
)
from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.params import body_schema, load_openapi
from lambdas.recommend.service import Recommender, ratings_from_env
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT, World, handle
from tests.support.ratings_world import build_history_world, side_scores
from tests.support.scoring_caller import ScoringCaller
from twins.api.gateway import build_event


@pytest.fixture
def hworld(tmp_path: Path) -> World:
    return build_history_world(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> SqliteRatings:
    return SqliteRatings(tmp_path / "ratings.db")


def configure(world: World, store: Any, fast: bool) -> ScoringCaller:
    runtime = ScoringCaller(world.model, world.lookup, delay=0)
    caller = None if fast else EndpointCaller(runtime, ENDPOINT)
    app.configure(Recommender(DirStore(world.artifacts), caller, fast_path=fast, ratings=store))
    return runtime


def post(user: Any, body: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [("content-type", "application/json")]
    return handle(build_event("POST", f"/users/{user}/ratings", [], headers, raw, request_id="req-p"))


def get(user: int, **query: str) -> dict[str, Any]:
    evt = build_event("GET", f"/users/{user}/recommendations", list(query.items()), [], b"")
    status, _, body = handle(evt)
    assert status == 200, body
    return body


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "endpoint"])
def test_a_new_user_gets_a_personal_list_from_posted_ratings(hworld: World, store: Any, fast: bool) -> None:
    runtime = configure(hworld, store, fast)
    assert get(2000)["servingPath"] == "cold_start"
    status, _, body = post(2000, {"ratings": [{"movieId": 50, "rating": 5}, {"movieId": 1, "rating": 4.5}]})
    assert status == 200 and body == {"userId": 2000, "stored": 2, "ignored": 0, "unknownMovies": []}
    answer = get(2000, k="20")
    assert answer["servingPath"] == "fold_in" and answer["storedRatings"] == 2
    lookup = hworld.lookup
    ids = [it["movieId"] for it in answer["items"]]
    assert 50 not in ids and 1 not in ids and len(ids) == lookup.n_movies - 2
    side = lookup.user_side(None, history=stored_history(lookup, None, store.get(2000)))
    positions = [lookup.movie_position(m) for m in ids]
    expected = side_scores(hworld, side, positions)
    assert [it["score"] for it in answer["items"]] == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert expected == sorted(expected, reverse=True)
    if not fast:  # the endpoint got the history-only side: no user column, values 1/sqrt(2)
        keys = runtime.instances()[-1]["data"]["features"]["keys"]
        assert keys == sorted(keys) and set(side.keys) <= set(keys) and len(keys) == len(side.keys) + 1
        assert all(k >= lookup.n_users for k in keys)


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "endpoint"])
def test_a_known_users_next_answer_reflects_a_posted_rating(hworld: World, store: Any, fast: bool) -> None:
    configure(hworld, store, fast)
    before = get(1, k="20")
    assert before["storedRatings"] == 0
    assert 9 in [it["movieId"] for it in before["items"]]
    assert post(1, {"ratings": [{"movieId": 9, "rating": 1, "timestamp": 1701000000}]})[0] == 200
    after = get(1, k="20")
    assert after["servingPath"] == ("fast_path" if fast else "endpoint") and after["storedRatings"] == 1
    assert 9 not in [it["movieId"] for it in after["items"]]  # exclude_rated covers stored ratings
    assert {it["movieId"]: it["score"] for it in after["items"]} != {
        it["movieId"]: it["score"] for it in before["items"] if it["movieId"] != 9
    }
    included = get(1, k="20", exclude_rated="false")
    assert 9 in [it["movieId"] for it in included["items"]]


def test_duplicates_later_timestamps_and_unknown_movies(hworld: World, store: Any) -> None:
    configure(hworld, store, True)
    item = {"movieId": 50, "rating": 5, "timestamp": 100}
    assert post(7, {"ratings": [item]})[2]["stored"] == 1
    assert post(7, {"ratings": [item]})[2] == {"userId": 7, "stored": 0, "ignored": 1, "unknownMovies": []}
    assert post(7, {"ratings": [{**item, "rating": 2, "timestamp": 99}]})[2]["ignored"] == 1
    assert post(7, {"ratings": [{**item, "rating": 3, "timestamp": 101}]})[2]["stored"] == 1
    _, _, body = post(7, {"ratings": [{"movieId": 424242, "rating": 4}]})
    assert body == {"userId": 7, "stored": 1, "ignored": 0, "unknownMovies": [424242]}
    first = store.get(7)[0]
    assert (first.movie_id, first.rating, first.timestamp) == (50, 3.0, 101)
    assert store.get(7)[1].timestamp > 1_700_000_000  # no timestamp: the time of the request


BAD = [
    ("2000", b"", "body"),
    ("2000", b"{not json", "body"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": NaN}]}', "NaN"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": Infinity}]}', "Infinity"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 1e999}]}', "ratings[0].rating"),
    ("2000", b"[]", "body"),
    ("2000", b"{}", "ratings"),
    ("2000", b'{"ratings": []}', "ratings"),
    ("2000", b'{"ratings": {"movieId": 1}}', "ratings"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5}], "user": 1}', "body.user"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5, "timestmap": 1}]}', "ratings[0].timestmap"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5}, {"movieId": 51}]}', "ratings[1].rating"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5.5}]}', "ratings[0].rating"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 0.4}]}', "ratings[0].rating"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": "5"}]}', "ratings[0].rating"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": true}]}', "ratings[0].rating"),
    ("2000", b'{"ratings": [{"movieId": 0, "rating": 5}]}', "ratings[0].movieId"),
    ("2000", b'{"ratings": [{"movieId": 2147483648, "rating": 5}]}', "ratings[0].movieId"),
    ("2000", b'{"ratings": [{"movieId": 50.0, "rating": 5}]}', "ratings[0].movieId"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5, "timestamp": -1}]}', "ratings[0].timestamp"),
    ("2000", b'{"ratings": [{"movieId": 50, "rating": 5, "timestamp": null}]}', "ratings[0].timestamp"),
    ("0", b'{"ratings": [{"movieId": 50, "rating": 5}]}', "userId"),
    ("2147483648", b'{"ratings": [{"movieId": 50, "rating": 5}]}', "userId"),
    ("abc", b'{"ratings": [{"movieId": 50, "rating": 5}]}', "userId"),
    ("2000", json.dumps({"ratings": [{"movieId": m, "rating": 3} for m in range(1, 102)]}).encode(), "101"),
]


@pytest.mark.parametrize(("user", "raw", "field"), BAD)
def test_bad_input_is_400_naming_the_field_and_nothing_is_stored(
    hworld: World, store: Any, user: str, raw: bytes, field: str
) -> None:
    configure(hworld, store, True)
    status, _, body = post(user, raw)
    assert status == 400 and body["code"] == "BadRequest", body
    assert field in body["message"]
    assert list(store.scan()) == []


class DownStore:
    def put(self, user_id: int, ratings: Any) -> Any:
        raise StoreUnavailable("the ratings store is unavailable", 7, "disk on fire")

    def get(self, user_id: int) -> list[Rating]:
        raise StoreUnavailable("the ratings store is unavailable", 7, "disk on fire")


def test_a_store_that_is_down_is_503_for_posts_and_ignored_for_recommendations(hworld: World) -> None:
    configure(hworld, DownStore(), True)
    status, headers, body = post(1, {"ratings": [{"movieId": 50, "rating": 5}]})
    assert status == 503 and headers["retry-after"] == "7" and body["code"] == "ServiceUnavailable"
    assert "fire" not in body["message"]  # the detail is for the log only
    answer = get(1)
    assert answer["servingPath"] == "fast_path" and answer["storedRatings"] == 0


def test_no_store_configured_is_503(hworld: World) -> None:
    configure(hworld, None, True)
    status, headers, body = post(1, {"ratings": [{"movieId": 50, "rating": 5}]})
    assert status == 503 and "not enabled" in body["message"] and int(headers["retry-after"]) >= 1


def test_the_environment_picks_the_store(tmp_path: Path) -> None:
    assert ratings_from_env({}, {}) is None
    sqlite = ratings_from_env({"FMREC_RATINGS_DB": str(tmp_path / "r.db")}, {})
    assert isinstance(sqlite, SqliteRatings)
    dynamo = ratings_from_env({"FMREC_RATINGS_TABLE": "t"}, {"region_name": "us-east-1"})
    assert type(dynamo).__name__ == "DynamoRatings" and dynamo.table == "t"  # type: ignore[union-attr]


def test_ratings_are_stored_before_any_model_is_published(tmp_path: Path, store: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    app.configure(Recommender(DirStore(empty), None, fast_path=True, ratings=store))
    status, _, body = post(4, {"ratings": [{"movieId": 50, "rating": 5}, {"movieId": 1, "rating": 3}]})
    assert status == 200 and body["stored"] == 2 and body["unknownMovies"] == [1, 50]
    assert len(store.get(4)) == 2


def test_openapi_ratings_body_has_the_stores_bounds() -> None:
    """The body is checked against openapi.json; the store's batch rule (one DynamoDB transaction per POST)
    and the readers' ranges (an export reads back) must be the bounds it declares."""
    batch = body_schema(load_openapi(), "/users/{userId}/ratings")["properties"]["ratings"]
    item = batch["items"]["properties"]
    assert (batch["minItems"], batch["maxItems"]) == (1, MAX_BATCH)
    assert (item["movieId"]["minimum"], item["movieId"]["maximum"]) == (1, MAX_ID)
    assert (item["rating"]["minimum"], item["rating"]["maximum"]) == (RATING_MIN, RATING_MAX)
    assert (item["timestamp"]["minimum"], item["timestamp"]["maximum"]) == (0, MAX_TIMESTAMP)
