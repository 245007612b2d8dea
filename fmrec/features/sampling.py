"""Ranking-objective training rows: rated movies as positives plus popularity-sampled unrated movies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fmrec.data.readers import sorted_unique
from fmrec.errors import InputError
from fmrec.features.objective import SamplingConfig

# Rejection rounds before a user's remaining negatives are drawn by the exact (dense) method.
REJECTION_ROUNDS = 12
CHUNK_DRAWS = 1 << 22  # negatives drawn per user chunk (bounds the sampler's working memory)
DENSE_CELLS = 1 << 23  # users x movies cells per batch of the exact method


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
    rated, here or in `also_rated`; within a user they are distinct (drawn without replacement, weight
    popularity ** exponent) when the user has at least as many unrated movies as negatives to draw. A user
    who needs more (need = q x unrated + r) gets every unrated movie q times plus r distinct draws, so their
    label ratio stays that of everyone else and no movie repeats more than it must (negatives_repeated).
    A user with no unrated movie at all is skipped with their rows (users_skipped_no_unrated). No positive
    or no negative row at all is an error.
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
    # rows per positive rating: "weighted" writes a liked one twice (log loss weights it double)
    reps = is_pos.astype(np.int64) + (liked if config.positives == "weighted" else 0)
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
    short = need > avail
    safe_avail = np.maximum(avail, 1)
    copies = np.where(short, need // safe_avail, 0)  # full passes over a short user's unrated movies
    target = np.where(short, need % safe_avail, need)  # distinct weighted draws
    counts = {
        "positives": int(reps.sum()),
        "explicit_negatives": int(is_neg.sum()),
        "sampled_negatives": int(need.sum()),
        "negatives_requested": int(need.sum()),
        "negatives_repeated": int((need - avail)[short].sum()),
        "users_with_repeats": int(short.sum()),
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
    out_user[n_pos : n_pos + n_neg], out_movie[n_pos : n_pos + n_neg] = user[is_neg], movie[is_neg]
    del is_pos, is_neg, liked, unused, reps
    at = n_pos + n_neg
    if copies.any():
        at = _every_unrated(rated, copies, candidate, out_user, out_movie, at)
    if target.any():
        at = _draw_negatives(rng, rated, target, weights, avail, out_user, out_movie, at)
    assert at == n_out, (at, n_out)
    order = None
    if shuffle:
        order = np.arange(n_out, dtype=np.int32 if n_out < 2**31 else np.int64)
        rng.shuffle(order)
    return SampledRows(out_user, out_movie, n_pos, order, counts)


def _every_unrated(
    rated: np.ndarray,
    copies: np.ndarray,
    candidate: np.ndarray,
    out_user: np.ndarray,
    out_movie: np.ndarray,
    at: int,
) -> int:
    """Write every unrated candidate movie of each user u copies[u] times from `at`; returns the end."""
    nm = candidate.size
    users = np.flatnonzero(copies)
    batch = max(1, DENSE_CELLS // nm)
    for b0 in range(0, users.size, batch):
        bu = users[b0 : b0 + batch]
        grid = np.broadcast_to(candidate, (bu.size, nm)).copy()
        lo, hi = np.searchsorted(rated, bu * nm), np.searchsorted(rated, (bu + 1) * nm)
        n_rated = hi - lo
        rows = np.repeat(np.arange(bu.size), n_rated)
        at_key = np.repeat(lo - np.concatenate(([0], np.cumsum(n_rated)[:-1])), n_rated) + np.arange(
            rows.size
        )
        grid[rows, rated[at_key] % nm] = False
        row, col = np.nonzero(grid)
        times = copies[bu][row]
        n = int(times.sum())
        out_user[at : at + n] = np.repeat(bu[row], times)
        out_movie[at : at + n] = np.repeat(col, times)
        at += n
    return at


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
    target: np.ndarray,
    weights: np.ndarray,
    avail: np.ndarray,
    out_user: np.ndarray,
    out_movie: np.ndarray,
    at: int,
) -> int:
    """Fill out_* from `at` with target[u] distinct unrated movies per user u; returns the end position.

    Users whose target is at most half their unrated movies draw by rejection (popularity draws, rated and
    repeated movies redrawn), in chunks of users; the others, and any user still short after
    REJECTION_ROUNDS, by Efraimidis-Spirakis weighted sampling without replacement over the whole catalogue.
    """
    nm = weights.size
    prob, alias = _alias_table(weights)
    dense = target * 2 > avail
    sparse_target = np.where(dense, 0, target)
    leftover: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (users, deficits, accepted keys)
    ends = np.cumsum(sparse_target)
    u0 = 0
    n_users = target.size
    while u0 < n_users:
        u1 = int(np.searchsorted(ends, (ends[u0 - 1] if u0 else 0) + CHUNK_DRAWS, side="right"))
        u1 = min(max(u1, u0 + 1), n_users)
        want = sparse_target[u0:u1]
        if want.any():
            lo, hi = np.searchsorted(rated, [u0 * nm, u1 * nm])
            rated_c = rated[lo:hi]
            acc = np.empty(0, dtype=np.int64)
            deficit = want.copy()
            for _ in range(REJECTION_ROUNDS):
                total = int(deficit.sum())
                if total == 0:
                    break
                owners = np.repeat(np.arange(u0, u1, dtype=np.int64), deficit)
                draws = _alias_draw(rng, prob, alias, total)
                keys = sorted_unique(owners * nm + draws)
                del owners, draws
                keys = keys[~_member(rated_c, keys)]
                keys = keys[~_member(acc, keys)]
                acc = np.sort(np.concatenate((acc, keys)), kind="stable")
                deficit = want - np.bincount(acc // nm - u0, minlength=u1 - u0)
            short = np.flatnonzero(deficit > 0)
            if short.size:
                keep = np.isin(acc // nm - u0, short)
                leftover.append((short + u0, deficit[short], acc[keep]))
                acc = acc[~keep]
            out_user[at : at + acc.size] = acc // nm
            out_movie[at : at + acc.size] = acc % nm
            at += acc.size
        u0 = u1
    users = np.flatnonzero(dense)
    remaining = target[users]
    taken = rated
    if leftover:
        for _, _, a in leftover:  # keys accepted by rejection stay negatives; the exact method adds the rest
            out_user[at : at + a.size] = a // nm
            out_movie[at : at + a.size] = a % nm
            at += a.size
        taken = np.sort(np.concatenate([rated] + [a for _, _, a in leftover]))
        users = np.concatenate([users] + [u for u, _, _ in leftover])
        remaining = np.concatenate([remaining] + [d for _, d, _ in leftover])
        order = np.argsort(users, kind="stable")
        users, remaining = users[order], remaining[order]
    if users.size == 0:
        return at
    log_w = np.full(nm, -np.inf)
    np.log(weights, out=log_w, where=weights > 0)
    batch = max(1, DENSE_CELLS // nm)
    for b0 in range(0, users.size, batch):
        bu, br = users[b0 : b0 + batch], remaining[b0 : b0 + batch]
        # Efraimidis-Spirakis: the largest u ** (1 / w) are a weighted sample without replacement;
        # log(-log u) - log w orders the same keys (ascending) without underflow.
        score = np.log(-np.log(rng.random((bu.size, nm)))) - log_w
        lo, hi = np.searchsorted(taken, bu * nm), np.searchsorted(taken, (bu + 1) * nm)
        n_taken = hi - lo
        rows = np.repeat(np.arange(bu.size), n_taken)
        at_key = np.repeat(lo - np.concatenate(([0], np.cumsum(n_taken)[:-1])), n_taken) + np.arange(
            rows.size
        )
        score[rows, taken[at_key] % nm] = np.inf
        width = int(br.max())
        if width <= 0:
            continue
        top = (
            np.argpartition(score, width - 1, axis=1)[:, :width] if width < nm else np.argsort(score, axis=1)
        )
        top = np.take_along_axis(top, np.argsort(np.take_along_axis(score, top, axis=1), axis=1), axis=1)
        mask = np.arange(width) < br[:, None]
        picked = top[:, :width][mask]
        out_user[at : at + picked.size] = np.repeat(bu, br)
        out_movie[at : at + picked.size] = picked
        at += picked.size
    return at
