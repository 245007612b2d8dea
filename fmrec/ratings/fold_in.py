"""Fold-in: a user's stored ratings as extra history columns at serving; standard library only."""

from __future__ import annotations

from collections.abc import Sequence

from fmrec.ratings.store import Rating
from fmrec.serving.lookup import Lookup, UserSide


def stored_history(lookup: Lookup, user_pos: int | None, stored: Sequence[Rating]) -> list[int]:
    """The movie positions fold-in adds to a user's history in this model, ascending: the movies of their
    stored ratings that the model knows and their training history lacks.

    They go to `Lookup.user_side` as extra history (the recommend Lambda's `Bundle.user_side`), so the value
    rule and the bound are those of training and serving (fmrec.features.history.served_history): every rated
    movie is a history column whatever its rating, as preprocess builds them, each worth scale/sqrt(n) over
    the whole history; past SERVED_CAP columns the same evenly spread ones the evaluate step scores. The side
    also lists them as rated, so exclude_rated leaves them out.
    """
    trained = set(lookup.rated_positions(user_pos)) if user_pos is not None else set()
    found = {lookup.movie_position(r.movie_id) for r in stored}
    return sorted(p for p in found if p is not None and p not in trained)


def folded(lookup: Lookup, side: UserSide, extra: Sequence[int]) -> int:
    """How many of the `extra` movie positions are history columns of `side`: all of them up to the bound,
    fewer past it, none without a history block (the rating objective has nothing to fold into)."""
    block = lookup.columns.history
    if block is None or lookup.history is None:
        return 0
    keys = set(side.keys)
    return sum(block.offset + p in keys for p in extra)
