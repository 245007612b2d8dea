"""Fold-in on every route and path of the new retrieval: the re-rank route, the endpoint path's shortlist, and
a model swap between retrieval and scoring (the stored ratings folded in again for the answering version)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fmrec.model.fm import predict
from fmrec.ratings.fold_in import stored_history
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import Rating
from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT, USERS, World, build_world, handle, invoke_response
from tests.support.ratings_world import build_history_world, side_scores
from tests.support.scoring_caller import ScoringCaller
from twins.api.gateway import build_event
from twins.endpoint.protocol import parse_json


@pytest.fixture
def hworld(tmp_path: Path) -> World:
    return build_history_world(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> SqliteRatings:
    return SqliteRatings(tmp_path / "ratings.db")


def _rank(user: int, movies: list[int]) -> dict[str, Any]:
    body = json.dumps({"movieIds": movies}).encode()
    evt = build_event("POST", f"/users/{user}/rankings", [], [("content-type", "application/json")], body)
    status, _, doc = handle(evt)
    assert status == 200, doc
    return doc


def _get(user: int, **query: str) -> dict[str, Any]:
    status, _, doc = handle(
        build_event("GET", f"/users/{user}/recommendations", list(query.items()), [], b"")
    )
    assert status == 200, doc
    return doc


def test_bundle_user_side_takes_the_stored_movies_as_extra_history(hworld: World, tmp_path: Path) -> None:
    """The seam fold-in plugs into: extra rated movies, known user or not; without history columns (the
    rating objective) a new user has no side (cold start) and a known one only gains rated movies."""
    rec = Recommender(DirStore(hworld.artifacts), None, fast_path=True)
    bundle = rec.current_bundle()
    lookup = bundle.lookup
    star_wars, toy_story = lookup.movie_ids.index(50), lookup.movie_ids.index(1)
    assert lookup.history is not None
    assert bundle.user_side(4) is None  # unknown and no history: cold start
    stranger = bundle.user_side(4, extra_history=[star_wars])
    assert stranger is not None and stranger.user_pos is None and stranger.rated == (star_wars,)
    assert stranger.keys == (lookup.history.offset + star_wars,)
    known, more = bundle.user_side(13), bundle.user_side(13, extra_history=[toy_story])
    assert known is not None and more is not None
    assert set(more.rated) == {*known.rated, toy_story} and more.keys[0] == known.keys[0]
    ranked = rec.models.retrieval(bundle).top(stranger, 3)
    assert len(ranked.positions) == 3 and star_wars not in ranked.positions
    plain = Recommender(DirStore(build_world(tmp_path / "plain").artifacts), None, fast_path=True)
    bundle = plain.current_bundle()
    assert bundle.user_side(4, extra_history=[star_wars]) is None
    no_block = bundle.user_side(13, extra_history=[toy_story])
    assert no_block is not None and no_block.keys == bundle.user_side(13).keys  # type: ignore[union-attr]
    assert toy_story in no_block.rated


@pytest.mark.parametrize("fast", [True, False], ids=["fast_path", "endpoint"])
def test_the_rerank_route_folds_in_stored_ratings(hworld: World, store: Any, fast: bool) -> None:
    runtime = ScoringCaller(hworld.model, hworld.lookup, delay=0)
    caller = None if fast else EndpointCaller(runtime, ENDPOINT)
    app.configure(Recommender(DirStore(hworld.artifacts), caller, fast_path=fast, ratings=store))
    movies = [100, 12, 9, 3, 50]
    assert _rank(2000, movies)["servingPath"] == "cold_start"
    store.put(2000, [Rating(2000, 50, 5.0, 10), Rating(2000, 1, 4.0, 11)])
    doc = _rank(2000, movies)
    assert doc["servingPath"] == "fold_in" and doc["storedRatings"] == 2
    lookup = hworld.lookup
    side = lookup.user_side(None, history=stored_history(lookup, None, store.get(2000)))
    positions = [lookup.movie_position(m) for m in movies]
    expected = sorted(zip(movies, side_scores(hworld, side, positions), strict=True), key=lambda t: -t[1])
    assert [it["movieId"] for it in doc["items"]] == [m for m, _ in expected]  # a rated movie is ranked too
    assert [it["score"] for it in doc["items"]] == pytest.approx([s for _, s in expected], rel=1e-5, abs=1e-6)
    if not fast:  # the endpoint scored the history-only side
        assert all(_holds_side(i["data"]["features"]["keys"], side.keys) for i in runtime.instances())
    # A known user's re-rank changes with a posted rating too, and stays on its path.
    before = _rank(1, movies)
    store.put(1, [Rating(1, 9, 1.0, 10)])
    after = _rank(1, movies)
    assert after["servingPath"] == ("fast_path" if fast else "endpoint") and after["storedRatings"] == 1
    assert before["storedRatings"] == 0 and after["items"] != before["items"]


class SwappingCaller:
    """An endpoint whose traffic has shifted to v2: every body is answered by v2's model, as variant v2."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.bodies: list[bytes] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        body = kwargs["Body"]
        self.bodies.append(body)
        model, lookup = self.world.model, self.world.lookup
        instances = json.loads(body)["instances"]
        if instances[0]["data"]["features"]["shape"] != [lookup.feature_dim]:  # built for v1: any scores
            return invoke_response([0.5] * len(instances), "v2")
        X = parse_json(body, lookup.feature_dim)
        return invoke_response([float(s) for s in predict(model.params, X, model.predictor_type)], "v2")


