"""Hostile model artifacts (issue 14 item 5) and SageMaker's own layout without meta.json (issue 13 item 10c).

Memory bounds are checked with tracemalloc, which sees numpy's and zlib's allocations (numpy reports its data
buffers to it), so a loader that allocates a huge array and then refuses it still fails these tests.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import struct
import subprocess
import sys
import tarfile
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import fmrec.model.artifact as artifact
from fmrec.errors import InputError
from fmrec.model.artifact import FMModel, ModelArtifactError, build_symbol, load_model_tar, model_tar_bytes
from fmrec.model.fm import FMParams
from fmrec.model.ndarray import save_ndarrays

pytestmark = pytest.mark.slow

D, K = 10, 3
MiB = 1 << 20


def _model(v: np.ndarray | None = None, w0: float = 0.5) -> FMModel:
    rng = np.random.default_rng(0)
    V = rng.normal(size=(D, K)).astype(np.float32) if v is None else v
    params = FMParams(w0, rng.normal(size=D).astype(np.float32), V)
    hp = {"feature_dim": str(D), "num_factors": str(K), "predictor_type": "binary_classifier"}
    return FMModel(params, "binary_classifier", hp)


def _good_parts() -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(model_tar_bytes(_model()))) as tf:
        inner = tf.extractfile("model_algo-1").read()  # type: ignore[union-attr]
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(parts: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in parts.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes | None]], level: int = 9) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), compresslevel=level)


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _artifact(tmp_path: Path, parts: dict[str, bytes], name: str = "model.tar.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(_tar_gz([_file("model_algo-1", _zip(parts))]))
    return path


def _row_sparse_v(shape: tuple[int, int]) -> bytes:
    """An NDArray file whose arg:v is row_sparse storage with one stored row and a declared `shape`."""
    header = struct.pack("<QQQ", 0x112, 0, 3)

    def dims(*d: int) -> bytes:
        return struct.pack("<I", len(d)) + struct.pack(f"<{len(d)}q", *d)

    def dense(arr: np.ndarray) -> bytes:
        return (
            struct.pack("<Ii", 0xF993FAC9, 0)
            + dims(*arr.shape)
            + struct.pack("<iii", 1, 0, 0)
            + arr.tobytes()
        )

    v = (
        struct.pack("<Ii", 0xF993FAC9, 1)
        + dims(1, shape[1])  # storage shape: one row
        + dims(*shape)
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + dims(1)
        + np.zeros((1, shape[1]), "<f4").tobytes()
        + np.array([0], "<i8").tobytes()
    )
    names = b"".join(
        struct.pack("<Q", len(n)) + n.encode() for n in ("arg:w0_weight", "arg:w1_weight", "arg:v")
    )
    w0 = dense(np.zeros(1, "<f4"))
    w1 = dense(np.zeros((shape[0], 1), "<f4"))
    return header + w0 + w1 + v + struct.pack("<Q", 3) + names


def _dense_shape(shape: tuple[int, ...]) -> bytes:
    """An NDArray file with one dense float32 array that declares `shape` and holds 16 bytes of data."""
    body = struct.pack("<Ii", 0xF993FAC9, 0) + struct.pack("<I", len(shape))
    body += struct.pack(f"<{len(shape)}q", *shape) + struct.pack("<iii", 1, 0, 0) + b"\0" * 16
    return struct.pack("<QQQ", 0x112, 0, 1) + body + struct.pack("<Q", 1) + struct.pack("<Q", 5) + b"arg:v"


def _peak_load(path: Path) -> tuple[int, BaseException | None]:
    tracemalloc.start()
    try:
        load_model_tar(path)
        error: BaseException | None = None
    except BaseException as exc:
        error = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, error


# --- each hostile artifact: a ModelArtifactError naming the file and the fault ----------------------------


def corrupt_gzip_stream(tmp_path: Path) -> Path:
    good = bytearray(model_tar_bytes(_model()))
    for i in range(20, min(len(good) - 8, 200)):  # inside the deflate stream, past the 10-byte gzip header
        good[i] ^= 0x5A
    path = tmp_path / "model.tar.gz"
    path.write_bytes(bytes(good))
    return path


def corrupt_zip_deflate(tmp_path: Path) -> Path:
    parts = _good_parts()
    inner = bytearray(_zip(parts))
    start = inner.index(b"params") + len(b"params")  # the params member's compressed data follows its name
    for i in range(start + 4, start + 60):
        inner[i] ^= 0xFF
    path = tmp_path / "model.tar.gz"
    path.write_bytes(_tar_gz([_file("model_algo-1", bytes(inner))]))
    return path


def shape_overflow(tmp_path: Path) -> Path:
    return _artifact(tmp_path, {**_good_parts(), "params": _dense_shape((1 << 62, 4))})


def row_sparse_huge(tmp_path: Path) -> Path:
    """1-2 KB that declares v of shape (2625, 2^18): 2.7 GB dense."""
    parts = _good_parts()
    meta = json.loads(parts["meta.json"])
    meta["training_parameters"].update(feature_dim="2625", num_factors=str(1 << 18))
    symbol = json.dumps(build_symbol("binary_classifier", 2625, 1 << 18)).encode()
    parts = {"symbol.json": symbol, "params": _row_sparse_v((2625, 1 << 18)), "meta.json": json.dumps(meta)}
    return _artifact(tmp_path, {k: v if isinstance(v, bytes) else v.encode() for k, v in parts.items()})


def row_sparse_beyond_declared(tmp_path: Path) -> Path:
    """meta.json and symbol.json say (10, 3), the params' row_sparse v declares (2625, 2^18)."""
    return _artifact(tmp_path, {**_good_parts(), "params": _row_sparse_v((2625, 1 << 18))})


