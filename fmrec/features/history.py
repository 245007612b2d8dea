"""The user's rated movies as FM features (implicit feedback, as in SVD++ and libFM): one column per movie."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fmrec.errors import InputError
from fmrec.features.settings import BY_FIELD, DEFAULTS

if TYPE_CHECKING:
    import numpy as np

# Weighting: every history column of a user with n rated movies carries scale / sqrt(n) (SVD++'s |N(u)|^-1/2),
# so the history's pull on a score neither vanishes nor explodes with the user's activity.
MAX_CAP = int(BY_FIELD["history"].bounds()[1])
# History entries one channel may hold (about 7 bytes each in recordIO: a varint key and a float32 value,
# so ~14 GB): past it preprocess samples fewer history columns per row (bounded_cap), each still an unbiased
# share of the whole history, instead of filling a disk (ml-25m's 193M ranking rows x 128 would be ~150 GB).
MAX_ENTRIES = 2_000_000_000


@dataclass(frozen=True)
class HistoryConfig:
    """`cap` history columns per training row (0 = no history block); `scale` multiplies every value.

    `fixed`: each user's history is one fixed set, up to `cap` evenly spaced movies of their rated list worth
    scale/sqrt(m) each, in every training row (fixed_rows) and at serving (served_history), not fresh draws.
    Preprocess sets it when the channel bound lowers the cap (bounded_cap): few draws worth sqrt(n)/cap each
    are so noisy that the model learns next to nothing from them (docs/tuning.md, "Issue 22: fresh negatives
    and fixed histories")."""

    cap: int = int(DEFAULTS["history"])
    scale: float = 1.0
    fixed: bool = False

    def validate(self, field: str = "history") -> None:
        if not (0 <= self.cap <= MAX_CAP):
            raise InputError(f"{field} length {self.cap}: expected an integer in [0, {MAX_CAP}] (0 = off)")
        if not (math.isfinite(self.scale) and 0 < self.scale <= 100):
            raise InputError(f"{field} scale {self.scale}: expected a number in (0, 100]")

    @property
    def enabled(self) -> bool:
        return self.cap > 0


def bounded_cap(
    rows_per_user: np.ndarray, history_lengths: np.ndarray, cfg: HistoryConfig, budget: int | None = None
) -> tuple[int, int]:
    """(columns per row, entries): the largest cap <= cfg.cap whose channel (each user's rows x their capped
    history length) holds at most `budget` entries. Per-user counts, so it costs no memory per row.

    A history longer than the cap is sampled (training_rows), so a lower cap keeps every row an unbiased
    estimate of its whole history and only adds variance. `budget` defaults to MAX_ENTRIES. Raises
    InputError when even one column per row is over the budget (over 2 billion rows)."""
    # local import: Lambda cold start (its endpoint path reads serving_value through the stdlib-only lookup)
    import numpy as np

    budget = MAX_ENTRIES if budget is None else budget
    rows = np.asarray(rows_per_user, dtype=np.int64)
    lengths = np.asarray(history_lengths, dtype=np.int64)

    def entries(cap: int) -> int:
        return int(rows @ np.minimum(lengths, cap))

    if entries(cfg.cap) <= budget:
        return cfg.cap, entries(cfg.cap)
    lo, hi = 0, cfg.cap  # entries(lo) <= budget < entries(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if entries(mid) <= budget else (lo, mid)
    if lo == 0:
        raise InputError(
            f"train: {int(rows.sum()):,} ranking rows; even one history column each is over the "
            f"{budget:,}-entry channel limit: pass --history 0, or fewer --negatives"
        )
    return lo, entries(lo)


# History columns one user's feature row carries at serving and in evaluation (served_history): bounds a
# request's bytes (about 20 bytes a column in sparse JSON, so a row stays near 20 KB) whatever the user's
# activity. ml-100k's most active user has 737 ratings, so it changes nothing there.
SERVED_CAP = 1024


def serving_value(n_rated: int, scale: float, cap: int = SERVED_CAP) -> float:
    """The value of each history column of a user with n rated movies: scale/sqrt(n) for the whole history,
    and past `cap` columns scale*sqrt(n)/cap each, training_rows' unbiased estimate of the whole sum."""
    if n_rated <= 0:
        return 0.0
    return scale / math.sqrt(n_rated) if n_rated <= cap else sampled_value(n_rated, cap, scale)


def served_history(
    rated: Sequence[int], scale: float, cap: int = SERVED_CAP, fixed: bool = False
) -> tuple[list[int], float]:
    """(the history columns' movie positions, the value each carries) of a user who rated `rated`.

    The one rule of serving, the evaluate step and the batch (through fmrec.serving.lookup): up to `cap`
    movies, all of them; past it `cap` evenly spaced ones (deterministic, so the API answers as the evaluate
    step measured), each weighted as training_rows weighs its `cap` draws of a long history, or with `fixed`
    (the model's own cap) scale/sqrt(m) each, as training_rows gives a fixed history.
    """
    n = len(rated)
    picks = list(rated) if n <= cap else [rated[(i * n) // cap] for i in range(cap)]
    if fixed:
        return picks, scale / math.sqrt(len(picks)) if picks else 0.0
    return picks, serving_value(n, scale, cap)


def sampled_value(n_rated: int, n_columns: int, scale: float) -> float:
    """The value of each of `n_columns` history columns drawn uniformly from a user's `n_rated` movies:
    scale * sqrt(n) / m, so that their sum is an unbiased estimate of the whole history's (n columns worth
    scale / sqrt(n) each). Training (training_rows) and serving (serving_value past its cap) both use it."""
    return scale * math.sqrt(n_rated) / n_columns if n_columns > 0 else 0.0


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
    Each row's entries come in ascending column order (repeats side by side).
    """
    # local import: Lambda cold start (its endpoint path reads serving_value through the stdlib-only lookup)
    import numpy as np

    if not cfg.enabled or row_user.size == 0:
        empty = np.empty(0, np.int64)
        return empty, empty, np.empty(0, np.float32)
    if cfg.fixed:
        return fixed_rows(indptr, rated, row_user, row_movie, cfg)
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
    first = np.repeat(np.cumsum(take) - take, take)
    idx = np.arange(rows.size, dtype=np.int64) - first  # a whole history: its movies in order
    # One draw per entry whatever the row (the stream of draws stays what it was), used by sampled rows:
    # each has exactly `cap` entries, drawn with replacement and put in ascending order, so every row's
    # columns come out ascending and the caller's CSR needs no per-row sort before summing repeats (that
    # sort was a fifth of preprocess). Per-row work is done per row, not per entry.
    draws = rng.random(rows.size)
    sampled = m > cfg.cap
    if sampled.any():
        drawn = sampled[rows]
        picks = np.floor(draws[drawn].reshape(-1, cfg.cap) * m[sampled][:, None]).astype(np.int64)
        idx[drawn] = np.sort(picks, axis=1).ravel()
    idx += (own[rows] >= 0) & (idx >= own[rows])  # skip over the row's own movie (keeps the order)
    cols = rated[start[rows] + idx]
    mr = m.astype(np.float64)
    # sampled_value and serving_value, per row
    per_row = np.where(sampled, cfg.scale * np.sqrt(mr) / cfg.cap, cfg.scale / np.sqrt(np.maximum(mr, 1)))
    return rows, cols, np.repeat(per_row.astype(np.float32), take)


def fixed_rows(
    indptr: np.ndarray, rated: np.ndarray, row_user: np.ndarray, row_movie: np.ndarray, cfg: HistoryConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """training_rows for cfg.fixed: every row of a user carries the same m = min(n, cap) evenly spaced movies
    of their n rated ones (served_history's picks), each worth scale/sqrt(m), less the row's own movie."""
    import numpy as np  # local import: see training_rows

    indptr = np.asarray(indptr, dtype=np.int64)
    users = np.asarray(row_user, dtype=np.int64)
    start = indptr[users]
    n = indptr[users + 1] - start
    m = np.minimum(n, cfg.cap)
    rows = np.repeat(np.arange(users.size, dtype=np.int64), m)
    i = np.arange(rows.size, dtype=np.int64) - np.repeat(np.cumsum(m) - m, m)
    cols = np.asarray(rated, dtype=np.int64)[start[rows] + (i * n[rows]) // m[rows]]
    keep = cols != np.asarray(row_movie, dtype=np.int64)[rows]
    value = (cfg.scale / np.sqrt(np.maximum(m, 1))).astype(np.float32)
    return rows[keep], cols[keep], value[rows[keep]]
