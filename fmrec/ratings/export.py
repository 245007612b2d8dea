"""Stored ratings out to the next training run: MovieLens ratings.csv, and DynamoDB export items read back."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fmrec.io_utils import atomic_open
from fmrec.ratings.store import Rating

# Preprocess merges the ratings under <data dir>/EXTRA_FOLDER with the base data (fmrec.ratings.merge): the
# MovieLens ratings.csv `fmrec ratings export` writes, or the data files of DynamoDB table exports.
EXTRA_FOLDER = "extra-ratings"
RATINGS_FILE = "ratings.csv"
HEADER = "userId,movieId,rating,timestamp\n"  # the ml-latest layout (fmrec.data.readers reads it back)
PARTITION_KEY, SORT_KEY = "userId", "movieId"  # the DynamoDB table's keys (fmrec.ratings.dynamodb)


def write_movielens(ratings: Iterable[Rating], folder: str | os.PathLike[str]) -> int:
    """Write folder/ratings.csv (atomically) in the ml-latest layout; returns the number of ratings."""
    path = Path(folder) / RATINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(HEADER)
        for r in ratings:
            fh.write(f"{r.user_id},{r.movie_id},{r.rating:g},{r.timestamp}\n")
            count += 1
    return count


def from_item(item: dict[str, Any]) -> Rating:
    """A table item, as GetItem/Query return it or as a DynamoDB JSON export line's "Item" holds it."""
    return Rating(
        int(item[PARTITION_KEY]["N"]),
        int(item[SORT_KEY]["N"]),
        float(item["rating"]["N"]),
        int(item["ts"]["N"]),
    )
