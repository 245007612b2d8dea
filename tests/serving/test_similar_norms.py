"""Similar movies for factor vectors of extreme norm (issue 23 item 12): float32 squares must not decide."""

from __future__ import annotations

import numpy as np
import pytest

from fmrec.serving.similar import NoFactors, SimilarIndex


def _vectors() -> np.ndarray:
    base = np.array([[3.0, 4.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    return np.vstack(
        [
            base[0] * np.float32(1e20 / 5),  # norm 1e20: its float32 square overflows to inf
            base[1] * np.float32(1e-23),  # norm 1.4e-23: its float32 square underflows to 0
            base[2],
            np.zeros(3, dtype=np.float32),  # all zero: no direction
            np.array([np.nan, 1, 1], dtype=np.float32),
            np.array([np.inf, 1, 1], dtype=np.float32),
            base[0] * np.float32(3e38 / 5),  # near float32's largest value
        ]
    ).astype(np.float32)


def test_huge_and_tiny_vectors_have_a_direction() -> None:
    index = SimilarIndex.from_factors(_vectors())
    assert index.usable.tolist() == [True, True, True, False, False, False, True]
    assert index.unit.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(index.unit[index.usable], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(index.unit[0], [0.6, 0.8, 0.0], rtol=1e-6)
    np.testing.assert_allclose(index.unit[1], [0.0, 2**-0.5, 2**-0.5], rtol=1e-6)
    np.testing.assert_allclose(index.unit[6], index.unit[0], rtol=1e-6)


def test_similar_answers_for_a_huge_and_a_tiny_vector() -> None:
    index = SimilarIndex.from_factors(_vectors())
    ranked, count = index.similar(0, 3, movie_id=10)
    assert count == 3 and ranked[0][0] == 6 and ranked[0][1] == pytest.approx(1.0, abs=1e-6)
    ranked, _ = index.similar(1, 1, movie_id=11)
    assert ranked[0][0] in (0, 6) and ranked[0][1] == pytest.approx(0.8 / 2**0.5, abs=1e-6)
    with pytest.raises(NoFactors, match="movie 13 has an all-zero factor vector"):
        index.similar(3, 3, movie_id=13)


def test_many_rows_are_normalised_block_by_block() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40_000, 4)).astype(np.float32) * np.float32(1e19)
    index = SimilarIndex.from_factors(vectors)
    assert index.usable.all()
    expected = vectors.astype(np.float64) / np.linalg.norm(vectors.astype(np.float64), axis=1)[:, None]
    np.testing.assert_allclose(index.unit, expected, rtol=1e-5, atol=1e-7)
