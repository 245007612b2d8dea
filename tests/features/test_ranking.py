"""Preprocess --objective ranking: sampled rows in recordIO the trainer reads, the test channel, holdout/."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from fmrec.codec.reader import read_spmatrix
from fmrec.data.readers import load_dataset, read_ratings
from fmrec.errors import InputError, OutputError
from fmrec.features import history
from fmrec.features.options import PreprocessConfig
from fmrec.features.sampling import SamplingError
from fmrec.features.settings import DEFAULTS
from fmrec.model.trainer import train
from fmrec.serving.lookup import read_lookup
from fmrec.stages.preprocess import run
from fmrec_cli.main import main as cli
from pipeline.steps import preprocess as step
from tests.support.seed import seed_data


def _pairs(X: object, user_ids: list[int], movie_ids: list[int]) -> list[tuple[int, int]]:
    """(user id, movie id) of one-hot rows with exactly a user and a movie column."""
    n_users = len(user_ids)
    out = []
    for r in range(X.shape[0]):  # type: ignore[attr-defined]
        cols = X.indices[X.indptr[r] : X.indptr[r + 1]]  # type: ignore[attr-defined]
        out.append((user_ids[cols[0]], movie_ids[cols[1] - n_users]))
    return out


def test_train_channel_is_positives_plus_unrated_negatives(synth_dir: Path, ranked: Path) -> None:
    ds = load_dataset(synth_dir)
    X, y = read_spmatrix(ranked / "train")
    lk = read_lookup(ranked / "lookup")
    manifest = json.loads((ranked / "manifest/manifest.json").read_text())
    assert y is not None and set(np.unique(y).tolist()) == {0.0, 1.0} and X.dtype == np.float32
    assert X.shape == (manifest["counts"]["train_rows"], manifest["feature_dim"])
    assert np.all(np.diff(X.indptr) == 2)
    pairs = _pairs(X, lk.user_ids, lk.movie_ids)
    rated = set(zip(ds.train.user.tolist(), ds.train.movie.tolist(), strict=True))
    positives = [p for p, label in zip(pairs, y.tolist(), strict=True) if label == 1]
    negatives = [p for p, label in zip(pairs, y.tolist(), strict=True) if label == 0]
    passes = int(DEFAULTS["passes"])
    # positives "all": every rated pair once per pass
    assert passes > 1 and Counter(positives) == {pair: passes for pair in rated}
    assert not rated.intersection(negatives)
    assert len(negatives) == 4 * passes * len(rated)  # 4 per positive row, for every user
    # this tiny catalogue (80 movies) leaves many users fewer unrated movies than negatives: those repeat
    sampled = manifest["sampling"]["train"]
    assert sampled["positives"] == passes * len(rated) and sampled["sampled_negatives"] == len(negatives)
    assert manifest["objective"] == "ranking" and lk.meta["objective"] == "ranking"
    assert manifest["sampling"]["negatives_per_positive"] == 4
    assert manifest["sampling"]["negative_exponent"] == 0.5
    assert manifest["sampling"]["passes"] == passes
    assert manifest["label_balance"]["train"]["positive"] == passes * len(rated)
    # shuffled: the first 100 rows mix labels (unshuffled, they would all be positives)
    assert 0 < y[:100].mean() < 1


def test_test_channel_negatives_are_unrated_in_train_and_test(synth_dir: Path, ranked: Path) -> None:
    ds = load_dataset(synth_dir)
    assert ds.test is not None
    X, y = read_spmatrix(ranked / "test")
    lk = read_lookup(ranked / "lookup")
    assert y is not None
    pairs = _pairs(X[y == 0], lk.user_ids, lk.movie_ids)
    rated = set(zip(ds.train.user.tolist(), ds.train.movie.tolist(), strict=True))
    rated |= set(zip(ds.test.user.tolist(), ds.test.movie.tolist(), strict=True))
    assert pairs and not rated.intersection(pairs)
    assert int(y.sum()) == len(ds.test)
    counts = json.loads((ranked / "manifest/manifest.json").read_text())["sampling"]["test"]
    assert counts["positives"] == len(ds.test) and counts["sampled_negatives"] == int((y == 0).sum())


def test_ranking_rows_train_with_the_trainer(ranked: Path) -> None:
    manifest = json.loads((ranked / "manifest/manifest.json").read_text())
    X, y = read_spmatrix(ranked / "train")
    Xt, yt = read_spmatrix(ranked / "test")
    hp = {
        "feature_dim": str(manifest["feature_dim"]),
        "num_factors": "8",
        "predictor_type": "binary_classifier",
        "epochs": "3",
        "mini_batch_size": "200",
    }
    _, history = train(X, y, hp, test=(Xt, yt))
    assert len(history) == 3
    last = history[-1]["test"]
    assert last["auc"] > 0.6 and last["cross_entropy"] < 0.693  # better than a coin on held-out pairs


def test_holdout_channel_holds_the_raw_test_ratings_in_both_objectives(tmp_path: Path) -> None:
    data = seed_data(tmp_path / "ml")
    expected = read_ratings(data / "ua.test")
    for objective in ("ranking", "rating"):
        out = tmp_path / objective
        assert cli(["preprocess", "--data-dir", str(data), "--out", str(out), "--objective", objective]) == 0
        with open(out / "holdout/ratings.tsv", newline="") as fh:
            rows = list(csv.reader(fh, delimiter="\t"))
        assert rows[0] == ["user_id", "movie_id", "rating"]
        got = np.array([[float(v) for v in r] for r in rows[1:]])
        assert np.array_equal(got[:, 0], expected.user) and np.array_equal(got[:, 1], expected.movie)
        assert np.array_equal(got[:, 2], expected.rating)
        manifest = json.loads((out / "manifest/manifest.json").read_text())
        assert manifest["files"]["holdout"][0]["rows"] == len(expected)
        # the seed pair's test split has unknown users and movies: they are in holdout and the test channel
        assert manifest["counts"]["test_rows_unknown_movie"] == 4
        lk = read_lookup(out / "lookup")
        assert not set(expected.movie.tolist()) <= set(lk.movie_ids)
        _, yt = read_spmatrix(out / "test")
        assert yt is not None and (int(yt.sum()) if objective == "ranking" else yt.size) >= 1
    ranking_test = json.loads((tmp_path / "ranking/manifest/manifest.json").read_text())["sampling"]["test"]
    # weighted positives (the default): a liked held-out rating is written twice
    assert ranking_test["positives"] == len(expected) + int((expected.rating >= 4).sum())


def test_shards_aux_and_determinism(
    synth_dir: Path, ranked: Path, ranked_default: Path, tmp_path: Path
) -> None:
    plain = {"positives": "all", "history": 0, "neighbours": 0}  # the `ranked` fixture's rows
    run(synth_dir, tmp_path / "sh", PreprocessConfig(shards=3, **plain))  # type: ignore[arg-type]
    parts = sorted((tmp_path / "sh/train").iterdir())
    assert len(parts) == 3
    assert b"".join(p.read_bytes() for p in parts) == (ranked / "train/part-00000.pbr").read_bytes()
    # with history columns too: the draws follow the rows, however the rows are split into files
    run(synth_dir, tmp_path / "shh", PreprocessConfig(shards=3))
    parts = sorted((tmp_path / "shh/train").iterdir())
    assert b"".join(p.read_bytes() for p in parts) == (ranked_default / "train/part-00000.pbr").read_bytes()
    run(synth_dir, tmp_path / "seed1", PreprocessConfig(seed=1, **plain))  # type: ignore[arg-type]
    assert (tmp_path / "seed1/train/part-00000.pbr").read_bytes() != (
        ranked / "train/part-00000.pbr"
    ).read_bytes()
    run(synth_dir, tmp_path / "aux", PreprocessConfig(aux=("genres",), **plain))  # type: ignore[arg-type]
    base, y0 = read_spmatrix(ranked / "train")
    X, y = read_spmatrix(tmp_path / "aux/train")
    d0 = base.shape[1]
    assert y is not None and y0 is not None and np.array_equal(y, y0)
    assert (X[:, :d0] != base).nnz == 0 and X.shape[1] > d0 and np.diff(X.indptr).min() >= 3


def test_sampling_options_reach_the_rows(synth_dir: Path, tmp_path: Path) -> None:
    run(synth_dir, tmp_path / "k1", PreprocessConfig(negatives_per_positive=1, negative_exponent=0.0))
    manifest = json.loads((tmp_path / "k1/manifest/manifest.json").read_text())
    assert manifest["sampling"]["train"]["negatives_requested"] == manifest["sampling"]["train"]["positives"]
    cfg = PreprocessConfig(positives="liked", below_threshold_negatives=True, passes=2)
    run(synth_dir, tmp_path / "liked", cfg)
    train = load_dataset(synth_dir).train
    sampling = json.loads((tmp_path / "liked/manifest/manifest.json").read_text())["sampling"]
    counts = sampling["train"]
    assert sampling["passes"] == 2
    assert counts["positives"] == 2 * int((train.rating >= 4).sum())
    assert counts["explicit_negatives"] == 2 * int((train.rating < 4).sum())
    test = load_dataset(synth_dir).test
    assert test is not None and sampling["test"]["positives"] == int((test.rating >= 4).sum())  # one pass


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--negatives", "-1"], r"negatives per positive -1: expected a whole number in \[0, 100\]"),
        (["--negative-exponent", "1.5"], r"negative exponent 1.5: expected a number in \[0, 1\]"),
        (["--objective", "clicks"], "invalid choice: 'clicks'"),
        (["--label", "regression"], "objective 'ranking' trains 0/1 labels"),
        (["--predictor-type", "regressor"], "objective 'ranking' needs predictor_type binary_classifier"),
        (["--below-threshold-negatives"], "only with positives 'liked'"),
        (["--below-threshold-negatives", "maybe"], "expected true or false"),
        (["--passes", "0"], r"sampling passes 0: expected a whole number in \[1, 20\]"),
    ],
)
def test_bad_sampling_flags_fail_before_any_output(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = seed_data(tmp_path / "ml")
    out = tmp_path / "out"
    try:
        code = cli(["preprocess", "--data-dir", str(data), "--out", str(out), *flags])
    except SystemExit as exc:  # argparse's own refusals (a choice, a type)
        code = int(exc.code or 0)
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_a_catalogue_every_user_rated_fails_with_no_channel_written(tmp_path: Path) -> None:
    data = tmp_path / "ml"
    data.mkdir()
    base = [f"{u}\t{m}\t5\t88125{u}{m}" for u in (1, 2) for m in (1, 2, 3)]
    (data / "ua.base").write_text("\n".join(base) + "\n")
    (data / "ua.test").write_text("1\t1\t5\t881250949\n")
    with pytest.raises(SamplingError, match=r"no positive row.*2 users skipped with no unrated movie"):
        run(data, tmp_path / "out", PreprocessConfig())
    assert not (tmp_path / "out").exists()
    base_dir = tmp_path / "processing"
    (base_dir / "input").mkdir(parents=True)
    (base_dir / "input/data").symlink_to(data)
    with pytest.raises(SamplingError):
        step.main(base_dir, [])
    assert not any((base_dir / "output").iterdir())  # the temporary folder is gone, no channel published


def test_default_rows_carry_the_users_history_columns(synth_dir: Path, ranked_default: Path) -> None:
    """Each row: user and movie one-hot, plus the user's other train-rated movies at scale/sqrt(n)."""
    ds = load_dataset(synth_dir)
    X, y = read_spmatrix(ranked_default / "train")
    lk = read_lookup(ranked_default / "lookup")
    manifest = json.loads((ranked_default / "manifest/manifest.json").read_text())
    assert lk.history is not None and manifest["layout"][-1]["name"] == "history"
    offset, n_users, n_movies = lk.history.offset, lk.n_users, lk.n_movies
    assert offset == manifest["layout"][-1]["offset"] and X.shape[1] == lk.feature_dim
    # the default's neighbour column comes after the history block; no training row carries it
    assert lk.neighbours is not None and lk.neighbours.column == offset + n_movies == lk.feature_dim - 1
    assert X[:, lk.neighbours.column].nnz == 0
    rated: dict[int, set[int]] = {}
    for u, m in zip(ds.train.user.tolist(), ds.train.movie.tolist(), strict=True):
        rated.setdefault(lk.user_position(u) or 0, set()).add(lk.movie_position(m) or 0)
    cap = lk.history.cap
    for r in range(0, X.shape[0], 97):
        cols = X.indices[X.indptr[r] : X.indptr[r + 1]]
        vals = X.data[X.indptr[r] : X.indptr[r + 1]]
        user, movie = int(cols[0]), int(cols[1]) - n_users
        hist = cols[cols >= offset] - offset
        others = rated[user] - {movie}  # a positive's own movie is left out of its history
        assert set(hist.tolist()) <= others and movie not in set(hist.tolist())
        if len(others) <= cap:
            assert set(hist.tolist()) == others
            np.testing.assert_allclose(vals[cols >= offset], 1 / np.sqrt(len(others)), rtol=1e-6)
        else:
            assert len(hist) <= cap
    # weighted positives: the liked train ratings appear twice among the positive rows
    liked = int((ds.train.rating >= 4).sum())
    assert y is not None
    passes = int(DEFAULTS["passes"])
    assert manifest["sampling"]["train"]["positives"] == passes * (len(ds.train) + liked) == int(y.sum())


