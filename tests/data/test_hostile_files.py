"""Plausible MovieLens files that used to raise tracebacks (issue 23 item 8): encodings, non-ASCII digits."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fmrec.data.readers import (
    load_dataset,
    read_movies_1m,
    read_movies_100k,
    read_movies_csv,
    read_ratings,
    read_users_1m,
    read_users_100k,
)
from fmrec.errors import InputError

FLAGS = "|".join(["0"] * 18 + ["1"])


def _latest(folder: Path, movies: bytes) -> Path:
    folder.mkdir()
    rows = [f"{u},{m},{(m % 10 + 1) / 2},{1100000000 + u * m}" for u in range(1, 4) for m in range(10, 22)]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    (folder / "movies.csv").write_bytes(movies)
    return folder


def test_a_latin_1_movies_csv_is_read_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = 'movieId,title,genres\n10,Toy Story (1995),Children\n11,"Amélie (2001)",Comedy|Romance\n'
    folder = _latest(tmp_path / "ml-latest", text.encode("latin-1"))
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(folder, holdout_per_user=2)
    assert ds.movies is not None and ds.movies.titles == ["Toy Story (1995)", "Amélie (2001)"]
    assert ds.movies.year.tolist() == [1995, 2001]
    assert any("movies.csv: line 3: not UTF-8" in r.getMessage() for r in caplog.records)


def test_a_utf_8_movies_csv_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "movies.csv"
    path.write_bytes("\ufeffmovieId,title,genres\n1,Amélie (2001),Comedy\n".encode())
    movies = read_movies_csv(path)
    assert movies.titles == ["Amélie (2001)"] and movies.ids.tolist() == [1]


@pytest.mark.parametrize("digit", ["\u00b2", "\u00b9", "\u0663"])  # ², ¹ (latin-1 0xb2, 0xb9), Arabic-Indic 3
def test_non_ascii_digits_in_ids_are_clear_errors(tmp_path: Path, digit: str) -> None:
    cases = [
        (
            "u.item",
            f"1|Toy Story (1995)|01-Jan-1995||http://x|{FLAGS}\n1{digit}|B (1996)|||x|{FLAGS}\n",
            read_movies_100k,
        ),
        ("movies.dat", f"1::A (1995)::Comedy\n2{digit}::B (1996)::Drama\n", read_movies_1m),
        (
            "movies.csv",
            f"movieId,title,genres\n1,A (1995),Comedy\n2{digit},B (1996),Drama\n",
            read_movies_csv,
        ),
        ("u.user", f"1|24|M|technician|85711\n2|5{digit}|F|other|94043\n", read_users_100k),
        ("users.dat", f"1::F::1::10::48067\n2::M::5{digit}::16::70072\n", read_users_1m),
        ("users.dat", f"1::F::1::10::48067\n2::M::56::1{digit}::70072\n", read_users_1m),
    ]
    for name, text, reader in cases:
        path = tmp_path / name
        encoding = "utf-8" if name == "movies.csv" or ord(digit) > 255 else "latin-1"
        if name != "movies.csv" and ord(digit) > 255:
            continue  # the latin-1 layouts cannot hold it
        path.write_bytes(text.encode(encoding))
        with pytest.raises(InputError, match=rf"{name}: line [23]: malformed"):
            reader(path)


def test_a_superscript_in_a_release_date_is_no_year(tmp_path: Path) -> None:
    path = tmp_path / "u.item"
    path.write_bytes(f"1|No Year|01-Jan-199\u00b2||x|{FLAGS}\n".encode("latin-1"))
    assert read_movies_100k(path).year.tolist() == [0]


def test_rating_fields_are_plain_decimals(tmp_path: Path) -> None:
    """int('1_0') is 10 and float('0_5') is 5: such fields are rejected, not read as other ids or ratings."""
    path = tmp_path / "u.data"
    good = [f"{u}\t{m}\t4\t88000{u}{m}" for u in range(1, 6) for m in range(1, 21)]
    bad = ["1_0\t1\t4\t880001", "1\t2\t0_5\t880002", "1\t\u00b23\t4\t880003", "2\t3\t4\t88_0"]
    path.write_bytes("\n".join([*good, *bad]).encode("latin-1") + b"\n")
    r = read_ratings(path)
    assert len(r) == len(good)
    assert r.quality.rejected["non_numeric_id"] == 2
    assert r.quality.rejected["non_numeric_rating"] == 1
    assert r.quality.rejected["non_numeric_timestamp"] == 1
