"""The user's rated movies as FM features (implicit feedback, as in SVD++ and libFM): one column per movie."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmrec.errors import InputError

if TYPE_CHECKING:
    import numpy as np

# Weighting: every history column of a user with n rated movies carries scale / sqrt(n) (SVD++'s |N(u)|^-1/2),
# so the history's pull on a score neither vanishes nor explodes with the user's activity.
MAX_CAP = 4096
# History entries one channel may hold (about 7 bytes each in recordIO: a varint key and a float32 value):
# past it preprocess refuses, naming the largest --history that fits, rather than fill a disk (ml-25m's 193M
# ranking rows x 128 would be ~150 GB).
MAX_ENTRIES = 2_000_000_000


@dataclass(frozen=True)
class HistoryConfig:
    """`cap` history columns per training row (0 = no history block); `scale` multiplies every value."""

    cap: int = 64
    scale: float = 1.0

    def validate(self, field: str = "history") -> None:
        if not (0 <= self.cap <= MAX_CAP):
            raise InputError(f"{field} length {self.cap}: expected an integer in [0, {MAX_CAP}] (0 = off)")
        if not (math.isfinite(self.scale) and 0 < self.scale <= 100):
            raise InputError(f"{field} scale {self.scale}: expected a number in (0, 100]")

    @property
    def enabled(self) -> bool:
        return self.cap > 0


def check_size(
    rows_per_user: np.ndarray, history_lengths: np.ndarray, cfg: HistoryConfig, channel: str
) -> int:
    """The history entries a channel will hold (each user's rows x their capped history length): at most
    MAX_ENTRIES. Per-user counts, so the check costs no memory per row."""
    # local import: Lambda cold start (its endpoint path reads serving_value through the stdlib-only lookup)
    import numpy as np

    rows = np.asarray(rows_per_user, dtype=np.int64)
    entries = int(rows @ np.minimum(np.asarray(history_lengths, dtype=np.int64), cfg.cap))
    if entries > MAX_ENTRIES:
        n_rows = int(rows.sum())
        fits = max(MAX_ENTRIES // max(n_rows, 1), 0)
        raise InputError(
            f"{channel}: {n_rows:,} rows with up to {cfg.cap} history columns each make {entries:,} history "
            f"entries (about {entries * 7 / 1e9:.0f} GB of recordIO), over the {MAX_ENTRIES:,} limit; pass "
            f"--history {fits} or less (HistoryLength), or 0 for none"
        )
    return entries


# History columns one user's feature row carries at serving and in evaluation (served_history): bounds a
# request's bytes (about 20 bytes a column in sparse JSON, so a row stays near 20 KB) whatever the user's
# activity. ml-100k's most active user has 737 ratings, so it changes nothing there.
SERVED_CAP = 1024


def serving_value(n_rated: int, scale: float, cap: int = SERVED_CAP) -> float:
    """The value of each history column of a user with n rated movies: scale/sqrt(n) for the whole history,
    and past `cap` columns scale*sqrt(n)/cap each, training_rows' unbiased estimate of the whole sum."""
    if n_rated <= 0:
        return 0.0
    return scale / math.sqrt(n_rated) if n_rated <= cap else scale * math.sqrt(n_rated) / cap


def served_history(rated: Sequence[int], scale: float, cap: int = SERVED_CAP) -> tuple[list[int], float]:
    """(the history columns' movie positions, the value each carries) of a user who rated `rated`.

    The one rule of serving, the evaluate step and the batch (through fmrec.serving.lookup): up to `cap`
    movies, all of them; past it `cap` evenly spaced ones (deterministic, so the API answers as the evaluate
    step measured), each weighted as training_rows weighs its `cap` draws of a long history.
    """
    n = len(rated)
    if n <= cap:
        return list(rated), serving_value(n, scale, cap)
    return [rated[(i * n) // cap] for i in range(cap)], serving_value(n, scale, cap)


def training_rows(
    indptr: np.ndarray,
    rated: np.ndarray,
    row_user: np.ndarray,
    row_movie: np.ndarray,
    cfg: HistoryConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """History entries (row, movie position, value) for the rows (row_user[r], row_movie[r]).

    `indptr`/`rated` is the CSR of each user's rated movie positions (ascending). A row's own movie is left
    out of its history (a positive's movie is always in it, a candidate's never is: keeping it would teach the
    model a feature it never sees at serving time). Histories of up to `cap` movies are given whole with
    scale/sqrt(n); longer ones by `cap` draws with replacement, each worth scale*sqrt(n)/cap, an unbiased
    estimate of the whole history's sum that bounds a row's width (duplicates are summed by the caller's CSR).
    """
    # local import: Lambda cold start (its endpoint path reads serving_value through the stdlib-only lookup)
    import numpy as np

    if not cfg.enabled or row_user.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float32)
    indptr = np.asarray(indptr, dtype=np.int64)
    rated = np.asarray(rated, dtype=np.int64)
    users = np.asarray(row_user, dtype=np.int64)
    movies = np.asarray(row_movie, dtype=np.int64)
    n_movies = int(max(int(rated.max(initial=-1)), int(movies.max(initial=-1)))) + 1
    start = indptr[users]
    n_user = indptr[users + 1] - start
    # where the row's own movie sits in the user's history, or -1 (one search over (user, movie) keys)
    flat = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr)) * n_movies + rated
    key = users * n_movies + movies
    hit = np.minimum(np.searchsorted(flat, key), max(flat.size - 1, 0))
    own_in = (flat[hit] == key) if flat.size else np.zeros(users.size, bool)
    own = np.where(own_in, hit - start, -1)
    m = n_user - own_in
    take = np.minimum(m, cfg.cap)
    rows = np.repeat(np.arange(users.size, dtype=np.int64), take)
    whole = (m <= cfg.cap)[rows]
    first = np.repeat(np.cumsum(take) - take, take)
    idx = np.where(
        whole,
        np.arange(rows.size, dtype=np.int64) - first,
        np.floor(rng.random(rows.size) * m[rows]).astype(np.int64),
    )
    idx += (own[rows] >= 0) & (idx >= own[rows])  # skip over the row's own movie
    cols = rated[start[rows] + idx]
    mr = m[rows].astype(np.float64)
    vals = np.where(whole, cfg.scale / np.sqrt(np.maximum(mr, 1)), cfg.scale * np.sqrt(mr) / cfg.cap)
    return rows, cols, vals.astype(np.float32)
