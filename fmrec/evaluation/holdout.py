"""The held-out test ratings file (holdout/ratings.tsv): what ranking relevance is computed from."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmrec.errors import InputError
from fmrec.io_utils import atomic_open

HOLDOUT_FILE = "ratings.tsv"
HEADER = ("user_id", "movie_id", "rating")
_WRITE_ROWS = 1 << 20  # lines formatted per chunk: bounded memory at 25M ratings


@dataclass(frozen=True)
class HeldOut:
    """Held-out ratings as columns: the raw test ratings, whatever the objective trained on."""

    user: np.ndarray  # int64 MovieLens user ids
    movie: np.ndarray  # int64 MovieLens movie ids
    rating: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.user.size)


def write_holdout(folder: str | os.PathLike[str], held: HeldOut) -> Path:
    """folder/ratings.tsv: a header line, then `user_id<TAB>movie_id<TAB>rating` per held-out rating."""
    path = Path(folder) / HOLDOUT_FILE
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(HEADER) + "\n")
        for a in range(0, len(held), _WRITE_ROWS):
            b = a + _WRITE_ROWS
            cols = (held.user[a:b].tolist(), held.movie[a:b].tolist(), held.rating[a:b].tolist())
            fh.write("".join(f"{u}\t{m}\t{r:g}\n" for u, m, r in zip(*cols, strict=True)))
    return path


def read_holdout(folder: str | os.PathLike[str]) -> HeldOut:
    """Read folder/ratings.tsv (the header line is optional); a malformed line is an error naming it."""
    path = Path(folder) / HOLDOUT_FILE
    if not path.is_file():
        raise InputError(f"{path}: no held-out ratings file; expected the preprocess step's holdout channel")
    lines = path.read_text(encoding="utf-8").splitlines()
    start = 1 if lines and not lines[0].split("\t", 1)[0].strip().lstrip("-").isdigit() else 0
    if start and tuple(f.strip() for f in lines[0].split("\t")) != HEADER:
        raise InputError(f"{path}: line 1: header {lines[0]!r}; expected {chr(9).join(HEADER)!r}")
    body = [(n, line) for n, line in enumerate(lines[start:], start + 1) if line.strip()]
    users = np.empty(len(body), dtype=np.int64)
    movies = np.empty(len(body), dtype=np.int64)
    ratings = np.empty(len(body), dtype=np.float64)
    for i, (n, line) in enumerate(body):
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"{path}: line {n}: {len(fields)} fields; expected user_id, movie_id, rating")
        try:
            users[i], movies[i], ratings[i] = int(fields[0]), int(fields[1]), float(fields[2])
        except ValueError:
            raise InputError(
                f"{path}: line {n}: {line!r}; expected integer user_id and movie_id and a numeric rating"
            ) from None
        if not np.isfinite(ratings[i]):
            raise InputError(f"{path}: line {n}: rating {fields[2]!r} is not a finite number")
    return HeldOut(users, movies, ratings)
