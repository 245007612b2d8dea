"""Batch top-k for every user from the model artifact: scored in blocks of users, written as JSON Lines."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from fmrec.errors import InputError
from fmrec.io_utils import atomic_open
from fmrec.model.artifact import FMModel
from fmrec.model.fm import link, side_terms
from fmrec.serving.lookup import Lookup, unknown_genre
from fmrec.serving.ranking import top_k_indices, user_rows
from fmrec.serving.retrieval import Retrieval, check_compatible

# Scores held at once (users x movies, float64): 4M cells are 32 MB, a few such arrays per block.
DEFAULT_BLOCK_CELLS = 4_000_000


@dataclass(frozen=True)
class UserTopK:
    user_id: int
    movie_ids: list[int]
    scores: list[float]

    def to_json(self) -> str:
        items = [{"movieId": m, "score": s} for m, s in zip(self.movie_ids, self.scores, strict=True)]
        return json.dumps({"userId": self.user_id, "items": items}, separators=(",", ":"))


def genre_mask(lookup: Lookup, genre: str | None) -> np.ndarray | None:
    """Movies of `genre` (any case) as a bool mask (None: no filter); a genre no movie has is an error."""
    if genre is None:
        return None
    wanted = genre.lower()
    mask = np.fromiter(
        (any(g.lower() == wanted for g in gs) for gs in lookup.genres), dtype=bool, count=len(lookup.genres)
    )
    if not mask.any():
        raise unknown_genre(genre, (g for gs in lookup.genres for g in gs), "the lookup")
    return mask


def iter_top_k(
    model: FMModel,
    lookup: Lookup,
    k: int = 10,
    *,
    exclude_rated: bool = True,
    genre: str | None = None,
    user_positions: Sequence[int] | None = None,
    block_cells: int = DEFAULT_BLOCK_CELLS,
) -> Iterator[list[UserTopK]]:
    """The top k of every user (or of `user_positions`), one list per block of users, in user order.

    A block's scores are one matrix product (fmrec.serving.retrieval.Retrieval.raw_block). Ranking is on
    the raw score, then the output link (sigmoid or identity) is applied to the k chosen: the order is the
    same (the link is increasing) except between raw scores above ~37, which a sigmoid rounds to the same
    1.0 in float64. Ties: the smaller movie position first. The same candidates as the API: every movie
    minus those rated in training (exclude_rated), within `genre`.
    """
    if k < 1:
        raise InputError(f"k {k}: expected 1 or more")
    retrieval = Retrieval(model, lookup)  # checks feature_dim and the predictor type before any work
    params, predictor = retrieval.params, retrieval.predictor_type
    n = retrieval.n_movies
    allowed = genre_mask(lookup, genre)
    positions = np.arange(len(lookup.user_ids)) if user_positions is None else np.asarray(user_positions)
    per_block = max(1, block_cells // max(1, n))
    movie_ids = np.asarray(lookup.movie_ids, dtype=np.int64)
    for start in range(0, len(positions), per_block):
        block = positions[start : start + per_block].tolist()
        rated = [lookup.rated_positions(u) for u in block]
        raw = retrieval.raw_block(side_terms(params, user_rows(lookup, block)), rated)
        if allowed is not None:
            raw[:, ~allowed] = -np.inf
        if exclude_rated:
            rows, cols = _rated(lookup, block)
            raw[rows, cols] = -np.inf
        yield [_row_top(lookup, movie_ids, raw[r], k, predictor, u) for r, u in enumerate(block)]


def _rated(lookup: Lookup, block: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    spans = [lookup.rated_positions(u) for u in block]
    rows = np.repeat(np.arange(len(block)), [len(s) for s in spans])
    cols = np.fromiter((p for s in spans for p in s), dtype=np.int64, count=len(rows))
    return rows, cols


def _row_top(
    lookup: Lookup, movie_ids: np.ndarray, raw: np.ndarray, k: int, predictor: str, u: int
) -> UserTopK:
    top = top_k_indices(raw, k)
    scores = link(raw[top], predictor)
    return UserTopK(int(lookup.user_ids[u]), movie_ids[top].tolist(), [float(s) for s in scores])


def write_all_users(
    path: str | os.PathLike[str],
    model: FMModel,
    lookup: Lookup,
    k: int = 10,
    *,
    exclude_rated: bool = True,
    genre: str | None = None,
    user_positions: Sequence[int] | None = None,
    block_cells: int = DEFAULT_BLOCK_CELLS,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write every user's top k to `path` as JSON Lines, atomically (an interrupted run leaves no file).

    `progress(n)` is called after each block with the number of users it held. Returns the lines written.
    """
    check_compatible(model, lookup)
    written = 0
    with atomic_open(path, "w", encoding="utf-8") as fh:
        for block in iter_top_k(
            model,
            lookup,
            k,
            exclude_rated=exclude_rated,
            genre=genre,
            user_positions=user_positions,
            block_cells=block_cells,
        ):
            fh.write("".join(rec.to_json() + "\n" for rec in block))
            written += len(block)
            if progress is not None:
                progress(len(block))
    return written
