"""The retraining loop's data: MovieLens export, DynamoDB exports read back, preprocess merging them."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

from fmrec.data.readers import load_dataset
from fmrec.features.options import PreprocessConfig
from fmrec.ratings.export import EXTRA_FOLDER, write_movielens
from fmrec.ratings.merge import merge_extra, read_extra_ratings
from fmrec.ratings.store import Rating
from fmrec.serving.lookup import read_lookup
from fmrec.stages.preprocess import run


def base_folder(root: Path) -> Path:
    """A small ml-latest folder: 30 users x 12 movies, each user rating 8 movies."""
    folder = root / "ml"
    folder.mkdir()
    lines = ["userId,movieId,rating,timestamp"]
    rng = np.random.default_rng(0)
    for u in range(1, 31):
        for m in rng.choice(np.arange(1, 13), 8, replace=False):
            lines.append(f"{u},{m},{rng.integers(1, 6)},{1000 + u}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_export_reads_back_latest_timestamp_across_files(tmp_path: Path) -> None:
    write_movielens([Rating(1, 5, 4.5, 10), Rating(2, 6, 1.0, 10)], tmp_path / "a")
    write_movielens([Rating(1, 5, 2.0, 20), Rating(2, 6, 3.0, 5)], tmp_path / "b")
    extra = read_extra_ratings(tmp_path)
    assert extra is not None
    got = sorted(
        zip(
            extra.user.tolist(),
            extra.movie.tolist(),
            extra.rating.tolist(),
            extra.timestamp.tolist(),
            strict=True,
        )
    )
    assert got == [(1, 5, 2.0, 20), (2, 6, 1.0, 10)]
    assert (tmp_path / "a" / "ratings.csv").read_text().splitlines()[:2] == [
        "userId,movieId,rating,timestamp",
        "1,5,4.5,10",
    ]


def _export(folder: Path, export_id: str, items: list[dict[str, object]], complete: bool) -> None:
    data = folder / "AWSDynamoDB" / export_id / "data"
    data.mkdir(parents=True)
    with gzip.open(data / "part.json.gz", "wt") as fh:
        for item in items:
            fh.write(json.dumps({"Item": item}) + "\n")
    if complete:
        (data.parent / "manifest-summary.json").write_text('{"exportType": "FULL_EXPORT"}')


def item(user: int, movie: int, rating: float, ts: int) -> dict[str, object]:
    return {
        "userId": {"N": str(user)},
        "movieId": {"N": str(movie)},
        "rating": {"N": str(rating)},
        "ts": {"N": str(ts)},
    }


def test_completed_dynamodb_exports_are_read_and_running_ones_skipped(tmp_path: Path) -> None:
    _export(tmp_path, "01", [item(9, 1, 4.0, 100), item(9, 2, 5.0, 100)], complete=True)
    _export(tmp_path, "02", [item(9, 1, 1.0, 200)], complete=True)  # a later export, a later rating
    _export(tmp_path, "03", [item(9, 3, 1.0, 300)], complete=False)  # still running: partial files
    extra = read_extra_ratings(tmp_path)
    assert extra is not None
    assert sorted(zip(extra.movie.tolist(), extra.rating.tolist(), strict=True)) == [(1, 1.0), (2, 5.0)]


def test_merge_adds_new_users_and_keeps_the_later_rating(tmp_path: Path) -> None:
    ds = load_dataset(base_folder(tmp_path))
    u, m = int(ds.train.user[0]), int(ds.train.movie[0])
    write_movielens(
        [Rating(u, m, 0.5, 10**9), Rating(5000, 3, 5.0, 1), Rating(5000, 999, 4.0, 1)], tmp_path / "x"
    )
    extra = read_extra_ratings(tmp_path / "x")
    assert extra is not None
    merged, stats = merge_extra(ds, extra)
    assert stats["new_users"] == 1 and stats["new_movies"] == 1 and stats["extra_ratings"] == 3
    assert len(merged.train) == len(ds.train) + 2
    hit = (merged.train.user == u) & (merged.train.movie == m)
    assert hit.sum() == 1 and merged.train.rating[hit][0] == 0.5
    assert merged.test is ds.test


def test_preprocess_merges_extra_ratings_under_the_data_folder(tmp_path: Path) -> None:
    data = base_folder(tmp_path)
    write_movielens([Rating(5000, m, 4.0, 1) for m in (1, 2, 3)], data / EXTRA_FOLDER)
    run(data, tmp_path / "out", PreprocessConfig())
    lookup = read_lookup(tmp_path / "out" / "lookup")
    pos = lookup.user_position(5000)
    assert pos is not None and len(lookup.rated_positions(pos)) == 3  # an ordinary user of the next model
    quality = json.loads((tmp_path / "out" / "manifest" / "data_quality.json").read_text())
    assert quality["extra_ratings"]["new_users"] == 1
    run(data.parent / "ml", tmp_path / "out2", PreprocessConfig())  # same folder: deterministic
    assert read_lookup(tmp_path / "out2" / "lookup").user_ids == lookup.user_ids
