"""The training-job twin over SageMaker's container layout, and every bad input it must refuse."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.features.manifest import Manifest, write_manifest
from fmrec.model.artifact import load_model_tar
from fmrec.model.fm import predict
from fmrec.model.metrics import binary_metrics
from fmrec.model.trainer import train
from fmrec_cli.main import main as cli_main
from tests.support.training_channels import FEATURE_DIM, default_hp, make_layout, one_hot, write_channel
from twins.training import run_training_job
from twins.training.__main__ import main as training_main


def test_trains_from_shards_and_writes_model_and_metrics(
    layout: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = layout()
    with caplog.at_level(logging.INFO):
        assert run_training_job(root) == 0
    assert not (root / "output" / "failure").exists()
    model = load_model_tar(root / "model" / "model.tar.gz")
    assert model.predictor_type == "binary_classifier" and model.feature_dim == FEATURE_DIM
    assert model.meta["training_parameters"]["mini_batch_size"] == "50"
    assert model.meta["training_parameters"]["bias_lr"] == "0.1"  # defaults recorded too
    doc = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert [h["epoch"] for h in doc["history"]] == [0, 1, 2, 3]
    assert doc["train_rows"] == 800 and doc["test_rows"] == 200
    Xt, yt = one_hot(200, 1)
    acc = binary_metrics(yt, predict(model.params, Xt, "binary_classifier"))["accuracy"]
    assert doc["final_metrics"]["test:binary_classification_accuracy"] == pytest.approx(acc)
    names = {d["MetricName"] for d in doc["FinalMetricDataList"]}
    assert {
        "test:binary_classification_cross_entropy",
        "test:binary_f_beta",
        "train:binary_classification_accuracy",
    } <= names
    lines = [r.getMessage() for r in caplog.records]
    assert f"#quality_metric: host=algo-1, test binary_classification_accuracy <score>={acc}" in lines
    assert any(
        line.startswith("#quality_metric: host=algo-1, test binary_f_1.000 <score>=") for line in lines
    )
    assert any(
        line.startswith("#quality_metric: host=algo-1, epoch=3, train binary_classification_cross_entropy")
        for line in lines
    )


def test_reports_reading_and_every_epoch_with_its_metrics(layout: Callable[..., Path]) -> None:
    lines: list[str] = []
    root = layout()
    assert run_training_job(root, report=lines.append) == 0
    assert lines[0].startswith("read 800 train rows (") and lines[0].endswith(" s")
    assert [line.split(" (")[0] for line in lines[1:]] == [f"epoch {e}/4" for e in range(1, 5)]
    doc = json.loads((root / "output" / "data" / "metrics.json").read_text())
    last = doc["history"][-1]
    assert f"train cross_entropy {last['train']['cross_entropy']:.4f}" in lines[-1]
    assert (
        f"test cross_entropy {last['test']['cross_entropy']:.4f}, auc {last['test']['auc']:.4f}" in lines[-1]
    )


def test_the_test_channel_is_scored_once_after_training_with_the_same_weights(
    layout: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    root = layout()
    with caplog.at_level(logging.INFO):
        assert run_training_job(root) == 0
    doc = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert ["test" in h for h in doc["history"]] == [False, False, False, True]
    assert not any("epoch=" in r.getMessage() and ", test " in r.getMessage() for r in caplog.records)
    # the same run scoring the test rows every epoch (the trainer's default) ends with the same model and
    # the same final test metrics
    model = load_model_tar(root / "model" / "model.tar.gz")
    X, y = read_spmatrix(root / "input" / "data" / "train")
    Xt, yt = read_spmatrix(root / "input" / "data" / "test")
    raw = json.loads((root / "input" / "config" / "hyperparameters.json").read_text())
    params, history = train(X, y, raw, test=(Xt, yt))
    assert all("test" in h for h in history)
    np.testing.assert_array_equal(params.V, model.params.V)
    np.testing.assert_array_equal(params.w, model.params.w)
    assert history[-1]["test"] == doc["history"][-1]["test"]


def test_same_result_from_one_shard_or_several(tmp_path: Path) -> None:
    a = make_layout(tmp_path / "a", shards=1)
    b = make_layout(tmp_path / "b", shards=3)
    assert run_training_job(a) == 0 and run_training_job(b) == 0
    ma, mb = load_model_tar(a / "model" / "model.tar.gz"), load_model_tar(b / "model" / "model.tar.gz")
    np.testing.assert_array_equal(ma.params.V, mb.params.V)


def test_missing_test_channel_is_allowed(layout: Callable[..., Path]) -> None:
    root = layout(test=False)
    assert run_training_job(root) == 0
    doc = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert "test" not in doc["history"][-1] and doc["test_rows"] == 0
    assert all(k.startswith("train:") for k in doc["final_metrics"])


def test_regressor(layout: Callable[..., Path]) -> None:
    root = layout(hp=default_hp(predictor_type="regressor"))
    assert run_training_job(root) == 0
    doc = json.loads((root / "output" / "data" / "metrics.json").read_text())
    assert set(doc["final_metrics"]) == {"train:rmse", "test:rmse"}


def _fails(root: Path, *patterns: str) -> str:
    assert run_training_job(root) != 0
    text = (root / "output" / "failure").read_text()
    for pattern in patterns:
        assert pattern in text, text
    assert not (root / "model" / "model.tar.gz").exists()
    assert not (root / "output" / "data" / "metrics.json").exists()
    return text


def _corrupt(root: Path, fn: Callable[[bytes], bytes]) -> None:
    shard = root / "input" / "data" / "train" / "part-00001.pbr"
    shard.write_bytes(fn(shard.read_bytes()))


def test_bad_magic(layout: Callable[..., Path]) -> None:
    root = layout()
    _corrupt(root, lambda b: b"\x00\x00\x00\x00" + b[4:])
    _fails(root, "part-00001.pbr", "magic")


def test_truncated_record(layout: Callable[..., Path]) -> None:
    root = layout()
    _corrupt(root, lambda b: b[:-7])
    _fails(root, "part-00001.pbr")


def test_binary_labels_must_be_0_or_1(layout: Callable[..., Path]) -> None:
    root = layout(test=False)
    X, y = one_hot(100, 5)
    y[7] = 3.0
    write_channel(root / "input" / "data" / "train", X, y, shards=1)  # overwrites part-00000
    _fails(root, "input/data/train", "label 3.0", "expected 0 or 1")


def test_keys_beyond_feature_dim(layout: Callable[..., Path]) -> None:
    root = layout(hp=default_hp(feature_dim=str(FEATURE_DIM - 5)))
    _fails(root, "input/data/train", f"feature_dim {FEATURE_DIM - 5}")


def test_empty_train_channel(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j")
    for f in (root / "input" / "data" / "train").iterdir():
        f.unlink()
    _fails(root, "train channel holds no files")
    write_channel(root / "input" / "data" / "train", sp.csr_matrix((0, FEATURE_DIM), dtype=np.float32), None)
    _fails(root, "train channel holds no records")


def test_missing_train_channel_and_config(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j")
    shutil.rmtree(root / "input" / "data" / "train")
    _fails(root, "train channel is missing")
    (root / "input" / "config" / "hyperparameters.json").unlink()
    _fails(root, "hyperparameters.json: missing")


def test_bad_hyperparameters_and_channels(layout: Callable[..., Path]) -> None:
    root = layout(hp=default_hp(epochs="0"))
    _fails(root, "hyperparameter epochs: 0 is out of range")
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(default_hp()))
    (root / "input" / "data" / "validation").mkdir()
    _fails(root, "channel validation", "only the channels train and test")


def test_unlabelled_records(layout: Callable[..., Path]) -> None:
    root = layout(test=False)
    X, _ = one_hot(50, 3)
    write_channel(root / "input" / "data" / "train", X, None, shards=2)
    _fails(root, "no label")


def test_content_type_must_be_recordio(layout: Callable[..., Path]) -> None:
    root = layout()
    (root / "input" / "config" / "inputdataconfig.json").write_text(
        json.dumps({"train": {"ContentType": "text/csv"}})
    )
    _fails(root, "ContentType text/csv")


def test_success_clears_an_old_failure(layout: Callable[..., Path]) -> None:
    root = layout(hp=default_hp(epochs="x"))
    _fails(root, "epochs")
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(default_hp()))
    assert run_training_job(root) == 0
    assert not (root / "output" / "failure").exists()


def test_cli_train(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_layout(tmp_path / "j")
    channels = root / "input" / "data"
    args = ["train", "--channels", str(channels), "--model-dir", str(tmp_path / "m"), "--no-progress"]
    hp = [f"--hp={k}={v}" for k, v in default_hp().items()]
    assert cli_main([*args, *hp]) == 0
    assert (tmp_path / "m" / "model.tar.gz").is_file()
    assert (tmp_path / "m" / "data" / "metrics.json").is_file()
    assert "test:binary_classification_accuracy=" in capsys.readouterr().out
    bad = [*args, *hp, "--hp", "num_factors=zero"]
    assert cli_main(bad) == 2
    err = capsys.readouterr().err
    assert "hyperparameter num_factors: 'zero' is not an integer" in err
    assert "num_factors" in (tmp_path / "m" / "failure").read_text()
    assert cli_main([*args, "--hp", "oops"]) == 2
    assert "expected name=value" in capsys.readouterr().err


def test_cli_reads_feature_dim_from_the_preprocess_manifest(tmp_path: Path) -> None:
    root = make_layout(tmp_path / "j", test=False)
    channels = root / "input" / "data"
    recordio = "application/x-recordio-protobuf"
    manifest = Manifest(FEATURE_DIM, [], {}, "rating", None, {}, {}, {}, recordio, {}, {})
    write_manifest(channels, manifest)
    hp = {k: v for k, v in default_hp().items() if k != "feature_dim"}
    argv = ["train", "--channels", str(channels), "--model-dir", str(tmp_path / "m"), "--no-progress"]
    assert cli_main([*argv, *(f"--hp={k}={v}" for k, v in hp.items())]) == 0
    assert load_model_tar(tmp_path / "m" / "model.tar.gz").feature_dim == FEATURE_DIM


def test_compile_kernels_runs_a_small_job_through_the_twin(capsys: pytest.CaptureFixture[str]) -> None:
    assert training_main(["--compile-kernels"]) == 0
    assert "training kernels compiled and cached in" in capsys.readouterr().err
    assert training_main(["--compile"]) == 2  # a misspelt flag is not taken for a job folder
