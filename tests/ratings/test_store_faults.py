"""A store that is down, busy or full: StoreUnavailable (the API's 503), and nothing of the batch stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fmrec.ratings.dynamodb import DynamoRatings
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import PutResult, Rating, StoreUnavailable
from tests.ratings.conftest import TABLE


def batch(user: int, n: int, ts: int = 1) -> list[Rating]:
    return [Rating(user, m, 3.0, ts) for m in range(1, n + 1)]


def test_sqlite_full_stores_nothing_of_the_batch(tmp_path: Path) -> None:
    store = SqliteRatings(tmp_path / "r.db", max_pages=8)
    store.put(1, batch(1, 10))
    with pytest.raises(StoreUnavailable, match="full"):
        for user in range(2, 200):  # each batch of 100 takes pages; one of them must overflow the cap
            store.put(user, batch(user, 100))
            last = user
    failed = last + 1
    assert store.get(failed) == []  # the overflowing batch left nothing behind
    assert len(store.get(last)) == 100
    assert len(store.get(1)) == 10


def test_sqlite_busy_past_the_timeout_is_unavailable(tmp_path: Path) -> None:
    store = SqliteRatings(tmp_path / "r.db", busy_seconds=0.05)
    other = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(StoreUnavailable, match="unavailable") as info:
            store.put(1, batch(1, 3))
        assert info.value.retry_after == 1
        assert store.get(1) == []  # readers are not blocked by the writer (WAL)
    finally:
        other.execute("ROLLBACK")
    assert store.put(1, batch(1, 3)) == PutResult(3, 0)


def test_sqlite_folder_missing_is_named(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        SqliteRatings(tmp_path / "nope" / "r.db")


def test_dynamodb_missing_table_is_unavailable(dynamo_client: Any) -> None:
    store = DynamoRatings(dynamo_client, "no-such-table")
    with pytest.raises(StoreUnavailable, match="failed"):
        store.put(1, batch(1, 2))
    with pytest.raises(StoreUnavailable, match="cannot be read"):
        store.get(1)


def _stubbed() -> tuple[Any, Stubber]:
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return client, Stubber(client)


def test_dynamodb_conflict_is_retried_then_succeeds() -> None:
    client, stub = _stubbed()
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled, please refer cancellation reasons for specific reasons "
        "[None, TransactionConflict]",
    )
    stub.add_response("transact_write_items", {})
    sleeps: list[float] = []
    with stub:
        result = DynamoRatings(client, TABLE, sleep=sleeps.append).put(1, batch(1, 2))
    assert result == PutResult(2, 0)
    assert len(sleeps) == 1
    stub.assert_no_pending_responses()


def test_dynamodb_still_throttled_after_the_attempts_is_unavailable() -> None:
    client, stub = _stubbed()
    for _ in range(3):
        stub.add_client_error("transact_write_items", service_error_code="ThrottlingException")
    with stub, pytest.raises(StoreUnavailable, match="busy"):
        DynamoRatings(client, TABLE, max_attempts=3, sleep=lambda _: None).put(1, batch(1, 2))
    stub.assert_no_pending_responses()


def test_dynamodb_losers_are_dropped_and_the_rest_written_in_one_more_transaction() -> None:
    client, stub = _stubbed()
    stub.add_client_error(
        "transact_write_items",
        service_error_code="TransactionCanceledException",
        service_message="Transaction cancelled ... [ConditionalCheckFailed, None, None]",
    )

    def sent(n: int) -> Any:
        class Items:
            def __eq__(self, other: object) -> bool:
                return isinstance(other, list) and len(other) == n

        return Items()

    expected = {"TransactItems": sent(2), "ClientRequestToken": sent_any()}
    stub.add_response("transact_write_items", {}, expected)
    with stub:
        result = DynamoRatings(client, TABLE, sleep=lambda _: None).put(1, batch(1, 3))
    assert result == PutResult(2, 1)


def sent_any() -> Any:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

    return Anything()


def test_dynamodb_validation_error_is_unavailable_not_a_crash() -> None:
    client, stub = _stubbed()
    stub.add_client_error("transact_write_items", service_error_code="ValidationException")
    with stub, pytest.raises(StoreUnavailable):
        DynamoRatings(client, TABLE).put(1, batch(1, 1))