def test_a_model_swap_folds_the_stored_ratings_in_again_for_the_answering_version(
    tmp_path: Path, store: Any
) -> None:
    build_history_world(tmp_path, "v1")
    # v2 was trained with user 21 (no ratings of its own in training) and one more user column: every movie
    # and history column moves by one, so a side folded in for v1 is wrong for v2.
    v2 = build_history_world(tmp_path, "v2", seed=7, users=(*USERS, 21))
    (tmp_path / "serving" / "current.json").write_text(json.dumps({"modelVersion": "v1"}))
    runtime = SwappingCaller(v2)
    app.configure(
        Recommender(DirStore(tmp_path / "serving"), EndpointCaller(runtime, ENDPOINT), ratings=store)
    )
    store.put(2000, [Rating(2000, 50, 5.0, 10), Rating(2000, 1, 4.0, 11)])
    store.put(21, [Rating(21, 100, 4.0, 10)])
    doc = _get(2000, k="5")
    assert doc["modelVersion"] == "v2" and doc["servingPath"] == "fold_in" and doc["storedRatings"] == 2
    lookup = v2.lookup
    side = lookup.user_side(None, history=stored_history(lookup, None, store.get(2000)))
    positions = [lookup.movie_position(it["movieId"]) for it in doc["items"]]
    assert [it["score"] for it in doc["items"]] == pytest.approx(side_scores(v2, side, positions), rel=1e-5)
    first, last = (json.loads(b)["instances"][0]["data"]["features"] for b in runtime.bodies)
    assert first["shape"] == [v2.lookup.feature_dim - 1]  # the shortlist retrieved with v1: asked again
    assert _holds_side(last["keys"], side.keys)  # folded in again with v2's history columns, not v1's
    # After retraining, a folded-in user is an ordinary user of the model; their stored ratings still count.
    known = _get(21, k="5")
    assert (
        known["modelVersion"] == "v2" and known["servingPath"] == "endpoint" and known["storedRatings"] == 1
    )


def _holds_side(keys: list[int], side_keys: tuple[int, ...]) -> bool:
    """An instance's keys: ascending, the user side's keys and one movie key."""
    return keys == sorted(keys) and set(side_keys) <= set(keys) and len(keys) == len(side_keys) + 1
