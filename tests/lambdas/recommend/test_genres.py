"""The genres a served model knows come from its lookup (issue 23 item 6): ml-latest's Children and IMAX."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec.errors import InputError
from fmrec.serving.batch import write_all_users
from fmrec.serving.lookup import write_lookup
from lambdas.recommend import app
from lambdas.recommend.params import load_openapi
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import MOVIES, World, build_world, event, handle
from twins.api.publish import publish_version

# ml-latest, ml-25m and ml-32m spell ml-100k's "Children's" as "Children", and add "IMAX"
LATEST = {"Children's": "Children"}
IMAX = {50, 100}


def latest_world(root: Path) -> World:
    """The test world with its movies' genres as an ml-latest movies.csv spells them (version v2)."""
    world = build_world(root)
    world.lookup.genres = [
        [LATEST.get(g, g) for g in genres.split("|")] + (["IMAX"] if movie in IMAX else [])
        for movie, _, genres in MOVIES
    ]
    write_lookup(root / "lookup-v2", world.lookup)
    publish_version(world.artifacts, "v2", root / "lookup-v2", world.model_path)
    world.version = "v2"
    return world


@pytest.fixture(scope="module")
def latest_built(tmp_path_factory: pytest.TempPathFactory) -> World:
    return latest_world(tmp_path_factory.mktemp("latest"))


@pytest.fixture
def latest(latest_built: World) -> World:
    app.configure(Recommender(DirStore(latest_built.artifacts), None, fast_path=True))
    return latest_built


@pytest.mark.parametrize("genre", ["Children", "children", "IMAX", "imax"])
@pytest.mark.parametrize("user", ["1", "777"])  # the fast path and cold start
def test_ml_latest_genres_are_served(latest: World, genre: str, user: str) -> None:
    status, _, doc = handle(
        event(f"/users/{user}/recommendations", {"genre": genre, "k": "100", "exclude_rated": "false"})
    )
    assert status == 200, doc
    assert doc["items"] and all(genre.lower() in _genres_of(latest, it["movieId"]) for it in doc["items"])


def test_similar_movies_take_ml_latest_genres(latest: World) -> None:
    status, _, doc = handle(event("/movies/1/similar", {"genre": "IMAX", "k": "100"}))
    assert status == 200, doc
    assert {it["movieId"] for it in doc["items"]} == IMAX


@pytest.mark.parametrize(
    ("path", "genre"),
    [
        ("/users/1/recommendations", "Children's"),  # the ml-100k spelling, on an ml-latest model
        ("/users/777/recommendations", "Children's"),  # cold start
        ("/users/1/recommendations", "Western"),  # a MovieLens genre no movie of this model has
        ("/movies/50/similar", "Children's"),
    ],
)
def test_a_genre_the_model_does_not_have_is_a_400_listing_its_genres(
    latest: World, path: str, genre: str
) -> None:
    status, _, doc = handle(event(path, {"genre": genre}))
    assert status == 400 and doc["code"] == "BadRequest", doc
    message = doc["message"]
    assert message.startswith(f"genre: no movie of model version v2 has {genre!r}; expected one of ")
    assert "Children" in message and "IMAX" in message and "Children's" not in message.split("expected")[1]


def test_ml_100k_genres_still_work_on_an_ml_100k_model(world: World) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/users/777/recommendations", {"genre": "children's"}))
    assert status == 200 and {it["movieId"] for it in doc["items"]} == {1, 8}
    status, _, doc = handle(event("/users/777/recommendations", {"genre": "IMAX"}))
    assert status == 400 and "Children's" in doc["message"]


def test_batch_all_users_takes_the_lookups_genres(latest_built: World, tmp_path: Path) -> None:
    world = latest_built
    out = tmp_path / "recs.jsonl"
    assert write_all_users(out, world.model, world.lookup, 3, genre="imax") == len(world.lookup.user_ids)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all({it["movieId"] for it in row["items"]} <= IMAX for row in rows)
    with pytest.raises(InputError, match=r"genre: no movie of the lookup has \"Children's\".*Children, "):
        write_all_users(tmp_path / "x.jsonl", world.model, world.lookup, 3, genre="Children's")


def test_the_openapi_document_lists_no_fixed_genres() -> None:
    """The genres depend on the served model: the document cannot list them, it says where they come from."""
    doc = load_openapi()
    for item in doc["paths"].values():
        for op in item.values():
            for p in op.get("parameters", []) if isinstance(op, dict) else []:
                if p["name"] == "genre":
                    assert "enum" not in p["schema"] and "IMAX" in p["description"]


def _genres_of(world: World, movie_id: int) -> list[str]:
    pos = world.lookup.movie_ids.index(movie_id)
    return [g.lower() for g in world.lookup.genres[pos]]
