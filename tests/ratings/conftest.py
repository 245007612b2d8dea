"""Both ratings stores behind one fixture: SQLite in a temporary file, DynamoDB in moto (botocore's real
client against moto's in-process DynamoDB: requests serialized, conditions and transactions evaluated)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from fmrec.ratings.dynamodb import DynamoRatings
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import RatingsStore

TABLE = "fmrec-test-ratings"


def create_table(client: Any, name: str = TABLE) -> None:
    """The table as stacks/parts/ratings_table.py declares it (keys and types)."""
    client.create_table(
        TableName=name,
        KeySchema=[
            {"AttributeName": "userId", "KeyType": "HASH"},
            {"AttributeName": "movieId", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "userId", "AttributeType": "N"},
            {"AttributeName": "movieId", "AttributeType": "N"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def dynamo_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        yield client


@pytest.fixture(params=["sqlite", "dynamodb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RatingsStore]:
    if request.param == "sqlite":
        s: RatingsStore = SqliteRatings(tmp_path / "ratings.db")
    else:
        s = DynamoRatings(request.getfixturevalue("dynamo_client"), TABLE, sleep=lambda _: None)
    yield s
    s.close()
