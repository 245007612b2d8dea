"""The ratings store's interface, values and batch rules, shared by both stores; standard library only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from fmrec.errors import FmrecError

MAX_BATCH = 100  # items per POST; one DynamoDB transaction holds at most 100 actions (see dynamodb.py)
MAX_ID = 2**31 - 1  # the readers' id bound (fmrec.data.readers.MAX_ID), so an export always reads back
RATING_MIN, RATING_MAX = 0.5, 5.0  # the readers' rating range (fmrec.data.readers)
MAX_TIMESTAMP = 253_402_300_799  # 9999-12-31T23:59:59Z in Unix seconds


class StoreUnavailable(FmrecError):
    """The store is down, busy past its timeout, or full: nothing of the batch was stored (API: 503)."""

    def __init__(self, message: str, retry_after: int = 5, detail: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.detail = detail  # for the log only: it may name files or tables the caller need not see


@dataclass(frozen=True, slots=True)
class Rating:
    """One stored rating: (user, movie) is the key; the latest timestamp wins."""

    user_id: int
    movie_id: int
    rating: float
    timestamp: int


@dataclass(frozen=True)
class PutResult:
    """`stored`: items written (new, or replacing an older rating); `ignored`: repeats and stale items."""

    stored: int
    ignored: int


class RatingsStore(Protocol):
    """Stores ratings per user; both implementations pass tests/ratings/test_store_contract.py."""

    def put(self, user_id: int, ratings: Sequence[Rating]) -> PutResult:
        """Store one user's batch whole or not at all (StoreUnavailable); see `newest_per_movie`."""
        ...

    def get(self, user_id: int) -> list[Rating]:
        """The user's stored ratings (strongly consistent: a put that returned is visible), by movie id."""
        ...

    def scan(self) -> Iterator[Rating]:
        """Every stored rating, in no particular order (the export to the next training run)."""
        ...

    def close(self) -> None: ...


def wins(new: Rating, old: Rating | None) -> bool:
    """The readers' duplicate policy (fmrec.data.readers.DUPLICATE_POLICY): the later timestamp wins, and on a
    tie the later arrival; an identical repeat changes nothing and counts as ignored."""
    if old is None:
        return True
    if new.timestamp != old.timestamp:
        return new.timestamp > old.timestamp
    return new.rating != old.rating


def newest_per_movie(user_id: int, ratings: Sequence[Rating]) -> tuple[list[Rating], int]:
    """(one rating per movie, by movie id, the batch's own duplicates resolved by `wins`; items dropped)."""
    best: dict[int, Rating] = {}
    for r in ratings:
        if r.user_id != user_id:
            raise ValueError(f"rating of user {r.user_id} in a batch of user {user_id}")
        old = best.get(r.movie_id)
        if old is None or r.timestamp >= old.timestamp:  # a tie: the later item of the batch
            best[r.movie_id] = r
    kept = [best[m] for m in sorted(best)]
    return kept, len(ratings) - len(kept)
