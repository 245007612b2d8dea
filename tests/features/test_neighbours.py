"""The neighbour table: EASE's strongest weights per rated movie, as session 6's experiment measured."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.errors import InputError
from fmrec.evaluation.scorers import train_matrix
from fmrec.features.neighbours import fit_table, served_table, user_values, with_blend_weight
from fmrec.features.options import PreprocessConfig
from fmrec.model import fm
from fmrec.model.artifact import FMModel, load_model_tar, save_model_tar
from fmrec.model.fm import FMParams
from fmrec.serving.lookup import read_lookup
from fmrec.serving.neighbour_table import ServedNeighbours
from fmrec.stages.preprocess import run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import exp_neighbours  # the benchmarks' dense reference


def _train(n_users: int = 60, n_movies: int = 25, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_movies)) < 0.3).astype(np.float32)
    dense[:, 0] = 1.0
    return sp.csr_matrix(dense)


def test_values_are_the_experiments_blend_score() -> None:
    train = _train()
    table = fit_table(train, l2=5.0, keep=4)
    reference = exp_neighbours.neighbours(train, -4, 0.5, "ease:5").served()
    for u in range(train.shape[0]):
        history = train[u].indices
        np.testing.assert_allclose(user_values(table, history), reference[u], rtol=1e-4, atol=1e-5)


def test_each_row_keeps_its_strongest_targets_only() -> None:
    table = fit_table(_train(), l2=5.0, keep=3)
    assert np.all(np.diff(table.indptr) == 3)
    assert table.targets.dtype == np.int32 and table.weights.dtype == np.float32


def test_only_the_most_rated_movies_are_fitted() -> None:
    train = _train()
    counts = np.asarray(train.sum(axis=0)).ravel()
    table = fit_table(train, l2=5.0, keep=3, max_movies=10)
    fitted = set(np.argsort(-counts, kind="stable")[:10].tolist())
    rows = {m for m in range(table.n_movies) if table.indptr[m + 1] > table.indptr[m]}
    assert rows == fitted
    assert set(table.targets.tolist()) <= fitted


def test_a_user_with_no_history_has_no_values() -> None:
    table = fit_table(_train(), l2=5.0, keep=3)
    assert not user_values(table, np.array([], dtype=np.int64)).any()


def test_keep_below_one_is_refused() -> None:
    with pytest.raises(InputError, match="keep must be at least 1"):
        fit_table(_train(), l2=5.0, keep=0)


def test_the_served_model_scores_the_blend_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    dim = 9
    params = FMParams(
        0.1, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, 3)).astype(np.float32)
    )
    trained = FMModel(params, "binary_classifier", {"num_factors": "3"})
    served = with_blend_weight(trained, column=8, weight=0.2)
    save_model_tar(served, tmp_path / "model.tar.gz")
    loaded = load_model_tar(tmp_path / "model.tar.gz")  # the artifact round trip keeps it
    rows = sp.csr_matrix(
        np.array([[1, 0, 0, 1, 0, 0.5, 0, 0, 0], [0, 1, 0, 0, 1, 0, 0.7, 0, 0]], dtype=np.float32)
    )
    with_g = sp.hstack(
        [rows[:, :8], sp.csr_matrix(np.array([[1.5], [-0.4]], dtype=np.float32))], format="csr"
    )
    expected = fm.raw_scores(trained.params, rows) + 0.2 * np.array([1.5, -0.4])
    np.testing.assert_allclose(fm.raw_scores(loaded.params, with_g), expected, rtol=1e-5, atol=1e-6)
    assert (
        loaded.meta.get("neighbour_column") == {"column": 8, "weight": 0.2}
        or "neighbour_column" not in loaded.meta
    )


def test_a_column_outside_the_model_is_refused() -> None:
    params = FMParams(0.0, np.zeros(4, np.float32), np.zeros((4, 2), np.float32))
    with pytest.raises(InputError, match="neighbour column 4: expected a column of feature_dim 4"):
        with_blend_weight(FMModel(params, "binary_classifier"), column=4, weight=0.2)


def test_the_served_table_gives_the_same_values_and_round_trips() -> None:
    train = _train()
    table = fit_table(train, l2=5.0, keep=4)
    served = ServedNeighbours.from_blob(served_table(table, column=99, keep=4, l2=5.0, weight=0.3).to_blob())
    assert (served.column, served.keep, served.l2, served.weight) == (99, 4, 5.0, 0.3)
    movies = [0, 3, 7, 24]
    for u in (0, 5, 59):
        history = train[u].indices.tolist()
        expected = user_values(table, np.array(history))[movies]
        np.testing.assert_allclose(served.values(history, movies), expected, rtol=1e-5, atol=1e-6)
    assert served.values([], movies) == [0.0] * 4


def test_a_broken_table_file_names_what_is_wrong() -> None:
    blob = served_table(fit_table(_train(), l2=5.0, keep=3), column=1, keep=3, l2=5.0, weight=0.2).to_blob()
    with pytest.raises(InputError, match=r"x/neighbours.bin: not a neighbour table \(bad magic\)"):
        ServedNeighbours.from_blob(b"nope" + blob, "x/neighbours.bin")
    with pytest.raises(InputError, match="truncated at byte"):
        ServedNeighbours.from_blob(blob[:-5], "x/neighbours.bin")
    nan = blob[:-4] + struct.pack("<f", float("nan"))  # the last weight
    with pytest.raises(InputError, match=r"x/neighbours\.bin: a weight is not a finite number"):
        ServedNeighbours.from_blob(nan, "x/neighbours.bin")


def test_preprocess_adds_the_column_and_its_table_only_when_asked(
    synth_dir: Path, ranked_default: Path, tmp_path: Path
) -> None:
    run(synth_dir, tmp_path / "nb", PreprocessConfig(objective="ranking", neighbours=5, neighbour_l2=50.0))
    run(synth_dir, tmp_path / "plain", PreprocessConfig(objective="ranking", neighbours=0))
    plain, with_nb = read_lookup(tmp_path / "plain" / "lookup"), read_lookup(tmp_path / "nb" / "lookup")
    default = read_lookup(ranked_default / "lookup").neighbours  # the defaults: on, 10 / 200 / 0.2
    assert default is not None and (default.keep, default.l2, default.weight) == (10, 200.0, 0.2)
    assert plain.neighbours is None and with_nb.feature_dim == plain.feature_dim + 1
    table = with_nb.neighbours
    assert table is not None and (table.column, table.keep, table.l2) == (plain.feature_dim, 5, 50.0)
    expected = fit_table(train_matrix(with_nb), l2=50.0, keep=5)
    assert list(table.targets) == expected.targets.tolist()
    X, _ = read_spmatrix(tmp_path / "nb" / "train")
    assert X.shape[1] == with_nb.feature_dim and X[:, table.column].nnz == 0  # no training row carries it
    rating = tmp_path / "rating"
    run(
        synth_dir, rating, PreprocessConfig(objective="rating", neighbours=5)
    )  # the seed's columns, unchanged
    assert read_lookup(rating / "lookup").neighbours is None
