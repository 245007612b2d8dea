"""The POST /users/{userId}/ratings body, checked; each error names its field. Standard library only."""

from __future__ import annotations

import json
import math
from typing import Any

from fmrec.errors import InputError
from fmrec.ratings.store import MAX_BATCH, MAX_ID, MAX_TIMESTAMP, RATING_MAX, RATING_MIN, Rating

ITEM_FIELDS = ("movieId", "rating", "timestamp")


def _reject_constant(name: str) -> float:
    # json.loads accepts NaN, Infinity and -Infinity by default; JSON (RFC 8259) has no such numbers.
    raise InputError(f"body: {name} is not a JSON number; expected finite numbers")


def _integer(value: Any, field: str, lo: int, hi: int) -> int:
    # bool is an int subclass: true must not pass as movie 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{field}: expected an integer from {lo} to {hi}, got {_shown(value)}")
    if not lo <= value <= hi:
        raise InputError(f"{field}: expected an integer from {lo} to {hi}, got {value}")
    return value


def _rating(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"{field}: expected a number from {RATING_MIN} to {RATING_MAX}, got {_shown(value)}")
    number = float(value)
    if not (math.isfinite(number) and RATING_MIN <= number <= RATING_MAX):
        raise InputError(f"{field}: expected a number from {RATING_MIN} to {RATING_MAX}, got {value}")
    return number


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def parse_user(raw: str | None) -> int:
    """The path's userId: 1..2147483647, the readers' id range (an export must read back)."""
    text = (raw or "").strip()
    if not text or not text.lstrip("+").isdigit() or len(text) > 20:
        raise InputError(f"userId: expected an integer from 1 to {MAX_ID}, got {_shown(raw)}")
    return _integer(int(text), "userId", 1, MAX_ID)


def parse_body(user_id: int, body: str | bytes | None, now: int) -> list[Rating]:
    """`{"ratings": [{"movieId", "rating", "timestamp"?}, ...]}` (1..MAX_BATCH items) as Ratings; a missing
    timestamp is `now` (Unix seconds). Unknown fields are errors: a misspelt timestamp must not become now."""
    if body is None or not body.strip():
        raise InputError('body: expected a JSON object {"ratings": [...]}, got an empty body')
    try:
        doc = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(f"body: not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError("body: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise InputError(f'body: expected a JSON object {{"ratings": [...]}}, got {type(doc).__name__}')
    extra = sorted(set(doc) - {"ratings"})
    if extra:
        raise InputError(f"body.{extra[0]}: unexpected field; expected only ratings")
    items = doc.get("ratings")
    if not isinstance(items, list):
        raise InputError(f"ratings: expected a list of 1 to {MAX_BATCH} items, got {_shown(items)}")
    if not 1 <= len(items) <= MAX_BATCH:
        raise InputError(f"ratings: expected 1 to {MAX_BATCH} items, got {len(items)}")
    return [_item(user_id, item, f"ratings[{i}]", now) for i, item in enumerate(items)]


def _item(user_id: int, item: Any, field: str, now: int) -> Rating:
    if not isinstance(item, dict):
        raise InputError(f"{field}: expected an object with movieId and rating, got {_shown(item)}")
    extra = sorted(set(item) - set(ITEM_FIELDS))
    if extra:
        raise InputError(f"{field}.{extra[0]}: unexpected field; expected {', '.join(ITEM_FIELDS)}")
    for name in ("movieId", "rating"):
        if name not in item:
            raise InputError(f"{field}.{name}: required")
    movie = _integer(item["movieId"], f"{field}.movieId", 1, MAX_ID)
    rating = _rating(item["rating"], f"{field}.rating")
    timestamp = now
    if "timestamp" in item:  # an explicit null is an error, not "now": the document says integer
        timestamp = _integer(item["timestamp"], f"{field}.timestamp", 0, MAX_TIMESTAMP)
    return Rating(user_id, movie, rating, timestamp)
