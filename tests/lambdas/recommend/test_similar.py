"""GET /movies/{movieId}/similar: cosine of the served model's movie factors, in the Lambda."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.stub import Stubber

from fmrec.model import fm
from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.fm import FMParams
from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.queries import SimilarQuery
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import (
    ENDPOINT,
    MOVIES,
    event,
    handle,
    runtime_client,
)


def _expected(world: Any, movie_id: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
    """Brute force: cosine of V rows of the movie columns, every other movie, best first, ties by id."""
    lookup, V = world.lookup, np.asarray(world.model.params.V, dtype=np.float64)
    me = V[lookup.movie_column(lookup.movie_position(movie_id))]
    out = []
    for pos, other in enumerate(lookup.movie_ids):
        if other == movie_id or (allowed is not None and other not in allowed):
            continue
        v = V[lookup.movie_column(pos)]
        out.append((other, float(me @ v / np.linalg.norm(me) / np.linalg.norm(v))))
    return sorted(out, key=lambda t: (-t[1], t[0]))


@pytest.fixture
def fast(world: Any) -> Recommender:
    rec = Recommender(DirStore(world.artifacts), None, fast_path=True)
    app.configure(rec)
    return rec


def test_similar_movies_are_the_nearest_factor_vectors_by_cosine(world: Any, fast: Any) -> None:
    status, headers, doc = handle(event("/movies/50/similar", {"k": "4"}))
    assert status == 200, doc
    assert doc["movieId"] == 50 and doc["title"] == "Star Wars (1977)" and doc["similarity"] == "cosine"
    assert doc["modelVersion"] == "v1" and doc["k"] == 4 and headers["x-request-id"] == "req-1"
    expected = _expected(world, 50)
    assert doc["candidates"] == len(MOVIES) - 1
    assert [it["movieId"] for it in doc["items"]] == [m for m, _ in expected[:4]]
    assert [it["score"] for it in doc["items"]] == pytest.approx([s for _, s in expected[:4]], abs=1e-6)
    assert [it["rank"] for it in doc["items"]] == [1, 2, 3, 4]
    assert 50 not in {it["movieId"] for it in doc["items"]}


def test_k_larger_than_the_catalog_gives_every_other_movie(world: Any, fast: Any) -> None:
    status, _, doc = handle(event("/movies/1/similar", {"k": "100"}))
    assert status == 200
    assert [it["movieId"] for it in doc["items"]] == [m for m, _ in _expected(world, 1)]


def test_the_genre_filter_applies(world: Any, fast: Any) -> None:
    crime = {m for m, _, g in MOVIES if "Crime" in g}
    status, _, doc = handle(event("/movies/50/similar", {"genre": "crime"}))
    assert status == 200 and doc["candidates"] == len(crime)
    assert [it["movieId"] for it in doc["items"]] == [m for m, _ in _expected(world, 50, crime)]
    status, _, doc = handle(event("/movies/50/similar", {"genre": "Western"}))  # no movie of the model has it
    assert status == 400 and doc["message"].startswith("genre: no movie of model version v1 has 'Western'"), (
        doc
    )


@pytest.mark.parametrize(
    ("path", "query", "starts"),
    [
        ("/movies/x/similar", {}, "movieId:"),
        ("/movies/1.5/similar", {}, "movieId:"),
        ("/movies/0/similar", {}, "movieId:"),
        ("/movies/50/similar", {"k": "0"}, "k:"),
        ("/movies/50/similar", {"k": "101"}, "k:"),
        ("/movies/50/similar", {"k": "ten"}, "k:"),
        ("/movies/50/similar", {"genre": "Bollywood"}, "genre:"),
    ],
)
def test_bad_parameters_are_400(fast: Any, path: str, query: dict[str, str], starts: str) -> None:
    status, _, doc = handle(event(path, query))
    assert status == 400 and doc["code"] == "BadRequest" and doc["message"].startswith(starts), doc


def test_an_unknown_movie_is_404_json(fast: Any) -> None:
    status, headers, doc = handle(event("/movies/6/similar"))
    assert status == 404 and doc["code"] == "NotFound" and "movie 6" in doc["message"]
    assert headers["content-type"] == "application/json" and doc["requestId"] == "req-1"


def _publish_linear_only(world: Any, zero_movie: int | None = None) -> None:
    """Replace v1's model with one whose factors are all zero (or only one movie's, when given)."""
    V = np.asarray(world.model.params.V).copy()
    if zero_movie is None:
        V[:] = 0
    else:
        V[world.lookup.movie_column(world.lookup.movie_position(zero_movie))] = 0
    params = FMParams(world.model.params.w0, world.model.params.w, V)
    save_model_tar(
        FMModel(params, "binary_classifier", world.model.hyperparameters, {}),
        world.artifacts / "v1" / "model.tar.gz",
    )


def test_a_linear_only_model_is_409_with_a_reason(world: Any) -> None:
    _publish_linear_only(world)
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/movies/50/similar"))
    assert status == 409 and doc["code"] == "Conflict"
    assert "no usable factor vectors" in doc["message"] and "linear-only" in doc["message"]


def test_a_movie_with_a_zero_vector_is_409_and_is_never_a_neighbour(world: Any) -> None:
    _publish_linear_only(world, zero_movie=7)
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/movies/7/similar"))
    assert status == 409 and "movie 7" in doc["message"]
    status, _, doc = handle(event("/movies/50/similar", {"k": "100"}))
    assert status == 200 and 7 not in {it["movieId"] for it in doc["items"]}
    assert doc["candidates"] == len(MOVIES) - 2


def test_the_endpoint_path_answers_from_the_artifact_without_an_endpoint_call(world: Any) -> None:
    client = runtime_client()
    with Stubber(client) as stub:  # no response queued: any InvokeEndpoint call would fail the test
        rec = Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT))
        result = rec.similar(SimilarQuery(movie_id=12, k=3))
        stub.assert_no_pending_responses()
    assert [it.movie_id for it in result.items] == [m for m, _ in _expected(world, 12)[:3]]


def test_no_model_artifact_is_503(world: Any) -> None:
    (world.artifacts / "v1" / "model.tar.gz").unlink()
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, headers, doc = handle(event("/movies/50/similar"))
    assert status == 503 and headers["retry-after"] == "30"
    assert str(world.artifacts) not in json.dumps(doc)


def test_the_route_is_in_the_openapi_document_with_the_user_routes_genres() -> None:
    doc = json.loads((Path(app.__file__).with_name("openapi.json")).read_text())
    similar = doc["paths"]["/movies/{movieId}/similar"]["get"]
    users = doc["paths"]["/users/{userId}/recommendations"]["get"]
    genre = {p["name"]: p for p in similar["parameters"]}["genre"]["schema"]
    assert genre == {p["name"]: p for p in users["parameters"]}["genre"]["schema"]
    assert {"200", "400", "404", "409", "503"} <= set(similar["responses"])
    assert "Conflict" in doc["components"]["schemas"]["Error"]["properties"]["code"]["enum"]


def test_a_lambda_without_numpy_answers_503_not_500(world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    # as in the Lambda package without the layer: the retrieval (numpy) does not import
    monkeypatch.setitem(sys.modules, "fmrec.serving.retrieval", None)
    status, headers, doc = handle(event("/movies/50/similar"))
    assert status == 503 and headers["retry-after"] == "30" and "numpy" in doc["message"]
    status, _, doc = handle(event("/movies/6/similar"))
    assert status == 404  # an unknown movie is known without numpy
    status, _, doc = handle(event("/users/5/recommendations"))
    assert status == 503 and "numpy" in doc["message"]


def test_without_scipy_the_fast_path_and_similar_movies_score_with_numpy_alone(
    world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The AWS SDK for pandas layer brings numpy but no scipy: both routes must answer as with scipy."""

    def answers() -> tuple[Any, Any]:
        app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
        similar = handle(event("/movies/50/similar", {"k": "4"}))
        recs = handle(event("/users/5/recommendations", {"k": "5"}))
        return similar, recs

    with_scipy = answers()
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    monkeypatch.setattr(fm, "_HAVE_SCIPY", False)
    without = answers()
    for (s1, _, d1), (s2, _, d2) in zip(with_scipy, without, strict=True):
        assert s1 == s2 == 200, (d1, d2)
        assert [it["movieId"] for it in d1["items"]] == [it["movieId"] for it in d2["items"]]
        assert [it["score"] for it in d1["items"]] == pytest.approx(
            [it["score"] for it in d2["items"]], abs=1e-6
        )
