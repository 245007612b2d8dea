"""Readers for every MovieLens layout (ml-100k, ml-1m, ml-latest/25m/32m) with row-level quality checks."""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmrec.data.scale import RATING_MAX, RATING_MIN
from fmrec.errors import InputError
from fmrec.features.settings import DEFAULTS
from fmrec.numbers import is_ascii_digits, parse_float, parse_int

log = logging.getLogger(__name__)

LAYOUTS = ("ml-100k", "ml-1m", "ml-latest")
SPLITS_100K = ("ua", "ub", "u1", "u2", "u3", "u4", "u5")
REASONS = (
    "wrong_field_count",
    "non_numeric_id",
    "non_positive_id",
    "non_numeric_rating",
    "rating_out_of_range",
    "non_numeric_timestamp",
    "duplicate",
)
DUPLICATE_POLICY = (
    "Within one ratings file, a (user, movie) pair rated more than once keeps the rating with the latest "
    "timestamp (on a tie, the one on the later line); the others are rejected as 'duplicate'. Kept rows keep "
    "their file order. Pairs found in both the train and the test file are kept in both and counted."
)
# ml-1m users.dat codes (from its README)
ML1M_OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer",
    "programmer", "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip
# u.item's 19 genre flags, in order (u.genre, when present, overrides)
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
_MAX_EXAMPLES = 5
# The largest user or movie id fmrec accepts: the API addresses userId 1..2^31-1 (docs/api.md), and the
# encoders pack a (user, movie) pair into one int64 as user << 32 | movie.
MAX_ID = 2**31 - 1


@dataclass
class FileQuality:
    """What reading one ratings file found: rows read and kept, rejections by reason, a few examples."""

    file: str
    rows_read: int = 0
    rows_kept: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    examples: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, reason: str, line: int, text: str, count: int = 1) -> None:
        """Count a rejection; keep the first few examples of each reason."""
        self.rejected[reason] += count
        if self.rejected[reason] <= _MAX_EXAMPLES:
            self.examples.append({"line": line, "reason": reason, "text": text[:200]})

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "rejected": self.rejected,
            "examples": sorted(self.examples, key=lambda e: e["line"]),
        }


@dataclass
class Ratings:
    """One ratings file as columns, in file order."""

    user: np.ndarray  # int64
    movie: np.ndarray  # int64
    rating: np.ndarray  # float32
    timestamp: np.ndarray  # int64
    quality: FileQuality

    def __len__(self) -> int:
        return int(self.user.size)


@dataclass
class Movies:
    ids: np.ndarray  # int64
    titles: list[str]
    genres: list[list[str]]
    year: np.ndarray  # int32, 0 when unknown


@dataclass
class Users:
    ids: np.ndarray  # int64
    age: np.ndarray  # int32
    gender: list[str]
    occupation: list[str]


@dataclass
class Dataset:
    layout: str
    folder: Path
    split: str
    train: Ratings
    test: Ratings | None
    movies: Movies | None
    users: Users | None


