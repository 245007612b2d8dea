"""The ranking sampler: never a rated movie, distinct per user, seeded, counts, exponent, errors."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from scipy.stats import chisquare

from fmrec.errors import InputError
from fmrec.features import sampling
from fmrec.features.objective import SamplingConfig, check_objective
from fmrec.features.sampling import SamplingError, sample_rows


def _config(**kwargs: Any) -> SamplingConfig:
    """The sampler's defaults with positives "all" and one pass (every rated movie once), as these tests
    expect; test_passes_write_each_positive_with_its_own_negatives covers more passes."""
    return SamplingConfig(**{"positives": "all", "passes": 1, **kwargs})


def _ratings(seed: int = 3, users: int = 300, movies: int = 200) -> tuple[np.ndarray, ...]:
    """Users with 1..149 distinct rated movies (two of them dense: 199 and 200 of 200), ratings 1..5."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(1, 150, users)
    per_user[0], per_user[1] = movies, movies - 1
    pop = 1.0 / np.arange(1, movies + 1)  # a long tail, so rejection and the dense method both work
    user = np.repeat(np.arange(users), per_user)
    movie = np.concatenate([rng.choice(movies, c, replace=False, p=pop / pop.sum()) for c in per_user])
    rating = rng.integers(1, 6, user.size).astype(np.float32)
    return user, movie, rating, np.bincount(movie, minlength=movies)


