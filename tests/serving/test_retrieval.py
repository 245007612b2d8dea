"""fmrec.serving.retrieval: the exact top N of the whole catalogue for a user side; the served history."""

from __future__ import annotations

import json
import math
from array import array

import numpy as np
import pytest

from fmrec.errors import InputError
from fmrec.features.history import SERVED_CAP, HistoryConfig, served_history, serving_value, training_rows
from fmrec.model.artifact import FMModel
from fmrec.model.fm import FMParams, predict
from fmrec.serving.lookup import Lookup, LookupHistory
from fmrec.serving.ranking import feature_rows
from fmrec.serving.requests import RequestBuilder
from fmrec.serving.retrieval import Retrieval
from lambdas.recommend.bundle import DEFAULT_REQUEST_BYTES, DEFAULT_SHORTLIST


def history_lookup(ratings_per_user: list[int], n_movies: int = 3000, seed: int = 0) -> Lookup:
    """Users with the given numbers of rated movies, a history block after the movies, genres A/B."""
    rng = np.random.default_rng(seed)
    rated = [np.sort(rng.choice(n_movies, n, replace=False)).tolist() for n in ratings_per_user]
    nu = len(ratings_per_user)
    indptr = np.concatenate([[0], np.cumsum(ratings_per_user)]).tolist()
    return Lookup(
        feature_dim=nu + 2 * n_movies,
        user_ids=list(range(1, nu + 1)),
        movie_ids=list(range(10, 10 + n_movies)),
        titles=[f"m{p}" for p in range(n_movies)],
        genres=[["A"] if p % 3 else ["B"] for p in range(n_movies)],
        movie_count=array("I", [1] * n_movies),
        movie_mean=array("f", [3.0] * n_movies),
        rated_indptr=array("Q", indptr),
        rated_pos=array("I", [p for r in rated for p in r]),
        history=LookupHistory(offset=nu + n_movies, scale=1.0, cap=64),
    )


def random_model(feature_dim: int, seed: int = 1, k: int = 8) -> FMModel:
    rng = np.random.default_rng(seed)
    params = FMParams(
        0.1,
        rng.normal(0, 0.3, feature_dim).astype(np.float32),
        rng.normal(0, 0.3, (feature_dim, k)).astype(np.float32),
    )
    return FMModel(params, "binary_classifier", {"feature_dim": str(feature_dim)}, {})


def brute_force(model: FMModel, lookup: Lookup, user_pos: int) -> np.ndarray:
    """Every movie's endpoint score for the user's full feature row: one sparse row per movie."""
    side = lookup.user_side(user_pos)
    keys = [[*side.keys, *lookup.movie_keys(p)] for p in range(lookup.n_movies)]
    values = [[*side.values, 1.0] for _ in keys]
    return predict(model.params, feature_rows(keys, values, lookup.feature_dim), model.predictor_type)


def test_top_is_the_exact_top_n_of_the_whole_catalogue_with_every_filter() -> None:
    lookup = history_lookup([5, 40, 300], n_movies=500)
    model = random_model(lookup.feature_dim)
    retrieval = Retrieval(model, lookup)
    for user in range(3):
        exact = brute_force(model, lookup, user)
        side = lookup.user_side(user)
        genre_b = np.array([g == ["B"] for g in lookup.genres])
        for exclude, genre in ((True, None), (False, None), (True, "b")):
            allowed = np.ones(lookup.n_movies, bool) if genre is None else genre_b.copy()
            if exclude:
                allowed[list(side.rated)] = False
            expected = sorted(np.flatnonzero(allowed).tolist(), key=lambda p: (-exact[p], p))[:20]
            got = retrieval.top(side, 20, exclude_rated=exclude, genre=genre)
            assert got.positions == expected
            assert got.scores == pytest.approx(exact[expected].tolist(), abs=1e-9)
            assert got.candidates == int(allowed.sum())
        cut = float(np.sort(exact)[-5])
        assert all(s >= cut for s in retrieval.top(side, 50, exclude_rated=False, min_score=cut).scores)
        picked = [7, 3, 250]
        assert retrieval.score(side, picked) == pytest.approx(exact[picked].tolist(), abs=1e-9)


