"""model.tar.gz round trip and the errors a broken artifact gives."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fmrec.model.artifact import FMModel, ModelArtifactError, load_model_tar, model_tar_bytes, save_model_tar
from fmrec.model.fm import FMParams
from fmrec.model.ndarray import load_ndarrays, save_ndarrays


def _model(ptype: str = "binary_classifier") -> FMModel:
    rng = np.random.default_rng(0)
    params = FMParams(
        0.5, rng.normal(size=10).astype(np.float32), rng.normal(size=(10, 3)).astype(np.float32)
    )
    return FMModel(
        params, ptype, {"feature_dim": "10", "num_factors": "3", "predictor_type": ptype, "epochs": "5"}
    )


def _parts(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tf:
        names = tf.getnames()
        assert names == ["model_algo-1"]
        inner = tf.extractfile("model_algo-1").read()  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _write(path: Path, parts: dict[str, bytes]) -> None:
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w") as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    with tarfile.open(path, "w:gz") as tf:
        info = tarfile.TarInfo("model_algo-1")
        info.size = len(zbuf.getvalue())
        tf.addfile(info, io.BytesIO(zbuf.getvalue()))


@pytest.mark.parametrize("ptype", ["binary_classifier", "regressor"])
def test_round_trip(tmp_path: Path, ptype: str) -> None:
    model = _model(ptype)
    path = tmp_path / "model.tar.gz"
    save_model_tar(model, path)
    back = load_model_tar(path)
    assert back.predictor_type == ptype
    assert back.params.w0 == pytest.approx(0.5)
    np.testing.assert_array_equal(back.params.w, model.params.w)
    np.testing.assert_array_equal(back.params.V, model.params.V)
    assert back.meta["training_parameters"]["feature_dim"] == "10"
    assert back.hyperparameters["epochs"] == "5"
    parts = _parts(path)
    assert set(parts) == {"symbol.json", "params", "meta.json"}
    arrays = load_ndarrays(parts["params"])
    assert {k: v.shape for k, v in arrays.items() if v is not None} == {
        "arg:w0_weight": (1,),
        "arg:w1_weight": (10, 1),
        "arg:v": (10, 3),
    }
    symbol = json.loads(parts["symbol.json"])
    ops = [n["op"] for n in symbol["nodes"]]
    assert ("LogisticRegressionOutput" if ptype == "binary_classifier" else "LinearRegressionOutput") in ops
    assert [symbol["nodes"][i]["name"] for i in symbol["arg_nodes"]] == [
        "data",
        "w1_weight",
        "w0_weight",
        "v",
        "out_label",
    ]


def test_bytes_are_deterministic() -> None:
    assert model_tar_bytes(_model()) == model_tar_bytes(_model())


def test_meta_filled_from_params_when_empty(tmp_path: Path) -> None:
    m = _model()
    save_model_tar(FMModel(m.params, "regressor", {}, {}), tmp_path / "m.tar.gz")
    tp = load_model_tar(tmp_path / "m.tar.gz").meta["training_parameters"]
    assert tp == {"feature_dim": "10", "num_factors": "3", "predictor_type": "regressor"}


def test_predictor_type_from_symbol_when_meta_lacks_it(tmp_path: Path) -> None:
    save_model_tar(_model(), tmp_path / "a.tar.gz")
    parts = _parts(tmp_path / "a.tar.gz")
    parts["meta.json"] = json.dumps({"training_parameters": {"feature_dim": "10"}}).encode()
    _write(tmp_path / "b.tar.gz", parts)
    assert load_model_tar(tmp_path / "b.tar.gz").predictor_type == "binary_classifier"


def test_broken_artifacts(tmp_path: Path) -> None:
    save_model_tar(_model(), tmp_path / "a.tar.gz")
    good = _parts(tmp_path / "a.tar.gz")
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(ModelArtifactError, match=r"bad\.tar\.gz: not a readable tar\.gz"):
        load_model_tar(bad)
    with pytest.raises(ModelArtifactError, match="cannot read"):
        load_model_tar(tmp_path / "missing.tar.gz")
    _write(bad, {k: v for k, v in good.items() if k != "params"})
    with pytest.raises(ModelArtifactError, match="missing params"):
        load_model_tar(bad)
    _write(bad, {**good, "params": save_ndarrays({"arg:v": np.ones((10, 3), np.float32)})})
    with pytest.raises(ModelArtifactError, match="no arg:w0_weight"):
        load_model_tar(bad)
    _write(bad, {**good, "meta.json": b"{"})
    with pytest.raises(ModelArtifactError, match="not valid JSON"):
        load_model_tar(bad)
    _write(bad, {**good, "meta.json": json.dumps({"training_parameters": {"feature_dim": "11"}}).encode()})
    with pytest.raises(ModelArtifactError, match="feature_dim 11"):
        load_model_tar(bad)
    _write(bad, {**good, "params": good["params"][:-5]})
    with pytest.raises(Exception, match="truncated"):
        load_model_tar(bad)
