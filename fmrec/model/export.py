"""Export a trained FM's user and item embeddings and biases, keyed by their MovieLens ids."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.errors import InputError
from fmrec.features.columns import ColumnBlock, ColumnLayout
from fmrec.features.history import SERVED_CAP
from fmrec.features.neighbours import served_model
from fmrec.io_utils import atomic_dir
from fmrec.model.artifact import FMModel

EXPORT_FILES = ("users.csv", "items.csv", "features.csv", "embeddings.npz", "export.json")
NEIGHBOURS_CSV = "neighbours.csv"  # with a lookup that has a neighbour table


@dataclass(frozen=True)
class IdLayout:
    """The ids (and titles) behind the model's user and movie columns; fmrec.features.columns places them."""

    user_ids: Sequence[int]
    movie_ids: Sequence[int]
    movie_offset: int  # as the lookup records it: the rule's n_users
    titles: Sequence[str] | None = None
    # auxiliary feature blocks, as fmrec.serving.lookup writes them: {"name", "offset", "size", "labels"}
    aux_blocks: Sequence[dict[str, Any]] = ()

    def __post_init__(self) -> None:
        expected = ColumnLayout.build(len(self.user_ids), len(self.movie_ids)).movies.offset
        if self.movie_offset != expected:
            raise InputError(
                f"movie_offset {self.movie_offset}: the movie block starts after the {expected} users"
            )

    def columns(self, feature_dim: int) -> ColumnLayout:
        """The layout in a model of `feature_dim` columns."""
        return ColumnLayout.from_lookup(len(self.user_ids), len(self.movie_ids), feature_dim, self.aux_blocks)

    @classmethod
    def from_lookup(cls, lookup: Any) -> IdLayout:
        """From fmrec.serving.lookup.Lookup (preprocess's lookup artifacts)."""
        return cls(
            list(lookup.user_ids),
            list(lookup.movie_ids),
            int(lookup.movie_offset),
            list(lookup.titles),
            list(getattr(lookup, "aux_blocks", None) or ()),
        )

    @classmethod
    def positional(cls, n_users: int, feature_dim: int) -> IdLayout:
        """Without lookup artifacts: ids are column positions, users first, items after them."""
        if not 0 < n_users < feature_dim:
            raise InputError(f"--n-users {n_users}: expected 0 < n_users < feature_dim {feature_dim}")
        return cls(list(range(n_users)), list(range(feature_dim - n_users)), n_users)


def _rows(V: np.ndarray, w: np.ndarray, block: ColumnBlock) -> tuple[np.ndarray, np.ndarray]:
    return w[block.offset : block.end], V[block.offset : block.end]


# How the served score decomposes (docs/training.md, "Exported embeddings"): a request row is the user's side
# (their one-hot column, user side features and, with the history block, their rated movies as weighted
# columns) plus the movie's side (its one-hot column and movie side features). FM's pairwise term over the two
# disjoint sides splits exactly into a per-user constant, a per-movie constant and one dot product.
SCORE_FORMULA = (
    "raw = global_bias + user bias + movie bias + dot(user factors, movie factors); "
    "score = sigmoid(raw) for binary_classifier, raw for regressor. With --lookup the user row folds the "
    "user's whole side of a served request (one-hot, side features, history columns with their weights) "
    "and the movie row the movie's side: side bias = sum(x_i w_i) "
    "+ 0.5 * (|sum(x_i V_i)|^2 - sum(x_i^2 |V_i|^2)), side factors = sum(x_i V_i), so the formula "
    "reproduces the served score exactly"
)


# The neighbour column (fmrec.features.neighbours) is a per-(user, movie) value, not a side: its term is added
NEIGHBOUR_FORMULA = (
    " + weight * g(user, movie), where g = scale / sqrt(n) * sum over the user's n distinct rated movies h "
    "of W[h, movie] (neighbours.csv: source_movie_id, target_movie_id, weight; absent pairs are 0); past "
    "served_cap rated movies g sums an evenly spaced served_cap of them (positions i * n // served_cap of "
    "the rated movies in catalogue order), each worth scale * sqrt(n) / served_cap"
)


def fold_sides(
    w: np.ndarray, V: np.ndarray, sides: Sequence[tuple[Sequence[int], Sequence[float]]]
) -> tuple[np.ndarray, np.ndarray]:
    """(bias, factors) per side (its columns and values): the FM terms that involve only that side."""
    k = V.shape[1]
    bias = np.zeros(len(sides), dtype=np.float64)
    factors = np.zeros((len(sides), k), dtype=np.float64)
    sq = np.einsum("ij,ij->i", V, V, dtype=np.float64)  # |V_i|^2 per column
    for n, (keys, values) in enumerate(sides):
        cols = np.asarray(keys, dtype=np.int64)
        x = np.asarray(values, dtype=np.float64)
        p = x @ V[cols].astype(np.float64)
        factors[n] = p
        bias[n] = float(x @ w[cols]) + 0.5 * (float(p @ p) - float((x * x) @ sq[cols]))
    return bias, factors


def served_sides(
    lookup: Any,
) -> tuple[list[tuple[list[int], list[float]]], list[tuple[list[int], list[float]]]]:
    """Every user's and movie's side of a served request, as fmrec.serving.requests builds it."""
    users = [(lookup.user_keys(u), lookup.user_values(u)) for u in range(len(lookup.user_ids))]
    movies = [(lookup.movie_keys(m), lookup.movie_values(m)) for m in range(len(lookup.movie_ids))]
    return users, movies


