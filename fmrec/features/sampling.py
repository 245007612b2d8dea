"""Ranking-objective training rows: rated movies as positives plus popularity-sampled unrated movies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fmrec.data.readers import sorted_unique
from fmrec.errors import InputError
from fmrec.features.objective import SamplingConfig

# Rejection rounds before a user's remaining negatives are drawn from their own unrated weights.
REJECTION_ROUNDS = 12
CHUNK_DRAWS = 1 << 22  # negatives drawn per user chunk (bounds the sampler's working memory)


class SamplingError(InputError):
    """The ratings cannot give the requested training rows (nothing sensible could be trained)."""


@dataclass
class SampledRows:
    """Training rows as (user, movie) positions: rows [0, n_positive) are positives, the rest negatives.

    `order` is the output order (a seeded shuffle, so every mini-batch mixes labels); `take(a, b)` gives
    output rows a..b. Labels are not stored: a row is positive when its index is below n_positive.
    """

    user: np.ndarray  # int32
    movie: np.ndarray  # int32
    n_positive: int
    order: np.ndarray | None
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.user.size)

    def take(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx = np.arange(a, b) if self.order is None else self.order[a:b]
        return self.user[idx], self.movie[idx], (idx < self.n_positive).astype(np.float32)


def positive_rows(rating: np.ndarray, threshold: float, config: SamplingConfig) -> np.ndarray:
    """Positive rows written per rating: 0 or 1, and 2 for a liked one under "weighted" (log loss counts it
    double); times config.passes (each copy gets its own negatives)."""
    liked = np.asarray(rating) >= threshold
    reps = (liked if config.positives == "liked" else np.ones(liked.size, dtype=bool)).astype(np.int64)
    return (reps + liked if config.positives == "weighted" else reps) * config.passes


def rows_per_user(
    user: np.ndarray, rating: np.ndarray, n_users: int, threshold: float, config: SamplingConfig
):
    """Rows sample_rows will write per user (before users with no unrated movie are skipped): each positive
    row with its negatives, and the explicit negatives. Per-user counts, computed without sampling."""
    pos = np.bincount(user, weights=positive_rows(rating, threshold, config), minlength=n_users)
    rows = pos.astype(np.int64) * (1 + config.negatives_per_positive)
    if config.below_threshold_as_negative:
        below = np.bincount(user, weights=np.asarray(rating) < threshold, minlength=n_users).astype(np.int64)
        rows += below * config.passes
    return rows


def negative_weights(popularity: np.ndarray, exponent: float) -> np.ndarray:
    """Sampling weight per movie position: count ** exponent, and 0 for a movie with no train count."""
    pop = np.asarray(popularity, dtype=np.float64)
    return np.where(pop > 0, np.power(np.maximum(pop, 1.0), exponent), 0.0)


def sample_rows(
    user: np.ndarray,
    movie: np.ndarray,
    rating: np.ndarray,
    *,
    n_users: int,
    popularity: np.ndarray,
    threshold: float,
    config: SamplingConfig,
    also_rated: tuple[np.ndarray, np.ndarray] | None = None,
    shuffle: bool = True,
    stream: int = 0,
) -> SampledRows:
    """Positives and sampled negatives for the ratings (user, movie) positions, rating values.

    Negatives of a user are movies with a positive `popularity` (the train catalogue) that the user has not
    rated, here or in `also_rated`, drawn independently (with replacement) with weight popularity ** exponent,
    k per positive row, so every user has the same label ratio. A user with no unrated movie at all is
    skipped with their rows (users_skipped_no_unrated). No positive or no negative row at all is an error.
    The random stream is (config.seed, stream), so train and test samples of one seed are independent.
    """
    nm = int(popularity.size)
    user = np.asarray(user)
    movie = np.asarray(movie)
    if user.size and (int(user.min()) < 0 or int(user.max()) >= n_users):
        raise InputError(f"sampler: user positions must lie in [0, {n_users})")
    if movie.size and (int(movie.min()) < 0 or int(movie.max()) >= nm):
        raise InputError(f"sampler: movie positions must lie in [0, {nm})")
    k = config.negatives_per_positive
    rng = np.random.default_rng([config.seed, stream])
    weights = negative_weights(popularity, config.popularity_exponent)
    candidate = weights > 0

    rated = user.astype(np.int64) * nm + movie
    if also_rated is not None:
        rated = np.concatenate((rated, also_rated[0].astype(np.int64) * nm + also_rated[1]))
    rated = sorted_unique(rated)
    rated_user = rated // nm
    rated_cand = np.bincount(rated_user[candidate[rated % nm]], minlength=n_users)
    del rated_user
    avail = int(candidate.sum()) - rated_cand

    liked = rating >= threshold
    is_pos = liked if config.positives == "liked" else np.ones(user.size, dtype=bool)
    is_neg = ~liked if config.below_threshold_as_negative else np.zeros(user.size, dtype=bool)
    reps = positive_rows(rating, threshold, config)
    pos_count = np.bincount(user, weights=reps, minlength=n_users).astype(np.int64)
    need = k * pos_count.astype(np.int64)
    skipped = (need > 0) & (avail <= 0)
    unused = ~is_pos & ~is_neg
    if skipped.any():
        keep = ~skipped[user]
        is_pos &= keep
        reps *= keep
        is_neg &= keep
        unused &= keep
        need[skipped] = 0
    counts = {
        "positives": int(reps.sum()),
        "explicit_negatives": int(is_neg.sum()) * config.passes,
        "sampled_negatives": int(need.sum()),
        "negatives_requested": int(need.sum()),
        "users_skipped_no_unrated": int(skipped.sum()),
        "rows_skipped": int(np.isin(user, np.flatnonzero(skipped)).sum()) if skipped.any() else 0,
        "ratings_not_used": int(unused.sum()),  # below the threshold with positives "liked"
    }
    if counts["positives"] == 0:
        raise SamplingError(
            f"ranking rows: no positive row (positives {config.positives!r}, threshold {threshold:g}, "
            f"{user.size} ratings, {counts['users_skipped_no_unrated']} users skipped with no unrated movie)"
        )
    if counts["sampled_negatives"] + counts["explicit_negatives"] == 0:
        raise SamplingError(
            f"ranking rows: no negative row ({k} negatives per positive requested; "
            f"{counts['users_skipped_no_unrated']} users have no unrated movie left to sample): "
            "nothing to train a ranking model on"
        )

    n_pos, n_neg = counts["positives"], counts["explicit_negatives"]
    n_out = n_pos + n_neg + counts["sampled_negatives"]
    out_user = np.empty(n_out, dtype=np.int32)
    out_movie = np.empty(n_out, dtype=np.int32)
    out_user[:n_pos], out_movie[:n_pos] = np.repeat(user, reps), np.repeat(movie, reps)
    out_user[n_pos : n_pos + n_neg] = np.repeat(user[is_neg], config.passes)
    out_movie[n_pos : n_pos + n_neg] = np.repeat(movie[is_neg], config.passes)
    del is_pos, is_neg, liked, unused, reps
    at = n_pos + n_neg
    if need.any():
        at = _draw_negatives(rng, rated, need, weights, out_user, out_movie, at)
    assert at == n_out, (at, n_out)
    order = None
    if shuffle:
        order = np.arange(n_out, dtype=np.int32 if n_out < 2**31 else np.int64)
        rng.shuffle(order)
    return SampledRows(out_user, out_movie, n_pos, order, counts)


def _alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vose's alias table: O(1) weighted draws (a binary search of the CDF per draw cost more)."""
    n = weights.size
    prob = weights * (n / weights.sum())
    alias = np.arange(n)
    small = np.flatnonzero(prob < 1).tolist()
    large = np.flatnonzero(prob >= 1).tolist()
    p = prob.tolist()
    while small and large:
        s, g = small.pop(), large.pop()
        alias[s] = g
        p[g] += p[s] - 1.0
        (small if p[g] < 1.0 else large).append(g)
    prob = np.asarray(p)
    # What is left is 1 up to rounding; a zero-weight movie left over must still never be drawn.
    heaviest = int(np.argmax(weights))
    for i in small + large:
        prob[i], alias[i] = (1.0, i) if weights[i] > 0 else (0.0, heaviest)
    return prob, alias


