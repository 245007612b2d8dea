"""Preprocess step: MovieLens folder -> one-hot recordIO-protobuf train/test, lookup artifacts, manifest.

SageMaker Processing script: `main(base_dir, argv)` reads base_dir/input/data/ and writes base_dir/output/
{train,test,lookup,manifest}/; `fmrec preprocess --data-dir DIR --out DIR [flags]` runs the same code.

argv flags (all optional):
  --split S               ml-100k: ua (default), ub, u1..u5, or holdout; other layouts: holdout (default)
  --holdout-per-user N    ratings per user held out for test when splitting u.data / ratings.* (default 10)
  --label binary|regression   binary: 1.0 if rating >= --threshold else 0.0 (default); regression: the rating
  --threshold X           binary label threshold (default 4)
  --aux LIST              auxiliary features appended after the movie block: comma list of
                          age,gender,occupation (user side), genres,year (movie side); "all"; "none" (default)
  --shards N              split train into N files part-00000.pbr.. for ShardedByS3Key training (default 1)
  --seed N                seed of the holdout split (default 0)
  --max-reject-fraction F a ratings file with more rejected rows than this fraction is an error (default 0.05)
  --objective ranking|rating  ranking (default): rated movies as positives plus sampled unrated movies as
                          negatives (fmrec/features/sampling.py); rating: the seed's rated-pairs-only rows
  --negatives N           ranking: unrated movies sampled per positive (default 4)
  --negative-exponent X   ranking: sampling weight train count ** X, X in [0, 1] (default 0.75)
  --positives all|liked   ranking: every rated movie (default) or only ratings >= --threshold
  --below-threshold-negatives [true|false]  ranking with --positives liked: low ratings are negatives too
  --predictor-type T      the FM predictor_type that trains the rows (ranking needs binary_classifier)

Outputs: train/part-NNNNN.pbr, test/part-00000.pbr (float32 one-hot rows, float32 labels, byte-identical to
SDK 2.x write_spmatrix_to_sparse_tensor for --objective rating), lookup/ (fmrec.serving.lookup.LOOKUP_FILES),
holdout/ratings.tsv (the raw held-out ratings, ids not columns, for the ranking evaluation),
manifest/manifest.json (feature_dim, layout, objective, sampling counts, label balance, files) and
manifest/data_quality.json. Ranking mode: train holds the positives and sampled negatives in a seeded
shuffled order; test holds the held-out positives and negatives sampled from movies the user rated neither
in train nor in test, so FM's test cross-entropy is a ranking validation metric.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.writer import write_spmatrix
from fmrec.data.options import AUX_MOVIE, AUX_USER, PreprocessConfig, build_arg_parser, config_from_args
from fmrec.data.readers import (
    DUPLICATE_POLICY,
    Dataset,
    Movies,
    Ratings,
    Users,
    load_dataset,
    sorted_unique,
    title_coverage,
)
from fmrec.errors import FmrecError, InputError, OutputError
from fmrec.evaluation.holdout import HeldOut, write_holdout
from fmrec.features.history import HistoryConfig, check_size, training_rows
from fmrec.features.objective import check_objective
from fmrec.features.sampling import SampledRows, rows_per_user, sample_rows
from fmrec.io_utils import atomic_dir, atomic_open
from fmrec.serving.lookup import Lookup, write_lookup

log = logging.getLogger("fmrec.preprocess")

OUTPUT_CHANNELS = ("train", "test", "lookup", "manifest", "holdout")
AGE_EDGES = (18, 25, 35, 45, 50, 56)  # ml-1m's age groups: <18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+
AGE_LABELS = ("<18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
WRITE_ROWS = 1 << 20


# --------------------------------------------------------------------------------------------- encoding


@dataclass
class Block:
    name: str
    offset: int
    labels: list[str]

    @property
    def size(self) -> int:
        return len(self.labels)


@dataclass
class Encoding:
    """Column layout: users (sorted ids), movies (sorted ids), then aux blocks; rows of aux columns per id."""

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

    @property
    def history_offset(self) -> int:
        return self.blocks[-1].offset + self.blocks[-1].size

    @property
    def feature_dim(self) -> int:
        return self.history_offset + (self.movie_ids.size if self.history is not None else 0)


def _indicator_rows(n_rows: int, cols: list[np.ndarray], dim: int) -> sp.csr_matrix:
    """CSR whose row i has 1.0 at each cols[k][i] >= 0 (columns ascending, since blocks are ordered)."""
    stacked = np.stack(cols, axis=1) if cols else np.empty((n_rows, 0), dtype=np.int64)
    mask = stacked >= 0
    indptr = np.concatenate(([0], np.cumsum(mask.sum(axis=1))))
    return sp.csr_matrix((np.ones(int(indptr[-1]), np.float32), stacked[mask], indptr), shape=(n_rows, dim))


def build_encoding(
    train: Ratings, users: Users | None, movies: Movies | None, aux: Sequence[str]
) -> Encoding:
    user_ids = sorted_unique(train.user)
    movie_ids = sorted_unique(train.movie)
    blocks = [
        Block("user", 0, [str(u) for u in user_ids.tolist()]),
        Block("movie", user_ids.size, [str(m) for m in movie_ids.tolist()]),
    ]
    enc = Encoding(user_ids, movie_ids, blocks)
    wanted_user = [a for a in AUX_USER if a in aux]
    wanted_movie = [a for a in AUX_MOVIE if a in aux]
    if (wanted_user and users is None) or (wanted_movie and movies is None):
        missing = "user table (u.user / users.dat)" if wanted_user and users is None else "movie table"
        raise InputError(f"--aux {','.join(aux)}: this dataset has no {missing}")
    offset = user_ids.size + movie_ids.size
    ucols: list[np.ndarray] = []
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
            blocks.append(Block(f"user_{name}", offset, labels))
            ucols.append(offset + codes.astype(np.int64))
            offset += len(labels)
    mcols: list[np.ndarray] = []
    if movies is not None and wanted_movie:
        for name in wanted_movie:
            if name == "genres":
                labels = sorted({g for gs in movies.genres for g in gs})
                index = {g: i for i, g in enumerate(labels)}
                blocks.append(Block("movie_genre", offset, labels))
                width = max((len(gs) for gs in movies.genres), default=0)
                grid = np.full((movies.ids.size, width), -1, dtype=np.int64)
                for i, gs in enumerate(movies.genres):
                    grid[i, : len(gs)] = sorted(offset + index[g] for g in gs)
                mcols.extend(grid.T)
            else:
                decades = np.where(movies.year > 0, movies.year // 10 * 10, -1)
                labels = [str(d) for d in sorted(set(decades.tolist()) - {-1})] + ["unknown"]
                known = np.asarray(sorted(set(decades.tolist()) - {-1}), dtype=np.int64)
                codes = np.where(decades >= 0, np.searchsorted(known, decades), len(labels) - 1)
                blocks.append(Block("movie_year", offset, labels))
                mcols.append(offset + codes.astype(np.int64))
            offset += len(labels)
    dim = offset
    if ucols and users is not None:
        order = np.argsort(users.ids, kind="stable")
        enc.user_aux_ids = users.ids[order]
        enc.user_aux_all = _indicator_rows(users.ids.size, [c[order] for c in ucols], dim)
        enc.user_aux = _aux_for(enc.user_aux_ids, enc.user_aux_all, user_ids, dim)
    if mcols and movies is not None:
        order = np.argsort(movies.ids, kind="stable")
        enc.movie_aux_ids = movies.ids[order]
        enc.movie_aux_all = _indicator_rows(movies.ids.size, [c[order] for c in mcols], dim)
        enc.movie_aux = _aux_for(enc.movie_aux_ids, enc.movie_aux_all, movie_ids, dim)
    return enc


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


def _positions(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each value in sorted_ids, -1 when absent (handle_unknown='ignore')."""
    if sorted_ids.size == 0:
        return np.full(values.size, -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, values), sorted_ids.size - 1)
    return np.where(sorted_ids[pos] == values, pos, -1)


