"""Hostile parameters (issue 14): integers of thousands of digits are 400s; 64-bit user ids are served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lambdas.recommend import app
from lambdas.recommend.params import load_openapi, route_parameters
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import build_world, event, handle

BIG_USERS = (1, 2, 2**31, 2**32 + 7, 2**63 - 1)
HUGE = "9" * 4301  # one digit past Python's integer-string limit (int() raises ValueError)


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        (f"/users/{HUGE}/recommendations", {}, "userId"),
        (f"/users/-{HUGE}/recommendations", {}, "userId"),
        ("/users/1/recommendations", {"k": HUGE}, "k"),
        ("/users/1/recommendations", {"k": "+" + "1" * 5000}, "k"),
        (f"/users/{2**63}/recommendations", {}, "userId"),
    ],
    ids=["userId-4301-digits", "negative-userId", "k-4301-digits", "k-5000-digits", "userId-2^63"],
)
def test_integers_beyond_any_bound_are_400_not_500(
    world: Any, path: str, query: dict[str, str], field: str
) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event(path, query))
    assert status == 400, doc
    assert doc["code"] == "BadRequest" and doc["message"].startswith(
        f"{field}: expected an integer from 1 to"
    )
    assert len(doc["message"]) < 200  # the value is quoted shortened, not echoed whole


def test_leading_zeros_do_not_count_as_digits(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/users/" + "0" * 5000 + "1/recommendations", {"k": "0" * 4400 + "2"}))
    assert status == 200, doc
    assert (doc["userId"], doc["k"], len(doc["items"])) == (1, 2, 2)


def test_the_document_admits_every_64_bit_user_id() -> None:
    (user,) = [p for p in route_parameters(load_openapi()) if p.name == "userId"]
    assert user.parse(str(2**63 - 1)) == 2**63 - 1
    assert user.schema["format"] == "int64"


@pytest.mark.parametrize("user", [2**31, 2**32 + 7, 2**63 - 1])
def test_user_ids_at_and_above_2_31_are_served_from_the_lookup(tmp_path: Path, user: int) -> None:
    world = build_world(tmp_path, users=BIG_USERS)
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event(f"/users/{user}/recommendations", {"k": "3"}))
    assert status == 200, doc
    assert doc["userId"] == user and doc["servingPath"] == "fast_path", doc


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"min_score": "0_5"}, "min_score"),  # float() reads 5
        ({"min_score": "0.000_1"}, "min_score"),
        ({"min_score": "\u0660.5"}, "min_score"),  # Arabic-Indic zero: float() reads 0.5
        ({"min_score": "1e999"}, "min_score"),
        ({"k": "1_0"}, "k"),
        ({"k": "\u0665"}, "k"),
    ],
    ids=["underscore", "underscore-in-fraction", "unicode-digit", "overflow", "k-underscore", "k-unicode"],
)
def test_numbers_are_plain_ascii_decimals(world: Any, query: dict[str, str], field: str) -> None:
    """Issue 23 item 12: the API reads numbers with the pipeline's strict parser (fmrec.numbers)."""
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/users/1/recommendations", query))
    assert status == 400, doc
    assert doc["message"].startswith(f"{field}: expected")


def test_a_plain_min_score_is_still_read(world: Any) -> None:
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event("/users/1/recommendations", {"min_score": " 1e-3 ", "k": "+3"}))
    assert status == 200, doc
    assert len(doc["items"]) <= 3 and all(item["score"] >= 1e-3 for item in doc["items"])


@pytest.mark.parametrize(
    "path",
    ["/movies/50/similar/", "/users/1/recommendations/", "/movies//similar", "/users//recommendations"],
)
def test_a_path_that_is_no_resource_of_the_api_is_404_not_a_missing_parameter(world: Any, path: str) -> None:
    """Issue 23 item 12: through the catch-all proxy, Powertools' trailing-slash match reached the route."""
    app.configure(Recommender(DirStore(world.artifacts), None, fast_path=True))
    status, _, doc = handle(event(path, {"k": "3"}))
    assert status == 404 and doc["code"] == "NotFound", doc
    assert doc["message"] == f"no route for GET {path}"
