"""The fast path (scores from the model artifact in the Lambda) ranks exactly as the endpoint path does."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.errors import Misconfigured
from lambdas.recommend.queries import Query
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import ENDPOINT, MOVIES, RATINGS, USERS, event, handle
from twins.endpoint.server import start_in_background


def test_fast_path_and_endpoint_path_give_the_same_ranking(world: Any) -> None:
    fast = Recommender(DirStore(world.artifacts), None, fast_path=True)
    with start_in_background(world.model_path, name=ENDPOINT, variant="v1") as endpoint:
        client = boto3.client(
            "sagemaker-runtime",
            region_name="us-east-1",
            aws_access_key_id="t",
            aws_secret_access_key="t",
            endpoint_url=endpoint.url,
        )
        slow = Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT))
        for user in USERS:
            for exclude in (True, False):
                query = Query(user_id=user, k=100, exclude_rated=exclude)
                a, b = fast.recommend(query), slow.recommend(query)
                assert (a.serving_path, b.serving_path) == ("fast_path", "endpoint")
                assert a.model_version == b.model_version == "v1"
                assert [it.movie_id for it in a.items] == [it.movie_id for it in b.items]
                assert [it.score for it in a.items] == pytest.approx([it.score for it in b.items], abs=1e-6)
                assert len(a.items) == a.candidates


def test_fast_path_through_the_handler(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/users/5/recommendations", {"k": "2", "genre": "Crime"}))
    assert status == 200 and doc["servingPath"] == "fast_path" and doc["modelVersion"] == "v1"
    crime = {m for m, _, g in MOVIES if "Crime" in g} - set(RATINGS[5])
    assert len(doc["items"]) == 2 and {it["movieId"] for it in doc["items"]} <= crime


def test_fast_path_without_a_model_is_503(world: Any) -> None:
    (world.artifacts / "v1" / "model.tar.gz").unlink()
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, headers, doc = handle(event("/users/5/recommendations"))
    assert status == 503 and "no model" in doc["message"] and headers["retry-after"] == "30"
    assert str(world.artifacts) not in json.dumps(doc)


def test_recommender_needs_an_endpoint_or_the_fast_path(world: Any) -> None:
    with pytest.raises(Misconfigured, match="FMREC_ENDPOINT_NAME"):
        Recommender(DirStore(world.artifacts), None)
