"""The one-hot column layout: user block, movie block, aux blocks, history block, and the rows they encode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from fmrec.data.readers import Movies, Ratings, Users, sorted_unique
from fmrec.errors import InputError
from fmrec.features.columns import ColumnBlock, ColumnLayout
from fmrec.features.history import HistoryConfig
from fmrec.features.options import AUX_MOVIE, AUX_USER

AGE_EDGES = (18, 25, 35, 45, 50, 56)  # ml-1m's age groups: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")


@dataclass
class Block:
    """A block of the encoding's columns with a label per column (fmrec.features.columns places it)."""

    name: str
    offset: int
    labels: list[str]

    @property
    def size(self) -> int:
        return len(self.labels)


@dataclass
class Encoding:
    """Blocks (users, movies, aux; placed by fmrec.features.columns) with labels, and aux rows per id."""

    user_ids: np.ndarray
    movie_ids: np.ndarray
    blocks: list[Block] = field(default_factory=list)
    user_aux: sp.csr_matrix | None = None  # (n_users, feature_dim) indicator rows, for ids in user_ids
    movie_aux: sp.csr_matrix | None = None
    # aux rows for ids outside the train encoding (test rows of unknown users/movies still get their aux)
    user_aux_ids: np.ndarray | None = None
    user_aux_all: sp.csr_matrix | None = None
    movie_aux_ids: np.ndarray | None = None
    movie_aux_all: sp.csr_matrix | None = None
    # the rated-movie history block (fmrec.features.history), after every other block; None without one
    history: HistoryConfig | None = None
    aux_value: float = 1.0  # the value every aux column carries in a row (preprocess's --aux-value)
    neighbours: bool = (
        False  # the neighbour column after everything (fmrec.features.neighbours); no row has it
    )

    @property
    def columns(self) -> ColumnLayout:
        aux = [(b.name, b.size) for b in self.blocks[2:]]
        return ColumnLayout.build(
            self.user_ids.size,
            self.movie_ids.size,
            aux,
            self.history is not None,
            self.aux_value,
            self.neighbours,
        )

    @property
    def feature_dim(self) -> int:
        return self.columns.feature_dim

    @property
    def history_offset(self) -> int:
        """The history block's first column (InputError when the encoding has none)."""
        return self.columns.history_column(0)


def _indicator_rows(n_rows: int, cols: list[np.ndarray], dim: int, value: float = 1.0) -> sp.csr_matrix:
    """CSR whose row i has `value` at each cols[k][i] >= 0 (columns ascending, since blocks are ordered)."""
    stacked = np.stack(cols, axis=1) if cols else np.empty((n_rows, 0), dtype=np.int64)
    mask = stacked >= 0
    indptr = np.concatenate(([0], np.cumsum(mask.sum(axis=1))))
    data = np.full(int(indptr[-1]), value, np.float32)
    return sp.csr_matrix((data, stacked[mask], indptr), shape=(n_rows, dim))