def _rows(s: sampling.SampledRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return s.take(0, len(s))


def test_negatives_are_unrated_and_counted() -> None:
    user, movie, rating, pop = _ratings()
    s = sample_rows(user, movie, rating, n_users=300, popularity=pop, threshold=4, config=_config())
    u, m, y = _rows(s)
    rated = set(zip(user.tolist(), movie.tolist(), strict=True))
    neg = list(zip(u[y == 0].tolist(), m[y == 0].tolist(), strict=True))
    assert neg and not rated.intersection(neg)
    # every rated pair is a positive except user 0's (rated the whole catalogue: skipped, with a count)
    pos = set(zip(u[y == 1].tolist(), m[y == 1].tolist(), strict=True))
    assert pos == {p for p in rated if p[0] != 0}
    c = s.counts
    assert c["users_skipped_no_unrated"] == 1 and c["rows_skipped"] == 200
    assert c["positives"] == user.size - 200 == int(y.sum())
    # each user gets exactly 4 negatives per positive, drawn with replacement: user 1 (one unrated movie)
    # has it 4 x 199 times
    need = 4 * np.bincount(user, minlength=300)
    avail = 200 - np.bincount(user, minlength=300)
    expect = np.where(avail > 0, need, 0)
    assert np.array_equal(np.bincount(u[y == 0], minlength=300), expect)
    assert set(m[(y == 0) & (u == 1)].tolist()) == set(range(200)) - set(movie[user == 1].tolist())
    assert c["sampled_negatives"] == int(expect.sum()) == c["negatives_requested"]


def test_heavy_users_keep_the_popularity_weights() -> None:
    """With replacement, a user who needs more negatives than half their unrated movies still draws them by
    popularity: the popular unrated movies come up far more often than the tail (distinct draws would
    flatten this towards uniform)."""
    n_movies = 100
    pop = np.arange(n_movies, 0, -1).astype(np.int64) * 10  # movie 0 most popular
    user = np.zeros(20, dtype=np.int64)
    movie = np.arange(20, 40)  # rated mid-popularity movies; 80 unrated
    cfg = _config(negatives_per_positive=50, popularity_exponent=1.0)  # 1000 draws over 80 movies
    s = sample_rows(user, movie, np.full(20, 5.0), n_users=1, popularity=pop, threshold=4, config=cfg)
    _, m, y = _rows(s)
    counts = np.bincount(m[y == 0], minlength=n_movies)
    assert counts[20:40].sum() == 0 and counts.sum() == 1000
    assert counts[:10].sum() > 3 * counts[-10:].sum()


def test_seeded_and_deterministic() -> None:
    user, movie, rating, pop = _ratings()
    args = {"n_users": 300, "popularity": pop, "threshold": 4}
    a = _rows(sample_rows(user, movie, rating, config=_config(seed=5), **args))
    b = _rows(sample_rows(user, movie, rating, config=_config(seed=5), **args))
    c = _rows(sample_rows(user, movie, rating, config=_config(seed=6), **args))
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not np.array_equal(a[1], c[1])
    other = _rows(sample_rows(user, movie, rating, config=_config(seed=5), stream=1, **args))
    assert not np.array_equal(a[1], other[1])  # the test channel's stream differs from the train one


def test_rows_are_shuffled_so_batches_mix_labels() -> None:
    user, movie, rating, pop = _ratings()
    s = sample_rows(user, movie, rating, n_users=300, popularity=pop, threshold=4, config=_config())
    _, _, y = _rows(s)
    batches = y[: (y.size // 100) * 100].reshape(-1, 100).mean(axis=1)
    share = s.n_positive / len(s)
    assert np.abs(batches - share).max() < 0.2  # every batch of 100 near the overall positive share
    plain = sample_rows(
        user,
        movie,
        rating,
        n_users=300,
        popularity=pop,
        threshold=4,
        config=_config(),
        shuffle=False,
    )
    assert _rows(plain)[2][: plain.n_positive].all()


@pytest.mark.parametrize("exponent", [0.0, 1.0, 0.5])
def test_exponent_sets_the_negative_distribution(exponent: float) -> None:
    """20,000 users who each rated movie 0 draw one negative: frequencies follow popularity ** exponent."""
    pop = np.arange(1, 21) * 10  # movie j has train count 10 (j + 1)
    n = 20_000
    user, movie = np.arange(n), np.zeros(n, dtype=np.int64)
    cfg = _config(negatives_per_positive=1, popularity_exponent=exponent, seed=1)
    s = sample_rows(user, movie, np.full(n, 5.0), n_users=n, popularity=pop, threshold=4, config=cfg)
    _, m, y = _rows(s)
    seen = np.bincount(m[y == 0], minlength=20)[1:]
    assert seen.sum() == n

    def expected(x: float) -> np.ndarray:
        w = pop[1:].astype(float) ** x
        return n * w / w.sum()

    assert chisquare(seen, expected(exponent)).pvalue > 1e-3
    for other in {0.0, 1.0, 0.5} - {exponent}:
        assert chisquare(seen, expected(other)).pvalue < 1e-6


def test_rejection_leftovers_draw_from_the_users_own_unrated_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Users who rated the few heavy movies reject almost every draw: their own weights finish them."""
    pop = np.ones(500, dtype=np.int64)
    pop[:5] = 10**9
    user = np.repeat(np.arange(50), 5)
    movie = np.tile(np.arange(5), 50)
    monkeypatch.setattr(sampling, "REJECTION_ROUNDS", 2)
    calls = []
    real = np.cumsum

    def spy(*args: object, **kwargs: object) -> np.ndarray:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[call-overload, no-any-return]

    monkeypatch.setattr(np, "cumsum", spy)
    cfg = _config(negatives_per_positive=10, popularity_exponent=1.0)
    s = sample_rows(user, movie, np.full(250, 4.0), n_users=50, popularity=pop, threshold=4, config=cfg)
    u, m, y = _rows(s)
    assert len(calls) > 1  # the per-user fallback ran (one cumsum is the chunking's)
    assert np.array_equal(np.bincount(u[y == 0], minlength=50), np.full(50, 50))
    assert (m[y == 0] >= 5).all()


def test_zero_popularity_movies_are_never_negatives() -> None:
    pop = np.array([5, 0, 5, 0, 5])
    cfg = _config(negatives_per_positive=2, popularity_exponent=0.0)
    s = sample_rows(
        np.array([0, 1]),
        np.array([0, 2]),
        np.array([5.0, 5.0]),
        n_users=2,
        popularity=pop,
        threshold=4,
        config=cfg,
    )
    _, m, y = _rows(s)
    assert set(m[y == 0].tolist()) <= {0, 2, 4} and not {1, 3} & set(m.tolist())


def test_liked_positives_and_below_threshold_negatives() -> None:
    user, movie, rating, pop = _ratings()
    args = {"n_users": 300, "popularity": pop, "threshold": 4}
    liked = sample_rows(user, movie, rating, config=_config(positives="liked"), **args)
    assert liked.counts["positives"] + liked.counts["ratings_not_used"] == user.size - 200
    assert liked.counts["explicit_negatives"] == 0
    both = sample_rows(
        user,
        movie,
        rating,
        config=_config(positives="liked", below_threshold_as_negative=True),
        **args,
    )
    u, m, y = _rows(both)
    low = set(zip(user[rating < 4].tolist(), movie[rating < 4].tolist(), strict=True))
    low = {p for p in low if p[0] != 0}
    negatives = set(zip(u[y == 0].tolist(), m[y == 0].tolist(), strict=True))
    assert low <= negatives and both.counts["explicit_negatives"] == len(low)
    assert both.counts["ratings_not_used"] == 0


def test_weighted_positives_write_a_liked_rating_twice() -> None:
    user, movie, rating, pop = _ratings()
    args = {"n_users": 300, "popularity": pop, "threshold": 4}
    rows = sample_rows(user, movie, rating, config=_config(positives="weighted"), **args)
    u, m, y = _rows(rows)
    kept = user != 0  # user 0 rated the whole catalogue: skipped
    seen: dict[tuple[int, int], int] = {}
    for pair in zip(u[y == 1].tolist(), m[y == 1].tolist(), strict=True):
        seen[pair] = seen.get(pair, 0) + 1
    expected = {
        (a, b): 2 if r >= 4 else 1
        for a, b, r in zip(user[kept].tolist(), movie[kept].tolist(), rating[kept].tolist(), strict=True)
    }
    assert seen == expected
    assert rows.counts["positives"] == sum(expected.values())
    # k negatives per positive row: a liked rating draws twice as many
    assert rows.counts["sampled_negatives"] == 4 * rows.counts["positives"]


def test_also_rated_pairs_are_never_negatives() -> None:
    pop = np.full(6, 3)
    cfg = _config(negatives_per_positive=3)
    s = sample_rows(
        np.array([0]),
        np.array([0]),
        np.array([5.0]),
        n_users=1,
        popularity=pop,
        threshold=4,
        config=cfg,
        also_rated=(np.array([0, 0]), np.array([1, 2])),
    )
    _, m, y = _rows(s)
    assert len(m[y == 0]) == 3 and set(m[y == 0].tolist()) <= {3, 4, 5}


def test_nothing_to_train_is_an_error() -> None:
    pop = np.full(3, 2)
    full = (np.repeat([0, 1], 3), np.tile([0, 1, 2], 2), np.full(6, 5.0))
    with pytest.raises(SamplingError, match=r"no positive row.*2 users skipped with no unrated movie"):
        sample_rows(*full, n_users=2, popularity=pop, threshold=4, config=_config())
    with pytest.raises(SamplingError, match="no negative row"):
        sample_rows(*full, n_users=2, popularity=pop, threshold=4, config=_config(negatives_per_positive=0))
    with pytest.raises(SamplingError, match="no positive row"):
        sample_rows(
            np.array([0]),
            np.array([0]),
            np.array([2.0]),
            n_users=1,
            popularity=pop,
            threshold=4,
            config=_config(positives="liked"),
        )
    with pytest.raises(InputError, match="user positions"):
        sample_rows(
            np.array([3]),
            np.array([0]),
            np.array([2.0]),
            n_users=1,
            popularity=pop,
            threshold=4,
            config=_config(),
        )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "clicks"}, "objective 'clicks': expected one of ranking, rating"),
        ({"negatives_per_positive": -1}, r"negatives per positive -1: expected a whole number in \[0, 100\]"),
        ({"negatives_per_positive": 101}, "negatives per positive 101"),
        ({"negatives_per_positive": 2.5}, "negatives per positive 2.5"),
        ({"popularity_exponent": -0.1}, r"negative exponent -0.1: expected a number in \[0, 1\]"),
        ({"popularity_exponent": 1.5}, "negative exponent 1.5"),
        ({"popularity_exponent": float("nan")}, "negative exponent nan"),
        ({"positives": "loved"}, "positives 'loved': expected one of all, liked, weighted"),
        ({"below_threshold_as_negative": True}, "only with positives 'liked'"),
        ({"seed": -1}, "seed -1"),
        ({"passes": 0}, r"sampling passes 0: expected a whole number in \[1, 20\]"),
        ({"passes": 21}, "sampling passes 21"),
        ({"passes": 1.5}, "sampling passes 1.5"),
    ],
)
def test_config_out_of_range(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        _config(**kwargs)  # type: ignore[arg-type]


def test_objective_and_predictor_type() -> None:
    check_objective("ranking", "binary_classifier")
    check_objective("rating", "regressor", "regression")
    with pytest.raises(InputError, match="objective 'ranking' needs predictor_type binary_classifier"):
        check_objective("ranking", "regressor")
    with pytest.raises(InputError, match="label mode must be binary"):
        check_objective("ranking", "binary_classifier", "regression")
    with pytest.raises(InputError, match="objective 'clicks'"):
        check_objective("clicks", "binary_classifier")


def test_alias_draws_follow_the_weights_and_skip_zero_weights() -> None:
    weights = np.array([0.0, 1.0, 2.0, 0.0, 7.0, 1e-9, 3.0])
    prob, alias = sampling._alias_table(weights)
    draws = sampling._alias_draw(np.random.default_rng(0), prob, alias, 200_000)
    seen = np.bincount(draws, minlength=weights.size)
    assert seen[0] == seen[3] == 0
    keep = weights > 1e-6
    assert chisquare(seen[keep], 200_000 * weights[keep] / weights[keep].sum()).pvalue > 1e-3


def test_passes_write_each_positive_with_its_own_negatives() -> None:
    user, movie, rating, pop = _ratings()
    args = {"n_users": 300, "popularity": pop, "threshold": 4}
    one = sample_rows(user, movie, rating, config=_config(positives="weighted"), **args)
    three = sample_rows(user, movie, rating, config=_config(positives="weighted", passes=3), **args)
    u1, m1, y1 = _rows(one)
    u3, m3, y3 = _rows(three)
    key1, key3 = u1.astype(np.int64) * 1000 + m1, u3.astype(np.int64) * 1000 + m3
    # every positive row three times (a liked rating 2 x 3), and 4 negatives per positive row
    pos1, n1 = np.unique(key1[y1 == 1], return_counts=True)
    pos3, n3 = np.unique(key3[y3 == 1], return_counts=True)
    assert np.array_equal(pos1, pos3) and np.array_equal(n3, 3 * n1)
    assert three.counts["positives"] == 3 * one.counts["positives"]
    assert three.counts["sampled_negatives"] == 4 * three.counts["positives"] == int((y3 == 0).sum())
    # each user's negatives: three times as many, never a rated movie, and more distinct ones than one
    # pass draws (fresh draws: a copied pass would have exactly as many)
    rated = set(key1[y1 == 1].tolist()) | set((user.astype(np.int64) * 1000 + movie).tolist())
    assert not rated.intersection(key3[y3 == 0].tolist())
    assert np.array_equal(
        np.bincount(u3[y3 == 0], minlength=300), 3 * np.bincount(u1[y1 == 0], minlength=300)
    )
    assert np.unique(key3[y3 == 0]).size > 1.1 * np.unique(key1[y1 == 0]).size  # 200 movies: saturates
    # explicit negatives (below the threshold, with positives "liked") come once per pass too
    liked = _config(positives="liked", below_threshold_as_negative=True)
    e1 = sample_rows(user, movie, rating, config=liked, **args).counts["explicit_negatives"]
    e3 = sample_rows(user, movie, rating, config=replace(liked, passes=3), **args).counts[
        "explicit_negatives"
    ]
    assert e3 == 3 * e1 > 0


@pytest.mark.parametrize("passes", [1, 3])
@pytest.mark.parametrize("positives", ["all", "liked", "weighted"])
def test_rows_per_user_predicts_the_sample_without_drawing(positives: str, passes: int) -> None:
    user, movie, rating, pop = _ratings()
    cfg = _config(positives=positives, below_threshold_as_negative=positives == "liked", passes=passes)
    s = sample_rows(user, movie, rating, n_users=300, popularity=pop, threshold=4, config=cfg)
    predicted = sampling.rows_per_user(user, rating, 300, 4, cfg)
    got = np.bincount(s.user, minlength=300)
    assert np.array_equal(got[1:], predicted[1:])  # user 0 rated everything: skipped by the sampler only
    assert got[0] == 0 and predicted[0] > 0
