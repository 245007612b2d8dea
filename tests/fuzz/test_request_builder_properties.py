"""Property tests of the request builder: each instance's keys decode back to the user and movie asked for."""

from __future__ import annotations

import json
from array import array
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmrec.errors import InputError
from fmrec.serving.lookup import Lookup
from fmrec.serving.requests import MAX_PAYLOAD_BYTES, RequestBuilder, decode_body, decode_keys

pytestmark = pytest.mark.slow


def _aux(draw: st.DrawFn, n: int, lo: int, hi: int) -> tuple[array, array] | tuple[None, None]:
    if hi <= lo or not draw(st.booleans()):
        return None, None
    cols = [sorted(draw(st.sets(st.integers(lo, hi - 1), max_size=3))) for _ in range(n)]
    indptr = [0]
    for c in cols:
        indptr.append(indptr[-1] + len(c))
    return array("Q", indptr), array("I", [x for c in cols for x in c])


@st.composite
def lookups(draw: st.DrawFn) -> Lookup:
    """Lookups with sparse, unordered-looking ids, optional auxiliary columns on either side."""
    user_ids = sorted(draw(st.sets(st.integers(1, 2**31 - 1), min_size=1, max_size=25)))
    movie_ids = sorted(draw(st.sets(st.integers(1, 2**31 - 1), min_size=1, max_size=40)))
    nu, nm = len(user_ids), len(movie_ids)
    # Auxiliary blocks follow the movie block: the user side's first, then the movie side's (disjoint).
    n_user_aux, n_movie_aux = draw(st.integers(0, 10)), draw(st.integers(0, 10))
    base = nu + nm
    user_aux = _aux(draw, nu, base, base + n_user_aux)
    movie_aux = _aux(draw, nm, base + n_user_aux, base + n_user_aux + n_movie_aux)
    return Lookup(
        feature_dim=base + n_user_aux + n_movie_aux,
        user_ids=user_ids,
        movie_ids=movie_ids,
        titles=[f"movie {m}" for m in movie_ids],
        genres=[["Drama"] for _ in movie_ids],
        movie_count=array("I", [1] * nm),
        movie_mean=array("f", [3.0] * nm),
        rated_indptr=array("Q", [0] * (nu + 1)),
        rated_pos=array("I"),
        user_aux_indptr=user_aux[0],
        user_aux_cols=user_aux[1],
        movie_aux_indptr=movie_aux[0],
        movie_aux_cols=movie_aux[1],
    )


@st.composite
def requests_for(draw: st.DrawFn) -> tuple[Lookup, int, list[int] | None, int]:
    lookup = draw(lookups())
    user_pos = draw(st.integers(0, lookup.n_users - 1))
    positions: list[int] | None = None
    if draw(st.booleans()):
        positions = draw(st.lists(st.integers(0, lookup.n_movies - 1), max_size=lookup.n_movies))
    # Small limits force splitting into many bodies; the real one keeps them whole.
    max_bytes = draw(st.one_of(st.just(MAX_PAYLOAD_BYTES), st.integers(300, 3000)))
    return lookup, user_pos, positions, max_bytes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(req=requests_for())
def test_keys_decode_to_the_user_and_movie(req: tuple[Lookup, int, list[int] | None, int]) -> None:
    lookup, user_pos, positions, max_bytes = req
    wanted = list(range(lookup.n_movies)) if positions is None else positions
    try:
        payloads = RequestBuilder(lookup, max_bytes).build(user_pos, positions)
    except Exception as exc:  # only a limit below one instance may refuse, and clearly
        assert isinstance(exc, InputError) and "cannot fit" in str(exc), exc
        return
    got_positions = [p for payload in payloads for p in payload.movie_positions]
    assert got_positions == wanted
    user_id = lookup.user_ids[user_pos]
    decoded = []
    for payload in payloads:
        assert len(payload.body) <= max_bytes
        doc: Any = json.loads(payload.body)
        for inst in doc["instances"]:
            features = inst["data"]["features"]
            assert features["shape"] == [lookup.feature_dim]
            keys = features["keys"]
            assert len(keys) == len(features["values"]) and set(features["values"]) <= {1}
            assert all(0 <= k < lookup.feature_dim for k in keys)
            assert len(set(keys)) == len(keys)
        decoded += decode_body(lookup, payload.body)
    assert decoded == [(user_id, lookup.movie_ids[p]) for p in wanted]


@settings(max_examples=200, deadline=None)
@given(lookup=lookups(), data=st.data())
def test_user_and_movie_keys_cover_exactly_their_columns(lookup: Lookup, data: st.DataObject) -> None:
    u = data.draw(st.integers(0, lookup.n_users - 1))
    m = data.draw(st.integers(0, lookup.n_movies - 1))
    keys = lookup.user_keys(u) + lookup.movie_keys(m)
    assert decode_keys(lookup, keys) == (lookup.user_ids[u], lookup.movie_ids[m])
    # The movie key includes the user-block offset (the seed's recommend() forgot it).
    assert lookup.movie_keys(m)[0] == lookup.n_users + m
