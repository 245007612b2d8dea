"""Exact retrieval: a user's side computed once, the whole catalogue ranked by one matrix-vector product."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fmrec.errors import InputError
from fmrec.features.neighbours import user_values
from fmrec.model.artifact import FMModel
from fmrec.model.fm import FMParams, SideTerms, link, side_terms, user_terms
from fmrec.serving.lookup import Lookup, UserSide
from fmrec.serving.neighbour_table import ServedNeighbours
from fmrec.serving.ranking import movie_rows, top_k_indices


@dataclass(frozen=True)
class Ranked:
    """Movie positions best first, their scores (after the model's output link) and the candidates ranked."""

    positions: list[int]
    scores: list[float]
    candidates: int


def check_compatible(model: FMModel, lookup: Lookup, source: str = "model") -> None:
    """A model and a lookup from the same pipeline run: the same feature_dim (else every key is misplaced)."""
    if int(model.feature_dim) != int(lookup.feature_dim):
        raise InputError(
            f"{source}: the model has feature_dim {model.feature_dim} but the lookup {lookup.feature_dim}: "
            "they are not from the same pipeline run"
        )


class Retrieval:
    """A model's movie-side FM terms, once, and each user's scores against all of them.

    For a user side u and a movie i with disjoint columns, y = w0 + c_u + c_i + <s_u, s_i>
    (fmrec.model.fm.SideTerms): ranking the catalogue is one (n_movies, k) x (k,) product. Ranking is on the
    raw score; the output link (increasing) is applied to the chosen ones. Ties: the lower movie position.
    """

    def __init__(self, model: FMModel, lookup: Lookup, *, compact: bool = False) -> None:
        check_compatible(model, lookup)
        link(np.zeros(1), model.predictor_type)  # rejects an unknown predictor type before any work
        self.params: FMParams = model.params
        self.predictor_type: str = model.predictor_type
        self.lookup = lookup
        # compact: float32 factors (SideTerms.compact), the Lambda's choice; the batch keeps float64.
        self.items: SideTerms = side_terms(self.params, movie_rows(lookup), compact=compact)
        self.neighbours = NeighbourTerm.of(self.params, lookup, self.items)
        self._genres: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def n_movies(self) -> int:
        return len(self.items)

    def genre_mask(self, genre: str) -> np.ndarray:
        """Movies of `genre` (any case); all False for a genre no movie has."""
        key = genre.lower()
        mask = self._genres.get(key)
        if mask is None:
            genres = self.lookup.genres
            mask = np.fromiter(
                (any(g.lower() == key for g in gs) for gs in genres), dtype=bool, count=len(genres)
            )
            with self._lock:
                self._genres[key] = mask
        return mask

    def raw_scores(self, side: UserSide) -> np.ndarray:
        """Raw FM scores (float64, n_movies) of the user side against every movie."""
        const, s_u = user_terms(self.params, side.keys, side.values)
        # einsum, not `@`: a BLAS matrix-vector product may start threads, which only wait on a busy machine.
        dots = np.einsum("ij,j->i", self.items.factors, s_u.astype(self.items.factors.dtype, copy=False))
        raw = const + self.items.const + dots
        return raw if self.neighbours is None else raw + self.neighbours.scores(side.rated, s_u)

    def raw_block(self, users: SideTerms, rated: Sequence[Sequence[int]] = ()) -> np.ndarray:
        """Raw scores (n_users, n_movies) of many users' SideTerms: one matrix product (the batch); `rated`,
        each user's rated movie positions, feeds the neighbour column when the model has one."""
        raw = block_scores(self.params, users, self.items)
        if self.neighbours is not None:
            raw += self.neighbours.block(rated, users.factors)
        return raw

    def candidates(
        self, side: UserSide, *, exclude_rated: bool = True, genre: str | None = None
    ) -> np.ndarray:
        """The movies that may be recommended: those of `genre` (all without one) minus the rated ones."""
        mask = self.genre_mask(genre).copy() if genre is not None else np.ones(self.n_movies, dtype=bool)
        if exclude_rated and side.rated:
            mask[np.asarray(side.rated, dtype=np.int64)] = False
        return mask

    def top(
        self,
        side: UserSide,
        n: int,
        *,
        exclude_rated: bool = True,
        genre: str | None = None,
        min_score: float | None = None,
    ) -> Ranked:
        """The exact top n of the whole catalogue for the user side, filtered; scores after the link."""
        raw = self.raw_scores(side)
        mask = self.candidates(side, exclude_rated=exclude_rated, genre=genre)
        raw[~mask] = -np.inf
        top = top_k_indices(raw, n)
        scores = link(raw[top], self.predictor_type)
        if min_score is not None:
            keep = scores >= min_score
            top, scores = top[keep], scores[keep]
        return Ranked(top.tolist(), scores.tolist(), int(np.count_nonzero(mask)))

    def score(self, side: UserSide, positions: Sequence[int]) -> list[float]:
        """The model's scores (after the link) of the user side against the given movie positions."""
        pos = np.asarray(positions, dtype=np.int64)
        const, s_u = user_terms(self.params, side.keys, side.values)
        # the same expression as raw_scores, so a movie scores the same ranked or re-ranked
        dots = np.einsum("ij,j->i", self.items.factors[pos], s_u.astype(self.items.factors.dtype, copy=False))
        raw = const + self.items.const[pos] + dots
        if self.neighbours is not None:
            raw = raw + self.neighbours.scores(side.rated, s_u, pos)
        return [float(s) for s in link(raw, self.predictor_type)]


class NeighbourTerm:
    """The neighbour column's part of a score (fmrec.features.neighbours): with g the user's value of a movie,
    the FM adds g (w_c + <v_c, s_u> + <v_c, s_m>), s_u and s_m the user's and the movie's factor sums."""

    def __init__(self, table: ServedNeighbours, w: float, v: np.ndarray, movie_dots: np.ndarray) -> None:
        self.table = table
        self.w = w
        self.v = v  # (k,) float64
        self.movie_dots = movie_dots  # (n_movies,) <v_c, s_m>
        # The last user's values: a request ranks the catalogue, then re-scores its shortlist with the same
        # rated movies, so the sum is done once. One tuple, replaced whole: safe across threads.
        self._last: tuple[tuple[int, ...], np.ndarray] | None = None

    @classmethod
    def of(cls, params: FMParams, lookup: Lookup, items: SideTerms) -> NeighbourTerm | None:
        table = lookup.neighbours
        if table is None:
            return None
        v = np.asarray(params.V[table.column], dtype=np.float64)
        return cls(table, float(params.w[table.column]), v, np.asarray(items.factors @ v, dtype=np.float64))

    def values(self, rated: Sequence[int]) -> np.ndarray:
        """g for every movie (read-only) of a user who rated `rated`."""
        key = rated if isinstance(rated, tuple) else tuple(rated)
        last = self._last
        if last is not None and (last[0] is key or last[0] == key):
            return last[1]
        g = user_values(self.table, key)
        g.flags.writeable = False
        self._last = (key, g)
        return g

    def block(self, rated: Sequence[Sequence[int]], factors: np.ndarray) -> np.ndarray:
        """scores() of a block of users: their rated positions and their factor sums (n_users, k)."""
        if len(rated) != factors.shape[0]:
            raise InputError(f"neighbour column: {len(rated)} histories for {factors.shape[0]} users")
        g = (
            np.stack([user_values(self.table, r) for r in rated])
            if rated
            else np.zeros((0, len(self.movie_dots)))
        )
        return g * (self.w + (np.asarray(factors, np.float64) @ self.v)[:, None] + self.movie_dots[None, :])

    def scores(
        self, rated: Sequence[int], s_u: np.ndarray, positions: np.ndarray | None = None
    ) -> np.ndarray:
        """The term for every movie (or the movie `positions`) of a user who rated `rated`, with user factor
        sum `s_u`."""
        g, dots = self.values(rated), self.movie_dots
        if positions is not None:
            g, dots = g[positions], dots[positions]
        return g * (self.w + float(self.v @ np.asarray(s_u, dtype=np.float64)) + dots)


def block_scores(params: FMParams, users: SideTerms, items: SideTerms) -> np.ndarray:
    """Raw scores (n_users, n_items) of every (user, item) pair of two SideTerms: one matrix product.

    The batch and the evaluate step's ranking block; a user side without keys (an unknown user) scores
    with the item side only, as SageMaker scores a request holding only the known columns.
    """
    raw = np.asarray(users.factors @ items.factors.T.astype(users.factors.dtype, copy=False), np.float64)
    raw += users.const[:, None]
    raw += items.const[None, :]
    raw += float(params.w0)
    return raw
