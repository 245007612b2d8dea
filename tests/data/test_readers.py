"""Readers for ml-100k (u.data, ua/ub/u1-u5, u.item, u.user), ml-1m (.dat) and ml-latest (.csv) layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmrec.data.readers import detect_layout, load_dataset, read_ratings
from fmrec.data.synth import SynthConfig, write_synth
from fmrec.errors import InputError


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("r") / "ml-100k"
    write_synth(out, SynthConfig(users=50, items=80, ratings=2000, seed=5))
    return out


def test_ml100k_ua_split_items_and_users(ml100k: Path) -> None:
    ds = load_dataset(ml100k)
    assert ds.layout == "ml-100k" and ds.split == "ua"
    assert len(ds.train) == 1500 and ds.test is not None and len(ds.test) == 500
    assert ds.train.rating.dtype == np.float32 and ds.train.user.dtype == np.int64
    assert ds.movies is not None and ds.movies.ids.tolist() == list(range(1, 81))
    raw = [line.split(b"|")[1] for line in (ml100k / "u.item").read_bytes().splitlines()]
    assert ds.movies.titles == [t.decode("latin-1") for t in raw]  # latin-1 titles ("Café") survive
    assert any(max(t) > 127 for t in raw) and ds.movies.year[0] == int(ds.movies.titles[0][-5:-1]) > 1900
    assert all(ds.movies.genres) and ds.users is not None and ds.users.ids.size == 50
    assert set(ds.users.gender) <= {"M", "F"} and ds.users.age.min() > 0


def test_ml100k_numbered_splits_and_holdout(ml100k: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    lines = (ml100k / "u.data").read_text().splitlines()
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    (folder / "u3.base").write_text("\n".join(lines[:1600]) + "\n")
    (folder / "u3.test").write_text("\n".join(lines[1600:]) + "\n")
    ds = load_dataset(folder, split="u3")
    assert len(ds.train) == 1600 and ds.test is not None and len(ds.test) == 400
    hold = load_dataset(folder, split="holdout", holdout_per_user=10)
    assert hold.test is not None and len(hold.test) == 500
    assert np.bincount(hold.test.user)[1:].tolist() == [10] * 50
    assert load_dataset(folder).split == "holdout"  # no ua files: holdout of u.data
    with pytest.raises(InputError, match=r"u4\.base: no such file"):
        load_dataset(folder, split="u4")


def test_ml1m_dat_layout(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    rows = [f"{u}::{m}::{(u * m) % 5 + 1}::97830{u}{m:03d}" for u in range(1, 4) for m in range(1, 15)]
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n")
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Amélie (2001)::Comedy|Romance\n".encode(
            "latin-1"
        )
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n")
    ds = load_dataset(folder)
    assert ds.layout == "ml-1m" and ds.split == "holdout"
    assert ds.test is not None and len(ds.train) + len(ds.test) == 42 and len(ds.test) == 30
    assert (
        ds.movies is not None
        and ds.movies.titles[1] == "Amélie (2001)"
        and ds.movies.year.tolist() == [1995, 2001]
    )
    assert ds.movies.genres[0] == ["Animation", "Children's", "Comedy"]
    assert ds.users is not None and ds.users.occupation == ["K-12 student", "self-employed", "scientist"]
    assert ds.users.age.tolist() == [1, 56, 25]


def test_ml_latest_csv_layout(tmp_path: Path) -> None:
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    rows = [f"{u},{m},{(m % 10 + 1) / 2},{1100000000 + u * m}" for u in range(1, 4) for m in range(10, 32)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n10,"American President, The (1995)",Comedy|Drama|Romance\n'
        "11,Some Film (2019),(no genres listed)\n"
    )
    ds = load_dataset(folder, holdout_per_user=5)
    assert ds.layout == "ml-latest" and detect_layout(folder) == "ml-latest"
    assert ds.test is not None and len(ds.test) == 15 and len(ds.train) == 51
    assert set(np.unique(np.concatenate([ds.train.rating, ds.test.rating])).tolist()) >= {0.5, 5.0}
    assert ds.movies is not None and ds.movies.titles[0] == "American President, The (1995)"
    assert ds.movies.genres == [["Comedy", "Drama", "Romance"], []] and ds.users is None
    with pytest.raises(InputError, match="no official splits"):
        load_dataset(folder, split="ua")
    (folder / "ratings.csv").write_text("movieId,userId,rating,timestamp\n1,2,3,4\n")
    with pytest.raises(InputError, match=r"ratings\.csv: line 1: header 'movieId,userId,rating,timestamp'"):
        load_dataset(folder)


def test_rejections_by_reason(tmp_path: Path) -> None:
    path = tmp_path / "r.data"
    good = [f"{u}\t{m}\t4\t88000{u}{m}" for u in range(1, 6) for m in range(1, 21)]
    bad = [
        "1\t1\t5\t99999999999",
        "7\tx\t3\t1",
        "8\t1\t6\t1",
        "9\t1\t3",
        "0\t1\t3\t1",
        "8\t2\tgood\t1",
        "8\t3\t3\tt",
    ]
    path.write_text("\n".join(good + bad) + "\n")
    r = read_ratings(path, max_reject_fraction=0.1)
    q = r.quality
    assert q.rows_read == 107 and q.rows_kept == 100 and q.rows_rejected == 7
    assert q.rejected == {
        "wrong_field_count": 1,
        "non_numeric_id": 1,
        "non_positive_id": 1,
        "non_numeric_rating": 1,
        "rating_out_of_range": 1,
        "non_numeric_timestamp": 1,
        "duplicate": 1,
    }
    # duplicate policy: (1, 1) rated twice, the later timestamp wins (5 stars, at the end of the file)
    first = np.flatnonzero((r.user == 1) & (r.movie == 1))
    assert first.size == 1 and r.rating[first[0]] == 5
    assert [e["line"] for e in q.as_dict()["examples"]] == [1, *range(102, 108)]
    with pytest.raises(InputError, match=r"r\.data: line 1: duplicate .* 7 of 107 rows rejected, more than"):
        read_ratings(path)


def test_mostly_bad_file_names_the_first_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.data"
    path.write_text("1\t1\t4\t1\n2;2;4;1\n3;3;4;1\n")
    with pytest.raises(InputError, match=r"bad\.data: line 2: wrong field count \('2;2;4;1'\)"):
        read_ratings(path)
    path.write_text("\n\n")
    with pytest.raises(InputError, match="no rating lines"):
        read_ratings(path)


def test_detect_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        detect_layout(tmp_path / "nope")
    with pytest.raises(InputError, match="not a MovieLens folder"):
        detect_layout(tmp_path)
