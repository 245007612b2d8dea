"""Preprocess end to end: seed parity, OneHotEncoder equivalence, labels, shards, aux, outputs, bad input."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.preprocessing import OneHotEncoder

from fmrec.codec.reader import read_spmatrix
from fmrec.data.readers import load_dataset, read_ratings
from fmrec.errors import InputError, OutputError
from fmrec.features import layout
from fmrec.features.options import PreprocessConfig
from fmrec.features.settings import DEFAULTS
from fmrec.stages.preprocess import OUTPUT_CHANNELS, run
from fmrec_cli.main import main as cli
from pipeline.steps import preprocess as step
from tests.support.seed import SEED, seed_data


def test_seed_configuration_is_byte_identical_to_the_seed(tmp_path: Path) -> None:
    """The seed's code (OneHotEncoder + SDK 2.x writer) on a synthetic ua pair wrote golden/seed/*.pbr."""
    data = seed_data(tmp_path / "data")
    out = str(tmp_path / "o")
    assert cli(["preprocess", "--data-dir", str(data), "--out", out, "--objective", "rating"]) == 0
    assert (tmp_path / "o/train/part-00000.pbr").read_bytes() == (SEED / "train.pbr").read_bytes()
    assert (tmp_path / "o/test/part-00000.pbr").read_bytes() == (SEED / "test.pbr").read_bytes()
    manifest = json.loads((tmp_path / "o/manifest/manifest.json").read_text())
    # the golden test split has movies and one user never seen in training: ignored, and counted
    assert manifest["counts"]["test_rows_unknown_movie"] == 4
    assert manifest["counts"]["test_rows_unknown_user"] == 2
    assert manifest["counts"]["test_rows_unknown_both"] == 1


def test_matches_onehotencoder_on_synthetic_data(synth_dir: Path, preprocessed: Path) -> None:
    train, test = read_ratings(synth_dir / "ua.base"), read_ratings(synth_dir / "ua.test")
    # a test row with an unseen user and an unseen movie, as handle_unknown='ignore' treats them
    test_user = np.append(test.user, [9999, train.user[0]])
    test_movie = np.append(test.movie, [train.movie[0], 8888])
    enc = OneHotEncoder(handle_unknown="ignore").fit(np.c_[train.user, train.movie])
    ours = layout.build_encoding(train, None, None, ())
    for u, m in ((train.user, train.movie), (test_user, test_movie)):
        expected = enc.transform(np.c_[u, m]).astype(np.float32).tocsr()
        got = layout.encode_rows(ours, u, m)
        assert got.shape == expected.shape
        assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
        assert np.array_equal(got.data, expected.data)
    X, y = read_spmatrix(preprocessed / "train")
    expected = enc.transform(np.c_[train.user, train.movie]).astype(np.float32)
    assert (expected != X).nnz == 0
    assert y is not None and np.array_equal(y, (train.rating >= 4).astype(np.float32))


