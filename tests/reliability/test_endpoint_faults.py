"""Endpoint faults seen through the API twin: each answers the documented 503 and nothing half-made."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fmrec.model.artifact import load_model_tar
from fmrec.model.fm import predict
from tests.support.fault_server import Reply
from tests.support.loopback import closed_port, http_get
from tests.support.trained_world import ENDPOINT, VERSION
from twins.api.server import start_in_background
from twins.endpoint.protocol import parse_json
from twins.endpoint.server import start_in_background as start_endpoint

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 0.5
MAX_ATTEMPTS = 3
ERROR_KEYS = {"code", "message", "requestId"}


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMREC_ENDPOINT_TIMEOUT_SECONDS", str(TIMEOUT_SECONDS))
    monkeypatch.setenv("FMREC_ENDPOINT_MAX_ATTEMPTS", str(MAX_ATTEMPTS))


@pytest.fixture
def api(trained: Any, lambda_env: None) -> Iterator[Any]:
    """api(endpoint_url) -> a running API twin over the trained world, pointed at that endpoint."""
    started: list[Any] = []

    def start(endpoint_url: str) -> Any:
        started.append(start_in_background(trained.artifacts, endpoint_url, endpoint_name=ENDPOINT))
        return started[-1]

    yield start
    for twin in started:
        twin.stop()


@pytest.fixture(scope="module")
def scorer(trained: Any) -> Any:
    """The real answer to a request body: the endpoint twin's parser and the FM math on the trained model."""
    model = load_model_tar(trained.model_path)

    def score(body: bytes) -> list[float]:
        X = parse_json(body, trained.feature_dim)
        return [float(s) for s in predict(model.params, X, model.predictor_type)]

    return score


def predictions(scores: list[float]) -> bytes:
    return json.dumps(
        {"predictions": [{"score": s, "predicted_label": int(s >= 0.5)} for s in scores]}
    ).encode()


def url_for(twin: Any, trained: Any, k: int = 5) -> str:
    return f"{twin.url}/users/{trained.lookup.user_ids[0]}/recommendations?k={k}"


def assert_unavailable(answer: Any, retry_after: str) -> dict[str, Any]:
    """The documented 503: the Error body only (no partial items), Retry-After, the request id, no trace."""
    assert answer.status == 503, answer.text
    doc = answer.json()
    assert set(doc) == ERROR_KEYS
    assert doc["code"] == "ServiceUnavailable"
    assert answer.headers["retry-after"] == retry_after
    assert answer.headers["x-request-id"] == doc["requestId"]
    assert "Traceback" not in answer.text and "items" not in doc
    return doc


def test_endpoint_down(api: Any, trained: Any) -> None:
    twin = api(f"http://127.0.0.1:{closed_port()}")
    doc = assert_unavailable(http_get(url_for(twin, trained)), "5")
    assert "unreachable" in doc["message"]


def test_endpoint_twin_stopped_mid_run(api: Any, trained: Any) -> None:
    endpoint = start_endpoint(trained.model_path, name=ENDPOINT, variant=VERSION)
    twin = api(endpoint.url)
    try:
        first = http_get(url_for(twin, trained))
        assert first.status == 200 and first.json()["servingPath"] == "endpoint"
    finally:
        endpoint.stop()
    assert_unavailable(http_get(url_for(twin, trained)), "5")


def test_endpoint_slower_than_the_timeout(api: Any, trained: Any, fault_server: Any, scorer: Any) -> None:
    late = 4.0
    server = fault_server(lambda n, body: Reply(body=predictions(scorer(body)), delay=late))
    twin = api(server.url)
    started = time.monotonic()
    doc = assert_unavailable(http_get(url_for(twin, trained)), "5")
    # The API gave up on its read timeout; the endpoint's (correct) answer would only have come later.
    assert time.monotonic() - started < late
    assert "unreachable" in doc["message"]
    assert server.calls == 1  # a timeout is not retried


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(429, "ThrottlingException"), (400, "ThrottlingException"), (503, "ServiceUnavailable")],
)
def test_endpoint_keeps_throttling(
    api: Any, trained: Any, fault_server: Any, status: int, error_type: str
) -> None:
    server = fault_server(
        lambda n, body: Reply(
            status, json.dumps({"message": "Rate exceeded"}).encode(), {"x-amzn-ErrorType": error_type}
        )
    )
    twin = api(server.url)
    doc = assert_unavailable(http_get(url_for(twin, trained)), "1")
    assert "throttling" in doc["message"]
    assert server.calls == MAX_ATTEMPTS