def test_history_zero_and_a_bad_length(
    synth_dir: Path, ranked: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert read_lookup(ranked / "lookup").history is None
    out = tmp_path / "never-written"
    assert cli(["preprocess", "--data-dir", str(synth_dir), "--out", str(out), "--history", "-1"]) == 2
    assert "--history length -1: expected an integer in [0, 4096]" in capsys.readouterr().err
    assert not out.exists()


def test_a_history_block_over_the_channel_limit_is_fixed_per_user_not_refused(
    synth_dir: Path, ranked_default: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = json.loads((ranked_default / "manifest/manifest.json").read_text())["sampling"]["history"]
    assert default["cap"] == default["requested"] and default["train_entries"] > 0
    # the same data under a limit of 60% of its entries: fewer columns per row, each user's history one fixed
    # set in every row and at serving, every row still there
    monkeypatch.setattr(history, "MAX_ENTRIES", int(default["train_entries"] * 0.6))
    out = tmp_path / "bounded"
    run(synth_dir, out, PreprocessConfig(objective="ranking"))
    manifest = json.loads((out / "manifest/manifest.json").read_text())
    bound = manifest["sampling"]["history"]
    assert bound["requested"] == default["requested"] and 0 < bound["cap"] < default["cap"]
    assert bound["train_entries"] <= history.MAX_ENTRIES and bound["fixed"] is True
    lk = read_lookup(out / "lookup")
    assert lk.history is not None and lk.history.cap == bound["cap"] and lk.history.fixed
    X, y = read_spmatrix(out / "train")
    offset = manifest["layout"][-1]["offset"]
    per_row = np.diff(np.concatenate(([0], np.cumsum(X.indices >= offset)))[X.indptr])
    assert per_row.max() <= bound["cap"] and int(per_row.sum()) <= bound["train_entries"]
    # a negative row's history is exactly what the lookup serves for that user: the same keys and values
    assert y is not None
    for r in np.flatnonzero(y == 0)[:200].tolist():
        keys = X.indices[X.indptr[r] : X.indptr[r + 1]].tolist()
        values = X.data[X.indptr[r] : X.indptr[r + 1]].tolist()
        side = lk.user_side(keys[0])  # the row's first key is its user's column, their position
        served = [(k, v) for k, v in zip(side.keys, side.values, strict=True) if k >= offset]
        got = [(k, v) for k, v in zip(keys, values, strict=True) if k >= offset]
        assert [k for k, _ in got] == [k for k, _ in served]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in served], rtol=1e-6)
    assert (
        manifest["counts"]["train_rows"]
        == X.shape[0]
        == json.loads((ranked_default / "manifest/manifest.json").read_text())["counts"]["train_rows"]
    )