def test_manifest_and_quality_report(preprocessed: Path) -> None:
    manifest = json.loads((preprocessed / "manifest/manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["train_rows"] == 1500 and counts["test_rows"] == 500
    assert manifest["feature_dim"] == counts["users"] + counts["movies"]
    assert [b["name"] for b in manifest["layout"]] == ["user", "movie"]
    assert manifest["layout"][1]["offset"] == counts["users"]
    assert 0 < manifest["label_balance"]["train"]["positive_fraction"] < 1
    assert manifest["files"]["train"] == [
        {
            "name": "part-00000.pbr",
            "rows": 1500,
            "bytes": (preprocessed / "train/part-00000.pbr").stat().st_size,
        }
    ]
    quality = json.loads((preprocessed / "manifest/data_quality.json").read_text())
    assert quality["rows_read"] == 2000 and quality["rows_rejected"] == 0
    assert "latest timestamp" in quality["duplicate_policy"]


def test_regression_labels_and_threshold(synth_dir: Path, tmp_path: Path) -> None:
    train = read_ratings(synth_dir / "ua.base")
    run(synth_dir, tmp_path / "reg", PreprocessConfig(label="regression", objective="rating"))
    _, y = read_spmatrix(tmp_path / "reg/train")
    assert y is not None and np.array_equal(y, train.rating)
    run(synth_dir, tmp_path / "t5", PreprocessConfig(threshold=5, objective="rating"))
    _, y5 = read_spmatrix(tmp_path / "t5/train")
    assert y5 is not None and np.array_equal(y5, (train.rating >= 5).astype(np.float32))
    manifest = json.loads((tmp_path / "reg/manifest/manifest.json").read_text())
    assert manifest["label"] == {"mode": "regression", "threshold": None}
    assert manifest["label_balance"]["train"]["mean"] == pytest.approx(float(train.rating.mean()), abs=1e-5)


def test_shards_partition_the_train_rows(synth_dir: Path, preprocessed: Path, tmp_path: Path) -> None:
    run(synth_dir, tmp_path / "sh", PreprocessConfig(shards=3, objective="rating"))
    parts = sorted((tmp_path / "sh/train").iterdir())
    assert [p.name for p in parts] == ["part-00000.pbr", "part-00001.pbr", "part-00002.pbr"]
    joined = b"".join(p.read_bytes() for p in parts)
    assert joined == (preprocessed / "train/part-00000.pbr").read_bytes()
    rows = [
        f["rows"] for f in json.loads((tmp_path / "sh/manifest/manifest.json").read_text())["files"]["train"]
    ]
    assert rows == [500, 500, 500]


def test_aux_features_come_after_the_movie_block(synth_dir: Path, preprocessed: Path, tmp_path: Path) -> None:
    run(synth_dir, tmp_path / "aux", PreprocessConfig(aux=("age", "gender", "genres"), objective="rating"))
    base, _ = read_spmatrix(preprocessed / "train")
    X, _ = read_spmatrix(tmp_path / "aux/train")
    manifest = json.loads((tmp_path / "aux/manifest/manifest.json").read_text())
    names = [b["name"] for b in manifest["layout"]]
    assert names == ["user", "movie", "user_age", "user_gender", "movie_genre"]
    d0 = base.shape[1]
    assert X.shape[1] == manifest["feature_dim"] > d0
    assert (X[:, :d0] != base).nnz == 0  # the default layout is a prefix
    per_row = np.diff(X.indptr)
    assert per_row.min() >= 5  # user, movie, age, gender, >= 1 genre
    sizes = {b["name"]: b for b in manifest["layout"]}
    gender = X[:, sizes["user_gender"]["offset"] : sizes["user_gender"]["offset"] + 2]
    one_each = np.full(X.shape[0], np.float32(DEFAULTS["aux_value"]))  # one gender column, worth --aux-value
    assert np.array_equal(np.asarray(gender.sum(axis=1)).ravel(), one_each)


def test_aux_rows_match_a_row_by_row_reference(synth_dir: Path) -> None:
    ds = load_dataset(synth_dir)
    aux = ("age", "gender", "occupation", "genres", "year")
    enc = layout.build_encoding(ds.train, ds.users, ds.movies, aux)
    assert enc.user_aux_all is not None and enc.movie_aux_all is not None
    assert enc.user_aux_ids is not None and enc.movie_aux_ids is not None
    user = np.append(ds.train.user[:300], [9999, ds.train.user[0]])  # an id with no u.user row
    movie = np.append(ds.train.movie[:300], [ds.train.movie[0], 8888])
    got = layout.encode_rows(enc, user, movie)
    uids, mids = enc.user_ids.tolist(), enc.movie_ids.tolist()
    aux_u, aux_m = enc.user_aux_ids.tolist(), enc.movie_aux_ids.tolist()
    for r, (u, m) in enumerate(zip(user.tolist(), movie.tolist(), strict=True)):
        cols = [uids.index(u)] if u in uids else []
        cols += [len(uids) + mids.index(m)] if m in mids else []
        cols += enc.user_aux_all[aux_u.index(u)].indices.tolist() if u in aux_u else []
        cols += enc.movie_aux_all[aux_m.index(m)].indices.tolist() if m in aux_m else []
        assert got.indices[got.indptr[r] : got.indptr[r + 1]].tolist() == cols
    assert np.all(got.data == 1) and got.has_sorted_indices


def test_duplicates_and_bad_rows_are_rejected_and_reported(tmp_path: Path) -> None:
    data = seed_data(tmp_path / "ml")
    lines = (data / "ua.base").read_text().splitlines()
    first = lines[0].split("\t")
    extra = [
        "\t".join(
            [first[0], first[1], "2", str(int(first[3]) + 10)]
        ),  # newer duplicate: kept, original rejected
        "x1\t5\t3\t881250949",
        "1\t5\t9\t881250949",
        "1\t5\t3",
    ]
    (data / "ua.base").write_text("\n".join(lines + extra) + "\n")
    run(data, tmp_path / "out", PreprocessConfig(max_reject_fraction=0.5))
    quality = json.loads((tmp_path / "out/manifest/data_quality.json").read_text())
    base = quality["files"][0]
    assert base["rows_read"] == len(lines) + 4 and base["rows_kept"] == len(lines)
    assert base["rejected"]["duplicate"] == 1 and base["rejected"]["non_numeric_id"] == 1
    assert base["rejected"]["rating_out_of_range"] == 1 and base["rejected"]["wrong_field_count"] == 1
    assert {e["line"] for e in base["examples"]} == {1, len(lines) + 2, len(lines) + 3, len(lines) + 4}
    # the newer duplicate replaced the old rating, at its own place in the file order
    kept = read_ratings(data / "ua.base", max_reject_fraction=0.5)
    assert kept.rating[-1] == 2 and kept.user[-1] == int(first[0])


def test_sagemaker_entry_point_fills_precreated_channels(tmp_path: Path) -> None:
    base = tmp_path / "processing"
    seed_data(base / "input/data")
    for channel in OUTPUT_CHANNELS:
        (base / "output" / channel).mkdir(parents=True)
    manifest = step.main(base, ["--shards", "2", "--objective", "rating"])
    assert manifest["counts"]["train_rows"] == 816
    assert sorted(p.name for p in (base / "output").iterdir()) == sorted(OUTPUT_CHANNELS)
    assert (
        b"".join(p.read_bytes() for p in sorted((base / "output/train").iterdir()))
        == (SEED / "train.pbr").read_bytes()
    )
    with pytest.raises(OutputError, match="already holds files"):
        step.main(base, [])
    assert sorted(p.name for p in (base / "output").iterdir()) == sorted(OUTPUT_CHANNELS)


# ---------------------------------------------------------------------------------------------- bad input


BAD_INPUTS = {
    "missing file": (lambda d: (d / "ua.test").unlink(), r"ua\.test: no such file"),
    "empty file": (lambda d: (d / "ua.test").write_text(""), r"ua\.test: empty file"),
    "wrong separator": (
        lambda d: (d / "ua.base").write_text((d / "ua.base").read_text().replace("\t", ",")),
        r"ua\.base: line 1: wrong field count",
    ),
    "non-numeric ids": (
        lambda d: (d / "ua.test").write_text("1\t2\t3\t4\n" + "a\tb\tc\td\n" * 3),
        r"ua\.test: line 2: non numeric id",
    ),
    "bad user table": (
        lambda d: (d / "u.user").write_text("1|x|M|writer|0000\n"),
        r"u\.user: line 1: malformed user line",
    ),
    "bad movie table": (
        lambda d: (d / "u.item").write_text("1|T|01-Jan-1995||u|0|1\n"),
        r"u\.item: line 1: malformed movie line",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_error_and_nothing_is_written(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup, message = BAD_INPUTS[case]
    data = seed_data(tmp_path / "ml")
    setup(data)
    out = tmp_path / "out"
    assert cli(["preprocess", "--data-dir", str(data), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("fmrec: error: ")
    assert re.search(message, err), err
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ml"]


def test_unknown_dataset_split_and_aux_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "out")
    assert (
        cli(["preprocess", "--data-dir", str(seed_data(tmp_path / "ml")), "--out", out, "--split", "u9"]) == 2
    )
    assert "--split 'u9'" in capsys.readouterr().err
    assert cli(["preprocess", "--data-dir", str(tmp_path / "ml"), "--out", out, "--aux", "shoe_size"]) == 2
    assert "unknown feature(s) shoe_size" in capsys.readouterr().err
    (tmp_path / "notml").mkdir()
    (tmp_path / "notml/readme.txt").write_text("hi")
    assert cli(["preprocess", "--data-dir", str(tmp_path / "notml"), "--out", out]) == 2
    assert "not a MovieLens folder" in capsys.readouterr().err
    assert cli(["preprocess", "--data-dir", str(tmp_path / "missing"), "--out", out]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unwritable_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(seed_data(tmp_path / "ml"))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli(["preprocess", "--data-dir", data, "--out", str(blocker / "out")]) == 2
    assert "cannot create output folder" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere; the check above covers that case
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        assert cli(["preprocess", "--data-dir", data, "--out", str(ro / "out")]) == 2
    with pytest.raises(InputError):
        run(tmp_path / "nothing", tmp_path / "o2", PreprocessConfig())
    assert not (tmp_path / "o2").exists()
