"""The FM score matrix against row-by-row prediction, unknown users, popularity, and the holdout file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.evaluation.holdout import HeldOut, read_holdout, write_holdout
from fmrec.evaluation.scorers import fm_scorer, popularity_scorer
from fmrec.model import fm


def _params(dim: int, k: int = 4) -> fm.FMParams:
    rng = np.random.default_rng(0)
    return fm.FMParams(
        0.3, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, k)).astype(np.float32)
    )


def test_score_matrix_equals_scoring_each_pair_as_one_row() -> None:
    # 3 users (col 0-2, user 1 has an aux col 8), 4 movies (col 3-6, movie 2 has aux col 7).
    params = _params(9)
    users = sp.csr_matrix(
        np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 1], [0, 0, 1] + [0] * 6])
    )
    items = sp.lil_matrix((4, 9))
    for p in range(4):
        items[p, 3 + p] = 1
    items[2, 7] = 1
    items = sp.csr_matrix(items)
    got = fm.score_matrix(params, users, items)
    for u in range(3):
        rows = sp.csr_matrix(np.vstack([users[u].toarray() + items[i].toarray() for i in range(4)]))
        assert got[u] == pytest.approx(fm.raw_scores(params, rows))


def test_fm_scorer_scores_an_unknown_user_with_the_movie_side_only() -> None:
    params = _params(7)
    users = sp.csr_matrix(np.eye(3, 7))
    items = sp.csr_matrix(np.hstack([np.zeros((4, 3)), np.eye(4)]))
    scores = fm_scorer(params, users, items)(np.array([1, -1]))
    assert scores[0] == pytest.approx(fm.score_matrix(params, users[1], items)[0])
    assert scores[1] == pytest.approx(fm.raw_scores(params, items))  # as SageMaker scores a movie-only row


def test_popularity_ranks_by_count() -> None:
    scores = popularity_scorer(np.array([3, 10, 1]))(np.array([0, 5]))
    assert scores.shape == (2, 3) and scores[1].tolist() == [3, 10, 1]


def test_holdout_round_trip_and_errors(tmp_path: Path) -> None:
    held = HeldOut(np.array([1, 2]), np.array([10, 20]), np.array([4.0, 3.5]))
    write_holdout(tmp_path / "h", held)
    back = read_holdout(tmp_path / "h")
    assert (
        back.user.tolist() == [1, 2]
        and back.movie.tolist() == [10, 20]
        and back.rating.tolist() == [4.0, 3.5]
    )
    (tmp_path / "h" / "ratings.tsv").write_text("1\t10\t5\n2\t20\n")  # no header: fine; line 2 is short
    with pytest.raises(InputError, match=r"ratings.tsv: line 2: 2 fields"):
        read_holdout(tmp_path / "h")
    (tmp_path / "h" / "ratings.tsv").write_text("1\t10\tfive\n")
    with pytest.raises(InputError, match=r"line 1: .*numeric rating"):
        read_holdout(tmp_path / "h")
    with pytest.raises(InputError, match="no held-out ratings file"):
        read_holdout(tmp_path / "missing")