def _take_rows(table: sp.csr_matrix, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row counts, concatenated column indices) of table rows `pos`; pos -1 gives an empty row."""
    ptr = table.indptr.astype(np.int64)
    safe = np.maximum(pos, 0)
    counts = np.where(pos >= 0, ptr[safe + 1] - ptr[safe], 0)
    total = int(counts.sum())
    starts = np.repeat(ptr[safe] - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return counts, table.indices[starts + np.arange(total)].astype(np.int64)


def _concat_blocks(n: int, dim: int, parts: list[tuple[np.ndarray, np.ndarray]]) -> sp.csr_matrix:
    """Row-wise concatenation of column lists from disjoint, ascending column blocks (no sort needed)."""
    counts = np.zeros(n, dtype=np.int64)
    for c, _ in parts:
        counts += c
    indptr = np.concatenate(([0], np.cumsum(counts)))
    indices = np.empty(int(indptr[-1]), dtype=np.int64)
    before = indptr[:-1].copy()  # where each row's next block starts
    for c, cols in parts:
        within = np.arange(cols.size) - np.repeat(np.concatenate(([0], np.cumsum(c)[:-1])), c)
        indices[np.repeat(before, c) + within] = cols
        before += c
    idx_dtype = np.int32 if dim < 2**31 and indices.size < 2**31 else np.int64
    data = np.ones(indices.size, np.float32)
    return sp.csr_matrix((data, indices.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n, dim))


def encode_rows(
    enc: Encoding,
    user: np.ndarray,
    movie: np.ndarray,
    positions: tuple[np.ndarray, np.ndarray] | None = None,
) -> sp.csr_matrix:
    """One-hot rows (float32 CSR) in OneHotEncoder(handle_unknown='ignore') order, then aux indicators.

    `positions`: the rows' (user, movie) positions in the encoding when the caller has them (the ranking rows
    do), which saves two id searches per row.
    """
    n = user.size
    if positions is None:
        upos, mpos = _positions(enc.user_ids, user), _positions(enc.movie_ids, movie)
    else:
        upos, mpos = positions
    ucol = upos
    mcol = np.where(mpos >= 0, enc.user_ids.size + mpos, -1)
    if enc.user_aux_all is None and enc.movie_aux_all is None:
        return _indicator_rows(n, [ucol, mcol], enc.feature_dim)
    parts = [((ucol >= 0).astype(np.int64), ucol[ucol >= 0]), ((mcol >= 0).astype(np.int64), mcol[mcol >= 0])]
    if enc.user_aux_ids is not None and enc.user_aux_all is not None:
        parts.append(_take_rows(enc.user_aux_all, _positions(enc.user_aux_ids, user)))
    if enc.movie_aux_ids is not None and enc.movie_aux_all is not None:
        parts.append(_take_rows(enc.movie_aux_all, _positions(enc.movie_aux_ids, movie)))
    return _concat_blocks(n, enc.feature_dim, parts)


def labels_for(rating: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    if cfg.label == "binary":
        return (rating >= cfg.threshold).astype(np.float32)
    return rating.astype(np.float32)


# --------------------------------------------------------------------------------------------- outputs


def _write_channel(
    folder: Path, enc: Encoding, r: Ratings, cfg: PreprocessConfig, shards: int
) -> list[dict[str, Any]]:
    folder.mkdir(parents=True, exist_ok=True)
    n = len(r)
    bounds = np.linspace(0, n, shards + 1).round().astype(np.int64)
    files = []
    for s in range(shards):
        path = folder / f"part-{s:05d}.pbr"
        written = 0
        with open(path, "wb") as fh:
            for a in range(int(bounds[s]), int(bounds[s + 1]), WRITE_ROWS):
                b = min(int(bounds[s + 1]), a + WRITE_ROWS)
                rows = encode_rows(enc, r.user[a:b], r.movie[a:b])
                written += write_spmatrix(fh, rows, labels_for(r.rating[a:b], cfg))
        files.append({"name": path.name, "rows": int(bounds[s + 1] - bounds[s]), "bytes": written})
    return files


@dataclass(frozen=True)
class RatedHistory:
    """Each user's train-rated movie positions (CSR over the channel's user positions), the history source."""

    indptr: np.ndarray
    rated: np.ndarray

    @classmethod
    def of(cls, n_users: int, user_pos: np.ndarray, movie_pos: np.ndarray, n_movies: int) -> RatedHistory:
        keys = sorted_unique(user_pos.astype(np.int64) * n_movies + movie_pos)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // n_movies, minlength=n_users), out=indptr[1:])
        return cls(indptr, (keys % n_movies).astype(np.int64))


def _write_sampled(
    folder: Path,
    enc: Encoding,
    user_ids: np.ndarray,
    movie_ids: np.ndarray,
    rows: SampledRows,
    shards: int,
    history: RatedHistory | None = None,
    rng: np.random.Generator | None = None,
) -> list[dict[str, Any]]:
    """Ranking rows (positions into user_ids / movie_ids, in rows' order) as recordIO files: one-hot columns,
    plus the user's rated-movie history columns when the encoding has that block.

    When user_ids / movie_ids are the encoding's own, the positions are its columns and are used directly.
    """
    direct = user_ids is enc.user_ids and movie_ids is enc.movie_ids
    folder.mkdir(parents=True, exist_ok=True)
    n = len(rows)
    bounds = np.linspace(0, n, shards + 1).round().astype(np.int64)
    cfg = enc.history
    # a history row holds up to cap + 2 entries: fewer rows per chunk keep a chunk's arrays bounded
    step = WRITE_ROWS if cfg is None else max(1024, WRITE_ROWS // (cfg.cap + 2) * 4)
    files = []
    for s in range(shards):
        path = folder / f"part-{s:05d}.pbr"
        written = 0
        with open(path, "wb") as fh:
            for a in range(int(bounds[s]), int(bounds[s + 1]), step):
                b = min(int(bounds[s + 1]), a + step)
                upos, mpos, labels = rows.take(a, b)
                known = (upos, mpos) if direct else None
                X = encode_rows(enc, user_ids[upos], movie_ids[mpos], known)
                if cfg is not None and history is not None and rng is not None:
                    r, c, v = training_rows(history.indptr, history.rated, upos, mpos, cfg, rng)
                    H = sp.csr_matrix((v, (r, enc.history_offset + c)), shape=X.shape, dtype=np.float32)
                    H.sum_duplicates()  # capped histories draw with replacement: a repeat adds its value
                    X = (X + H).tocsr()
                    X.sort_indices()
                written += write_spmatrix(fh, X, labels)
        files.append({"name": path.name, "rows": int(bounds[s + 1] - bounds[s]), "bytes": written})
    return files


def _ranking_channels(
    out: Path, enc: Encoding, ds: Dataset, cfg: PreprocessConfig
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Train and test channels of the ranking objective; returns their files and the sampling record."""
    sampling = cfg.sampling()
    train, test = ds.train, ds.test
    nm = enc.movie_ids.size
    # int32 positions: at 25M ratings every int64 copy costs 190 MB of the 4 GiB budget
    train_m = _positions(enc.movie_ids, train.movie).astype(np.int32)
    popularity = np.bincount(train_m, minlength=nm)
    train_u = _positions(enc.user_ids, train.user)
    if enc.history is not None:  # before sampling and before any file is written
        n_users = enc.user_ids.size
        per_user = rows_per_user(train_u, train.rating, n_users, cfg.threshold, sampling)
        check_size(per_user, np.bincount(train_u, minlength=n_users), enc.history, "train")
    rows = sample_rows(
        train_u.astype(np.int32),
        train_m,
        train.rating,
        n_users=enc.user_ids.size,
        popularity=popularity,
        threshold=cfg.threshold,
        config=sampling,
        stream=0,
    )
    history = RatedHistory.of(enc.user_ids.size, train_u, train_m, nm) if enc.history is not None else None
    rng = np.random.default_rng([cfg.seed, 7])  # the history draws' own stream
    train_files = _write_sampled(
        out / "train", enc, enc.user_ids, enc.movie_ids, rows, cfg.shards, history, rng
    )
    record: dict[str, Any] = {"train": rows.counts, "test": {}}
    train_positive, train_rows = rows.n_positive, len(rows)
    del rows
    test_files: list[dict[str, Any]] = []
    if test is not None and len(test):
        # Users index the union of train and test users; test movies unknown to train go after the catalogue
        # with popularity 0 (never sampled). Their rows encode as handle_unknown='ignore' does.
        users = sorted_unique(np.concatenate((enc.user_ids, test.user)))
        extra = np.setdiff1d(sorted_unique(test.movie), enc.movie_ids, assume_unique=True)
        movie_ids = np.concatenate((enc.movie_ids, extra))
        known = _positions(enc.movie_ids, test.movie)
        test_m = np.where(known >= 0, known, nm + _positions(extra, test.movie))
        rows = sample_rows(
            _positions(users, test.user),
            test_m,
            test.rating,
            n_users=users.size,
            popularity=np.concatenate((popularity, np.zeros(extra.size, dtype=popularity.dtype))),
            threshold=cfg.threshold,
            config=sampling,
            also_rated=(_positions(users, train.user).astype(np.int32), train_m),
            shuffle=False,
            stream=1,
        )
        test_history = (
            RatedHistory.of(users.size, _positions(users, train.user), train_m, nm)
            if enc.history is not None
            else None
        )
        test_files = _write_sampled(out / "test", enc, users, movie_ids, rows, 1, test_history, rng)
        record["test"] = rows.counts
        record["test_balance"] = _ranking_balance(rows.n_positive, len(rows))
    record["train_balance"] = _ranking_balance(train_positive, train_rows)
    record["train_rows"] = train_rows
    return train_files, test_files, record


def _ranking_balance(positive: int, rows: int) -> dict[str, float]:
    return {"positive": positive, "positive_fraction": round(positive / rows, 6)} if rows else {}


def _write_holdout(folder: Path, test: Ratings | None) -> dict[str, Any]:
    """The held-out ratings as ids (unknown users and movies included): ranking relevance comes from them,
    never from the test channel's labels."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = np.empty(0, dtype=np.int64)
    held = (
        HeldOut(test.user, test.movie, test.rating.astype(np.float64))
        if test is not None
        else HeldOut(empty, empty, np.empty(0))
    )
    path = write_holdout(folder, held)
    return {"name": path.name, "rows": len(held), "bytes": path.stat().st_size}


def _to_array(code: str, values: np.ndarray) -> array:
    arr = array(code)
    arr.frombytes(np.ascontiguousarray(values, dtype=np.dtype(code).newbyteorder("=")).tobytes())
    return arr


def build_lookup(enc: Encoding, ds: Dataset, cfg: PreprocessConfig) -> Lookup:
    train = ds.train
    upos, mpos = _positions(enc.user_ids, train.user), _positions(enc.movie_ids, train.movie)
    nm = enc.movie_ids.size
    count = np.bincount(mpos, minlength=nm)
    total = np.bincount(mpos, weights=train.rating.astype(np.float64), minlength=nm)
    mean = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    pairs = sorted_unique(upos * nm + mpos)
    rated_user, rated_movie = pairs // nm, pairs % nm
    indptr = np.concatenate(([0], np.cumsum(np.bincount(rated_user, minlength=enc.user_ids.size))))
    titles = [""] * nm
    genres: list[list[str]] = [[] for _ in range(nm)]
    if ds.movies is not None:
        pos = _positions(enc.movie_ids, ds.movies.ids)
        for i in np.flatnonzero(pos >= 0).tolist():
            titles[pos[i]] = ds.movies.titles[i]
            genres[pos[i]] = ds.movies.genres[i]

    def aux_arrays(mat: sp.csr_matrix | None) -> tuple[array | None, array | None]:
        if mat is None:
            return None, None
        return _to_array("Q", mat.indptr), _to_array("I", mat.indices)

    ua_ptr, ua_cols = aux_arrays(enc.user_aux)
    ma_ptr, ma_cols = aux_arrays(enc.movie_aux)
    return Lookup(
        feature_dim=enc.feature_dim,
        user_ids=enc.user_ids.tolist(),
        movie_ids=enc.movie_ids.tolist(),
        titles=titles,
        genres=genres,
        movie_count=_to_array("I", count),
        movie_mean=_to_array("f", mean),
        rated_indptr=_to_array("Q", indptr),
        rated_pos=_to_array("I", rated_movie),
        label_mode=cfg.label,
        label_threshold=cfg.threshold if cfg.label == "binary" else None,
        user_aux_indptr=ua_ptr,
        user_aux_cols=ua_cols,
        movie_aux_indptr=ma_ptr,
        movie_aux_cols=ma_cols,
        aux_blocks=[
            {"name": b.name, "offset": b.offset, "size": b.size, "labels": b.labels} for b in enc.blocks[2:]
        ],
        meta={"layout": ds.layout, "split": ds.split, "objective": cfg.objective},
        history=None
        if enc.history is None
        else {"offset": enc.history_offset, "scale": enc.history.scale, "cap": enc.history.cap},
    )


def _balance(labels: np.ndarray, mode: str) -> dict[str, float]:
    if labels.size == 0:
        return {}
    if mode == "binary":
        return {"positive": int(labels.sum()), "positive_fraction": round(float(labels.mean()), 6)}
    return {"mean": round(float(labels.mean()), 6), "std": round(float(labels.std()), 6)}


def preprocess(
    data_dir: str | Path, out: Path, cfg: PreprocessConfig, dataset: Dataset | None = None
) -> dict[str, Any]:
    """Read `data_dir`, write train/test/lookup/manifest into the (existing, empty) folder `out`.

    `dataset`: ratings already read (and split) from `data_dir`, used instead of reading it: the local
    tuner's validation carve (fmrec.tuning.ranking) preprocesses train minus held-out ratings this way.
    """
    t0 = time.perf_counter()
    check_objective(cfg.objective, cfg.predictor_type, cfg.label)
    cfg.sampling()  # range checks before any reading or writing
    ds = dataset or load_dataset(data_dir, cfg.split, cfg.holdout_per_user, cfg.seed, cfg.max_reject_fraction)
    enc = build_encoding(ds.train, ds.users, ds.movies, cfg.aux)
    enc.history = cfg.history_config()
    log.info(
        "read %s (%s, split %s): %d train, %d test ratings; feature_dim %d",
        data_dir,
        ds.layout,
        ds.split,
        len(ds.train),
        len(ds.test) if ds.test else 0,
        enc.feature_dim,
    )
    test = ds.test
    sampling: dict[str, Any] | None = None
    if cfg.objective == "ranking":
        train_files, test_files, sampling = _ranking_channels(out, enc, ds, cfg)
    else:
        train_files = _write_channel(out / "train", enc, ds.train, cfg, cfg.shards)
        test_files = _write_channel(out / "test", enc, test, cfg, 1) if test is not None and len(test) else []
    holdout_file = _write_holdout(out / "holdout", test)
    write_lookup(out / "lookup", build_lookup(enc, ds, cfg))
    # The raw held-out ratings: ranking relevance comes from them, never from the test channel's labels.
    empty = np.empty(0, dtype=np.int64)
    write_holdout(
        out / "holdout",
        HeldOut(test.user, test.movie, test.rating.astype(np.float64))
        if test is not None
        else HeldOut(empty, empty, np.empty(0)),
    )
    counts: dict[str, int] = {
        "train_rows": sampling["train_rows"] if sampling else len(ds.train),
        "train_ratings": len(ds.train),
        "test_rows": sum(f["rows"] for f in test_files),
        "test_ratings": len(test) if test else 0,
        "users": int(enc.user_ids.size),
        "movies": int(enc.movie_ids.size),
    }
    unknown: dict[str, int] = {}
    if test is not None:
        u_unk = _positions(enc.user_ids, test.user) < 0
        m_unk = _positions(enc.movie_ids, test.movie) < 0
        unknown = {
            "test_rows_unknown_user": int(u_unk.sum()),
            "test_rows_unknown_movie": int(m_unk.sum()),
            "test_rows_unknown_both": int((u_unk & m_unk).sum()),
        }
        pairs_train = sorted_unique(ds.train.user * (1 << 32) + ds.train.movie)
        pairs_test = test.user * (1 << 32) + test.movie
        unknown["test_pairs_also_in_train"] = int((_positions(pairs_train, pairs_test) >= 0).sum())
    counts.update(unknown)
    manifest = {
        "format_version": 1,
        "feature_dim": enc.feature_dim,
        "layout": [{"name": b.name, "offset": b.offset, "size": b.size} for b in enc.blocks]
        + (
            []
            if enc.history is None
            else [{"name": "history", "offset": enc.history_offset, "size": int(enc.movie_ids.size)}]
        ),
        "label": {"mode": cfg.label, "threshold": cfg.threshold if cfg.label == "binary" else None},
        "objective": cfg.objective,
        "sampling": None
        if sampling is None
        else {
            "negatives_per_positive": cfg.negatives_per_positive,
            "negative_exponent": cfg.negative_exponent,
            "positives": cfg.positives,
            "below_threshold_negatives": cfg.below_threshold_negatives,
            "seed": cfg.seed,
            "train": sampling["train"],
            "test": sampling["test"],
        },
        "counts": counts,
        "label_balance": {
            "train": _balance(labels_for(ds.train.rating, cfg), cfg.label),
            "test": _balance(labels_for(test.rating, cfg), cfg.label) if test is not None else {},
        }
        if sampling is None
        else {"train": sampling["train_balance"], "test": sampling.get("test_balance", {})},
        "files": {"train": train_files, "test": test_files, "holdout": [holdout_file]},
        "content_type": "application/x-recordio-protobuf",
        "source": {"data_dir": str(data_dir), "layout": ds.layout, "split": ds.split},
        "config": {**asdict(cfg), "aux": list(cfg.aux)},
    }
    files = [ds.train.quality] + (
        [test.quality] if test is not None and test.quality is not ds.train.quality else []
    )
    quality = {
        "files": [q.as_dict() for q in files],
        "rows_read": sum(q.rows_read for q in files),
        "rows_rejected": sum(q.rows_rejected for q in files),
        "duplicate_policy": DUPLICATE_POLICY,
        "unknown_in_test": unknown,
        "titles": (t := title_coverage(ds, enc.movie_ids)),
    }
    if t["movies_without_title"]:
        log.warning(
            "%d of %d rated movies have no title (%s); the API will show them with an empty title",
            t["movies_without_title"],
            t["movies"],
            f"not in {t['source']}, e.g. movie ids {t['examples'][:5]}" if t["source"] else "no movie file",
        )
    (out / "manifest").mkdir(parents=True, exist_ok=True)
    (out / "manifest" / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out / "manifest" / "data_quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    log.info("preprocess done in %.1f s", time.perf_counter() - t0)
    return manifest


def run(
    data_dir: str | Path, out_dir: str | Path, cfg: PreprocessConfig, overwrite: bool = False
) -> dict[str, Any]:
    """`fmrec preprocess`: the whole output folder appears at once (built in a temporary sibling)."""
    with atomic_dir(out_dir, replace=overwrite) as tmp:
        return preprocess(data_dir, tmp, cfg)


def _publish(tmp: Path, out: Path) -> None:
    """Fill each (empty) channel folder with the files built in `tmp`.

    Each output's LocalPath "will be created by the platform and exist when your container's entrypoint is
    invoked" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Output.html): it is a
    mount point, which cannot be removed or renamed over (EBUSY), and a rename into it from elsewhere crosses
    devices (EXDEV). So the folders stay and the files go in one by one, each atomically (renamed on the same
    device, else copied to a temporary name and renamed); a failure removes every file already published.
    """
    for name in OUTPUT_CHANNELS:
        target = out / name
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise OutputError(f"{target}: already holds files; expected an empty output channel")
    published: list[Path] = []
    made: list[Path] = []
    try:
        for name in OUTPUT_CHANNELS:
            if not (out / name).exists():  # the local runner does not pre-create the channels
                (out / name).mkdir(parents=True)
                made.append(out / name)
            for src in sorted(p for p in (tmp / name).rglob("*") if p.is_file()):
                dst = out / name / src.relative_to(tmp / name)
                for folder in reversed(dst.parents):
                    if out / name in folder.parents and not folder.exists():
                        folder.mkdir()
                        made.append(folder)
                try:
                    os.replace(src, dst)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    with src.open("rb") as fh_in, atomic_open(dst) as fh_out:
                        shutil.copyfileobj(fh_in, fh_out, 1 << 20)
                published.append(dst)
    except BaseException:
        for path in published:
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def check_arguments(argv: Sequence[str]) -> PreprocessConfig:
    """The step's arguments as a config, or InputError: the local runner calls this before any step runs."""
    import argparse

    parser = build_arg_parser(argparse.ArgumentParser(prog="preprocess", exit_on_error=False))
    try:
        args, unknown = parser.parse_known_args(list(argv))
    except argparse.ArgumentError as exc:
        raise InputError(f"preprocess arguments: {exc}") from None
    if unknown:
        raise InputError(f"preprocess arguments: unrecognized {' '.join(unknown)}")
    return config_from_args(args)


def main(base_dir: str | Path, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Processing entry point: base_dir/input/data -> base_dir/output/{train,test,lookup,manifest}."""
    base = Path(base_dir)
    cfg = config_from_args(build_arg_parser().parse_args(list(argv or [])))
    out = base / "output"
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".preprocess.", dir=out))
    except OSError as exc:
        raise OutputError(f"{out}: cannot write here ({exc.strerror or exc})") from exc
    try:
        manifest = preprocess(base / "input" / "data", tmp, cfg)
        _publish(tmp, out)
        return manifest
    except OSError as exc:  # a full or failing disk: the plain writes inside tmp raise bare OSError
        raise OutputError(f"{out}: cannot write the output ({exc.strerror or exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        main(Path("/opt/ml/processing"), sys.argv[1:])
    except (
        FmrecError
    ) as exc:  # a clear message and a non-zero exit, as SageMaker shows it in the job's failure
        print(f"preprocess: error: {exc}", file=sys.stderr)
        sys.exit(2)
