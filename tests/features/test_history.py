"""The rated-movie history block: training rows, lookup keys and values, and the request builder."""

from __future__ import annotations

import json
from array import array

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.features import history
from fmrec.features.history import HistoryConfig, serving_value, training_rows
from fmrec.model import fm
from fmrec.serving.lookup import Lookup, LookupHistory
from fmrec.serving.requests import RequestBuilder

# three users' rated movie positions (ascending), over 6 movies
RATED = [[0, 2, 4], [1, 3], [0, 1, 2, 3, 5]]
INDPTR = np.cumsum([0] + [len(r) for r in RATED])
FLAT = np.concatenate([np.array(r) for r in RATED])


def _dense(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int) -> np.ndarray:
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, 6)).toarray()


def test_whole_histories_leave_the_row_movie_out() -> None:
    users = np.array([0, 0, 1, 2])
    movies = np.array([2, 5, 1, 4])  # rated, unrated, rated, unrated
    rows, cols, vals = training_rows(
        INDPTR, FLAT, users, movies, HistoryConfig(cap=64), np.random.default_rng(0)
    )
    H = _dense(rows, cols, vals, 4)
    s2, s3, s5 = 1 / np.sqrt(2), 1 / np.sqrt(3), 1 / np.sqrt(5)
    np.testing.assert_allclose(H[0], [s2, 0, 0, 0, s2, 0], rtol=1e-6)  # movie 2 left out: 2 remain
    np.testing.assert_allclose(H[1], [s3, 0, s3, 0, s3, 0], rtol=1e-6)
    np.testing.assert_allclose(H[2], [0, 0, 0, 1, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(H[3], [s5, s5, s5, s5, 0, s5], rtol=1e-6)


def test_capped_histories_are_unbiased_and_bounded() -> None:
    users = np.full(20000, 2)
    movies = np.full(20000, 4)  # unrated: all 5 rated movies are history
    cfg = HistoryConfig(cap=2, scale=1.5)
    rows, cols, vals = training_rows(INDPTR, FLAT, users, movies, cfg, np.random.default_rng(1))
    assert np.bincount(rows).max() == 2 and not np.isin(cols, [4]).any()
    mean = _dense(rows, cols, vals, users.size).mean(axis=0)
    full = np.array([1, 1, 1, 1, 0, 1]) * serving_value(5, 1.5)
    np.testing.assert_allclose(mean, full, atol=0.03)


def test_rows_come_sorted_with_the_draws_of_one_random_per_entry() -> None:
    """Each row's columns ascend (the channel's CSR needs no sort), the entries are those of drawing one
    uniform per entry in row order (floor(u * m) for a sampled row, then skipping its own movie), and the
    generator advances by one draw per entry, so the following chunks draw what they drew before."""
    users = np.array([2, 0, 2, 1, 2, 0])
    movies = np.array([4, 2, 1, 5, 0, 3])  # user 2 rated 5 movies: capped at 3 (with and without its own)
    cfg = HistoryConfig(cap=3)
    used = np.random.default_rng(9)
    rows, cols, _ = training_rows(INDPTR, FLAT, users, movies, cfg, used)
    assert all(np.all(np.diff(cols[rows == r]) >= 0) for r in range(users.size))
    rng = np.random.default_rng(9)
    u = rng.random(rows.size)
    assert used.random() == rng.random()  # advanced by one draw per entry
    for r, (user, movie) in enumerate(zip(users, movies, strict=True)):
        hist = [int(j) for j in FLAT[INDPTR[user] : INDPTR[user + 1]] if j != movie]
        at = np.flatnonzero(rows == r)
        drawn = [hist[int(np.floor(u[p] * len(hist)))] for p in at]
        assert cols[at].tolist() == sorted(hist if len(hist) <= cfg.cap else drawn)
    assert (np.bincount(rows) == 3).sum() >= 3  # sampled rows were there


def test_off_and_bad_settings() -> None:
    r, c, v = training_rows(
        INDPTR, FLAT, np.array([0]), np.array([1]), HistoryConfig(cap=0), np.random.default_rng()
    )
    assert r.size == c.size == v.size == 0
    with pytest.raises(InputError, match="history length -1"):
        HistoryConfig(cap=-1).validate()
    with pytest.raises(InputError, match="history scale"):
        HistoryConfig(scale=float("nan")).validate()


def _lookup(history: bool) -> Lookup:
    n_users, n_movies = 3, 6
    return Lookup(
        feature_dim=n_users + n_movies + (n_movies if history else 0),
        user_ids=[10, 20, 30],
        movie_ids=[1, 2, 3, 4, 5, 6],
        titles=[f"m{i}" for i in range(n_movies)],
        genres=[[] for _ in range(n_movies)],
        movie_count=array("I", [2, 2, 2, 2, 1, 1]),
        movie_mean=array("f", [4.0] * n_movies),
        rated_indptr=array("Q", INDPTR.tolist()),
        rated_pos=array("I", FLAT.tolist()),
        history=LookupHistory(offset=n_users + n_movies, scale=1.0, cap=64) if history else None,
    )


def test_lookup_keys_values_and_round_trip() -> None:
    lk = _lookup(history=True)
    assert lk.user_keys(0) == [0, 9, 11, 13]
    np.testing.assert_allclose(lk.user_values(0), [1.0] + [1 / np.sqrt(3)] * 3)
    again = Lookup.from_blobs(lk.to_blobs())
    assert again.history == lk.history and again.user_values(2) == lk.user_values(2)
    plain = _lookup(history=False)
    assert plain.user_keys(0) == [0] and plain.user_values(0) == [1.0]
    bad = _lookup(history=True)
    bad.history = LookupHistory(offset=5, scale=1.0, cap=64)  # overlaps the movie block
    with pytest.raises(InputError, match="history block"):
        bad.check()


@pytest.mark.parametrize("max_bytes", [6 * 1024 * 1024, 900])
def test_request_bodies_score_as_the_fast_path(max_bytes: int) -> None:
    lk = _lookup(history=True)
    rng = np.random.default_rng(3)
    params = fm.FMParams(0.1, rng.normal(size=lk.feature_dim), rng.normal(size=(lk.feature_dim, 4)))
    item_rows = sp.csr_matrix(
        (np.ones(6), [lk.movie_column(p) for p in range(6)], np.arange(7)), shape=(6, lk.feature_dim)
    )
    for user in range(3):
        fast = fm.score_user_candidates(
            params, lk.user_keys(user), item_rows, fm.BINARY_CLASSIFIER, user_values=lk.user_values(user)
        )
        payloads = RequestBuilder(lk, max_bytes=max_bytes).build(user)
        got, positions = [], []
        for payload in payloads:
            assert len(payload.body) <= max_bytes
            instances = json.loads(payload.body)["instances"]
            data = [inst["data"]["features"] for inst in instances]
            indptr = np.cumsum([0] + [len(d["keys"]) for d in data])
            X = sp.csr_matrix(
                (
                    np.concatenate([d["values"] for d in data]),
                    np.concatenate([d["keys"] for d in data]),
                    indptr,
                ),
                shape=(len(data), lk.feature_dim),
            )
            got += fm.predict(params, X, fm.BINARY_CLASSIFIER).tolist()
            positions += list(payload.movie_positions)
        assert positions == list(range(6))
        np.testing.assert_allclose(got, fast, rtol=1e-6)


def test_a_channel_over_the_entry_limit_samples_fewer_columns_per_row() -> None:
    rows = np.array([1, 2, 0, 1])  # rows per user
    lengths = np.array([3, 100, 100, 5])  # each user's history length
    assert history.bounded_cap(rows, lengths, HistoryConfig(cap=64)) == (64, 3 + 2 * 64 + 5)
    # the largest cap that fits: 3 + 2*cap + 5 <= 100 -> cap 46 (47 would make 102)
    assert history.bounded_cap(rows, lengths, HistoryConfig(cap=64), budget=100) == (46, 100)
    assert history.bounded_cap(rows, lengths, HistoryConfig(cap=64), budget=101) == (46, 100)
    assert history.bounded_cap(rows, lengths, HistoryConfig(cap=4), budget=100) == (4, 3 + 8 + 4)
    with pytest.raises(InputError, match=r"train: 4 ranking rows; even one history column each is over"):
        history.bounded_cap(rows, lengths, HistoryConfig(cap=64), budget=3)


def test_sampled_columns_estimate_the_whole_history_without_bias() -> None:
    n, scale = 40, 2.0
    whole = n * history.serving_value(n, scale)
    assert history.sampled_value(n, n, scale) == pytest.approx(history.serving_value(n, scale))
    # a row of `cap` draws with replacement: its expected sum over the draws is the whole history's sum
    indptr, rated = np.array([0, n]), np.arange(n)
    cfg = HistoryConfig(cap=8, scale=scale)
    rng = np.random.default_rng(0)
    sums = []
    for _ in range(400):
        _, _, v = history.training_rows(indptr, rated, np.array([0]), np.array([n + 5]), cfg, rng)
        assert v.size == 8 and np.allclose(v, history.sampled_value(n, 8, scale))
        sums.append(v.sum())
    assert np.mean(sums) == pytest.approx(whole, rel=1e-6)  # every draw is worth the same: the sum is exact


def test_served_history_is_bounded_deterministic_and_unbiased() -> None:
    short = list(range(0, 30, 3))
    assert history.served_history(short, 1.0, cap=16) == (short, history.serving_value(10, 1.0))
    long = list(range(1000))
    keys, value = history.served_history(long, 1.0, cap=16)
    assert len(keys) == len(set(keys)) == 16 and keys == sorted(keys) and keys[0] == 0
    assert history.served_history(long, 1.0, cap=16) == (keys, value)  # the same request every time
    assert value == history.sampled_value(1000, 16, 1.0)  # training's weight of 16 draws from 1,000
    assert 16 * value == pytest.approx(1000 * history.serving_value(1000, 1.0, cap=1000))
    assert history.SERVED_CAP >= 128


def test_fixed_histories_are_the_served_set_in_every_row() -> None:
    cfg = HistoryConfig(cap=2, fixed=True)
    users = np.array([2, 2, 2, 0, 1])
    movies = np.array([4, 0, 1, 3, 5])  # user 2: unrated, rated and picked, rated and not picked
    rows, cols, vals = training_rows(INDPTR, FLAT, users, movies, cfg, np.random.default_rng(0))
    again = training_rows(INDPTR, FLAT, users, movies, cfg, np.random.default_rng(99))
    assert all(np.array_equal(a, b) for a, b in zip((rows, cols, vals), again, strict=True))  # no draws
    H = _dense(rows, cols, vals, 5)
    picks, value = history.served_history(RATED[2], 1.0, cap=2, fixed=True)
    assert picks == [0, 2] and value == pytest.approx(1 / np.sqrt(2))  # 2 of 5, evenly spaced
    np.testing.assert_allclose(H[0], [value, 0, value, 0, 0, 0], rtol=1e-6)  # a candidate: the served set
    np.testing.assert_allclose(H[1], [0, 0, value, 0, 0, 0], rtol=1e-6)  # its own movie left out
    np.testing.assert_allclose(H[2], H[0], rtol=1e-6)  # a rated movie outside the set: the whole set
    np.testing.assert_allclose(H[3], [value, 0, value, 0, 0, 0], rtol=1e-6)  # user 0: [0, 2, 4] -> [0, 2]
    np.testing.assert_allclose(H[4], [0, value, 0, value, 0, 0], rtol=1e-6)  # 2 of 2: all of them
    # the lookup of such a model serves the same set and value, and says so in lookup.json
    lk = _lookup(history=True)
    lk.history = LookupHistory(offset=9, scale=1.0, cap=2, fixed=True)
    assert lk.user_keys(2) == [2, 9, 11]
    np.testing.assert_allclose(lk.user_values(2), [1.0, value, value], rtol=1e-6)
    assert Lookup.from_blobs(lk.to_blobs()).history == lk.history
    assert LookupHistory.from_json({"offset": 9, "scale": 1.0, "cap": 64}).fixed is False  # older lookups
    with pytest.raises(ValueError, match="history fixed 'yes': expected true or false"):
        LookupHistory.from_json({"offset": 9, "scale": 1.0, "cap": 2, "fixed": "yes"})
    with pytest.raises(ValueError, match="a fixed history needs a cap of at least 1"):
        LookupHistory.from_json({"offset": 9, "scale": 1.0, "cap": 0, "fixed": True})
