"""fmrec.serving.similar: a movie's vector is the sum of its columns' factors, ranked by cosine."""

from __future__ import annotations

from array import array

import numpy as np
import pytest

from fmrec.serving.similar import SimilarIndex
from tests.support.lambda_world import make_lookup, make_model


def test_a_movies_vector_sums_its_auxiliary_columns() -> None:
    lookup = make_lookup()
    nu, nm = len(lookup.user_ids), len(lookup.movie_ids)
    lookup.feature_dim = nu + nm + 3  # three auxiliary movie columns (e.g. genres)
    # movie 0 has aux column a, movie 1 aux column b, every later movie aux column c
    lookup.movie_aux_indptr = array("Q", range(nm + 1))
    lookup.movie_aux_cols = array("I", [nu + nm + min(p, 2) for p in range(nm)])
    model = make_model(lookup.feature_dim, seed=9)
    V = np.asarray(model.params.V, dtype=np.float64)
    vectors = np.array([V[lookup.movie_keys(p)].sum(axis=0) for p in range(nm)])
    assert [len(lookup.movie_keys(p)) for p in range(nm)] == [2] * nm
    index = SimilarIndex.build(model.params, lookup)
    ranked, count = index.similar(0, 100)
    unit = vectors / np.linalg.norm(vectors, axis=1)[:, None]
    cos = unit @ unit[0]
    expected = sorted((p for p in range(1, nm)), key=lambda p: (-cos[p], p))
    assert [p for p, _ in ranked] == expected and count == nm - 1
    assert [s for _, s in ranked] == pytest.approx([cos[p] for p in expected], abs=1e-6)
