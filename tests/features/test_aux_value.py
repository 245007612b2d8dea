"""--aux-value: every auxiliary column carries one value, alike in training rows, lookup and requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmrec.codec.reader import read_spmatrix
from fmrec.errors import InputError
from fmrec.features.columns import ColumnLayout
from fmrec.features.options import build_arg_parser, config_from_args
from fmrec.model import fm
from fmrec.model.artifact import FMModel
from fmrec.serving.lookup import Lookup, read_lookup
from fmrec.serving.ranking import feature_rows
from fmrec.serving.requests import RequestBuilder
from fmrec.serving.retrieval import Retrieval
from fmrec.stages.preprocess import run
from fmrec.tuning.ranking import manifest_config

AUX = "age,gender,genres,year"


@pytest.fixture(scope="module")
def valued(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("aux-value") / "out"
    run(
        synth_dir, out, config_from_args(build_arg_parser().parse_args(["--aux", AUX, "--aux-value", "0.25"]))
    )
    return out


def _aux_range(lookup: Lookup) -> tuple[int, int]:
    blocks = lookup.columns.aux
    return blocks[0].offset, blocks[-1].end


def test_training_rows_carry_the_value_in_aux_columns_only(valued: Path) -> None:
    lookup = read_lookup(valued / "lookup")
    lo, hi = _aux_range(lookup)
    X, _ = read_spmatrix(valued / "train")
    in_aux = (X.indices >= lo) & (X.indices < hi)
    assert in_aux.any() and np.all(X.data[in_aux] == np.float32(0.25))
    ids = X.indices < lookup.columns.movies.end
    assert np.all(X.data[ids] == 1.0)  # the user and movie columns stay one-hot
    assert [b["value"] for b in lookup.aux_blocks] == [0.25] * 4
    manifest = json.loads((valued / "manifest/manifest.json").read_text())
    assert manifest["config"]["aux_value"] == 0.25


def test_training_rows_equal_the_served_sides(valued: Path) -> None:
    """A negative row of a user with a short history is the user's served side plus the movie's."""
    lookup = read_lookup(valued / "lookup")
    X, y = read_spmatrix(valued / "train")
    assert y is not None
    checked = 0
    for r in np.flatnonzero(y == 0)[:200].tolist():
        keys = X.indices[X.indptr[r] : X.indptr[r + 1]].tolist()
        vals = X.data[X.indptr[r] : X.indptr[r + 1]].tolist()
        user, movie = lookup.columns.decode_pair(keys)
        side = lookup.user_side(user)
        if len(side.rated) > lookup.history.cap:  # type: ignore[union-attr]
            continue  # a long history is sampled in training
        want = dict(zip(side.keys, side.values, strict=True))
        want.update(zip(lookup.movie_keys(movie), lookup.movie_values(movie), strict=True))
        assert dict(zip(keys, vals, strict=True)) == pytest.approx(want)
        checked += 1
    assert checked > 50


def test_scores_and_requests_use_the_values(valued: Path) -> None:
    lookup = read_lookup(valued / "lookup")
    D, k = lookup.feature_dim, 4
    rng = np.random.default_rng(3)
    params = fm.FMParams(
        0.1, rng.normal(0, 0.3, D).astype(np.float32), rng.normal(0, 0.3, (D, k)).astype(np.float32)
    )
    retrieval = Retrieval(FMModel(params, "binary_classifier"), lookup)
    side = lookup.user_side(3)
    movies = [0, 5, 17]
    table = lookup.neighbours  # the default's neighbour column: the last key, its value the table's
    assert table is not None
    extra = table.values(side.rated, movies)
    rows = feature_rows(
        [list(side.keys) + lookup.movie_keys(m) + [table.column] for m in movies],
        [list(side.values) + lookup.movie_values(m) + [g] for m, g in zip(movies, extra, strict=True)],
        D,
    )
    expected = fm.predict(params, rows, "binary_classifier")
    assert retrieval.score(side, movies) == pytest.approx(expected.tolist(), rel=1e-5)
    body = json.loads(RequestBuilder(lookup).build_rows(side.keys, side.values, movies)[0].body)
    lo, hi = _aux_range(lookup)
    for inst, m in zip(body["instances"], movies, strict=True):
        f = inst["data"]["features"]
        got = {c: v for c, v in zip(f["keys"], f["values"], strict=True) if lo <= c < hi}
        assert got and set(got.values()) == {0.25}
        assert f["keys"] == sorted([*side.keys, *lookup.movie_keys(m)])


def test_a_lookup_without_values_reads_them_as_one() -> None:
    cols = ColumnLayout.from_lookup(2, 3, 9, [{"name": "movie_genre", "offset": 5, "size": 4}])
    assert cols.aux[0].value == 1.0 and cols.aux_value(6) == 1.0 and cols.aux_value(0) == 1.0
    with pytest.raises(ValueError, match="expected a finite number > 0"):
        ColumnLayout.from_lookup(2, 3, 9, [{"name": "g", "offset": 5, "size": 4, "value": -1}])


@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
def test_out_of_range_values_are_refused(value: str) -> None:
    with pytest.raises(InputError, match="--aux-value"):
        config_from_args(build_arg_parser().parse_args(["--aux", "genres", "--aux-value", value]))


def test_the_tuner_reads_a_manifest_older_than_the_value_as_one(valued: Path, tmp_path: Path) -> None:
    """The tuner re-preprocesses with a channel's own settings: an older manifest's aux columns were at 1."""
    assert manifest_config(valued)[0].aux_value == 0.25
    doc = json.loads((valued / "manifest/manifest.json").read_text())
    del doc["config"]["aux_value"]
    (tmp_path / "manifest").mkdir()
    (tmp_path / "manifest/manifest.json").write_text(json.dumps(doc))
    cfg, _ = manifest_config(tmp_path)
    assert cfg.aux == ("age", "gender", "genres", "year") and cfg.aux_value == 1.0
