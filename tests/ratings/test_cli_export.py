"""`fmrec ratings export` from both stores; the input folder of `fmrec pipeline run --ratings-db`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import InputError
from fmrec.ratings.dynamodb import DynamoRatings
from fmrec.ratings.merge import read_extra_ratings
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.ratings.store import Rating
from fmrec_cli.main import main
from fmrec_cli.pipeline import run_pipeline, with_stored_ratings
from tests.ratings.conftest import TABLE


def test_export_from_a_dynamodb_table(dynamo_client: Any, tmp_path: Path) -> None:
    DynamoRatings(dynamo_client, TABLE).put(3, [Rating(3, 7, 4.5, 11), Rating(3, 8, 1.0, 12)])
    assert main(["ratings", "export", "--table", TABLE, "--region", "us-east-1", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "ratings.csv").read_text().splitlines() == [
        "userId,movieId,rating,timestamp",
        "3,7,4.5,11",
        "3,8,1,12",
    ]


def test_export_needs_an_existing_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ratings", "export", "--ratings-db", str(tmp_path / "none.db"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_pipeline_input_with_stored_ratings(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    (data / "extra-ratings").mkdir(parents=True)
    (data / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,5,1\n")
    (data / "extra-ratings" / "ratings.csv").write_text("userId,movieId,rating,timestamp\n9,1,2,5\n")
    store = SqliteRatings(tmp_path / "r.db")
    store.put(9, [Rating(9, 1, 4.0, 6), Rating(9, 2, 3.0, 6)])
    folder = with_stored_ratings(data, tmp_path / "r.db", tmp_path / "inputs")
    assert (folder / "ratings.csv").resolve() == (data / "ratings.csv").resolve()
    extra = read_extra_ratings(folder / "extra-ratings")
    assert extra is not None  # the data folder's own extra ratings and the store's, the later one winning
    got = sorted(zip(extra.user.tolist(), extra.movie.tolist(), extra.rating.tolist(), strict=True))
    assert got == [(9, 1, 4.0), (9, 2, 3.0)]
    with pytest.raises(InputError, match="--ratings-db needs --data-dir"):
        run_pipeline(None, [], tmp_path / "runs", ratings_db=tmp_path / "r.db")
