"""Schemathesis on GET /movies/{movieId}/similar through the API twin: no 5xx but 503; answers conform."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support.openapi_genres import with_model_genres

pytestmark = pytest.mark.slow

OPERATION = ("/movies/{movieId}/similar", "GET")


def test_generated_similar_requests_conform(api_url: str, trained: Any) -> None:
    session = requests.Session()
    document = session.get(f"{api_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(with_model_genres(document, trained.lookup))
    operation = schema[OPERATION[0]][OPERATION[1]]
    known_movies = st.sampled_from(trained.lookup.movie_ids)
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        # Random ids are mostly unknown movies (404); these reach the cosine ranking.
        known_movies.flatmap(
            lambda m: operation.as_strategy(GenerationMode.POSITIVE, path_parameters={"movieId": m})
        ),
    )
    statuses: collections.Counter[int] = collections.Counter()

    @given(case=cases)
    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call(base_url=api_url, session=session, timeout=10)
        statuses[response.status_code] += 1
        case.validate_response(response, excluded_checks=[not_a_server_error])
        assert response.status_code < 500 or response.status_code == 503, response.text
        assert "Traceback" not in response.text and response.headers.get("x-request-id")
        if response.status_code == 200:
            doc = response.json()
            assert len(doc["items"]) <= doc["k"]
            assert doc["movieId"] not in {it["movieId"] for it in doc["items"]}
            assert [it["rank"] for it in doc["items"]] == list(range(1, len(doc["items"]) + 1))
            scores = [it["score"] for it in doc["items"]]
            assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)

    check()
    print(f"schemathesis (similar movies): {sum(statuses.values())} requests; statuses {dict(statuses)}")
    assert statuses[200] > 0 and statuses[400] > 0 and statuses[404] > 0, statuses
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
