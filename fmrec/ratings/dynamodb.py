"""The ratings store on AWS: one DynamoDB table (userId, movieId), a batch in one conditional transaction."""

from __future__ import annotations

import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from fmrec.ratings.export import PARTITION_KEY, SORT_KEY, from_item
from fmrec.ratings.store import MAX_BATCH, PutResult, Rating, StoreUnavailable, newest_per_movie

log = logging.getLogger(__name__)

# TransactWriteItems "groups up to 100 action requests ... The actions are completed atomically so that either
# all of them succeed, or all of them fail" (aggregate item size at most 4 MB; ours are ~50 bytes each):
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
MAX_TRANSACTION_ITEMS = 100
assert MAX_BATCH <= MAX_TRANSACTION_ITEMS  # one POST is one transaction: stored whole or not at all
# A Put is written only when it wins (fmrec.ratings.store.wins): no item yet, a later timestamp, or the same
# timestamp with another rating. Condition expressions:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
_CONDITION = "attribute_not_exists(#m) OR #t < :t OR (#t = :t AND #r <> :r)"
_NAMES = {"#m": SORT_KEY, "#t": "ts", "#r": "rating"}
# Errors worth another try with backoff; anything else is a 503 at once. TransactWriteItems' errors and the
# cancellation reason codes: https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
    }
)
_RETRY_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
_REASONS_IN_MESSAGE = re.compile(r"\[([A-Za-z, ]+)\]\s*$")


def _number(value: float | int) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) else str(int(value))}


class DynamoRatings:
    """A RatingsStore in a DynamoDB table: partition key userId (N), sort key movieId (N), rating, ts.

    `client` is a boto3 DynamoDB client. Reads are strongly consistent, so a rating whose put returned is in
    the next get (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html).
    """

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        max_attempts: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.table = table
        self.max_attempts = max(1, max_attempts)
        self.sleep = sleep
        self.rng = rng or random.Random()

    def _put_action(self, r: Rating) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.table,
                "Item": {
                    PARTITION_KEY: _number(r.user_id),
                    SORT_KEY: _number(r.movie_id),
                    "rating": _number(r.rating),
                    "ts": _number(r.timestamp),
                },
                "ConditionExpression": _CONDITION,
                "ExpressionAttributeNames": _NAMES,
                "ExpressionAttributeValues": {":t": _number(r.timestamp), ":r": _number(r.rating)},
            }
        }

    def put(self, user_id: int, ratings: Sequence[Rating]) -> PutResult:
        batch, dropped = newest_per_movie(user_id, ratings)
        pending = batch
        for attempt in range(1, self.max_attempts + 1):
            if not pending:
                break
            try:
                # The token makes botocore's own retry of a lost answer idempotent (10 minutes).
                self.client.transact_write_items(
                    TransactItems=[self._put_action(r) for r in pending], ClientRequestToken=str(uuid.uuid4())
                )
                break
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code == "TransactionCanceledException":
                    reasons = _reasons(exc, len(pending))
                    lost = {i for i, c in enumerate(reasons) if c == "ConditionalCheckFailed"}
                    other = {c for c in reasons if c not in ("None", "ConditionalCheckFailed")}
                    if other - _RETRY_REASONS:
                        raise StoreUnavailable(
                            "the ratings store refused the batch", 5, f"{self.table}: {sorted(other)}"
                        ) from exc
                    # Items that lost to a stored rating are ignored; the rest go again (nothing was written).
                    pending = [r for i, r in enumerate(pending) if i not in lost]
                    if not other:
                        continue  # no backoff: only the losers changed
                elif code not in _RETRYABLE:
                    raise StoreUnavailable("the ratings store failed", 5, f"{self.table}: {code}") from exc
                self._backoff(attempt, code, exc)
            except BotoCoreError as exc:
                raise StoreUnavailable("the ratings store is unreachable", 5, str(exc)) from exc
        else:
            raise StoreUnavailable("the ratings store is busy; nothing was stored", 1, self.table)
        return PutResult(len(pending), dropped + len(batch) - len(pending))

    def _backoff(self, attempt: int, code: str, exc: Exception) -> None:
        if attempt == self.max_attempts:
            raise StoreUnavailable(
                "the ratings store is busy; nothing was stored", 1, f"{self.table}: {code}"
            ) from exc
        delay = self.rng.uniform(0, min(1.0, 0.05 * 2 ** (attempt - 1)))
        log.warning("ratings transaction retried (%s), attempt %d; waiting %.3f s", code, attempt, delay)
        self.sleep(delay)

    def get(self, user_id: int) -> list[Rating]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#u = :u",
            "ExpressionAttributeNames": {"#u": PARTITION_KEY},
            "ExpressionAttributeValues": {":u": _number(user_id)},
            "ConsistentRead": True,
        }
        return list(self._pages("query", kwargs))

    def scan(self) -> Iterator[Rating]:
        return self._pages("scan", {"TableName": self.table})

    def _pages(self, operation: str, kwargs: dict[str, Any]) -> Iterator[Rating]:
        call = getattr(self.client, operation)
        while True:
            try:
                page = call(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
                detail = f"{self.table}: {code or exc}"
                raise StoreUnavailable("the ratings store cannot be read", 5, detail) from exc
            for item in page.get("Items", []):
                yield from_item(item)
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs = {**kwargs, "ExclusiveStartKey": last}

    def close(self) -> None:
        pass


def _reasons(exc: ClientError, n: int) -> list[str]:
    """Each action's cancellation code, in request order ("None" where it was fine).

    botocore puts CancellationReasons in the response; the message carries them too ("... [None,
    ConditionalCheckFailed]"), the fallback.
    """
    listed = exc.response.get("CancellationReasons")
    if isinstance(listed, list) and len(listed) == n:
        return [str(r.get("Code", "None")) for r in listed]
    found = _REASONS_IN_MESSAGE.search(exc.response.get("Error", {}).get("Message", ""))
    if found:
        codes = [c.strip() for c in found.group(1).split(",")]
        if len(codes) == n:
            return codes
    return ["Unknown"] * n
