"""The model load holds one copy of V: the same parsed model as a copy-by-copy parse, within ~1.2x params."""

from __future__ import annotations

import io
import tarfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fmrec.model.artifact import FMModel, load_model_bytes, load_model_tar, model_tar_bytes
from fmrec.model.fm import FMParams
from fmrec.model.ndarray import load_ndarrays, save_ndarrays

pytestmark = pytest.mark.slow


def _model(dim: int, k: int, seed: int = 0) -> FMModel:
    rng = np.random.default_rng(seed)
    params = FMParams(
        -0.25, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, k)).astype(np.float32)
    )
    hp = {"feature_dim": str(dim), "num_factors": str(k), "predictor_type": "regressor", "epochs": "3"}
    return FMModel(params, "regressor", hp, {"note": "x"})


def _params_member(data: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        inner = tf.extractfile("model_algo-1").read()  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        return zf.read("params")


def _replace_params(data: bytes, params: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        inner = tf.extractfile("model_algo-1").read()  # type: ignore[union-attr]
    zbuf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(inner)) as src, zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, params if name == "params" else src.read(name))
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz") as tf:
        info = tarfile.TarInfo("model_algo-1")
        info.size = len(zbuf.getvalue())
        tf.addfile(info, io.BytesIO(zbuf.getvalue()))
    return tbuf.getvalue()


def _assert_identical(got: FMModel, params: bytes, model: FMModel) -> None:
    """Bit for bit what a copying parse (load_ndarrays with copies, then astype float32) gives."""
    ref = load_ndarrays(params)
    ref_v = np.asarray(ref["arg:v"]).astype(np.float32)
    ref_w = np.asarray(ref["arg:w1_weight"]).astype(np.float32).reshape(-1)
    assert got.params.V.dtype == np.float32 and got.params.w.dtype == np.float32
    assert got.params.V.tobytes() == ref_v.tobytes() and got.params.w.tobytes() == ref_w.tobytes()
    assert got.params.w0 == float(np.asarray(ref["arg:w0_weight"]).astype(np.float64)[0])
    assert got.params.V.flags.c_contiguous and got.params.V.flags.aligned and got.params.V.flags.writeable
    assert (got.predictor_type, got.hyperparameters, got.meta["note"]) == (
        model.predictor_type,
        {**model.hyperparameters},
        "x",
    )


def test_the_parsed_model_is_identical_from_a_file_and_from_bytes(tmp_path: Path) -> None:
    model = _model(3001, 7)
    data = model_tar_bytes(model)
    path = tmp_path / "model.tar.gz"
    path.write_bytes(data)
    for got in (load_model_tar(path), load_model_bytes(data)):
        _assert_identical(got, _params_member(data), model)
        np.testing.assert_array_equal(got.params.V, model.params.V)


def test_float64_params_convert_exactly_as_before(tmp_path: Path) -> None:
    """A params file of float64 arrays (MXNet can write any dtype): converted, not viewed, same values."""
    model = _model(501, 5, seed=1)
    rng = np.random.default_rng(3)
    params = save_ndarrays(
        {
            "arg:w0_weight": np.asarray([0.125]),
            "arg:w1_weight": rng.normal(size=(501, 1)),
            "arg:v": rng.normal(size=(501, 5)),
        }
    )
    data = _replace_params(model_tar_bytes(model), params)
    _assert_identical(load_model_bytes(data), params, model)


def test_views_share_the_buffer_and_copies_do_not() -> None:
    buffer = bytearray(save_ndarrays({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}))
    view = load_ndarrays(buffer, copy=False)["a"]
    copied = load_ndarrays(buffer)["a"]
    assert view is not None and copied is not None
    assert np.shares_memory(view, np.frombuffer(buffer, np.uint8)) and view.flags.writeable
    assert not np.shares_memory(copied, np.frombuffer(buffer, np.uint8))
    np.testing.assert_array_equal(view, copied)


def test_loading_holds_one_copy_of_the_parameters(tmp_path: Path) -> None:
    """tracemalloc sees numpy's, zlib's and the readers' buffers: the load's peak is the params member and
    little more (it was four times that: the archive, the member read whole, the parsed copy, astype's)."""
    model = _model(60_000, 128)  # 30.7 MB of V: model_algo-1 is spooled to disk, as at full scale
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_bytes(model))
    params_bytes = len(_params_member(path.read_bytes()))
    tracemalloc.start()
    try:
        got = load_model_tar(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got.params.V, model.params.V)
    assert peak < 1.2 * params_bytes, f"peak {peak / 2**20:.1f} MiB for {params_bytes / 2**20:.1f} MiB"
