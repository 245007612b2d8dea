"""The id -> one-hot column rule: one layout for preprocess, the lookup, requests and the export."""

from __future__ import annotations

import ast
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest

import fmrec.features.columns as columns_module
from fmrec.data.readers import load_dataset
from fmrec.data.synth import SynthConfig, write_synth
from fmrec.errors import InputError
from fmrec.features.columns import ColumnBlock, ColumnLayout
from fmrec.features.history import HistoryConfig
from fmrec.features.layout import block_columns, block_range, build_encoding, encode_rows
from fmrec.model.export import IdLayout
from fmrec.serving.lookup import Lookup, LookupHistory
from fmrec.serving.requests import decode_keys


def test_the_rule_places_users_movies_aux_then_history() -> None:
    cols = ColumnLayout.build(3, 4, [("user_gender", 2), ("movie_genre", 5)], history=True)
    assert [(b.name, b.offset, b.size) for b in cols.blocks] == [
        ("user", 0, 3),
        ("movie", 3, 4),
        ("user_gender", 7, 2),
        ("movie_genre", 9, 5),
        ("history", 14, 4),
    ]
    assert cols.feature_dim == 18
    assert [cols.user_column(p) for p in range(3)] == [0, 1, 2]
    assert [cols.movie_column(p) for p in range(4)] == [3, 4, 5, 6]
    assert cols.history_column(2) == 16
    assert cols.problems() == []


def test_without_history_or_aux_the_movies_end_the_layout() -> None:
    cols = ColumnLayout.build(2, 5)
    assert cols.feature_dim == 7 and cols.aux == () and cols.history is None
    with pytest.raises(InputError, match="no history block"):
        cols.history_column(0)


def test_locate_is_the_inverse_of_the_column_functions() -> None:
    cols = ColumnLayout.build(3, 4, [("movie_year", 2)], history=True)
    for p in range(3):
        assert cols.locate(cols.user_column(p)) == ("user", p)
    for p in range(4):
        assert cols.locate(cols.movie_column(p)) == ("movie", p)
        assert cols.locate(cols.history_column(p)) == ("history", p)
    assert cols.locate(7) == ("movie_year", 0) and cols.locate(8) == ("movie_year", 1)
    assert cols.locate(-1) is None and cols.locate(cols.feature_dim) is None


def test_block_position_is_none_outside_the_block() -> None:
    block = ColumnBlock("movie", 10, 3)
    assert [block.position(c) for c in (9, 10, 12, 13)] == [None, 0, 2, None]
    assert block.column(2) == 12 and block.end == 13


def test_decode_pair_needs_exactly_one_user_and_one_movie_column() -> None:
    cols = ColumnLayout.build(3, 4, [("movie_genre", 2)])
    assert cols.decode_pair([2, 5]) == (2, 2)
    assert cols.decode_pair([0, 3, 7, 8]) == (0, 0)  # aux columns are ignored
    with pytest.raises(InputError, match=r"one user column in \[0, 3\) and one movie column in \[3, 7\)"):
        cols.decode_pair([0, 1, 4])
    with pytest.raises(InputError, match="found 1 and 0"):
        cols.decode_pair([0, 7])


def test_problems_name_what_does_not_fit() -> None:
    assert ColumnLayout.from_lookup(3, 4, 6).problems() == ["feature_dim 6 < 3 users + 4 movies"]
    assert ColumnLayout.from_lookup(3, 4, 11, history_offset=6).problems() == [
        "history block at 6 does not fit feature_dim 11"
    ]
    assert ColumnLayout.from_lookup(3, 4, 10, history_offset=8).problems() == [
        "history block at 8 does not fit feature_dim 10"
    ]
    assert ColumnLayout.from_lookup(3, 4, 11, history_offset=7).problems() == []


def test_the_neighbour_column_comes_after_everything() -> None:
    cols = ColumnLayout.build(3, 4, [("movie_genre", 2)], history=True, neighbours=True)
    tail = [(b.name, b.offset, b.size) for b in cols.blocks][-2:]
    assert tail == [("history", 9, 4), ("neighbours", 13, 1)]
    assert cols.feature_dim == 14 and cols.locate(13) == ("neighbours", 0) and cols.problems() == []
    assert ColumnLayout.build(3, 4, neighbours=True).neighbours == ColumnBlock("neighbours", 7, 1)
    recorded = ColumnLayout.from_lookup(3, 4, 12, history_offset=7, neighbour_column=11)
    assert recorded.neighbours == ColumnBlock("neighbours", 11, 1) and recorded.problems() == []


