"""POST /users/{userId}/rankings through the API twin, and `fmrec rank`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from fmrec.errors import InputError
from fmrec_cli.main import main
from fmrec_cli.rank import parse_movies
from lambdas.recommend.queries import RankQuery
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT
from twins.api.gateway import build_event
from twins.api.server import start_in_background
from twins.endpoint import server as endpoint_server


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def api(world: Any) -> Iterator[Any]:
    """The API twin on the endpoint path, calling the endpoint twin through boto3 (as deployed)."""
    with endpoint_server.start_in_background(world.model_path, name=ENDPOINT, variant="v1") as endpoint:
        running = start_in_background(world.artifacts, endpoint.url, endpoint_name=ENDPOINT)
        try:
            yield running
        finally:
            running.stop()


def test_the_twin_maps_the_route_to_its_resource_and_passes_the_body() -> None:
    event = build_event("POST", "/users/7/rankings", [], [], b'{"movieIds":[1]}')
    assert event["resource"] == "/users/{userId}/rankings" and event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"userId": "7"} and json.loads(event["body"]) == {"movieIds": [1]}


@pytest.mark.slow
def test_rankings_through_the_twin_and_the_endpoint_twin(world: Any, api: Any) -> None:
    status, doc = _post(f"{api.url}/users/13/rankings", b'{"movieIds": [50, 1, 6, 12]}')
    assert status == 200, doc
    direct = Recommender(DirStore(world.artifacts), None, fast_path=True).rank(RankQuery(13, (50, 1, 6, 12)))
    assert [it["movieId"] for it in doc["items"]] == [it.movie_id for it in direct.items]
    assert [it["score"] for it in doc["items"]] == pytest.approx([it.score for it in direct.items], abs=1e-6)
    assert doc["servingPath"] == "endpoint" and doc["unknownMovieIds"] == [6]
    status, doc = _post(f"{api.url}/users/13/rankings", b'{"movieIds": []}')
    assert status == 400 and doc["message"].startswith("movieIds:")


@pytest.mark.slow
def test_rank_cli_prints_a_table(api: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rank", "--user", "1", "--movies", "50,6,12", "--api-url", api.url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("user 1  model v1  path endpoint  scored 2")
    assert len(out) == 5 and out[-1] == "not in the model: 6"
    assert main(["rank", "--user", "0", "--movies", "50", "--api-url", api.url]) == 2
    assert "HTTP 400" in capsys.readouterr().err


def test_rank_cli_checks_the_movie_list() -> None:
    assert parse_movies("50, 172,181") == [50, 172, 181]
    for bad in ("", "50,,1", "a,b", "-1"):
        with pytest.raises(InputError, match="--movies"):
            parse_movies(bad)
    with pytest.raises(InputError, match="1 to 500"):
        parse_movies(",".join(["1"] * 501))
