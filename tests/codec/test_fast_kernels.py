"""The compiled paths for channel-sized blocks give what the numpy paths give, and refuse the same input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec import fast_kernels
from fmrec.codec.reader import read_spmatrix
from fmrec.codec.wire import decode_varints
from fmrec.codec.writer import write_spmatrix


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_varints_above_and_below_the_compiled_threshold_agree() -> None:
    rng = np.random.default_rng(0)
    edge = np.array([0, 127, 128, 2**63 - 1, 2**64 - 1], np.uint64)
    values = np.concatenate((rng.integers(0, 2**20, 30_000).astype(np.uint64), edge))
    raw = b"".join(_varint(v) for v in values.tolist())
    assert len(raw) >= 1 << 16  # the compiled path
    np.testing.assert_array_equal(decode_varints(raw), values)
    small = b"".join(_varint(v) for v in values[-100:].tolist())
    np.testing.assert_array_equal(decode_varints(small), values[-100:])


@pytest.mark.parametrize(
    ("tail", "message"), [(b"\x80", "truncated packed varints"), (b"\xff" * 10 + b"\x01", "overlong varint")]
)
def test_compiled_varints_refuse_what_numpy_refuses(tail: bytes, message: str) -> None:
    big = b"\x01" * (1 << 16) + tail
    with pytest.raises(ValueError, match=message):
        decode_varints(big)
    with pytest.raises(ValueError, match=message):
        decode_varints(b"\x01" + tail)


def test_gather_and_terminators_per_range() -> None:
    buf = np.arange(256, dtype=np.uint8)
    starts, lens = np.array([10, 200, 0]), np.array([3, 0, 2])
    np.testing.assert_array_equal(fast_kernels.gather(buf, starts, lens, 5), [10, 11, 12, 0, 1])
    raw = np.array([0x81, 0x01, 0x05, 0xFF, 0x80, 0x00], np.uint8)
    np.testing.assert_array_equal(fast_kernels.terminators_per_range(raw, np.array([3, 0, 3])), [2, 0, 1])


def test_a_ragged_channel_reads_back_exactly(tmp_path: Path) -> None:
    # rows of different lengths (the ranking objective's history columns): the generic, compiled path
    rng = np.random.default_rng(1)
    n, d = 20_000, 300_000
    lengths = rng.integers(1, 40, n)
    indptr = np.concatenate(([0], np.cumsum(lengths)))
    indices = np.concatenate([np.sort(rng.choice(d, m, replace=False)) for m in lengths.tolist()])
    X = sp.csr_matrix((rng.normal(size=indptr[-1]).astype(np.float32), indices, indptr), shape=(n, d))
    y = rng.integers(0, 2, n).astype(np.float32)
    buf = io.BytesIO()
    write_spmatrix(buf, X, y)
    (tmp_path / "part-00000.pbr").write_bytes(buf.getvalue())
    Xr, yr = read_spmatrix(tmp_path)
    assert (Xr != X).nnz == 0 and yr is not None and np.array_equal(yr, y)