@pytest.mark.parametrize("column", [2, 8, 12])
def test_a_neighbour_column_on_another_block_or_past_the_end_is_a_problem(column: int) -> None:
    cols = ColumnLayout.from_lookup(3, 4, 12, history_offset=7, neighbour_column=column)
    assert cols.problems() == [f"neighbour column {column} of feature_dim 12 is not a free column"]


def test_from_lookup_keeps_the_recorded_aux_offsets() -> None:
    cols = ColumnLayout.from_lookup(2, 2, 9, [{"name": "genre", "offset": 5, "size": 3, "labels": []}])
    assert cols.aux == (ColumnBlock("genre", 5, 3),) and cols.locate(4) is None


def test_numpy_helpers_keep_minus_one_as_no_column() -> None:
    cols = ColumnLayout.build(3, 4)
    assert block_columns(cols.movies, np.array([0, -1, 3])).tolist() == [3, -1, 6]
    assert block_range(cols.movies).tolist() == [3, 4, 5, 6]


def test_every_consumer_agrees_with_the_encoding(tmp_path: Path) -> None:
    """Preprocess's rows and blocks, and the decoder of request keys, read the same columns."""
    write_synth(tmp_path / "ml", SynthConfig(users=20, items=60, ratings=500, seed=3))
    ds = load_dataset(tmp_path / "ml")
    enc = build_encoding(ds.train, ds.users, ds.movies, ("gender", "genres", "year"))
    enc.history = HistoryConfig(cap=4)
    cols = enc.columns
    assert [(b.name, b.offset, b.size) for b in cols.blocks[:-1]] == [
        (b.name, b.offset, b.size) for b in enc.blocks
    ]
    assert cols.history is not None and cols.history.offset == enc.blocks[-1].offset + enc.blocks[-1].size
    assert enc.history_offset == cols.history.offset
    assert enc.feature_dim == cols.feature_dim == cols.history.end
    X = encode_rows(enc, ds.train.user, ds.train.movie)
    uids, mids = enc.user_ids.tolist(), enc.movie_ids.tolist()
    for row, (u, m) in enumerate(zip(ds.train.user.tolist(), ds.train.movie.tolist(), strict=True)):
        keys = X.indices[X.indptr[row] : X.indptr[row + 1]].tolist()
        assert cols.decode_pair(keys) == (uids.index(u), mids.index(m))
        names = [located[0] for located in map(cols.locate, keys) if located is not None]
        assert len(names) == len(keys)
        assert names.count("user_gender") == 1 and names.count("movie_year") == 1


def test_lookup_request_decoder_and_export_share_the_layout() -> None:
    lookup = Lookup(
        feature_dim=2 + 3 + 2 + 3,
        user_ids=[5, 9],
        movie_ids=[1, 4, 6],
        titles=["a", "b", "c"],
        genres=[[], [], []],
        movie_count=array("I", [1, 1, 1]),
        movie_mean=array("f", [4.0] * 3),
        rated_indptr=array("Q", [0, 2, 3]),
        rated_pos=array("I", [0, 2, 1]),
        aux_blocks=[{"name": "genre", "offset": 5, "size": 2, "labels": ["x", "y"]}],
        history=LookupHistory(offset=7, scale=1.0, cap=8),
    )
    cols = lookup.columns
    assert cols == ColumnLayout.build(2, 3, [("genre", 2)], history=True)
    assert lookup.movie_offset == cols.movies.offset == 2
    assert lookup.user_keys(0) == [0, cols.history_column(0), cols.history_column(2)]
    assert lookup.movie_keys(1) == [cols.movie_column(1)]
    assert decode_keys(lookup, [1, 4]) == (9, 6)
    layout = IdLayout.from_lookup(lookup)
    assert layout.columns(lookup.feature_dim).movies == cols.movies
    # a field change rebuilds the layout
    lookup.user_ids = [5, 9, 11]
    assert lookup.columns.movies == ColumnBlock("movie", 3, 3)


def test_id_layout_rejects_a_movie_offset_off_the_rule() -> None:
    with pytest.raises(InputError, match="movie_offset 4: the movie block starts after the 3 users"):
        IdLayout([1, 2, 3], [1, 2], 4)


def test_columns_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(columns_module.__file__).read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots - {"fmrec"} <= set(sys.stdlib_module_names)
    assert {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} <= {
        "__future__",
        "collections.abc",
        "dataclasses",
        "typing",
        "fmrec.errors",
    }
