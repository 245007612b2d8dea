"""Stored ratings merged into a training run's data: new users and all, the later timestamp winning."""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.data.readers import Dataset, FileQuality, Ratings, read_ratings
from fmrec.errors import InputError
from fmrec.ratings.export import EXTRA_FOLDER, RATINGS_FILE, from_item

log = logging.getLogger(__name__)


def _dynamodb_exports(folder: Path) -> list[Path]:
    """Data files of the completed DynamoDB exports under folder.

    An export writes <prefix>/AWSDynamoDB/<ExportId>/data/*.json.gz and, once complete, manifest-summary.json
    beside data/; each data line is {"Item": {...}} in DynamoDB JSON
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/S3DataExport.Output.html). An export
    without its summary is still running or failed: skipped, as its files may be partial.
    """
    files: list[Path] = []
    for summary in sorted(folder.rglob("manifest-summary.json")):
        files += sorted((summary.parent / "data").glob("*.json.gz"))
    return files


def _read_export_file(path: Path) -> list[tuple[int, int, float, int]]:
    rows = []
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    r = from_item(json.loads(line)["Item"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(
                        f"{path}: line {number}: expected a DynamoDB JSON item with userId, movieId, rating "
                        f"and ts ({exc})"
                    ) from None
                rows.append((r.user_id, r.movie_id, r.rating, r.timestamp))
    except (OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable gzip file ({exc})") from None
    return rows


def read_extra_ratings(folder: str | Path) -> Ratings | None:
    """Every rating under folder (ratings.csv files of `fmrec ratings export`, DynamoDB export data files),
    one per (user, movie): the latest timestamp; None when there are none."""
    folder = Path(folder)
    parts: list[Ratings] = [read_ratings(p, ",", header=True) for p in sorted(folder.rglob(RATINGS_FILE))]
    exported = [row for path in _dynamodb_exports(folder) for row in _read_export_file(path)]
    if exported:
        cols = list(zip(*exported, strict=True))
        parts.append(
            Ratings(
                np.asarray(cols[0], np.int64),
                np.asarray(cols[1], np.int64),
                np.asarray(cols[2], np.float32),
                np.asarray(cols[3], np.int64),
                FileQuality(str(folder / "AWSDynamoDB")),
            )
        )
    parts = [p for p in parts if len(p)]
    if not parts:
        return None
    return _latest(_concat(parts, parts[0].quality))


def _concat(parts: list[Ratings], quality: FileQuality) -> Ratings:
    return Ratings(
        np.concatenate([p.user for p in parts]),
        np.concatenate([p.movie for p in parts]),
        np.concatenate([p.rating for p in parts]).astype(np.float32),
        np.concatenate([p.timestamp for p in parts]),
        quality,
    )


def _latest(r: Ratings) -> Ratings:
    """One row per (user, movie): the latest timestamp, on a tie the later row (readers' duplicate policy)."""
    order = np.lexsort((np.arange(len(r)), r.timestamp, r.movie, r.user))
    su, sm = r.user[order], r.movie[order]
    last = np.ones(order.size, dtype=bool)
    last[:-1] = (su[1:] != su[:-1]) | (sm[1:] != sm[:-1])
    keep = np.sort(order[last])
    return Ratings(r.user[keep], r.movie[keep], r.rating[keep], r.timestamp[keep], r.quality)


def merge_extra(ds: Dataset, extra: Ratings) -> tuple[Dataset, dict[str, Any]]:
    """The dataset with `extra` added to train: a (user, movie) in both keeps the later timestamp (on a tie,
    the extra one, which came later). Test is unchanged, so the evaluation still measures the base split."""
    merged = _latest(_concat([ds.train, extra], ds.train.quality))
    base_users = np.unique(ds.train.user)
    base_movies = np.unique(ds.train.movie)
    stats = {
        "extra_ratings": len(extra),
        "train_before": len(ds.train),
        "train_after": len(merged),
        "replaced_or_kept_older": len(ds.train) + len(extra) - len(merged),
        "new_users": int(np.setdiff1d(np.unique(extra.user), base_users).size),
        "new_movies": int(np.setdiff1d(np.unique(extra.movie), base_movies).size),
    }
    log.info("merged %d extra ratings into train: %s", len(extra), stats)
    return replace(ds, train=merged), stats


def merge_from_data_dir(ds: Dataset, data_dir: str | Path) -> tuple[Dataset, dict[str, Any] | None]:
    """Merge <data_dir>/extra-ratings/ when it exists (preprocess calls this for every run)."""
    folder = Path(data_dir) / EXTRA_FOLDER
    if not folder.is_dir():
        return ds, None
    extra = read_extra_ratings(folder)
    if extra is None:
        return ds, {"extra_ratings": 0, "folder": str(folder)}
    merged, stats = merge_extra(ds, extra)
    return merged, {**stats, "folder": str(folder)}
