"""Carve a validation split from the train channel: the tuning job's "test" channel (never the gate's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.codec.writer import write_spmatrix_file
from fmrec.errors import InputError
from fmrec.io_utils import atomic_write_text

DEFAULT_VALIDATION_FRACTION = 0.1
DEFAULT_SPLIT_SEED = 0
SPLIT_FILE = "validation_split.json"


def split_rows(n_rows: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, validation), each sorted; a seeded uniform draw of round(fraction * n_rows) rows."""
    if not 0.0 < fraction < 1.0:
        raise InputError(f"validation fraction: must be between 0 and 1 (exclusive), got {fraction}")
    n_val = round(fraction * n_rows)
    if n_val < 1 or n_val >= n_rows:
        raise InputError(
            f"validation fraction {fraction} of {n_rows} training rows leaves an empty fit or "
            "validation split"
        )
    rng = np.random.default_rng(seed)
    val = np.sort(rng.choice(n_rows, size=n_val, replace=False))
    mask = np.ones(n_rows, dtype=bool)
    mask[val] = False
    return np.flatnonzero(mask), val


def pair_groups(X: sp.csr_matrix) -> np.ndarray:
    """Per row, its (user, movie) pair's number in order of first appearance; rows with no pair: their own.

    A train row's two lowest columns are its user and movie (the one-hot layout puts those blocks first and
    every train row has both). In the ranking objective one pair can have several rows: a liked rating is
    written twice (PositiveRule 'weighted', with possibly different history draws), a negative can be drawn
    twice. A row-level split would put copies of one example on both sides and reward memorising it.
    """
    X = X if X.has_sorted_indices else X.sorted_indices()
    n, dim = X.shape
    starts = X.indptr[:-1].astype(np.int64)
    paired = np.diff(X.indptr) >= 2
    key = np.arange(n, dtype=np.int64) + dim * dim  # unpaired rows: keys no pair can take
    first, second = X.indices[starts[paired]].astype(np.int64), X.indices[starts[paired] + 1].astype(np.int64)
    key[paired] = first * dim + second
    _, first_row, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(first_row.size, dtype=np.int64)
    rank[np.argsort(first_row, kind="stable")] = np.arange(first_row.size)
    return rank[inverse.ravel()]


def carve(
    X: sp.csr_matrix,
    y: np.ndarray,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
    groups: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix, np.ndarray]:
    """(X_fit, y_fit, X_val, y_val) from the training rows: a seeded draw of `fraction` of the (user, movie)
    pairs, each with all of its rows (pair_groups). With one row per pair (the rating objective) the groups
    are the rows and the draw is split_rows' own."""
    groups = pair_groups(X) if groups is None else groups
    _, val_groups = split_rows(int(groups.max()) + 1 if groups.size else 0, fraction, seed)
    in_val = np.zeros(groups.max() + 1 if groups.size else 0, dtype=bool)
    in_val[val_groups] = True
    val = np.flatnonzero(in_val[groups])
    fit = np.flatnonzero(~in_val[groups])
    return X[fit], y[fit], X[val], y[val]


def carve_channels(
    train_dir: Path,
    out_dir: Path,
    fraction: float = DEFAULT_VALIDATION_FRACTION,
    seed: int = DEFAULT_SPLIT_SEED,
) -> dict[str, int | float]:
    """Write out_dir/train/ and out_dir/validation/ (recordIO-protobuf) from the train channel."""
    X, y = read_spmatrix(train_dir)
    if y is None:
        raise InputError(f"{train_dir}: train channel has no labels; a validation split needs them")
    groups = pair_groups(X)
    X_fit, y_fit, X_val, y_val = carve(X, y, fraction, seed, groups)
    write_spmatrix_file(out_dir / "train" / "part-00000.pbr", X_fit, y_fit)
    write_spmatrix_file(out_dir / "validation" / "part-00000.pbr", X_val, y_val)
    info: dict[str, int | float] = {
        "rows": int(X.shape[0]),
        "fit_rows": int(X_fit.shape[0]),
        "validation_rows": int(X_val.shape[0]),
        "pairs": int(groups.max()) + 1 if groups.size else 0,  # the unit drawn (pair_groups)
        "fraction": fraction,
        "seed": seed,
        "feature_dim": int(X.shape[1]),
    }
    atomic_write_text(out_dir / SPLIT_FILE, json.dumps(info, indent=2) + "\n")
    return info
