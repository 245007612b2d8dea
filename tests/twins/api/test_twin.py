"""End to end through the twins: HTTP -> API Gateway twin -> the Lambda handler -> boto3 -> endpoint twin."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fmrec_cli.main import build_parser, main
from lambdas.recommend.queries import Query
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT, MOVIES, RATINGS
from twins.api.environment import ApiTwinConfig, _environment, make_handlers
from twins.api.gateway import create_app
from twins.api.server import start_in_background
from twins.background import start_thread
from twins.endpoint import server as endpoint_server

pytestmark = pytest.mark.slow


def get(url: str) -> tuple[int, dict[str, str], Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read())


@pytest.fixture
def twins(world: Any) -> Iterator[tuple[Any, Any]]:
    with endpoint_server.start_in_background(world.model_path, name=ENDPOINT, variant="v1") as endpoint:
        api = start_in_background(world.artifacts, endpoint.url, endpoint_name=ENDPOINT)
        try:
            yield endpoint, api
        finally:
            api.stop()


def test_recommendations_end_to_end(world: Any, twins: tuple[Any, Any]) -> None:
    _, api = twins
    status, headers, doc = get(f"{api.url}/users/13/recommendations?k=4")
    assert status == 200, doc
    assert doc["servingPath"] == "endpoint" and doc["modelVersion"] == "v1" and doc["userId"] == 13
    assert len(doc["items"]) == 4 and headers["x-request-id"]
    assert not {it["movieId"] for it in doc["items"]} & set(RATINGS[13])
    # The scores are the model's: compare with the fast path on the same artifacts.
    fast = Recommender(DirStore(world.artifacts), None, fast_path=True).recommend(Query(13, k=4))
    assert [it.movie_id for it in fast.items] == [it["movieId"] for it in doc["items"]]
    assert [it.score for it in fast.items] == pytest.approx([it["score"] for it in doc["items"]], abs=1e-6)


def test_errors_through_the_twin(twins: tuple[Any, Any]) -> None:
    _, api = twins
    status, _, doc = get(f"{api.url}/users/x/recommendations")
    assert status == 400 and doc["code"] == "BadRequest" and doc["message"].startswith("userId")
    status, _, doc = get(f"{api.url}/users/1/recommendations?k=1000")
    assert status == 400 and doc["message"].startswith("k:")
    status, _, doc = get(f"{api.url}/nope")
    assert status == 404 and doc["code"] == "NotFound"
    status, _, doc = get(f"{api.url}/users/4242/recommendations?k=2")
    assert status == 200 and doc["servingPath"] == "cold_start" and len(doc["items"]) == 2


def test_openapi_document_is_served(twins: tuple[Any, Any]) -> None:
    _, api = twins
    status, _, doc = get(f"{api.url}/openapi.json")
    source = json.loads((Path(__file__).parents[3] / "lambdas" / "recommend" / "openapi.json").read_text())
    assert status == 200 and doc == source


def test_endpoint_down_is_503_with_retry_after(world: Any) -> None:
    dead = f"http://127.0.0.1:{endpoint_server.free_port()}"
    with start_in_background(world.artifacts, dead, endpoint_name=ENDPOINT) as api:
        status, headers, doc = get(f"{api.url}/users/1/recommendations")
    assert status == 503 and headers["retry-after"] == "5" and doc["code"] == "ServiceUnavailable"


def test_recommend_cli_prints_a_table(twins: tuple[Any, Any], capsys: pytest.CaptureFixture[str]) -> None:
    _, api = twins
    assert main(["recommend", "--user", "1", "-k", "3", "--api-url", api.url]) == 0
    out = capsys.readouterr().out
    assert "path endpoint" in out and "model v1" in out
    titles = {t for _, t, _ in MOVIES}
    rows = out.splitlines()[2:]
    assert len(rows) == 3 and all(any(t in row for t in titles) for row in rows)
    assert main(["recommend", "--user", "1", "-k", "300", "--api-url", api.url]) == 2
    assert main(["recommend", "--user", "1", "--genre", "Westerns", "--api-url", api.url]) == 2
    assert "HTTP 400" in capsys.readouterr().err


def test_serve_api_cli_is_registered() -> None:
    args = build_parser().parse_args(
        ["serve", "api", "--artifacts", "x", "--endpoint-url", "http://127.0.0.1:1", "--port", "3001"]
    )
    assert (args.artifacts, args.endpoint_url, args.port) == ("x", "http://127.0.0.1:1", 3001)


def test_concurrent_requests_each_get_their_own_answer(twins: tuple[Any, Any]) -> None:
    """A Lambda environment takes one event at a time; the twin must not let concurrent events cross.

    Powertools keeps the current event on the module-level resolver, so handlers run concurrently in one
    process would answer one user's request with another user's parameters.
    """
    _, api = twins
    users = sorted(RATINGS)
    asks = [(users[i % len(users)], 1 + i % 7) for i in range(96)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda a: get(f"{api.url}/users/{a[0]}/recommendations?k={a[1]}"), asks))
    for (user, k), (status, _, doc) in zip(asks, answers, strict=True):
        assert status == 200, doc
        assert (doc["userId"], doc["k"]) == (user, k)
        assert len(doc["items"]) == min(k, doc["candidates"])


def test_each_environment_takes_one_event_at_a_time() -> None:
    """Like Lambda execution environments: each handler gets one event at a time; several run side by side."""
    guard = threading.Lock()
    active = [0, 0, 0]
    peak = [0, 0, 0]
    calls = [0, 0, 0]
    overall = {"active": 0, "peak": 0}

    def environment(i: int) -> Any:
        def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
            with guard:
                active[i] += 1
                calls[i] += 1
                peak[i] = max(peak[i], active[i])
                overall["active"] += 1
                overall["peak"] = max(overall["peak"], overall["active"])
            time.sleep(0.02)  # long enough that overlapping requests would overlap in here
            with guard:
                active[i] -= 1
                overall["active"] -= 1
            return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": "{}"}

        return handler

    app = create_app([environment(i) for i in range(3)], b"{}")
    port, stop = start_thread(app, "127.0.0.1", 0, label="API twin", timeout=10)
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(lambda i: get(f"http://127.0.0.1:{port}/users/{i}/x")[0], range(24)))
    finally:
        stop()
    assert statuses == [200] * 24 and sum(calls) == 24
    assert peak == [1, 1, 1]  # never two events in one environment
    assert 1 < overall["peak"] <= 3  # but environments do run side by side


def test_environments_are_independent_handler_instances(world: Any) -> None:
    first, second = _environment(), _environment()
    assert first.app is not second.app  # each has its own resolver (and so its own current event)
    handlers = make_handlers(ApiTwinConfig(str(world.artifacts), "http://127.0.0.1:9", "fmrec-endpoint"), 2)
    assert len(handlers) == 2 and handlers[0] is not handlers[1]
