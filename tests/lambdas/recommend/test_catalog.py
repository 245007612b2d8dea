"""Large catalogs: bodies split and scored concurrently; weighted user keys on both serving paths."""

from __future__ import annotations

import json
from array import array
from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import InputError
from fmrec.model.artifact import save_model_tar
from fmrec.serving.lookup import Lookup, UserSide, write_lookup
from fmrec.serving.requests import RequestBuilder
from lambdas.recommend.errors import Misconfigured, ServiceUnavailable
from lambdas.recommend.queries import Query
from lambdas.recommend.service import Recommender, recommender_from_env
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import MOVIES, USERS, make_lookup, make_model
from tests.support.scoring_caller import ScoringCaller
from twins.api.publish import publish_version


def test_bodies_are_split_at_max_request_bytes_and_scored_concurrently(world: Any) -> None:
    one = ScoringCaller(world.model, world.lookup)
    whole = Recommender(DirStore(world.artifacts), one).recommend(Query(13, k=100, exclude_rated=False))  # type: ignore[arg-type]
    many = ScoringCaller(world.model, world.lookup)
    split = Recommender(DirStore(world.artifacts), many, max_request_bytes=400)  # type: ignore[arg-type]
    parts = split.recommend(Query(13, k=100, exclude_rated=False))
    assert len(one.bodies) == 1 and len(many.bodies) >= 3
    assert all(len(b) <= 400 for b in many.bodies) and many.peak > 1
    assert [(it.movie_id, it.score) for it in parts.items] == [(it.movie_id, it.score) for it in whole.items]
    assert parts.candidates == whole.candidates == len(MOVIES)


def test_chunks_answered_by_different_variants_are_retried_then_503(world: Any) -> None:
    caller = ScoringCaller(world.model, world.lookup, variants=["v1", "v2"])
    rec = Recommender(DirStore(world.artifacts), caller, max_request_bytes=400)  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable, match="being updated"):
        rec.recommend(Query(13, k=3))
    first = len(caller.bodies) // 2
    assert first >= 2 and caller.bodies[:first] == caller.bodies[first:]  # sent twice, then given up


def test_max_request_bytes_is_bounded_by_the_invoke_endpoint_limit(world: Any) -> None:
    with pytest.raises(Misconfigured, match="FMREC_REQUEST_MAX_BYTES"):
        Recommender(DirStore(world.artifacts), None, fast_path=True, max_request_bytes=7 * 1024 * 1024)
    env = {"FMREC_ARTIFACT_DIR": str(world.artifacts), "FMREC_FAST_PATH": "1"}
    rec = recommender_from_env({**env, "FMREC_REQUEST_MAX_BYTES": "5000"})
    assert rec.max_request_bytes == 5000


# --- user keys with values other than 1 (e.g. a user's rated-movie history as weighted columns) ----------
HISTORY = 3  # aux columns after the movie block


def _weighted_world(root: Path) -> tuple[Any, Any, Path]:
    base = make_lookup()
    nu, nm = len(base.user_ids), len(base.movie_ids)
    cols = [nu + nm + (u % HISTORY) for u in range(nu)] + [nu + nm + ((u + 1) % HISTORY) for u in range(nu)]
    lookup = Lookup(
        **{**base.__dict__, "feature_dim": nu + nm + HISTORY},
    )
    lookup.user_aux_indptr = array("Q", [2 * u for u in range(nu + 1)])
    lookup.user_aux_cols = array("I", [c for u in range(nu) for c in (cols[u], cols[nu + u])])
    lookup.aux_blocks = [{"name": "history", "offset": nu + nm, "size": HISTORY, "labels": ["a", "b", "c"]}]
    model = make_model(lookup.feature_dim, seed=4)
    write_lookup(root / "lookup", lookup)
    save_model_tar(model, root / "model.tar.gz")
    publish_version(root / "serving", "v1", root / "lookup", root / "model.tar.gz")
    return lookup, model, root / "serving"


def _values(self: Lookup, user_pos: int) -> list[float]:
    return [1.0] + [0.5 / (1 + user_pos), 0.25] * ((len(self.user_keys(user_pos)) - 1) // 2)


_USER_SIDE = Lookup.user_side


def _side(self: Lookup, user_pos: int | None, *args: Any, **kwargs: Any) -> UserSide:
    side = _USER_SIDE(self, user_pos, *args, **kwargs)
    assert user_pos is not None
    values = [1.0] + [0.5 / (1 + user_pos), 0.25] * ((len(side.keys) - 1) // 2)
    return UserSide(user_pos, side.keys, tuple(values), side.rated)


def test_weighted_user_keys_reach_the_endpoint_and_match_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookup, model, serving = _weighted_world(tmp_path)
    monkeypatch.setattr(Lookup, "user_side", _side)  # every path reads the side
    (payload,) = RequestBuilder(lookup).build(2, [0, 5])
    instance = json.loads(payload.body)["instances"][1]["data"]["features"]
    user = zip(lookup.user_keys(2), _values(lookup, 2), strict=True)
    pairs = sorted([*user, (lookup.movie_column(5), 1.0)])
    assert instance["keys"] == [k for k, _ in pairs]  # ascending, the movie's key among the user's
    assert instance["values"] == pytest.approx([v for _, v in pairs], rel=1e-8)
    caller = ScoringCaller(model, lookup)
    slow = Recommender(DirStore(serving), caller)  # type: ignore[arg-type]
    fast = Recommender(DirStore(serving), None, fast_path=True)
    for user in USERS:
        a, b = slow.recommend(Query(user, k=100)), fast.recommend(Query(user, k=100))
        assert [it.movie_id for it in a.items] == [it.movie_id for it in b.items]
        assert [it.score for it in a.items] == pytest.approx([it.score for it in b.items], abs=1e-6)
    # The values matter: all-1 values score differently.
    weighted = fast.recommend(Query(USERS[2], k=100))
    monkeypatch.setattr(Lookup, "user_side", _USER_SIDE)
    monkeypatch.setattr(Lookup, "user_values", lambda self, pos: [1.0] * len(self.user_keys(pos)))
    ones = fast.recommend(Query(USERS[2], k=100))
    assert [it.score for it in ones.items] != pytest.approx([it.score for it in weighted.items], abs=1e-6)


def test_non_finite_or_misaligned_user_values_are_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    lookup = make_lookup()
    monkeypatch.setattr(Lookup, "user_values", lambda self, pos: [float("nan")])
    with pytest.raises(InputError, match="finite"):
        RequestBuilder(lookup).build(0, None)
    monkeypatch.setattr(Lookup, "user_values", lambda self, pos: [1.0, 2.0])
    with pytest.raises(InputError, match="2 for 1 user keys"):
        RequestBuilder(lookup).build(0, None)
