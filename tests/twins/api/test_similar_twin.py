"""GET /movies/{movieId}/similar through the API twin, and `fmrec similar`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fmrec_cli.main import main
from lambdas.recommend.queries import SimilarQuery
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT
from twins.api.gateway import build_event
from twins.api.server import start_in_background
from twins.endpoint import server as endpoint_server

pytestmark = pytest.mark.slow


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def api(world: Any) -> Iterator[Any]:
    """The API twin on the endpoint path (as deployed): similar movies still come from the model artifact."""
    with endpoint_server.start_in_background(world.model_path, name=ENDPOINT, variant="v1") as endpoint:
        running = start_in_background(world.artifacts, endpoint.url, endpoint_name=ENDPOINT)
        try:
            yield running
        finally:
            running.stop()


def test_the_twin_maps_the_route_to_its_resource_and_path_parameter() -> None:
    event = build_event("GET", "/movies/50/similar", [("k", "3")], [], b"")
    assert event["resource"] == "/movies/{movieId}/similar"
    assert event["pathParameters"] == {"movieId": "50"}


def test_similar_movies_through_the_twin(world: Any, api: Any) -> None:
    status, doc = _get(f"{api.url}/movies/50/similar?k=3&genre=Thriller")
    assert status == 200, doc
    direct = Recommender(DirStore(world.artifacts), None, fast_path=True).similar(
        SimilarQuery(50, k=3, genre="Thriller")
    )
    assert [it["movieId"] for it in doc["items"]] == [it.movie_id for it in direct.items]
    assert doc["similarity"] == "cosine" and doc["modelVersion"] == "v1"
    assert _get(f"{api.url}/movies/6/similar")[0] == 404
    assert _get(f"{api.url}/movies/abc/similar")[0] == 400
    assert _get(f"{api.url}/movies/50/similar?k=0")[0] == 400


def test_similar_cli_prints_a_table(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["similar", "--movie", "50", "-k", "2", "--api-url", api.url]) == 0
    out = capsys.readouterr().out
    assert "Star Wars (1977)" in out.splitlines()[0] and "similarity cosine" in out
    assert len(out.splitlines()) == 4
    assert main(["similar", "--movie", "6", "--api-url", api.url]) == 2
    err = capsys.readouterr().err
    assert "HTTP 404" in err and "movie 6 is not in model version v1" in err
    assert main(["similar", "--movie", "50", "-k", "0", "--api-url", api.url]) == 2
