"""Similar movies: cosine similarity of the served model's movie factor vectors (numpy)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fmrec.errors import ConflictError
from fmrec.model.fm import FMParams, side_terms
from fmrec.serving.lookup import Lookup
from fmrec.serving.ranking import movie_rows, top_k_indices

SIMILARITY = "cosine"
_BLOCK_ROWS = 16384  # extreme rows normalised at once (a float64 block of 16384 x 64 factors is 8 MB)
# Norms safely inside float32's range (squares from 1e-30 to 1e30): computed directly, as they always were
_SAFE_NORMS = (1e-15, 1e15)


class NoFactors(ConflictError):
    """No usable factor vector for the movie(s), e.g. a linear-only artifact (the API answers 409)."""


@dataclass
class SimilarIndex:
    """Unit-length movie vectors s_i = sum of v_j over the movie's columns, one row per movie position.

    Cosine of the factor vectors, without the linear term: <s_i, s_j> is how the FM lets two movies' features
    interact with the same users, so movies liked by the same kind of user point the same way. The linear
    weight w_i is a per-movie offset (popularity); it has no direction, and adding it would make the most
    popular movies "similar" to everything. Cosine rather than the raw dot product for the same reason: a
    vector's length grows with how much the model uses the movie, not with what it is like.
    """

    unit: np.ndarray  # (n_movies, k) float32, zero rows for movies without a usable vector
    usable: np.ndarray  # (n_movies,) bool

    @classmethod
    def build(cls, params: FMParams, lookup: Lookup) -> SimilarIndex:
        return cls.from_factors(side_terms(params, movie_rows(lookup)).factors)

    @classmethod
    def from_factors(cls, vectors: np.ndarray) -> SimilarIndex:
        """From the movies' factor sums (SideTerms.factors of the movie rows).

        A row whose float32 norm is far from the float32 limits is divided by it, as ever. Any other row
        (norm 1e20: its square overflows to inf; 1e-23: it underflows to 0; or NaN) is first divided by its
        largest |value| in float64, so it still gets its direction unless it is all zero or not finite.
        """
        unit = np.zeros(vectors.shape, dtype=np.float32)  # float32: see SideTerms.compact
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))
        usable = (norms > _SAFE_NORMS[0]) & (norms < _SAFE_NORMS[1])  # NaN: False
        unit[usable] = vectors[usable] / norms[usable, None]
        rest = np.flatnonzero(~usable)
        for start in range(0, rest.size, _BLOCK_ROWS):  # float64 copies of one block at a time
            rows = rest[start : start + _BLOCK_ROWS]
            block = np.asarray(vectors[rows], dtype=np.float64)
            scale = np.max(np.abs(block), axis=1, initial=0.0)  # NaN rows: NaN, not finite
            ok = np.isfinite(scale) & (scale > 0)
            scaled = block[ok] / scale[ok, None]  # largest |value| 1: the squares neither overflow nor vanish
            unit[rows[ok]] = scaled / np.sqrt(np.einsum("ij,ij->i", scaled, scaled))[:, None]
            usable[rows[ok]] = True
        return cls(unit, usable)

    def similar(
        self, movie_pos: int, k: int, allowed: np.ndarray | None = None, *, movie_id: Any = None
    ) -> tuple[list[tuple[int, float]], int]:
        """([(movie position, cosine), ...] best first, the number of candidates ranked).

        Candidates: every movie with a usable vector (only where the bool mask `allowed` is set, when given)
        except the movie itself. Ties: lower position (smaller movie id) first.
        """
        shown = movie_id if movie_id is not None else f"position {movie_pos}"
        if not self.usable.any():
            raise NoFactors(
                "the served model has no usable factor vectors (all zero: a linear-only model); "
                "similar movies need the factors"
            )
        if not self.usable[movie_pos]:
            raise NoFactors(f"movie {shown} has an all-zero factor vector in the served model")
        scores = np.einsum("ij,j->i", self.unit, self.unit[movie_pos]).astype(np.float64)
        mask = self.usable.copy()
        if allowed is not None:
            mask &= allowed
        mask[movie_pos] = False
        scores[~mask] = -np.inf
        top = top_k_indices(scores, k)
        return [(int(p), float(scores[p])) for p in top], int(mask.sum())
