"""EASE's weights fitted in place (Cholesky) equal the textbook closed form with a dense inverse."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.features.ease import _BLOCK, EASE_MAX_ITEMS, ease_weights


def _textbook(x: sp.csr_matrix, l2: float) -> np.ndarray:
    gram = (x.T @ x).toarray().astype(np.float64) + l2 * np.eye(x.shape[1])
    P = np.linalg.inv(gram)
    B = -P / np.diag(P)
    np.fill_diagonal(B, 0.0)
    return B


@pytest.mark.parametrize("n_items", [1, 7, _BLOCK - 1, _BLOCK + 3, 2 * _BLOCK + 1])  # the blocks' edges
def test_ease_weights_equal_the_closed_form(n_items: int) -> None:
    x = sp.random(400, n_items, density=0.05, random_state=n_items, format="csr")
    x.data[:] = 1.0
    B = ease_weights(x, 50.0)
    assert B.shape == (n_items, n_items) and B.flags.c_contiguous
    np.testing.assert_allclose(B, _textbook(x, 50.0), rtol=1e-9, atol=1e-12)
    assert not np.diag(B).any()


def test_a_user_scores_what_the_weights_say() -> None:
    # two movies always rated together: each predicts the other strongly, an unrelated one not at all
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=np.float64))
    B = ease_weights(x, 1.0)
    assert B[0, 1] > 0.5 and B[1, 0] > 0.5 and abs(B[0, 2]) < 1e-12


def test_bad_lambda_and_oversized_catalogues_are_refused() -> None:
    with pytest.raises(InputError, match="lambda 0"):
        ease_weights(sp.csr_matrix((3, 3)), 0.0)
    with pytest.raises(InputError, match=str(EASE_MAX_ITEMS)):
        ease_weights(sp.csr_matrix((2, EASE_MAX_ITEMS + 1)), 10.0)