def zip_bomb(tmp_path: Path) -> Path:
    """params inflates to 256 MiB of zeros (256 KB compressed) in a model declaring 10 x 3."""
    return _artifact(tmp_path, {**_good_parts(), "params": bytes(256 * MiB)})


def gzip_bomb(tmp_path: Path) -> Path:
    """model_algo-1 is 256 MiB of zeros: the tar.gz is about 256 KB."""
    path = tmp_path / "model.tar.gz"
    path.write_bytes(_tar_gz([_file("model_algo-1", bytes(256 * MiB))], level=1))
    return path


def nan_weights(tmp_path: Path) -> Path:
    v = np.ones((D, K), np.float32)
    v[3, 1] = np.nan
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_bytes(_model(v)))
    return path


def inf_bias(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    path.write_bytes(model_tar_bytes(_model(w0=float("inf"))))
    return path


def float64_overflow(tmp_path: Path) -> Path:
    """A float64 weight of 1e300 is finite as float64 and infinite as the float32 the model serves."""
    parts = _good_parts()
    rng = np.random.default_rng(1)
    v = rng.normal(size=(D, K))
    v[0, 0] = 1e300
    params = save_ndarrays(
        {"arg:w0_weight": np.zeros(1), "arg:w1_weight": np.zeros((D, 1)), "arg:v": v.astype(np.float64)}
    )
    return _artifact(tmp_path, {**parts, "params": params})


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "corrupt_gzip_stream": (corrupt_gzip_stream, "not a readable tar.gz"),
    "corrupt_zip_deflate": (corrupt_zip_deflate, "not a readable zip archive"),
    "shape_overflow": (shape_overflow, "declares shape"),
    "row_sparse_huge": (row_sparse_huge, "parameters allowed"),
    "row_sparse_beyond_declared": (row_sparse_beyond_declared, "params: declares .* bytes uncompressed"),
    "zip_bomb": (zip_bomb, "params: declares 268,435,456 bytes uncompressed, more than the"),
    "gzip_bomb": (gzip_bomb, "not a readable zip archive"),
    "nan_weights": (nan_weights, r"v holds 1 NaN or infinite"),
    "inf_bias": (inf_bias, r"w0_weight holds 1 NaN or infinite"),
    "float64_overflow": (float64_overflow, r"v holds 1 NaN or infinite"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_artifact_is_refused_within_bounded_memory(tmp_path: Path, case: str) -> None:
    make, message = HOSTILE[case]
    path = make(tmp_path)
    peak, error = _peak_load(path)
    assert isinstance(error, InputError), repr(error)  # the CLI's one-line error, exit 2
    assert str(path) in str(error)
    assert re.search(message, str(error)), str(error)
    assert peak < 96 * MiB, f"peak {peak / MiB:.0f} MiB while refusing {case}"


@pytest.mark.parametrize("case", ["corrupt_gzip_stream", "shape_overflow", "row_sparse_huge", "nan_weights"])
def test_serve_endpoint_refuses_a_hostile_model_in_one_line(tmp_path: Path, case: str) -> None:
    path = HOSTILE[case][0](tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "fmrec_cli", "serve", "endpoint", "--model", str(path), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(path) in lines[0], proc.stderr


# --- tar members that are not regular files (issue 14 item 13) ----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (tarfile.SYMTYPE, "model_algo-1 is a symbolic link to 'elsewhere'; expected a regular file"),
        (tarfile.DIRTYPE, "model_algo-1 is a directory; expected a regular file"),
        (tarfile.CHRTYPE, "model_algo-1 is a device; expected a regular file"),
        (tarfile.LNKTYPE, "model_algo-1 is a hard link to 'elsewhere'; expected a regular file"),
    ],
)
def test_non_file_members_are_named(tmp_path: Path, kind: bytes, expected: str) -> None:
    info = tarfile.TarInfo("model_algo-1")
    info.type = kind
    info.linkname = "elsewhere"
    path = tmp_path / "model.tar.gz"
    path.write_bytes(_tar_gz([(info, None)]))
    with pytest.raises(ModelArtifactError, match=expected):
        load_model_tar(path)


# --- SageMaker's own layout: symbol.json and params, no meta.json (issue 13 item 10c) ----------------------


def test_sagemaker_layout_without_meta_json_loads_from_symbol(tmp_path: Path) -> None:
    """What SageMaker FM writes: model.tar.gz > model_algo-1 > a zip of symbol.json and params only."""
    parts = _good_parts()
    path = _artifact(tmp_path, {"symbol.json": parts["symbol.json"], "params": parts["params"]})
    model = load_model_tar(path)
    expected = _model()
    assert model.predictor_type == "binary_classifier"
    assert (model.feature_dim, model.num_factors) == (D, K)
    np.testing.assert_array_equal(model.params.V, expected.params.V)
    assert model.hyperparameters == {
        "feature_dim": "10",
        "num_factors": "3",
        "predictor_type": "binary_classifier",
    }


def test_sagemaker_layout_with_a_symbol_without_shapes(tmp_path: Path) -> None:
    """A symbol.json that records no __shape__ (MXNet leaves it out unless set): dims come from params."""
    parts = _good_parts()
    symbol = json.loads(parts["symbol.json"])
    for node in symbol["nodes"]:
        node.get("attrs", {}).pop("__shape__", None)
    symbol["nodes"][-1]["op"] = "LinearRegressionOutput"
    path = _artifact(tmp_path, {"symbol.json": json.dumps(symbol).encode(), "params": parts["params"]})
    model = load_model_tar(path)
    assert model.predictor_type == "regressor" and (model.feature_dim, model.num_factors) == (D, K)


def test_symbol_and_meta_must_agree(tmp_path: Path) -> None:
    parts = _good_parts()
    symbol = json.dumps(build_symbol("binary_classifier", D + 1, K)).encode()
    path = _artifact(tmp_path, {**parts, "symbol.json": symbol})
    with pytest.raises(ModelArtifactError, match=r"meta\.json feature_dim 10 but symbol\.json declares 11"):
        load_model_tar(path)


def test_neither_meta_nor_symbol(tmp_path: Path) -> None:
    path = _artifact(tmp_path, {"params": _good_parts()["params"]})
    with pytest.raises(ModelArtifactError, match=r"missing meta\.json and symbol\.json"):
        load_model_tar(path)


def test_num_factors_must_match_the_params(tmp_path: Path) -> None:
    parts = _good_parts()
    meta = json.loads(parts["meta.json"])
    meta["training_parameters"]["num_factors"] = "4"
    symbol = json.loads(parts["symbol.json"])
    for node in symbol["nodes"]:
        node.get("attrs", {}).pop("__shape__", None)
    path = _artifact(
        tmp_path,
        {**parts, "meta.json": json.dumps(meta).encode(), "symbol.json": json.dumps(symbol).encode()},
    )
    with pytest.raises(ModelArtifactError, match="num_factors 4 but params hold 3 factors"):
        load_model_tar(path)


def test_a_model_of_realistic_size_still_loads(tmp_path: Path) -> None:
    """The caps leave room: a 200,000 x 64 model (the ml-25m shape is about 221,588 x 64) loads."""
    rng = np.random.default_rng(2)
    dim, k = 200_000, 64
    params = FMParams(
        0.1, rng.normal(size=dim).astype(np.float32), rng.normal(size=(dim, k)).astype(np.float32)
    )
    hp = {"feature_dim": str(dim), "num_factors": str(k), "predictor_type": "regressor"}
    path = tmp_path / "big.tar.gz"
    path.write_bytes(model_tar_bytes(FMModel(params, "regressor", hp)))
    model = load_model_tar(path)
    assert model.params.V.shape == (dim, k)


def test_decompressed_size_of_the_tar_stream_is_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A huge member that is not model_algo-1 is skipped, but never past the archive cap."""
    monkeypatch.setattr(artifact, "MAX_ARCHIVE_BYTES", 4 * MiB)
    path = tmp_path / "model.tar.gz"
    path.write_bytes(_tar_gz([_file("padding", bytes(8 * MiB)), _file("model_algo-1", _zip(_good_parts()))]))
    with pytest.raises(ModelArtifactError, match="decompresses to more than 4,194,304 bytes"):
        load_model_tar(path)
