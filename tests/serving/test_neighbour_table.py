"""The neighbour table inside lookup.bin: written after the fixed sections, read back, checked, optional."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.evaluation.scorers import model_scorer, train_matrix
from fmrec.features.history import SERVED_CAP
from fmrec.features.neighbours import NeighbourTable, fit_table, served_table, user_values
from fmrec.model.fm import predict, raw_scores
from fmrec.serving import retrieval as retrieval_module
from fmrec.serving.batch import iter_top_k
from fmrec.serving.lookup import LOOKUP_BIN, Lookup, read_lookup, write_lookup
from fmrec.serving.requests import RequestBuilder
from fmrec.serving.retrieval import Retrieval
from tests.serving.test_retrieval import random_model


def _with_table(lookup: Lookup) -> tuple[Lookup, NeighbourTable]:
    table = fit_table(train_matrix(lookup), l2=200.0, keep=10)
    served = served_table(table, column=lookup.feature_dim, keep=10, l2=200.0, weight=0.2)
    return replace(lookup, feature_dim=lookup.feature_dim + 1, neighbours=served), table


def test_a_lookup_with_a_table_round_trips(preprocessed: Path, tmp_path: Path) -> None:
    lookup, table = _with_table(read_lookup(preprocessed / "lookup"))
    write_lookup(tmp_path, lookup)
    back = read_lookup(tmp_path)
    assert back.neighbours is not None and back.neighbours.column == lookup.feature_dim - 1
    assert back.columns.neighbours is not None and back.columns.neighbours.offset == lookup.feature_dim - 1
    rated = back.rated_positions(3)
    movies = list(range(back.n_movies))
    expected = user_values(table, np.array(rated))
    np.testing.assert_allclose(back.neighbours.values(rated, movies), expected, rtol=1e-5, atol=1e-6)


def test_a_lookup_without_a_table_reads_as_before(preprocessed: Path) -> None:
    lookup = read_lookup(preprocessed / "lookup")
    assert lookup.neighbours is None and lookup.columns.neighbours is None


def test_a_table_cut_off_or_misaligned_is_an_input_error(preprocessed: Path) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    blobs = lookup.to_blobs()
    with pytest.raises(InputError, match=rf"{LOOKUP_BIN}: truncated at byte"):
        Lookup.from_blobs({**blobs, LOOKUP_BIN: blobs[LOOKUP_BIN][:-3]}, "x")
    fewer = fit_table(train_matrix(lookup)[:, :-1], l2=200.0, keep=10)  # one movie short of the lookup's
    short = replace(
        lookup, neighbours=served_table(fewer, column=lookup.feature_dim - 1, keep=10, l2=200.0, weight=0.2)
    )
    with pytest.raises(InputError, match="x: inconsistent lookup: the neighbour table is not aligned"):
        Lookup.from_blobs(short.to_blobs(), "x")


def test_retrieval_adds_the_columns_exact_fm_term(preprocessed: Path) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    model = random_model(lookup.feature_dim, seed=3)  # a trained-looking column: w and V both non-zero
    retrieval = Retrieval(model, lookup)
    column = lookup.feature_dim - 1
    for u in (0, 11):
        side = lookup.user_side(u)
        raw = retrieval.raw_scores(side)
        g = lookup.neighbours.values(side.rated, range(lookup.n_movies))  # type: ignore[union-attr]
        movies = [0, 5, lookup.n_movies - 1]
        rows = np.zeros((len(movies), lookup.feature_dim), dtype=np.float32)
        for r, m in enumerate(movies):
            rows[r, list(side.keys)] = side.values
            rows[r, lookup.movie_keys(m)] = 1.0
            rows[r, column] = g[m]
        X = sp.csr_matrix(rows)
        np.testing.assert_allclose(raw[movies], raw_scores(model.params, X), rtol=1e-5, atol=1e-5)
        assert retrieval.score(side, movies) == pytest.approx(
            predict(model.params, X, "binary_classifier").tolist(), abs=1e-6
        )


def test_the_endpoints_rows_carry_the_column_and_score_as_retrieval(preprocessed: Path) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    model = random_model(lookup.feature_dim, seed=4)
    table = lookup.neighbours
    assert table is not None
    side = lookup.user_side(7)
    h = side.rated[0]
    near = sorted(set(table.targets[table.indptr[h] : table.indptr[h + 1]]) - set(side.rated))[:3]
    movies = sorted({*near, 1, lookup.n_movies - 1} - set(side.rated))
    values = table.values(side.rated, movies)
    assert any(values) and not all(values)  # rows with the column and rows without it
    payloads = RequestBuilder(lookup).build_rows(side.keys, side.values, movies, (table.column, values))
    rows = [i["data"]["features"] for p in payloads for i in json.loads(p.body)["instances"]]
    dense = np.zeros((len(rows), lookup.feature_dim), dtype=np.float32)
    for r, row in enumerate(rows):
        assert row["keys"] == sorted(row["keys"]) and row["shape"] == [lookup.feature_dim]
        assert (table.column in row["keys"]) == (values[r] != 0)
        dense[r, row["keys"]] = row["values"]
    scores = predict(model.params, sp.csr_matrix(dense), "binary_classifier")
    assert Retrieval(model, lookup).score(side, movies) == pytest.approx(scores.tolist(), abs=1e-6)


def test_the_batch_ranks_as_retrieval_does(preprocessed: Path) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    model = random_model(lookup.feature_dim, seed=5)
    retrieval = Retrieval(model, lookup)
    users = [0, 4, 9]
    tops = [
        row for block in iter_top_k(model, lookup, 10, user_positions=users, block_cells=200) for row in block
    ]
    for u, row in zip(users, tops, strict=True):
        expected = retrieval.top(lookup.user_side(u), 10)
        assert row.movie_ids == [lookup.movie_ids[p] for p in expected.positions]
        assert row.scores == pytest.approx(expected.scores, abs=1e-9)


def test_the_evaluate_steps_scorer_is_the_apis_score(preprocessed: Path) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    model = random_model(lookup.feature_dim, seed=6)
    retrieval = Retrieval(model, lookup)
    users = np.array([2, -1, 8])
    block = model_scorer(model, lookup)(users)
    for row, u in enumerate(users.tolist()):
        side = lookup.user_side(u if u >= 0 else None)
        np.testing.assert_allclose(block[row], retrieval.raw_scores(side), rtol=1e-6, atol=1e-6)


def test_a_heavy_user_sums_at_most_served_cap_rows() -> None:
    """Past SERVED_CAP distinct rated movies the values sum an evenly spaced SERVED_CAP of them, each worth
    scale * sqrt(n) / cap (the history columns' unbiased rule), identically in the served and fitted table."""
    n_movies, n_rated = 3000, 2500
    rng = np.random.default_rng(5)
    train = sp.csr_matrix((rng.random((40, n_movies)) < 0.05).astype(np.float64))
    table = fit_table(train, l2=20.0, keep=5)
    served = served_table(table, column=7, keep=5, l2=20.0, weight=0.2)
    rated = [*rng.permutation(n_movies)[:n_rated].tolist(), 11, 11]  # repeats count once
    movies = list(range(0, n_movies, 7))
    distinct = sorted(set(rated))
    picks = [distinct[(i * len(distinct)) // SERVED_CAP] for i in range(SERVED_CAP)]
    W = sp.csr_matrix((table.weights, table.targets, table.indptr), shape=(n_movies, n_movies))
    expected = np.asarray(W[picks].sum(axis=0)).ravel() * table.scale * np.sqrt(len(distinct)) / SERVED_CAP
    np.testing.assert_allclose(user_values(table, rated), expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(served.values(rated, movies), expected[movies], rtol=1e-5, atol=1e-7)
    light = distinct[:SERVED_CAP]  # at the cap: every movie, scale / sqrt(n)
    whole = np.asarray(W[light].sum(axis=0)).ravel() * table.scale / np.sqrt(SERVED_CAP)
    np.testing.assert_allclose(user_values(table, light), whole, rtol=1e-6, atol=1e-9)


def test_a_request_sums_its_users_values_once_and_never_reuses_another_users(
    preprocessed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookup, _ = _with_table(read_lookup(preprocessed / "lookup"))
    model = random_model(lookup.feature_dim, seed=7)
    fresh = {u: Retrieval(model, lookup).score(lookup.user_side(u), list(range(40))) for u in (0, 11)}
    sums: list[int] = []

    def counted(table: object, rated: object) -> np.ndarray:
        sums.append(1)
        return user_values(table, rated)  # type: ignore[arg-type]

    monkeypatch.setattr(retrieval_module, "user_values", counted)
    retrieval = Retrieval(model, lookup)
    for u in (0, 11, 0):
        side = lookup.user_side(u)
        top = retrieval.top(side, 10)
        assert retrieval.score(side, top.positions) == pytest.approx(top.scores, abs=1e-12)
        assert retrieval.score(side, list(range(40))) == fresh[u]
    assert len(sums) == 3  # once per request (rank, then re-score twice), a fresh sum for each user
    same = lookup.user_side(0)  # the last user asked: an equal rated tuple, not the same object, is a hit
    copy = replace(same, rated=tuple(list(same.rated)))
    assert copy.rated is not same.rated
    assert retrieval.score(copy, list(range(40))) == fresh[0] and len(sums) == 3


def test_the_endpoint_paths_values_skip_rows_without_an_asked_movie_and_sum_as_before(
    preprocessed: Path,
) -> None:
    lookup, table = _with_table(read_lookup(preprocessed / "lookup"))
    served = lookup.neighbours
    assert served is not None
    for u in (1, 5, 30):
        rated = lookup.rated_positions(u)
        everything = user_values(table, np.array(rated))
        asked = [3, 17, 40, lookup.n_movies - 1, 17]  # a repeat: each asked value is returned
        np.testing.assert_allclose(served.values(rated, asked), everything[asked], rtol=1e-5, atol=1e-6)
    assert served.values([], [1, 2]) == [0.0, 0.0]