def test_compact_retrieval_ranks_as_the_float64_one() -> None:
    lookup = history_lookup([30, 200], n_movies=800)
    model = random_model(lookup.feature_dim)
    wide, compact = Retrieval(model, lookup), Retrieval(model, lookup, compact=True)
    for user in range(2):
        side = lookup.user_side(user)
        a, b = wide.top(side, 10), compact.top(side, 10)
        assert a.positions == b.positions and a.scores == pytest.approx(b.scores, abs=1e-6)


def test_a_model_and_lookup_of_different_runs_are_refused() -> None:
    lookup = history_lookup([5], n_movies=50)
    with pytest.raises(InputError, match="feature_dim 103 but the lookup 101"):
        Retrieval(random_model(lookup.feature_dim + 2), lookup)


def test_a_user_side_for_fold_in_takes_extra_history_known_user_or_not() -> None:
    lookup = history_lookup([3], n_movies=50)
    known = lookup.user_side(0)
    assert known.keys[0] == 0 and len(known.keys) == 4 and known.values[1] == pytest.approx(1 / math.sqrt(3))
    more = lookup.user_side(0, history=[*known.rated, 7, 7, 9])
    assert more.rated == tuple(sorted({*known.rated, 7, 9})) and len(more.keys) == 1 + len(more.rated)
    assert more.values[1] == pytest.approx(1 / math.sqrt(len(more.rated)))
    stranger = lookup.user_side(None, history=[4, 2])
    assert stranger.keys == (1 + 50 + 2, 1 + 50 + 4) and stranger.user_pos is None
    assert lookup.user_side(None).keys == ()
    retrieval = Retrieval(random_model(lookup.feature_dim), lookup)
    assert len(retrieval.top(stranger, 5).positions) == 5  # an unknown user with a history is ranked
    with pytest.raises(InputError, match="history: movie positions must be in"):
        lookup.user_side(None, history=[50])


def test_the_served_history_is_bounded_by_one_rule() -> None:
    rated = list(range(0, 3 * SERVED_CAP, 3))
    short, value = served_history(rated[:10], 2.0)
    assert short == rated[:10] and value == pytest.approx(2 / math.sqrt(10)) == serving_value(10, 2.0)
    kept, value = served_history(rated, 1.0)
    assert len(kept) == SERVED_CAP and kept == rated[:SERVED_CAP]  # evenly spaced: here every one
    long = list(range(5 * SERVED_CAP))
    kept, value = served_history(long, 1.0)
    assert len(kept) == SERVED_CAP and kept[:3] == [0, 5, 10] and len(set(kept)) == SERVED_CAP
    # The weights estimate the whole history's sum, as training_rows' capped draws do.
    assert value * SERVED_CAP == pytest.approx(len(long) * serving_value(len(long), 1.0, cap=len(long)))


@pytest.mark.parametrize("n_rated", [1000, 4 * SERVED_CAP])
def test_every_body_of_a_heavy_user_fits_the_default_request_size(n_rated: int) -> None:
    lookup = history_lookup([n_rated], n_movies=59_047, seed=3)
    side = lookup.user_side(0)
    assert len(side.keys) == 1 + min(n_rated, SERVED_CAP) and len(side.rated) == n_rated
    builder = RequestBuilder(lookup, DEFAULT_REQUEST_BYTES)
    positions = list(range(59_047 - 100, 59_047 - 100 + DEFAULT_SHORTLIST))
    payloads = builder.build_rows(side.keys, side.values, positions)
    assert all(len(p.body) <= DEFAULT_REQUEST_BYTES for p in payloads)
    assert [p for pl in payloads for p in pl.movie_positions] == positions
    first = json.loads(payloads[0].body)["instances"][0]["data"]["features"]
    assert first["keys"] == sorted([*side.keys, lookup.movie_column(positions[0])])
    assert first["shape"] == [lookup.feature_dim]


def test_training_weighs_a_capped_history_as_serving_does() -> None:
    """training_rows' values (a history of m movies, capped at `cap` draws) are serving_value(m, cap)."""
    rng = np.random.default_rng(0)
    lengths = [3, 8, 40]
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    rated = np.concatenate([np.sort(rng.choice(100, n, replace=False)) for n in lengths])
    users = np.array([0, 1, 2])
    movies = np.array([99, 99, 99])  # a movie none of them rated: the whole history is the row's
    cfg = HistoryConfig(cap=8, scale=1.5)
    rows, _, vals = training_rows(indptr, rated, users, movies, cfg, rng)
    for r, n in enumerate(lengths):
        assert vals[rows == r] == pytest.approx(serving_value(n, 1.5, cap=8), rel=1e-6)
