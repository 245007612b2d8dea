"""Lookup artifacts: the column layout, rated movies and popularity, and the byte format round trip."""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest

import fmrec.serving.lookup as lookup_module
from fmrec.data.readers import read_ratings
from fmrec.errors import InputError
from fmrec.features.options import PreprocessConfig
from fmrec.features.preprocess import run
from fmrec.serving.lookup import LOOKUP_FILES, Lookup, read_lookup, write_lookup


def test_lookup_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(lookup_module.__file__).read_text())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            roots.add(node.module.split(".")[0])
    assert roots <= {
        "__future__",
        "bisect",
        "json",
        "math",
        "os",
        "struct",
        "sys",
        "array",
        "collections",
        "dataclasses",
        "pathlib",
        "typing",
        "fmrec",
    }
    # the fmrec modules it uses are standard-library-only too
    assert roots & {"numpy", "scipy", "pandas"} == set()


def test_columns_match_the_training_encoding(preprocessed: Path, synth_dir: Path) -> None:
    lk = read_lookup(preprocessed / "lookup")
    train = read_ratings(synth_dir / "ua.base")
    assert lk.user_ids == sorted(set(train.user.tolist()))
    assert lk.movie_ids == sorted(set(train.movie.tolist()))
    assert lk.feature_dim == lk.n_users + lk.n_movies and lk.movie_offset == lk.n_users
    u = lk.user_position(lk.user_ids[7])
    assert u == 7 and lk.user_column(7) == 7
    assert lk.movie_column(3) == lk.n_users + 3
    assert lk.user_keys(7) == [7] and lk.movie_keys(3) == [lk.n_users + 3]
    assert lk.user_position(10**9) is None and lk.movie_position(-5) is None
    # each user's rated movies are exactly their train ratings
    uid = lk.user_ids[7]
    rated = sorted(lk.movie_ids[p] for p in lk.rated_positions(7))
    assert rated == sorted(train.movie[train.user == uid].tolist())
    assert sum(lk.movie_count) == len(train)
    m = lk.movie_ids[0]
    assert lk.movie_mean[0] == pytest.approx(train.rating[train.movie == m].mean(), rel=1e-6)
    item_line = (synth_dir / "u.item").read_bytes().splitlines()[lk.movie_ids[0] - 1].decode("latin-1")
    assert lk.titles[0] == item_line.split("|")[1] and isinstance(lk.genres[0], list)
    top = lk.popular_positions(5)
    assert [lk.movie_count[p] for p in top] == sorted((lk.movie_count[p] for p in top), reverse=True)
    assert lk.movie_count[top[0]] == max(lk.movie_count)


def test_blobs_round_trip_and_files(preprocessed: Path, tmp_path: Path) -> None:
    lk = read_lookup(preprocessed / "lookup")
    assert sorted(p.name for p in (preprocessed / "lookup").iterdir()) == sorted(LOOKUP_FILES)
    blobs = {name: (preprocessed / "lookup" / name).read_bytes() for name in LOOKUP_FILES}
    again = Lookup.from_blobs(blobs)
    assert again == lk
    write_lookup(tmp_path / "copy", again)
    assert {n: (tmp_path / "copy" / n).read_bytes() for n in LOOKUP_FILES} == blobs


def test_damaged_lookup_is_a_clear_error(preprocessed: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lk"
    shutil.copytree(preprocessed / "lookup", folder)
    (folder / "lookup.bin").write_bytes((folder / "lookup.bin").read_bytes()[:-9])
    with pytest.raises(InputError, match=r"lookup\.bin: truncated"):
        read_lookup(folder)
    (folder / "lookup.json").unlink()
    with pytest.raises(InputError, match=r"lookup\.json: no such file"):
        read_lookup(folder)
    with pytest.raises(InputError, match="missing lookup file"):
        Lookup.from_blobs({"lookup.bin": b""})
    with pytest.raises(InputError, match="not valid JSON"):
        Lookup.from_blobs({"lookup.json": b"{", "lookup.bin": b""})


def test_aux_keys(synth_dir: Path, tmp_path: Path) -> None:
    aux = ("age", "gender", "occupation", "genres", "year")
    run(synth_dir, tmp_path / "aux", PreprocessConfig(aux=aux, history=0))  # user keys: one-hot only
    lk = read_lookup(tmp_path / "aux" / "lookup")
    names = [b["name"] for b in lk.aux_blocks]
    assert names == ["user_age", "user_gender", "user_occupation", "movie_genre", "movie_year"]
    keys = lk.user_keys(0)
    assert keys[0] == 0 and len(keys) == 4  # user column + age + gender + occupation
    blocks = {b["name"]: b for b in lk.aux_blocks}
    g = blocks["user_gender"]
    assert g["offset"] <= keys[2] < g["offset"] + g["size"]
    mk = lk.movie_keys(0)
    assert mk[0] == lk.movie_offset and len(mk) >= 3  # movie + >= 1 genre + year
    assert all(np.diff(mk) > 0) and max(mk) < lk.feature_dim
