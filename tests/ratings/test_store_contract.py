"""One suite over both ratings stores: the duplicate policy, whole-or-nothing batches, reads and scans."""

from __future__ import annotations

import pytest

from fmrec.ratings.store import MAX_BATCH, PutResult, Rating, RatingsStore


def r(movie: int, rating: float, ts: int, user: int = 7) -> Rating:
    return Rating(user, movie, rating, ts)


def test_put_then_get(store: RatingsStore) -> None:
    assert store.put(7, [r(50, 5.0, 100), r(3, 3.5, 90)]) == PutResult(2, 0)
    assert store.get(7) == [r(3, 3.5, 90), r(50, 5.0, 100)]
    assert store.get(8) == []


def test_same_rating_twice_is_stored_once(store: RatingsStore) -> None:
    assert store.put(7, [r(50, 5.0, 100)]) == PutResult(1, 0)
    assert store.put(7, [r(50, 5.0, 100)]) == PutResult(0, 1)
    assert store.get(7) == [r(50, 5.0, 100)]


def test_later_timestamp_wins_earlier_is_ignored(store: RatingsStore) -> None:
    store.put(7, [r(50, 5.0, 100)])
    assert store.put(7, [r(50, 1.0, 99)]) == PutResult(0, 1)  # older: ignored
    assert store.get(7) == [r(50, 5.0, 100)]
    assert store.put(7, [r(50, 2.0, 101)]) == PutResult(1, 0)  # newer: replaces
    assert store.get(7) == [r(50, 2.0, 101)]
    assert store.put(7, [r(50, 4.0, 101)]) == PutResult(1, 0)  # a tie, another rating: the later arrival
    assert store.get(7) == [r(50, 4.0, 101)]


def test_duplicates_inside_one_batch(store: RatingsStore) -> None:
    batch = [r(50, 1.0, 200), r(50, 5.0, 100), r(50, 3.0, 200), r(9, 2.0, 5)]
    assert store.put(7, batch) == PutResult(2, 2)
    assert store.get(7) == [r(9, 2.0, 5), r(50, 3.0, 200)]  # latest timestamp, on a tie the later item


def test_mixed_batch_counts_winners_and_losers(store: RatingsStore) -> None:
    store.put(7, [r(1, 4.0, 100), r(2, 4.0, 100)])
    result = store.put(7, [r(1, 4.0, 100), r(2, 1.0, 150), r(3, 2.5, 1)])
    assert result == PutResult(2, 1)
    assert store.get(7) == [r(1, 4.0, 100), r(2, 1.0, 150), r(3, 2.5, 1)]


def test_users_are_separate_and_scan_sees_everything(store: RatingsStore) -> None:
    store.put(1, [r(5, 1.0, 1, user=1)])
    store.put(2, [r(5, 2.0, 2, user=2), r(6, 3.0, 3, user=2)])
    assert sorted(store.scan(), key=lambda x: (x.user_id, x.movie_id)) == [
        r(5, 1.0, 1, user=1),
        r(5, 2.0, 2, user=2),
        r(6, 3.0, 3, user=2),
    ]
    assert store.get(2) == [r(5, 2.0, 2, user=2), r(6, 3.0, 3, user=2)]


def test_a_full_batch_of_max_items(store: RatingsStore) -> None:
    batch = [r(m, 0.5 + (m % 10) / 2, 1_700_000_000 + m) for m in range(1, MAX_BATCH + 1)]
    assert store.put(7, batch) == PutResult(MAX_BATCH, 0)
    assert store.get(7) == batch


def test_a_rating_of_another_user_in_the_batch_is_a_bug(store: RatingsStore) -> None:
    with pytest.raises(ValueError, match="user 8"):
        store.put(7, [r(1, 1.0, 1), r(2, 1.0, 1, user=8)])
    assert store.get(7) == []


def test_large_ids_and_timestamps_round_trip(store: RatingsStore) -> None:
    big = 2**31 - 1
    store.put(big, [Rating(big, big, 0.5, 253_402_300_799)])
    assert store.get(big) == [Rating(big, big, 0.5, 253_402_300_799)]