def build_encoding(
    train: Ratings,
    users: Users | None,
    movies: Movies | None,
    aux: Sequence[str],
    history: HistoryConfig | None = None,
    aux_value: float = 1.0,
) -> Encoding:
    """The encoding of `train`'s users and movies, the `aux` blocks (each column worth `aux_value` in a row)
    and, with `history`, the history block."""
    user_ids = sorted_unique(train.user)
    movie_ids = sorted_unique(train.movie)
    wanted_user = [a for a in AUX_USER if a in aux]
    wanted_movie = [a for a in AUX_MOVIE if a in aux]
    if (wanted_user and users is None) or (wanted_movie and movies is None):
        missing = "user table (u.user / users.dat)" if wanted_user and users is None else "movie table"
        raise InputError(f"--aux {','.join(aux)}: this dataset has no {missing}")
    # Each aux block's labels, and per table row its codes in the block (-1: none), before placement.
    specs: list[tuple[str, list[str]]] = []
    ucodes: list[np.ndarray] = []
    if users is not None and wanted_user:
        for name in wanted_user:
            if name == "age":
                labels, codes = (
                    list(AGE_LABELS),
                    np.searchsorted(np.asarray(AGE_EDGES), users.age, side="right"),
                )
            else:
                values = users.gender if name == "gender" else users.occupation
                labels = sorted(set(values))
                codes = np.searchsorted(np.asarray(labels), np.asarray(values))
            specs.append((f"user_{name}", labels))
            ucodes.append(codes.astype(np.int64))
    mcodes: list[tuple[int, np.ndarray]] = []  # (index into specs, codes; a genre block has several)
    if movies is not None and wanted_movie:
        for name in wanted_movie:
            if name == "genres":
                labels = sorted({g for gs in movies.genres for g in gs})
                index = {g: i for i, g in enumerate(labels)}
                width = max((len(gs) for gs in movies.genres), default=0)
                grid = np.full((movies.ids.size, width), -1, dtype=np.int64)
                for i, gs in enumerate(movies.genres):
                    grid[i, : len(gs)] = sorted(index[g] for g in gs)
                mcodes.extend((len(specs), column) for column in grid.T)
                specs.append(("movie_genre", labels))
            else:
                decades = np.where(movies.year > 0, movies.year // 10 * 10, -1)
                labels = [str(d) for d in sorted(set(decades.tolist()) - {-1})] + ["unknown"]
                known = np.asarray(sorted(set(decades.tolist()) - {-1}), dtype=np.int64)
                codes = np.where(decades >= 0, np.searchsorted(known, decades), len(labels) - 1)
                mcodes.append((len(specs), codes.astype(np.int64)))
                specs.append(("movie_year", labels))
    sizes = [(name, len(labels)) for name, labels in specs]
    cols = ColumnLayout.build(user_ids.size, movie_ids.size, sizes, aux_value=aux_value)
    blocks = [
        Block("user", cols.users.offset, [str(u) for u in user_ids.tolist()]),
        Block("movie", cols.movies.offset, [str(m) for m in movie_ids.tolist()]),
        *(Block(b.name, b.offset, labels) for b, (_, labels) in zip(cols.aux, specs, strict=True)),
    ]
    enc = Encoding(user_ids, movie_ids, blocks, history=history, aux_value=aux_value)
    dim = cols.feature_dim
    ucols = [block_columns(b, c) for b, c in zip(cols.aux[: len(ucodes)], ucodes, strict=True)]
    mcols = [block_columns(cols.aux[i], c) for i, c in mcodes]
    if ucols and users is not None:
        order = np.argsort(users.ids, kind="stable")
        enc.user_aux_ids = users.ids[order]
        enc.user_aux_all = _indicator_rows(users.ids.size, [c[order] for c in ucols], dim, aux_value)
        enc.user_aux = _aux_for(enc.user_aux_ids, enc.user_aux_all, user_ids, dim)
    if mcols and movies is not None:
        order = np.argsort(movies.ids, kind="stable")
        enc.movie_aux_ids = movies.ids[order]
        enc.movie_aux_all = _indicator_rows(movies.ids.size, [c[order] for c in mcols], dim, aux_value)
        enc.movie_aux = _aux_for(enc.movie_aux_ids, enc.movie_aux_all, movie_ids, dim)
    return enc


def block_columns(block: ColumnBlock, pos: np.ndarray) -> np.ndarray:
    """The columns of block positions `pos` (int64); -1 (no position) stays -1."""
    pos = np.asarray(pos, dtype=np.int64)
    return np.where(pos >= 0, block.offset + pos, -1)


def block_range(block: ColumnBlock) -> np.ndarray:
    """Every column of `block`, in position order."""
    return np.arange(block.offset, block.end, dtype=np.int64)


def _aux_for(table_ids: np.ndarray, table: sp.csr_matrix, ids: np.ndarray, dim: int) -> sp.csr_matrix:
    """Aux rows for `ids` (empty rows for ids the table lacks)."""
    pos = np.searchsorted(table_ids, ids)
    pos = np.minimum(pos, max(table_ids.size - 1, 0))
    found = table_ids.size > 0 and (table_ids[pos] == ids)
    rows = table[pos] if table_ids.size else sp.csr_matrix((ids.size, dim), dtype=np.float32)
    out = sp.csr_matrix(sp.diags(np.asarray(found, dtype=np.float32)) @ rows, dtype=np.float32)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in sorted_ids, -1 when absent (handle_unknown='ignore')."""
    if sorted_ids.size == 0:
        return np.full(values.size, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == values, pos, -1)


def _take_rows(table: sp.csr_matrix, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row counts, concatenated column indices) of table rows `pos`; pos -1 gives an empty row (the
    values are the table's one value, the encoding's aux_value)."""
    ptr = table.indptr.astype(np.int64)
    safe = np.maximum(pos, 0)
    counts = np.where(pos >= 0, ptr[safe + 1] - ptr[safe], 0)
    total = int(counts.sum())
    starts = np.repeat(ptr[safe] - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return counts, table.indices[starts + np.arange(total)].astype(np.int64)


def _concat_blocks(
    n: int, dim: int, parts: list[tuple[np.ndarray, np.ndarray]], values: list[float]
) -> sp.csr_matrix:
    """Row-wise concatenation of column lists from disjoint, ascending column blocks (no sort needed); every
    entry of parts[i] carries values[i]."""
    counts = np.zeros(n, dtype=np.int64)
    for c, _ in parts:
        counts += c
    indptr = np.concatenate(([0], np.cumsum(counts)))
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    data = np.empty(indices.size, np.float32)
    before = indptr[:-1].copy()  # where each row's next block starts
    for (c, cols), value in zip(parts, values, strict=True):
        within = np.arange(cols.size) - np.repeat(np.concatenate(([0], np.cumsum(c)[:-1])), c)
        at = np.repeat(before, c) + within
        indices[at] = cols
        data[at] = value
        before += c
    idx_dtype = np.int32 if dim < 2**31 and indices.size < 2**31 else np.int64
    return sp.csr_matrix((data, indices.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n, dim))


def encode_rows(
    enc: Encoding,
    user: np.ndarray,
    movie: np.ndarray,
    known: tuple[np.ndarray, np.ndarray] | None = None,
) -> sp.csr_matrix:
    """One-hot rows (float32 CSR) in OneHotEncoder(handle_unknown='ignore') order, then aux indicators.

    `known`: the rows' (user, movie) positions in the encoding when the caller has them (the ranking rows
    do), which saves two id searches per row.
    """
    n = user.size
    if known is None:
        upos, mpos = positions(enc.user_ids, user), positions(enc.movie_ids, movie)
    else:
        upos, mpos = known
    cols = enc.columns
    ucol, mcol = block_columns(cols.users, upos), block_columns(cols.movies, mpos)
    if enc.user_aux_all is None and enc.movie_aux_all is None:
        return _indicator_rows(n, [ucol, mcol], cols.feature_dim)
    parts = [((ucol >= 0).astype(np.int64), ucol[ucol >= 0]), ((mcol >= 0).astype(np.int64), mcol[mcol >= 0])]
    if enc.user_aux_ids is not None and enc.user_aux_all is not None:
        parts.append(_take_rows(enc.user_aux_all, positions(enc.user_aux_ids, user)))
    if enc.movie_aux_ids is not None and enc.movie_aux_all is not None:
        parts.append(_take_rows(enc.movie_aux_all, positions(enc.movie_aux_ids, movie)))
    return _concat_blocks(n, cols.feature_dim, parts, [1.0, 1.0] + [enc.aux_value] * (len(parts) - 2))