def test_throttling_then_recovery(api: Any, trained: Any, fault_server: Any, scorer: Any) -> None:
    throttled = MAX_ATTEMPTS - 1

    def respond(n: int, body: bytes) -> Any:
        if n <= throttled:
            return Reply(429, b'{"message":"Rate exceeded"}', {"x-amzn-ErrorType": "ThrottlingException"})
        return Reply(body=predictions(scorer(body)), headers={"x-Amzn-Invoked-Production-Variant": "v1"})

    server = fault_server(respond)
    answer = http_get(url_for(twin := api(server.url), trained, k=7))
    assert answer.status == 200, answer.text
    doc = answer.json()
    assert doc["servingPath"] == "endpoint" and doc["modelVersion"] == "v1"
    assert [it["rank"] for it in doc["items"]] == list(range(1, 8))
    scores = [it["score"] for it in doc["items"]]
    assert scores == sorted(scores, reverse=True)
    assert server.calls == MAX_ATTEMPTS
    twin.stop()


@pytest.mark.parametrize(
    "payload",
    [
        b'{"predictions": [{"score": 0.5}',  # cut off
        b"<html>502 Bad Gateway</html>",
        b'{"predictions": {"score": 0.5}}',  # wrong structure
        b'{"predictions": [{"score": "high"}]}',  # not a number
        b'{"predictions": [{"label": 1}]}',  # no score
        b"",
    ],
)
def test_endpoint_returns_malformed_json(api: Any, trained: Any, fault_server: Any, payload: bytes) -> None:
    server = fault_server(lambda n, body: Reply(body=payload))
    doc = assert_unavailable(http_get(url_for(api(server.url), trained)), "5")
    assert "unreadable" in doc["message"]


@pytest.mark.parametrize("missing", [1, "all"])
def test_endpoint_returns_fewer_predictions(
    api: Any, trained: Any, fault_server: Any, scorer: Any, missing: Any
) -> None:
    def respond(n: int, body: bytes) -> Any:
        scores = scorer(body)
        return Reply(body=predictions(scores[:-missing] if missing != "all" else []))

    server = fault_server(respond)
    doc = assert_unavailable(http_get(url_for(api(server.url), trained)), "5")
    assert "scores for" in doc["message"]


def test_endpoint_returns_more_predictions(api: Any, trained: Any, fault_server: Any, scorer: Any) -> None:
    server = fault_server(lambda n, body: Reply(body=predictions([*scorer(body), 0.99])))
    assert_unavailable(http_get(url_for(api(server.url), trained)), "5")


@pytest.mark.parametrize(
    ("status", "error_type"), [(424, "ModelError"), (500, "InternalFailure"), (400, "ValidationError")]
)
def test_endpoint_fails(api: Any, trained: Any, fault_server: Any, status: int, error_type: str) -> None:
    server = fault_server(
        lambda n, body: Reply(status, b'{"message":"boom"}', {"x-amzn-ErrorType": error_type})
    )
    doc = assert_unavailable(http_get(url_for(api(server.url), trained)), "5")
    assert error_type in doc["message"] and "boom" not in doc["message"]
    assert server.calls == 1  # not a throttle: no retry


@pytest.mark.parametrize("bad", ['"0.5"', "null", '"NaN"', '"Infinity"', "true", '{"v": 1}', "1e999"])
def test_endpoint_returns_a_non_number_score(
    api: Any, trained: Any, fault_server: Any, scorer: Any, bad: str
) -> None:
    """Well-formed JSON, the right count, but one score that is not a finite number: 503, never a 500 or a
    response body with NaN (which is not JSON)."""

    def respond(n: int, body: bytes) -> Any:
        scores = [json.dumps(s) for s in scorer(body)]
        scores[len(scores) // 2] = bad
        items = ",".join(f'{{"score":{s}}}' for s in scores)
        return Reply(body=f'{{"predictions":[{items}]}}'.encode())

    server = fault_server(respond)
    doc = assert_unavailable(http_get(url_for(api(server.url), trained, k=100)), "5")
    assert "unreadable" in doc["message"]
