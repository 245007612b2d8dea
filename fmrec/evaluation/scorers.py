"""Scorers for the ranking metrics: the FM model (blocked score matrix) and the popularity baseline."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from fmrec.evaluation.ranking import Scorer
from fmrec.model import fm
from fmrec.model.artifact import FMModel
from fmrec.serving.lookup import Lookup
from fmrec.serving.ranking import movie_rows, user_rows
from fmrec.serving.retrieval import NeighbourTerm, block_scores


def lookup_rows(lookup: Lookup) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Feature rows of every user (with their values: history columns are weighted) and every movie."""
    return user_rows(lookup, range(lookup.n_users)), movie_rows(lookup)


def train_matrix(lookup: Lookup) -> sp.csr_matrix:
    """(users, movies) with 1 where the user rated the movie in train: the candidates' exclusions."""
    indptr = np.asarray(lookup.rated_indptr, dtype=np.int64)
    cols = np.asarray(lookup.rated_pos, dtype=np.int64)
    return sp.csr_matrix(
        (np.ones(cols.size, dtype=np.float32), cols, indptr), shape=(lookup.n_users, lookup.n_movies)
    )


def fm_scorer(params: fm.FMParams, user_rows: sp.csr_matrix, item_rows: sp.csr_matrix) -> Scorer:
    """Raw FM scores of a block of users against every item row (fmrec.serving.retrieval.block_scores, as the
    batch and the Lambda rank); an unknown user (-1) has no user keys."""
    empty = sp.csr_matrix((1, user_rows.shape[1]), dtype=np.float32)
    padded = sp.vstack([user_rows, empty], format="csr")  # position -1 picks the empty last row

    items = fm.side_terms(params, item_rows)  # once per scorer, not per block of users

    def score(users: np.ndarray) -> np.ndarray:
        rows = padded[np.where(users >= 0, users, padded.shape[0] - 1)]
        return block_scores(params, fm.side_terms(params, rows), items)

    return score


def model_scorer(
    model: FMModel, lookup: Lookup, rows: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
) -> Scorer:
    """The model's raw scores of a block of users, as the API ranks them: fm_scorer, plus the neighbour
    column's term when the lookup has a neighbour table (Retrieval.raw_block's); unknown users have none.
    `rows` is lookup_rows(lookup), when the caller already built it."""
    users, items = lookup_rows(lookup) if rows is None else rows
    base = fm_scorer(model.params, users, items)
    if lookup.neighbours is None:
        return base
    # the term from the item rows already built (a Retrieval would build the movie rows and terms again)
    term = NeighbourTerm.of(model.params, lookup, fm.side_terms(model.params, items))
    if term is None:
        return base
    factors = fm.side_terms(model.params, users).factors

    def score(block: np.ndarray) -> np.ndarray:
        known = block >= 0
        rated = [lookup.rated_positions(int(u)) if u >= 0 else [] for u in block.tolist()]
        s_u = np.where(known[:, None], factors[np.maximum(block, 0)], 0.0)
        return base(block) + term.block(rated, s_u)

    return score


def popularity_scorer(counts: np.ndarray) -> Scorer:
    """Every user gets the movies by train rating count (ties: lower catalog position first)."""
    row = np.asarray(counts, dtype=np.float64)

    def score(users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(row, (users.size, row.size))

    return score
