"""Fold-in: stored ratings become history columns with the training value rule, bounded like training rows."""

from __future__ import annotations

import math

import pytest

from fmrec.features.history import bounded_value, serving_value
from fmrec.ratings.fold_in import fold_in
from fmrec.ratings.store import Rating
from tests.support.lambda_world import make_lookup
from tests.support.ratings_world import history_lookup


def rating(movie: int, ts: int = 1, user: int = 1) -> Rating:
    return Rating(user, movie, 4.0, ts)


def test_no_stored_ratings_keeps_the_lookups_side() -> None:
    lookup = history_lookup()
    side = fold_in(lookup, 0, [])
    assert side is not None
    assert side.keys == lookup.user_keys(0) and side.values == lookup.user_values(0)
    assert side.rated == lookup.rated_positions(0) and side.folded == 0
    assert side.history == lookup.rated_positions(0)
    assert fold_in(lookup, None, []) is None  # unknown and nothing stored: cold start


def test_known_user_history_grows_by_the_stored_movies() -> None:
    lookup = history_lookup()
    offset = lookup.history["offset"]
    before = lookup.rated_positions(0)  # user 1: movies 1, 2, 50, 100
    side = fold_in(lookup, 0, [rating(9), rating(50), rating(999)])  # 50 already rated, 999 unknown
    assert side is not None and side.folded == 1
    pos9 = lookup.movie_position(9)
    assert side.rated == sorted([*before, pos9])
    assert side.keys == [lookup.user_column(0)] + [offset + p for p in side.rated]
    n = len(side.rated)
    assert side.values == [1.0] + [pytest.approx(serving_value(n, 1.0))] * n
    assert side.history == side.rated and side.history_value == pytest.approx(serving_value(n, 1.0))


def test_unknown_user_gets_a_history_only_side() -> None:
    lookup = history_lookup(scale=0.5)
    side = fold_in(lookup, None, [rating(1), rating(3)])
    assert side is not None and side.folded == 2
    offset = lookup.history["offset"]
    assert side.keys == [offset + lookup.movie_position(1), offset + lookup.movie_position(3)]
    assert side.values == [pytest.approx(0.5 / math.sqrt(2))] * 2
    assert fold_in(lookup, None, [rating(999)]) is None  # only movies the model lacks: nothing to fold


def test_long_histories_are_bounded_like_training_rows_newest_first() -> None:
    lookup = history_lookup(cap=3)
    stored = [rating(m, ts) for ts, m in enumerate((1, 2, 3, 4, 5, 7, 8), start=1)]
    side = fold_in(lookup, None, stored)
    assert side is not None
    offset = lookup.history["offset"]
    newest = sorted(lookup.movie_position(m) for m in (8, 7, 5))
    assert side.keys == [offset + p for p in newest]
    assert side.values == [pytest.approx(math.sqrt(7) / 3)] * 3  # scale*sqrt(n)/cap: the sum of the whole
    assert side.history == newest and side.history_value == pytest.approx(math.sqrt(7) / 3)
    assert len(side.rated) == 7  # every stored movie is still excluded
    assert bounded_value(7, 3, 1.0) * 3 == pytest.approx(serving_value(7, 1.0) * 7)


def test_a_known_user_over_the_cap_keeps_user_column_and_spreads_training() -> None:
    lookup = history_lookup(cap=4)
    side = fold_in(lookup, 5, [rating(3, 10), rating(4, 9)])  # user 13: 6 training movies
    assert side is not None and side.folded == 2
    assert side.keys[0] == lookup.user_column(5)
    assert len(side.keys) == 1 + 4 and len(side.rated) == 8
    hist = [k - lookup.history["offset"] for k in side.keys[1:]]
    assert {lookup.movie_position(3), lookup.movie_position(4)} <= set(hist)


def test_without_a_history_block_nothing_is_folded_but_exclusion_grows() -> None:
    lookup = make_lookup()
    side = fold_in(lookup, 0, [rating(9)])
    assert side is not None and side.folded == 0
    assert side.keys == lookup.user_keys(0)
    assert lookup.movie_position(9) in side.rated
    assert fold_in(lookup, None, [rating(9)]) is None
