"""Movie years and genres as real MovieLens writes them: "Title (Year)" titles and pipe-separated genres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fmrec.data.readers import load_dataset, read_movies_1m, read_movies_csv
from fmrec.features.layout import build_encoding, encode_rows

# Titles as ml-latest (2016-2024 releases) spells them: series with a year range, an open range, an en dash,
# no year at all, a trailing space, a year inside the title besides the release year.
MOVIES_CSV = (
    "movieId,title,genres\n"
    '1,"American President, The (1995)",Comedy|Drama|Romance\n'
    "2,Fawlty Towers (1975-1979),Comedy\n"
    "3,Stranger Things (2016-),Drama|Fantasy|Horror|Mystery|Sci-Fi\n"
    "4,Death Note: Desu nôto (2006–2007),(no genres listed)\n"
    "5,Hyena Road,(no genres listed)\n"
    "6,Dial M for Murder (1954) ,Crime|Mystery|Thriller\n"
    "7,2001: A Space Odyssey (1968),Adventure|Drama|Sci-Fi\n"
    "8,Babylon 5,Sci-Fi\n"
    "9,Odd Film (1999),Comedy|Comedy|Drama\n"
)
YEARS = [1995, 1975, 2016, 2006, 0, 1954, 1968, 0, 1999]


@pytest.fixture
def latest(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "movies.csv").write_text(MOVIES_CSV, encoding="utf-8")
    rows = [
        f"{u},{m},{(u + m) % 10 / 2 + 0.5},{1100000000 + u * m}" for u in range(1, 4) for m in range(1, 10)
    ]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows) + "\n")
    return folder


def test_movies_csv_years_cover_ranges_open_ranges_and_missing_years(latest: Path) -> None:
    movies = read_movies_csv(latest / "movies.csv")
    assert movies.year.tolist() == YEARS
    assert movies.titles[3] == "Death Note: Desu nôto (2006–2007)"


def test_movies_csv_genres_drop_the_no_genres_marker_and_repeats(latest: Path) -> None:
    movies = read_movies_csv(latest / "movies.csv")
    assert movies.genres[3] == [] and movies.genres[4] == []
    assert movies.genres[2] == ["Drama", "Fantasy", "Horror", "Mystery", "Sci-Fi"]
    assert movies.genres[8] == ["Comedy", "Drama"]  # a genre listed twice is one genre


def test_ml1m_titles_with_a_year_range(tmp_path: Path) -> None:
    path = tmp_path / "movies.dat"
    path.write_text(
        "1::Toy Story (1995)::Animation|Children's\n2::A Series (1990-1994)::Drama\n3::No Year::\n"
    )
    movies = read_movies_1m(path)
    assert movies.year.tolist() == [1995, 1990, 0] and movies.genres[2] == []


def test_aux_rows_of_latest_movies_encode_decades_unknown_and_no_genres(latest: Path) -> None:
    ds = load_dataset(latest, holdout_per_user=2)
    assert ds.movies is not None
    enc = build_encoding(ds.train, ds.users, ds.movies, ("genres", "year"))
    genre, year = enc.blocks[2], enc.blocks[3]
    assert genre.name == "movie_genre" and "(no genres listed)" not in genre.labels
    assert year.labels == ["1950", "1960", "1970", "1990", "2000", "2010", "unknown"]
    ids = ds.movies.ids
    rows = encode_rows(enc, np.full(ids.size, ds.train.user[0]), ids)
    for i, movie in enumerate(ids.tolist()):
        cols = rows[i].indices.tolist()
        assert rows[i].data.tolist() == [1.0] * len(cols)  # one column each, no column twice
        got_genres = [
            genre.labels[c - genre.offset] for c in cols if genre.offset <= c < genre.offset + genre.size
        ]
        got_years = [year.labels[c - year.offset] for c in cols if year.offset <= c < year.offset + year.size]
        assert got_genres == sorted(set(ds.movies.genres[i])), movie
        decade = "unknown" if YEARS[i] == 0 else str(YEARS[i] // 10 * 10)
        assert got_years == [decade], movie