def export_embeddings(
    model: FMModel,
    layout: IdLayout,
    out: str | Path,
    *,
    replace: bool = False,
    lookup: Any = None,
) -> dict[str, Any]:
    """Write users.csv, items.csv (id, bias, f0..f{k-1}), features.csv (every other column: side features,
    the history block), embeddings.npz and export.json into `out`, atomically.

    With `lookup` (fmrec.serving.lookup.Lookup) the user and item rows fold each side of a served request
    (SCORE_FORMULA), so w0 + user bias + item bias + <user factors, item factors> is the served raw score;
    without it they are the one-hot columns' own parameters.
    """
    table = None if lookup is None else getattr(lookup, "neighbours", None)
    model = served_model(model, table)  # as the evaluate step registers it: the column at its blend weight
    p = model.params
    n_users, n_items = len(layout.user_ids), len(layout.movie_ids)
    cols = layout.columns(p.feature_dim)
    if lookup is not None:
        cols = lookup.columns  # with the history block, which the ids alone do not place
    if cols.problems():
        raise InputError(
            f"the id mapping ({n_users} users, {n_items} movies from column {cols.movies.offset}) "
            "does not fit "
            f"the model's feature_dim {p.feature_dim}; use the lookup artifacts of the data it was trained on"
        )
    if layout.titles is not None and len(layout.titles) != n_items:
        raise InputError(f"lookup: {len(layout.titles)} titles for {n_items} movies")
    k = p.num_factors
    ub, uf = _rows(p.V, p.w, cols.users)
    ib, itf = _rows(p.V, p.w, cols.movies)
    if lookup is not None:
        user_sides, movie_sides = served_sides(lookup)
        ub, uf = fold_sides(p.w, p.V, user_sides)
        ib, itf = fold_sides(p.w, p.V, movie_sides)
    covered = cols.movies.end
    summary = {
        "predictor_type": model.predictor_type,
        "feature_dim": p.feature_dim,
        "num_factors": k,
        "global_bias": float(p.w0),
        "users": n_users,
        "items": n_items,
        "other_feature_columns": p.feature_dim - covered,
        "folded": lookup is not None,
        "files": [*EXPORT_FILES, *([NEIGHBOURS_CSV] if table is not None else [])],
        "score": SCORE_FORMULA + (NEIGHBOUR_FORMULA if table is not None else "")
        if lookup is not None
        else "w0 + user bias + item bias + dot(user factors, item factors); sigmoid if binary_classifier; "
        "exact only when the model's features are the user and item one-hots (export with --lookup)",
    }
    if table is not None:
        summary["neighbours"] = {
            "column": table.column,
            "weight": table.weight,
            "scale": table.scale,
            "keep": table.keep,
            "l2": table.l2,
            "served_cap": SERVED_CAP,
        }
    factor_cols = [f"f{i}" for i in range(k)]
    with atomic_dir(out, replace=replace) as tmp:
        with open(tmp / "users.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["user_id", "bias", *factor_cols])
            for uid, b, row in zip(layout.user_ids, ub, uf, strict=True):
                wr.writerow([uid, repr(float(b)), *(repr(float(x)) for x in row)])
        with open(tmp / "items.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["movie_id", "title", "bias", *factor_cols])
            titles = layout.titles if layout.titles is not None else [""] * n_items
            for mid, title, b, row in zip(layout.movie_ids, titles, ib, itf, strict=True):
                wr.writerow([mid, title, repr(float(b)), *(repr(float(x)) for x in row)])
        with open(tmp / "features.csv", "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["block", "label", "column", "bias", *factor_cols])
            history = [] if cols.history is None else [(cols.history, {"labels": list(layout.movie_ids)})]
            nb = [] if cols.neighbours is None else [(cols.neighbours, {"labels": ["g"]})]
            for block, raw in [*zip(cols.aux, layout.aux_blocks, strict=True), *history, *nb]:
                if block.offset < covered or block.end > p.feature_dim:
                    raise InputError(f"lookup: block {block.name} lies outside the model's columns")
                labels = [str(x) for x in (raw.get("labels") or range(block.size))]
                for i in range(block.size):
                    col = block.column(i)
                    label = labels[i] if i < len(labels) else str(i)
                    wr.writerow(
                        [
                            block.name,
                            label,
                            col,
                            repr(float(p.w[col])),
                            *map(repr, p.V[col].tolist()),
                        ]
                    )
        np.savez(
            tmp / "embeddings.npz",
            global_bias=np.float32(p.w0),
            user_ids=np.asarray(layout.user_ids, dtype=np.int64),
            user_bias=ub,
            user_factors=uf,
            movie_ids=np.asarray(layout.movie_ids, dtype=np.int64),
            movie_bias=ib,
            movie_factors=itf,
        )
        if table is not None:
            _write_neighbours(tmp / NEIGHBOURS_CSV, table, layout.movie_ids)
        (tmp / "export.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _write_neighbours(path: Path, table: Any, movie_ids: Sequence[int]) -> None:
    """The table's entries by MovieLens id: row h's targets and EASE weights."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        wr = csv.writer(fh)
        wr.writerow(["source_movie_id", "target_movie_id", "weight"])
        for h in range(table.n_movies):
            for i in range(table.indptr[h], table.indptr[h + 1]):
                wr.writerow([movie_ids[h], movie_ids[table.targets[i]], repr(float(table.weights[i]))])