def test_user_shards_split_the_rows_by_user_and_share_one_encoding(synth_dir: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run(synth_dir, whole, PreprocessConfig(objective="ranking"))
    lk = read_lookup(whole / "lookup")
    seen: set[int] = set()
    rows = 0
    for shard in range(2):
        out = tmp_path / f"shard{shard}"
        run(synth_dir, out, PreprocessConfig(objective="ranking", user_shards=2, user_shard=shard))
        assert [p.name for p in (out / "train").iterdir()] == [f"part-{shard:03d}-00000.pbr"]
        assert (out / "lookup").is_dir() and read_lookup(out / "lookup").user_ids == lk.user_ids
        manifest = sorted(p.name for p in (out / "manifest").iterdir())
        assert ("manifest.json" in manifest) == (shard == 0) and ("shard-001.json" in manifest) == (
            shard == 1
        )
        own = out / "manifest" / ("shard-001.json" if shard else "manifest.json")
        bound = json.loads(own.read_text())["sampling"]["history"]
        assert bound["budget"] == history.MAX_ENTRIES  # the run's limit, from the whole data's counts
        assert bound == json.loads((whole / "manifest/manifest.json").read_text())["sampling"]["history"]
        X, _ = read_spmatrix(out / "train")
        users = {lk.user_ids[c] for c in X.indices[X.indptr[:-1]].tolist()}  # each row's first key: its user
        assert users and all(u % 2 == shard for u in users)
        seen |= users
        rows += X.shape[0]
    assert seen == set(lk.user_ids)
    whole_rows = json.loads((whole / "manifest/manifest.json").read_text())["counts"]["train_rows"]
    assert rows == whole_rows  # every user's rows, on exactly one shard


def test_user_shard_flags_out_of_range_are_refused(synth_dir: Path, tmp_path: Path) -> None:
    for flags, message in (
        (["--user-shards", "0"], r"--user-shards 0: expected a number, 1\.\.1000"),
        (["--user-shards", "4", "--user-shard", "4"], r"--user-shard 4: expected an integer in \[0, 3\]"),
        (["--shards", "0"], r"--shards 0: expected a number, 1\.\.1000"),
    ):
        with pytest.raises(InputError, match=message):
            step.check_arguments(flags)


def test_processing_instances_become_user_shards(tmp_path: Path) -> None:
    config = tmp_path / "resourceconfig.json"
    assert step.host_shard_args(config, ["--seed", "1"]) == ["--seed", "1"]  # no file: one instance
    config.write_text(json.dumps({"current_host": "algo-3", "hosts": ["algo-2", "algo-1", "algo-3"]}))
    assert step.host_shard_args(config, []) == ["--user-shards", "3", "--user-shard", "2"]
    assert step.host_shard_args(config, ["--user-shards", "1"]) == ["--user-shards", "1"]  # argv wins
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    assert step.host_shard_args(config, []) == []
    config.write_text("{}")
    with pytest.raises(InputError, match="expected current_host and hosts"):
        step.host_shard_args(config, [])


def test_the_writer_thread_writes_what_one_thread_writes_and_passes_errors_on(
    synth_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fmrec.features import channels  # local import: the module whose writer thread is under test

    run(synth_dir, tmp_path / "threaded", PreprocessConfig(objective="ranking"))
    monkeypatch.setattr(channels, "usable_cores", lambda: 1)  # one core: chunks written inline
    run(synth_dir, tmp_path / "inline", PreprocessConfig(objective="ranking"))
    for channel in ("train", "test"):
        for part in (tmp_path / "threaded" / channel).iterdir():
            assert (tmp_path / "inline" / channel / part.name).read_bytes() == part.read_bytes()

    def full_disk(*_: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(channels, "usable_cores", lambda: 2)
    monkeypatch.setattr(channels, "write_spmatrix", full_disk)
    with pytest.raises(OutputError, match=r"full: write failed \(No space left on device\)"):
        run(synth_dir, tmp_path / "full", PreprocessConfig(objective="ranking"))