def _alias_draw(rng: np.random.Generator, prob: np.ndarray, alias: np.ndarray, n: int) -> np.ndarray:
    column = rng.integers(0, prob.size, n)
    return np.where(rng.random(n) < prob[column], column, alias[column])


def _member(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(keys.size, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), sorted_keys.size - 1)
    return sorted_keys[pos] == keys


def _draw_negatives(
    rng: np.random.Generator,
    rated: np.ndarray,
    need: np.ndarray,
    weights: np.ndarray,
    out_user: np.ndarray,
    out_movie: np.ndarray,
    at: int,
) -> int:
    """Fill out_* from `at` with need[u] independent draws for each user u, from `weights` restricted to the
    movies u has not rated; returns the end position.

    Draws are with replacement, as word2vec's sampling is: a movie is a negative in proportion to its weight
    however many a user needs. (Distinct movies instead flatten a heavy user's negatives towards uniform,
    since they must take most of the catalogue: measured worse, docs/tuning.md.) Popularity draws come from
    an alias table, a rated movie is redrawn, in chunks of users; a user still short after REJECTION_ROUNDS
    (one who rated most of the popular movies) draws the rest from their own unrated weights.
    """
    nm = weights.size
    prob, alias = _alias_table(weights)
    ends = np.cumsum(need)
    n_users = need.size
    short_users: list[np.ndarray] = []
    short_need: list[np.ndarray] = []
    u0 = 0
    while u0 < n_users:
        u1 = int(np.searchsorted(ends, (ends[u0 - 1] if u0 else 0) + CHUNK_DRAWS, side="right"))
        u1 = min(max(u1, u0 + 1), n_users)
        deficit = need[u0:u1].copy()
        if deficit.any():
            lo, hi = np.searchsorted(rated, [u0 * nm, u1 * nm])
            rated_c = rated[lo:hi]
            for _ in range(REJECTION_ROUNDS):
                total = int(deficit.sum())
                if total == 0:
                    break
                keys = np.repeat(np.arange(u0, u1, dtype=np.int64), deficit) * nm + _alias_draw(
                    rng, prob, alias, total
                )
                keys = keys[~_member(rated_c, keys)]
                out_user[at : at + keys.size] = keys // nm
                out_movie[at : at + keys.size] = keys % nm
                at += keys.size
                deficit -= np.bincount(keys // nm - u0, minlength=u1 - u0)
            short = np.flatnonzero(deficit > 0)
            short_users.append(short + u0)
            short_need.append(deficit[short])
        u0 = u1
    users = np.concatenate(short_users) if short_users else np.empty(0, dtype=np.int64)
    left = np.concatenate(short_need) if short_need else np.empty(0, dtype=np.int64)
    for u, n in zip(users.tolist(), left.tolist(), strict=True):
        w = weights.copy()
        lo, hi = np.searchsorted(rated, [u * nm, (u + 1) * nm])
        w[rated[lo:hi] % nm] = 0.0
        cdf = np.cumsum(w)
        picked = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right"), nm - 1)
        out_user[at : at + n] = u
        out_movie[at : at + n] = picked
        at += n
    return at
