"""Fold-in: a user's stored ratings added to their history columns at serving; standard library only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fmrec.features.history import MAX_CAP, bounded_value, serving_value
from fmrec.ratings.store import Rating
from fmrec.serving.lookup import Lookup


@dataclass(frozen=True)
class UserSide:
    """A user's side of every request: FM keys and values, and the movie positions they rated (ascending).

    `folded`: stored ratings of movies in the model that are in the history; 0 means the lookup's own side.
    `history` / `history_value`: the movie positions of the history columns in `keys` and their one value,
    for a scorer that takes (user position or None, history movies with values, aux) rather than keys.
    """

    keys: list[int]
    values: list[float]
    rated: list[int]
    folded: int = 0
    history: list[int] = field(default_factory=list)
    history_value: float = 0.0


def fold_in(lookup: Lookup, user_pos: int | None, stored: Sequence[Rating]) -> UserSide | None:
    """The user's side with their stored ratings folded into the history block; None: cold start.

    The history is the union of the training history and the stored movies the model knows, each column worth
    the training value rule (fmrec.features.history): 1/sqrt(n) times the scale, whatever the rating, as
    preprocess puts every rated movie in the history. Past the lookup's cap the history is bounded as training
    bounds it (`bounded_value`): the newest stored ratings first, then the training history evenly spread, so
    a user with thousands of ratings sends no more columns than a training row holds. A user the model never
    saw has no user or auxiliary columns: the history alone makes their side. Without a history block (the
    rating objective) nothing can be folded in: a known user keeps their side, an unknown one gets cold start.
    """
    known = set() if user_pos is None else set(lookup.rated_positions(user_pos))
    newest_first = sorted(stored, key=lambda r: (-r.timestamp, r.movie_id))
    added: list[int] = []
    for r in newest_first:
        pos = lookup.movie_position(r.movie_id)
        if pos is not None and pos not in known:
            known.add(pos)
            added.append(pos)
    rated = sorted(known)
    if not added or lookup.history is None:
        if user_pos is None:
            return None
        own = lookup.rated_positions(user_pos) if lookup.history is not None else []
        value = serving_value(len(own), float(lookup.history["scale"])) if lookup.history is not None else 0.0
        return UserSide(lookup.user_keys(user_pos), lookup.user_values(user_pos), rated, 0, own, value)
    base_keys: list[int] = []
    if user_pos is not None:
        keys = lookup.user_keys(user_pos)  # the user column, its auxiliary columns, then its history
        base_keys = keys[: len(keys) - len(lookup.rated_positions(user_pos))]
    cap = int(lookup.history.get("cap", 0)) or MAX_CAP
    new = set(added)
    chosen = _bounded(added, [p for p in rated if p not in new], cap)
    offset = int(lookup.history["offset"])
    value = bounded_value(len(rated), cap, float(lookup.history["scale"]))
    return UserSide(
        base_keys + [offset + p for p in chosen],
        [1.0] * len(base_keys) + [value] * len(chosen),
        rated,
        folded=len(new.intersection(chosen)),
        history=chosen,
        history_value=value,
    )


def _bounded(newest: list[int], training: list[int], cap: int) -> list[int]:
    """At most `cap` positions, ascending: the newest stored ones first, then training ones evenly spread."""
    if len(newest) + len(training) <= cap:
        return sorted(newest + training)
    take = newest[:cap]
    room = cap - len(take)
    if room > 0:
        step = len(training) / room
        take += [training[int(i * step)] for i in range(room)]
    return sorted(take)
