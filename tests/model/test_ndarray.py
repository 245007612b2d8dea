"""The NDArray reader on bytes built by hand from MXNet's published layout, and the writer round trip."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fmrec.model.ndarray import NDArrayFormatError, load_ndarrays, save_ndarrays


def _shape(*dims: int) -> bytes:
    return struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}q", *dims)


def _names(*names: str) -> bytes:
    out = struct.pack("<Q", len(names))
    for n in names:
        out += struct.pack("<Q", len(n)) + n.encode()
    return out


def _dense_v2(arr: np.ndarray, flag: int) -> bytes:
    return (
        struct.pack("<I", 0xF993FAC9)
        + struct.pack("<i", 0)  # default storage
        + _shape(*arr.shape)
        + struct.pack("<ii", 1, 0)  # cpu(0)
        + struct.pack("<i", flag)
        + arr.tobytes()
    )


def _header(n: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, n)


def test_reads_hand_built_fm_params() -> None:
    w0 = np.array([0.25], dtype="<f4")
    w1 = np.arange(3, dtype="<f4").reshape(3, 1)
    v = np.arange(6, dtype="<f4").reshape(3, 2) / 10
    blob = (
        _header(3)
        + _dense_v2(w0, 0)
        + _dense_v2(w1, 0)
        + _dense_v2(v, 0)
        + _names("arg:w0_weight", "arg:w1_weight", "arg:v")
    )
    out = load_ndarrays(blob)
    assert list(out) == ["arg:w0_weight", "arg:w1_weight", "arg:v"]
    np.testing.assert_array_equal(out["arg:w1_weight"], w1)
    np.testing.assert_array_equal(out["arg:v"], v)
    assert out["arg:v"].dtype == np.float32


def test_reads_other_dtypes_unnamed_lists_and_legacy_versions() -> None:
    f64 = np.array([[1.5, -2.0]], dtype="<f8")
    i64 = np.array([7, 8, 9], dtype="<i8")
    v1 = (
        struct.pack("<I", 0xF993FAC8)
        + _shape(2)
        + struct.pack("<iii", 1, 0, 4)
        + np.array([3, 4], "<i4").tobytes()
    )
    legacy = struct.pack("<I", 2) + struct.pack("<II", 1, 2) + struct.pack("<iii", 1, 0, 0)
    legacy += np.array([[5.0, 6.0]], "<f4").tobytes()
    blob = _header(4) + _dense_v2(f64, 1) + _dense_v2(i64, 6) + v1 + legacy + _names()
    out = load_ndarrays(blob)
    assert list(out) == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(out["0"], f64)
    np.testing.assert_array_equal(out["1"], i64)
    np.testing.assert_array_equal(out["2"], [3, 4])
    np.testing.assert_array_equal(out["3"], [[5.0, 6.0]])


def test_reads_row_sparse_and_csr() -> None:
    # row_sparse (4, 2) with rows 1 and 3 stored
    rsp = (
        struct.pack("<Ii", 0xF993FAC9, 1)
        + _shape(2, 2)  # storage shape
        + _shape(4, 2)
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + _shape(2)  # aux: int64 row indices
        + np.array([[1, 2], [3, 4]], "<f4").tobytes()
        + np.array([1, 3], "<i8").tobytes()
    )
    # csr (2, 3): [[0, 5, 0], [6, 0, 7]]
    csr = (
        struct.pack("<Ii", 0xF993FAC9, 2)
        + _shape(3)
        + _shape(2, 3)
        + struct.pack("<iii", 1, 0, 0)
        + struct.pack("<i", 6)
        + _shape(3)
        + struct.pack("<i", 6)
        + _shape(3)
        + np.array([5, 6, 7], "<f4").tobytes()
        + np.array([0, 1, 3], "<i8").tobytes()
        + np.array([1, 0, 2], "<i8").tobytes()
    )
    out = load_ndarrays(_header(2) + rsp + csr + _names("a", "b"))
    np.testing.assert_array_equal(out["a"], [[0, 0], [1, 2], [0, 0], [3, 4]])
    np.testing.assert_array_equal(out["b"], [[0, 5, 0], [6, 0, 7]])


def test_writer_matches_hand_built_bytes_and_round_trips() -> None:
    w0 = np.array([0.25], dtype=np.float32)
    v = np.arange(6, dtype=np.float32).reshape(3, 2)
    expected = _header(2) + _dense_v2(w0, 0) + _dense_v2(v, 0) + _names("arg:w0_weight", "arg:v")
    blob = save_ndarrays({"arg:w0_weight": w0, "arg:v": v})
    assert blob == expected
    back = load_ndarrays(blob)
    np.testing.assert_array_equal(back["arg:v"], v)
    # big-endian input is written little-endian
    be = save_ndarrays({"x": np.array([1.0, 2.0], dtype=">f4")})
    np.testing.assert_array_equal(load_ndarrays(be)["x"], [1.0, 2.0])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: struct.pack("<Q", 0x113) + b[8:], "0x112"),
        (lambda b: b[:-3], "truncated"),
        (lambda b: b[:40], "truncated"),
        (lambda b: b + b"\0", "trailing"),
        (lambda b: b[:24] + struct.pack("<I", 0xF993FAC9) + struct.pack("<i", 9) + b[32:], "storage type"),
    ],
)
def test_corrupt_files_are_rejected(mutate, message: str) -> None:
    blob = save_ndarrays({"arg:v": np.ones((2, 2), np.float32)})
    with pytest.raises(NDArrayFormatError, match=message):
        load_ndarrays(mutate(blob), "params")
