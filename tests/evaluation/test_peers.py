"""The peers of the quality benchmark: EASE's closed form by hand, and every peer's scorer contract."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.evaluation import peers
from fmrec.features.ease import EASE_MAX_ITEMS


def _train(seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))


def test_ease_matches_its_closed_form() -> None:
    X = _train()
    G = (X.T @ X).toarray() + 5.0 * np.eye(12)
    P = np.linalg.inv(G)
    B = np.eye(12) - P / np.diag(P)  # B = I - P diagMat(1 / diag(P)): zero diagonal
    assert np.allclose(np.diag(B), 0)
    scores = peers.fit_ease(X, l2=5.0)(np.array([3, -1]))
    assert scores[0] == pytest.approx(X[3].toarray()[0] @ B)
    assert np.all(scores[1] == 0)  # an unknown user has no history


def test_ease_refuses_a_catalog_too_large_for_its_dense_inverse() -> None:
    with pytest.raises(InputError, match="EASE"):
        peers.fit_ease(sp.csr_matrix((2, EASE_MAX_ITEMS + 1)))


@pytest.mark.parametrize("peer", peers.PEERS, ids=lambda p: p.name)
def test_every_peer_scores_known_and_unknown_users(peer: peers.Peer) -> None:
    if not peers.available(peer):
        pytest.skip(f"{peer.needs} is not installed (requirements-bench.txt)")
    X = _train(1)
    scores = peer.fit(X, 0)(np.array([0, 5, -1]))
    assert scores.shape == (3, 12) and np.isfinite(scores).all()
    assert not np.allclose(scores[0], scores[1])  # personalised
