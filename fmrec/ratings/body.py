"""The POST /users/{userId}/ratings path and checked body as Ratings. Standard library only."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fmrec.errors import InputError
from fmrec.ratings.store import MAX_ID, Rating


def _integer(value: Any, field: str, lo: int, hi: int) -> int:
    # bool is an int subclass: true must not pass as movie 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field}: expected an integer from {lo} to {hi}, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InputError(f"{field}: expected an integer from {lo} to {hi}, got {value}")
    return value


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def parse_user(raw: str | None) -> int:
    """The path's userId: 1..2147483647, the readers' id range (an export must read back)."""
    text = (raw or "").strip()
    if not text or not text.lstrip("+").isdigit() or len(text) > 20:
        raise InputError(f"userId: expected an integer from 1 to {MAX_ID}, got {_shown(raw)}")
    return _integer(int(text), "userId", 1, MAX_ID)


def to_ratings(user_id: int, items: Sequence[Mapping[str, Any]], now: int) -> list[Rating]:
    """The items of a ratings body the API checked against openapi.json's RatingsBatch (the recommend Lambda's
    `params.parse_body`) as Ratings; a missing timestamp is `now` (Unix seconds)."""
    return [
        Rating(user_id, int(i["movieId"]), float(i["rating"]), int(i.get("timestamp", now))) for i in items
    ]