# --------------------------------------------------------------------------------------------- ratings


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for large int arrays: sort-based, several times faster than numpy 2.4's hash-based unique."""
    s = np.sort(values)
    if s.size == 0:
        return s
    keep = np.empty(s.size, dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _need_file(path: Path, expected: str = "rating lines") -> None:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: empty file, expected {expected}")


def _id_too_large(file: str, line: int, what: str, value: int) -> InputError:
    return InputError(
        f"{file}: line {line}: {what} id {value} is above {MAX_ID}, the largest id fmrec serves "
        "(the API's userId is 1..2147483647); renumber the ids first"
    )


def _split_lines(text: str) -> list[str]:
    """Lines split on LF only, a trailing CR dropped. str.splitlines() also splits on NEL (0x85), VT, FF and
    0x1c-0x1e, which latin-1 text may hold inside a line: a bad row would be cut in two and kept."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines]


def _fast_parse(raw: bytes, sep: str, header: bool) -> tuple[np.ndarray, ...] | None:
    """Strict C-engine parse; None when any line is not 4 clean numbers (the careful path then runs)."""
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            header=0 if header else None,
            names=["u", "m", "r", "t"],
            dtype={"u": np.int64, "m": np.int64, "r": np.float64, "t": np.int64},
            engine="c",
            skip_blank_lines=True,
            na_filter=False,
        )
    except (ValueError, pd.errors.ParserError, OverflowError):
        return None
    return (
        frame["u"].to_numpy(),
        frame["m"].to_numpy(),
        frame["r"].to_numpy(),
        frame["t"].to_numpy(),
        np.arange(frame.shape[0], dtype=np.int64) + (2 if header else 1),
    )


def _careful_parse(raw: bytes, sep: str, header: bool, q: FileQuality) -> tuple[np.ndarray, ...]:
    """Line by line: every malformed line is rejected with its reason and line number."""
    users: list[int] = []
    movies: list[int] = []
    ratings: list[float] = []
    stamps: list[int] = []
    lines: list[int] = []
    text = raw.decode("latin-1")
    for number, line in enumerate(_split_lines(text), start=1):
        if header and number == 1:
            continue
        if not line.strip():
            continue
        q.rows_read += 1
        parts = line.split(sep)
        if len(parts) != 4:
            q.reject("wrong_field_count", number, line)
            continue
        try:
            u, m = parse_int(parts[0]), parse_int(parts[1])  # strict: '1_0' is no 10
        except ValueError:
            q.reject("non_numeric_id", number, line)
            continue
        try:
            r = parse_float(parts[2])
        except ValueError:
            q.reject("non_numeric_rating", number, line)
            continue
        try:
            t = parse_int(parts[3])
        except ValueError:
            q.reject("non_numeric_timestamp", number, line)
            continue
        for what, value in (("user", u), ("movie", m)):
            if value > MAX_ID:  # also keeps np.int64 below from overflowing
                raise _id_too_large(q.file, number, what, value)
        if u <= 0 or m <= 0:
            q.reject("non_positive_id", number, line)  # here: an int64 cannot hold every negative number
            continue
        if not -(2**63) <= t < 2**63:
            q.reject("non_numeric_timestamp", number, line)
            continue
        users.append(u)
        movies.append(m)
        ratings.append(r)
        stamps.append(t)
        lines.append(number)
    return (
        np.asarray(users, dtype=np.int64),
        np.asarray(movies, dtype=np.int64),
        np.asarray(ratings, dtype=np.float64),
        np.asarray(stamps, dtype=np.int64),
        np.asarray(lines, dtype=np.int64),
    )


def read_ratings(
    path: str | Path,
    sep: str = "\t",
    header: bool = False,
    max_reject_fraction: float = float(DEFAULTS["max_reject_fraction"]),
) -> Ratings:
    """Read a ratings file (user, movie, rating, timestamp per line). Bad rows are rejected and counted;
    a missing, empty or mostly malformed file is an InputError naming the file and its first bad line."""
    path = Path(path)
    _need_file(path)
    raw = path.read_bytes()
    if header:
        head = raw.split(b"\n", 1)[0].strip().decode("latin-1")
        if [h.strip() for h in head.split(sep)] != ["userId", "movieId", "rating", "timestamp"]:
            raise InputError(f"{path}: line 1: header {head!r}, expected 'userId,movieId,rating,timestamp'")
    if sep == "::":  # the C parser takes one-character separators only
        raw = raw.replace(b"::", b"\x1f")
        sep = "\x1f"
    q = FileQuality(str(path))
    parsed = _fast_parse(raw, sep, header)
    if parsed is None:
        parsed = _careful_parse(raw, sep, header, q)
    else:
        q.rows_read = int(parsed[0].size)
    user, movie, rating, stamp, line = parsed
    text_lines: list[str] | None = None

    def line_text(n: int) -> str:
        nonlocal text_lines
        if text_lines is None:
            text_lines = _split_lines(raw.decode("latin-1"))
        return text_lines[n - 1].replace("\x1f", "::") if n - 1 < len(text_lines) else ""

    for what, ids in (("user", user), ("movie", movie)):
        if ids.size and ids.max() > MAX_ID:
            at = int(np.argmax(ids > MAX_ID))
            raise _id_too_large(str(path), int(line[at]), what, int(ids[at]))
    keep = np.ones(user.size, dtype=bool)
    for reason, bad in (
        ("non_positive_id", (user <= 0) | (movie <= 0)),
        ("rating_out_of_range", ~((rating >= RATING_MIN) & (rating <= RATING_MAX))),
    ):
        bad &= keep
        if bad.any():
            idx = np.flatnonzero(bad)
            for i in idx[:_MAX_EXAMPLES]:
                q.reject(reason, int(line[i]), line_text(int(line[i])))
            q.rejected[reason] += int(idx.size) - min(idx.size, _MAX_EXAMPLES)
            keep &= ~bad
    # duplicates: keep the latest timestamp (ties: the later line)
    kept = np.flatnonzero(keep)
    if user.size and (user.max() < 2**31 and movie.max() < 2**31):
        pair = (user[kept] << 32) | movie[kept]
        pair_sorted = np.sort(pair)
        repeated = pair_sorted[1:][pair_sorted[1:] == pair_sorted[:-1]]
        # only rows of repeated pairs need the (pair, timestamp, line) order
        kept = kept[np.isin(pair, repeated)] if repeated.size else kept[:0]
    order = np.lexsort((line[kept], stamp[kept], movie[kept], user[kept]))
    su, sm = user[kept][order], movie[kept][order]
    later_same = np.zeros(order.size, dtype=bool)
    later_same[:-1] = (su[1:] == su[:-1]) & (sm[1:] == sm[:-1])
    if later_same.any():
        dup = kept[order[later_same]]
        for i in np.sort(dup)[:_MAX_EXAMPLES]:
            q.reject("duplicate", int(line[i]), line_text(int(line[i])))
        q.rejected["duplicate"] += int(dup.size) - min(dup.size, _MAX_EXAMPLES)
        keep[dup] = False
    q.rows_kept = int(keep.sum())
    expected = (
        "'" + {"\t": "<TAB>", "\x1f": "::"}.get(sep, sep).join(["user", "movie", "rating", "timestamp"]) + "'"
    )
    if q.rows_read == 0:
        raise InputError(f"{path}: no rating lines, expected {expected}")
    if q.rows_kept == 0 or q.rows_rejected > max_reject_fraction * q.rows_read:
        first = min(q.examples, key=lambda e: e["line"])
        raise InputError(
            f"{path}: line {first['line']}: {first['reason'].replace('_', ' ')} ({first['text']!r}); "
            f"{q.rows_rejected} of {q.rows_read} rows rejected, more than the allowed "
            f"{max_reject_fraction:.0%}; expected {expected}"
        )
    if keep.all():
        return Ratings(user, movie, rating.astype(np.float32), stamp, q)
    return Ratings(user[keep], movie[keep], rating[keep].astype(np.float32), stamp[keep], q)


# --------------------------------------------------------------------------------------------- metadata

# "Title (1995)", and the series of ml-latest/25m/32m: "Fawlty Towers (1975-1979)", "Stranger Things (2016-)",
# "Death Note: Desu nôto (2006–2007)" (an en dash): the first year. A title without one ("Hyena Road") is 0.
NO_GENRES = "(no genres listed)"  # ml-latest's genres field of a movie without any
_YEAR_IN_TITLE = re.compile(r"\(([0-9]{4})(?:\s*[-\u2013]\s*(?:[0-9]{4})?)?\)\s*$")


def _lines(path: Path, encoding: str, expected: str) -> list[tuple[int, str]]:
    """(line number, text) of the non-blank lines of a metadata file."""
    _need_file(path, expected)
    text = path.read_text(encoding=encoding)
    return [(n, ln) for n, ln in enumerate(_split_lines(text), start=1) if ln.strip()]


def _year(title: str, date: str = "") -> int:
    """The release year: u.item's release date when it has one, else the title's "(Year)"; 0 when unknown."""
    if len(date) >= 4 and is_ascii_digits(date[-4:]):
        return int(date[-4:])
    m = _YEAR_IN_TITLE.search(title)
    return int(m.group(1)) if m else 0


def _genre_list(names: list[str]) -> list[str]:
    """Genres as listed, each once (a repeat would be a second copy of one column), without ml-latest's
    "(no genres listed)" marker, which is the absence of a genre rather than one."""
    return list(dict.fromkeys(g for g in names if g and g != NO_GENRES))


def _movie_error(path: Path, number: int, line: str, expected: str) -> InputError:
    return InputError(f"{path}: line {number}: malformed movie line {line[:120]!r}; expected {expected}")


def read_movies_100k(path: Path) -> Movies:
    genre_path = path.with_name("u.genre")
    genre_names: list[str] | None = None
    if genre_path.exists():
        genre_names = [ln.split("|")[0] for _, ln in _lines(genre_path, "latin-1", "'genre|id' lines")]
    ids, titles, genres, years = [], [], [], []
    for number, line in _lines(path, "latin-1", "movie lines 'id|title|release date|video date|url|flags'"):
        parts = line.split("|")
        flags = parts[5:]
        names = genre_names or list(ML100K_GENRES)
        if (
            len(parts) < 6
            or not is_ascii_digits(parts[0])
            or len(flags) != len(names)
            or set(flags) - {"0", "1"}
        ):
            raise _movie_error(
                path, number, line, f"'id|title|release date|video date|url|{len(names)} 0/1 flags'"
            )
        ids.append(int(parts[0]))
        titles.append(parts[1])
        genres.append([g for g, f in zip(names, flags, strict=True) if f == "1"])
        years.append(_year(parts[1], parts[2]))
    return Movies(np.asarray(ids, dtype=np.int64), titles, genres, np.asarray(years, dtype=np.int32))


def read_movies_1m(path: Path) -> Movies:
    ids, titles, genres, years = [], [], [], []
    for number, line in _lines(path, "latin-1", "movie lines 'MovieID::Title::Genre|Genre'"):
        parts = line.split("::")
        if len(parts) != 3 or not is_ascii_digits(parts[0]):
            raise _movie_error(path, number, line, "'MovieID::Title::Genre|Genre'")
        ids.append(int(parts[0]))
        titles.append(parts[1])
        genres.append(_genre_list(parts[2].split("|")))
        years.append(_year(parts[1]))
    return Movies(np.asarray(ids, dtype=np.int64), titles, genres, np.asarray(years, dtype=np.int32))


def _decode_csv(path: Path) -> str:
    """movies.csv as text: UTF-8 (GroupLens's encoding, a BOM allowed), else latin-1 (any byte decodes).

    A file re-saved by a spreadsheet in a Western code page is still a movies.csv; its titles come out as that
    code page spells them, and a warning names the file.
    """
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        log.warning("%s: line %d: not UTF-8 (byte 0x%02x); read as latin-1", path, line, raw[exc.start])
        return raw.decode("latin-1")


def read_movies_csv(path: Path) -> Movies:
    _need_file(path, "a 'movieId,title,genres' header and movie lines")
    ids, titles, genres, years = [], [], [], []
    reader = csv.reader(io.StringIO(_decode_csv(path), newline=""))
    head = next(reader, None)
    if head is None or [h.strip() for h in head[:3]] != ["movieId", "title", "genres"]:
        raise InputError(f"{path}: line 1: header {head!r}, expected 'movieId,title,genres'")
    for row in reader:
        if not row:
            continue
        if len(row) != 3 or not is_ascii_digits(row[0]):
            raise _movie_error(path, reader.line_num, ",".join(row), "'movieId,title,genres'")
        ids.append(int(row[0]))
        titles.append(row[1])
        genres.append(_genre_list(row[2].split("|")))
        years.append(_year(row[1]))
    return Movies(np.asarray(ids, dtype=np.int64), titles, genres, np.asarray(years, dtype=np.int32))


def read_users_100k(path: Path) -> Users:
    ids, ages, genders, occs = [], [], [], []
    for number, line in _lines(path, "latin-1", "user lines 'id|age|M/F|occupation|zip'"):
        parts = line.split("|")
        if (
            len(parts) != 5
            or not is_ascii_digits(parts[0])
            or not is_ascii_digits(parts[1])
            or parts[2] not in ("M", "F")
        ):
            raise InputError(
                f"{path}: line {number}: malformed user line {line!r}; expected 'id|age|M/F|occupation|zip'"
            )
        ids.append(int(parts[0]))
        ages.append(int(parts[1]))
        genders.append(parts[2])
        occs.append(parts[3])
    return Users(np.asarray(ids, dtype=np.int64), np.asarray(ages, dtype=np.int32), genders, occs)


def read_users_1m(path: Path) -> Users:
    ids, ages, genders, occs = [], [], [], []
    for number, line in _lines(path, "latin-1", "user lines 'UserID::M/F::Age::Occupation::Zip'"):
        parts = line.split("::")
        ok = (
            len(parts) == 5
            and is_ascii_digits(parts[0])
            and is_ascii_digits(parts[2])
            and is_ascii_digits(parts[3])
        )
        if not ok or parts[1] not in ("M", "F") or int(parts[3]) >= len(ML1M_OCCUPATIONS):
            raise InputError(
                f"{path}: line {number}: malformed user line {line!r}; "
                "expected 'UserID::M/F::Age::Occupation::Zip'"
            )
        ids.append(int(parts[0]))
        genders.append(parts[1])
        ages.append(int(parts[2]))
        occs.append(ML1M_OCCUPATIONS[int(parts[3])])
    return Users(np.asarray(ids, dtype=np.int64), np.asarray(ages, dtype=np.int32), genders, occs)


# --------------------------------------------------------------------------------------------- datasets


def detect_layout(folder: str | Path) -> str:
    """Which MovieLens layout a folder holds, from its file names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder, expected a MovieLens folder")
    names = {p.name for p in folder.iterdir()}
    if "u.data" in names or any(f"{s}.base" in names for s in SPLITS_100K):
        return "ml-100k"
    if "ratings.dat" in names:
        return "ml-1m"
    if "ratings.csv" in names:
        return "ml-latest"
    raise InputError(
        f"{folder}: not a MovieLens folder: expected u.data or ua.base (ml-100k), ratings.dat (ml-1m) "
        f"or ratings.csv (ml-latest, ml-25m, ml-32m)"
    )


MOVIE_FILES = {"ml-100k": "u.item", "ml-1m": "movies.dat", "ml-latest": "movies.csv"}


def title_coverage(ds: Dataset, movie_ids: np.ndarray) -> dict[str, Any]:
    """Which of `movie_ids` (the rated movies) have no title: no movie file, or absent from it."""
    source = str(ds.folder / MOVIE_FILES[ds.layout]) if ds.movies is not None else None
    known = sorted_unique(ds.movies.ids) if ds.movies is not None else np.empty(0, np.int64)
    missing = movie_ids
    if known.size:
        pos = np.minimum(np.searchsorted(known, movie_ids), known.size - 1)
        missing = movie_ids[known[pos] != movie_ids]
    return {
        "source": source,
        "movies": int(movie_ids.size),
        "movies_without_title": int(missing.size),
        "examples": [int(m) for m in missing[:10]],
    }


def holdout_split(r: Ratings, per_user: int, seed: int) -> tuple[Ratings, Ratings]:
    """GroupLens-style split: `per_user` random ratings of every user with more than that go to test."""
    rng = np.random.default_rng(seed)
    key = rng.random(len(r))
    order = np.lexsort((key, r.user))
    su = r.user[order]
    first = np.searchsorted(su, su, side="left")
    last = np.searchsorted(su, su, side="right")
    rank = np.arange(su.size) - first
    test_sorted = (rank < per_user) & (last - first > per_user)
    test = np.zeros(len(r), dtype=bool)
    test[order] = test_sorted

    def part(mask: np.ndarray) -> Ratings:
        return Ratings(r.user[mask], r.movie[mask], r.rating[mask], r.timestamp[mask], r.quality)

    return part(~test), part(test)


def load_dataset(
    folder: str | Path,
    split: str = "auto",
    holdout_per_user: int = int(DEFAULTS["holdout_per_user"]),
    seed: int = 0,
    max_reject_fraction: float = float(DEFAULTS["max_reject_fraction"]),
) -> Dataset:
    """Read a MovieLens folder: train/test ratings, movies and (when the layout has them) users.

    split: ml-100k "ua" (the default), "ub", "u1".."u5", or "holdout" (u.data split `holdout_per_user` per
    user). Other layouts have no official split: "auto" and "holdout" both hold out per user.
    """
    folder = Path(folder)
    layout = detect_layout(folder)
    mrf = max_reject_fraction
    movies: Movies | None = None
    users: Users | None = None
    if layout == "ml-100k":
        if split == "auto":
            split = "ua" if (folder / "ua.base").exists() or not (folder / "u.data").exists() else "holdout"
        if split in SPLITS_100K:
            train = read_ratings(folder / f"{split}.base", "\t", max_reject_fraction=mrf)
            test: Ratings | None = read_ratings(folder / f"{split}.test", "\t", max_reject_fraction=mrf)
        elif split == "holdout":
            train, test = holdout_split(
                read_ratings(folder / "u.data", "\t", max_reject_fraction=mrf), holdout_per_user, seed
            )
        else:
            raise InputError(f"--split {split!r}: expected one of {', '.join(SPLITS_100K)}, holdout")
        if (folder / "u.item").exists():
            movies = read_movies_100k(folder / "u.item")
        if (folder / "u.user").exists():
            users = read_users_100k(folder / "u.user")
    else:
        if split not in ("auto", "holdout"):
            raise InputError(f"--split {split!r}: {layout} has no official splits; use holdout")
        split = "holdout"
        if layout == "ml-1m":
            ratings = read_ratings(folder / "ratings.dat", "::", max_reject_fraction=mrf)
            if (folder / "movies.dat").exists():
                movies = read_movies_1m(folder / "movies.dat")
            if (folder / "users.dat").exists():
                users = read_users_1m(folder / "users.dat")
        else:
            ratings = read_ratings(folder / "ratings.csv", ",", header=True, max_reject_fraction=mrf)
            if (folder / "movies.csv").exists():
                movies = read_movies_csv(folder / "movies.csv")
        train, test = holdout_split(ratings, holdout_per_user, seed)
    return Dataset(layout, folder, split, train, test, movies, users)
