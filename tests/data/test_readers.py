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


# --- hostile ratings and metadata files (issue 14 items 6, 8, 13) ------------------------------------------


def _good_rows(n: int = 60) -> list[str]:
    return [f"{1 + i % 6}\t{1 + i // 6}\t4\t88000{i}" for i in range(n)]


@pytest.mark.parametrize("uid", [2**63, 10**30])
def test_a_user_id_beyond_int64_is_a_clear_error(tmp_path: Path, uid: int) -> None:
    path = tmp_path / "r.data"
    path.write_text(
        "\n".join([*_good_rows(), f"{uid}\t1\t4\t1", "x\ty\tz\tw"]) + "\n"
    )  # forces the careful parser
    with pytest.raises(InputError, match=rf"r\.data: line 61: user id {uid} is above 2147483647"):
        read_ratings(path)


@pytest.mark.parametrize(("row", "what"), [("2147483648\t1\t4\t1", "user"), ("1\t4294967296\t4\t1", "movie")])
def test_ids_the_api_cannot_address_are_refused(tmp_path: Path, row: str, what: str) -> None:
    """ids of 2^31 and above fit int64 (the fast parser) but not the API's userId: preprocess refuses them."""
    path = tmp_path / "r.data"
    path.write_text("\n".join([*_good_rows(), row]) + "\n")
    with pytest.raises(InputError, match=rf"r\.data: line 61: {what} id \d+ is above 2147483647"):
        read_ratings(path)
    path.write_text("\n".join([*_good_rows(), "2147483647\t2147483647\t4\t1"]) + "\n")
    assert read_ratings(path).user.max() == 2**31 - 1


def test_hugely_negative_ids_and_timestamps_are_rejected_rows(tmp_path: Path) -> None:
    path = tmp_path / "r.data"
    path.write_text("\n".join([*_good_rows(100), f"{-(10**30)}\t1\t4\t1", f"1\t1\t4\t{10**30}"]) + "\n")
    q = read_ratings(path, max_reject_fraction=0.1).quality
    assert (q.rejected["non_positive_id"], q.rejected["non_numeric_timestamp"]) == (1, 1)
    assert [e["line"] for e in q.examples] == [101, 102]


@pytest.mark.parametrize("char", ["\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"])
def test_careful_parser_splits_on_newline_only(tmp_path: Path, char: str) -> None:
    """A latin-1 byte that str.splitlines() takes for a line break stays inside its line."""
    path = tmp_path / "r.data"
    rows = _good_rows(100)
    rows[10] = f"1\t99\t4\t881250{char}949"  # a bad timestamp: the whole row is rejected
    rows[50] = "2\t98\tx\t1"  # a later bad row keeps its true line number
    path.write_bytes(("\n".join(rows) + "\r\n").encode("latin-1"))
    r = read_ratings(path, max_reject_fraction=0.1)
    q = r.quality
    assert q.rows_read == 100 and q.rows_kept == 98
    assert [(e["line"], e["reason"]) for e in q.as_dict()["examples"]] == [
        (11, "non_numeric_timestamp"),
        (51, "non_numeric_rating"),
    ]
    assert 99 not in r.movie.tolist()


def test_rejection_texts_are_looked_up_by_true_line_number(tmp_path: Path) -> None:
    """A duplicate's example text comes from a second pass over the file: it must count lines the same way."""
    path = tmp_path / "r.data"
    rows = _good_rows(100)
    rows[2] = "1\t97\t4\t88\x1c1"  # a bad row holding 0x1c
    rows[5] = "3\t50\t4\t1"
    rows[6] = "3\t50\t4\t2"  # the same pair later: line 6 is the rejected duplicate
    path.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    q = read_ratings(path, max_reject_fraction=0.1).quality
    assert q.as_dict()["examples"] == [
        {"line": 3, "reason": "non_numeric_timestamp", "text": "1\t97\t4\t88\x1c1"},
        {"line": 6, "reason": "duplicate", "text": "3\t50\t4\t1"},
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("u.item", r"u\.item: empty file, expected movie lines"),
        ("u.user", r"u\.user: empty file, expected user lines"),
    ],
)
def test_empty_metadata_files_name_what_they_should_hold(
    ml100k: Path, tmp_path: Path, name: str, expected: str
) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    for f in ("ua.base", "ua.test", "u.item", "u.user"):
        (folder / f).write_bytes((ml100k / f).read_bytes())
    (folder / name).write_text("")
    with pytest.raises(InputError, match=expected):
        load_dataset(folder)


def test_metadata_line_numbers_count_blank_lines(ml100k: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ml"
    folder.mkdir()
    for f in ("ua.base", "ua.test", "u.user"):
        (folder / f).write_bytes((ml100k / f).read_bytes())
    items = (ml100k / "u.item").read_bytes().split(b"\n")
    (folder / "u.item").write_bytes(b"\n".join([items[0], b"", items[1], b"9|broken"]) + b"\n")
    with pytest.raises(InputError, match=r"u\.item: line 4: malformed movie line '9\|broken'"):
        load_dataset(folder)
