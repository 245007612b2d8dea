"""Fold-in: stored ratings become extra history columns under the one served-history rule of training and
serving (fmrec.features.history.served_history), and exclude_rated covers them."""

from __future__ import annotations

import math

import pytest

from fmrec.features.history import SERVED_CAP, served_history, serving_value
from fmrec.ratings.fold_in import folded, stored_history
from fmrec.ratings.store import Rating
from tests.serving.test_retrieval import history_lookup as long_history_lookup
from tests.support.lambda_world import make_lookup
from tests.support.ratings_world import history_lookup


def rating(movie: int, ts: int = 1, user: int = 1) -> Rating:
    return Rating(user, movie, 4.0, ts)


def test_nothing_stored_adds_nothing() -> None:
    lookup = history_lookup()
    assert stored_history(lookup, 0, []) == [] and stored_history(lookup, None, []) == []
    side = lookup.user_side(0, history=lookup.rated_positions(0))
    assert side == lookup.user_side(0) and folded(lookup, side, []) == 0


def test_known_user_history_grows_by_the_stored_movies_the_model_knows() -> None:
    lookup = history_lookup()
    offset = lookup.history.offset
    before = lookup.rated_positions(0)  # user 1: movies 1, 2, 50, 100
    extra = stored_history(lookup, 0, [rating(9), rating(50), rating(999)])  # 50 already rated, 999 unknown
    pos9 = lookup.movie_position(9)
    assert extra == [pos9]
    side = lookup.user_side(0, history=[*before, *extra])
    assert folded(lookup, side, extra) == 1
    assert list(side.rated) == sorted([*before, pos9])
    assert list(side.keys) == [lookup.user_column(0)] + [offset + p for p in side.rated]
    n = len(side.rated)  # the training value rule: every rated movie worth scale/sqrt(n), whatever the rating
    assert list(side.values) == [1.0] + [pytest.approx(serving_value(n, 1.0))] * n


def test_an_unknown_user_gets_a_history_only_side() -> None:
    lookup = history_lookup(scale=0.5)
    extra = stored_history(lookup, None, [rating(3), rating(1), rating(1, ts=2)])
    assert extra == sorted([lookup.movie_position(1), lookup.movie_position(3)])
    side = lookup.user_side(None, history=extra)
    offset = lookup.history.offset
    assert list(side.keys) == [offset + p for p in extra] and side.user_pos is None
    assert list(side.values) == [pytest.approx(0.5 / math.sqrt(2))] * 2
    assert folded(lookup, side, extra) == 2
    assert stored_history(lookup, None, [rating(999)]) == []  # only movies the model lacks: nothing to fold


def test_thousands_of_stored_ratings_are_bounded_by_the_one_served_history_rule() -> None:
    lookup = long_history_lookup([40], n_movies=3 * SERVED_CAP)
    stored = [rating(m) for m in lookup.movie_ids[: 2 * SERVED_CAP]]
    trained = lookup.rated_positions(0)
    extra = stored_history(lookup, 0, stored)
    assert len(extra) == 2 * SERVED_CAP - len([p for p in trained if p < 2 * SERVED_CAP])
    side = lookup.user_side(0, history=[*trained, *extra])
    whole = sorted({*trained, *extra})
    served, value = served_history(whole, 1.0)  # what training, the evaluate step and serving send
    assert lookup.history is not None
    offset = lookup.history.offset
    assert list(side.keys[1:]) == [offset + p for p in served] and len(served) == SERVED_CAP
    assert set(side.values[1:]) == {value}
    assert list(side.rated) == whole  # every stored movie is still excluded
    assert folded(lookup, side, extra) == len(set(served) & set(extra)) < len(extra)


def test_without_a_history_block_nothing_is_folded_but_exclusion_grows() -> None:
    lookup = make_lookup()
    extra = stored_history(lookup, 0, [rating(9)])
    side = lookup.user_side(0, history=[*lookup.rated_positions(0), *extra])
    assert folded(lookup, side, extra) == 0
    assert list(side.keys) == lookup.user_keys(0)
    assert lookup.movie_position(9) in side.rated
