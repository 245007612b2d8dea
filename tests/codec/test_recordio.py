"""recordIO-protobuf codec: SDK 2.x golden bytes, round trips, streaming and malformed input."""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fmrec.codec import reader
from fmrec.codec.predictions import decode_predictions, encode_predictions
from fmrec.codec.reader import decode_request, iter_records, iter_spmatrix, read_spmatrix
from fmrec.codec.wire import MAGIC_LE, RecordIOError
from fmrec.codec.writer import WRITE_CHUNK_ROWS, encode_request, write_spmatrix, write_spmatrix_file
from fmrec.errors import InputError

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "codec"
CASES = sorted(p.stem for p in GOLDEN.glob("*.pbr"))


def load_case(name: str) -> tuple[sp.csr_matrix, np.ndarray | None]:
    z = np.load(GOLDEN / f"{name}.npz")
    mat = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return mat, (z["labels"] if "labels" in z.files else None)


def encode(mat: sp.spmatrix, labels: np.ndarray | None = None, **kw: int) -> bytes:
    buf = io.BytesIO()
    n = write_spmatrix(buf, mat, labels, **kw)
    assert n == len(buf.getvalue())
    return buf.getvalue()


def test_golden_cases_present() -> None:
    assert {
        "onehot_f32",
        "onehot_nolabel",
        "empty_and_nonunit",
        "many_nonzeros",
        "large_indices",
        "float64",
    } <= set(CASES)
    assert {"int_values", "all_empty"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("chunk_rows", [WRITE_CHUNK_ROWS, 5, 1])
def test_writer_is_byte_identical_to_sdk2(name: str, chunk_rows: int) -> None:
    mat, labels = load_case(name)
    assert encode(mat, labels, chunk_rows=chunk_rows) == (GOLDEN / f"{name}.pbr").read_bytes()


@pytest.mark.parametrize("name", CASES)
def test_reader_decodes_sdk2_files(name: str) -> None:
    mat, labels = load_case(name)
    got, got_labels = read_spmatrix(GOLDEN / f"{name}.pbr")
    assert got.dtype == np.float32 and got.shape == mat.shape
    assert np.array_equal(
        got.toarray() if mat.shape[1] < 10**6 else got.indices,
        (mat.astype(np.float32).toarray() if mat.shape[1] < 10**6 else mat.indices),
    )
    assert np.array_equal(got.indptr, mat.indptr)
    assert np.array_equal(got.data, mat.data.astype(np.float32))
    if labels is None:
        assert got_labels is None
    else:
        assert got_labels is not None and np.array_equal(got_labels, labels.astype(np.float32))


def test_large_indices_make_long_varints() -> None:
    mat, _ = load_case("large_indices")
    assert mat.shape[1] > 2**32 and mat.indices.max() > 2**35


rows_strategy = st.lists(
    st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2**40),
            st.floats(width=32, allow_nan=False, allow_infinity=False),
        ),
        max_size=8,
        unique_by=lambda t: t[0],
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(
    rows=rows_strategy, n_cols_extra=st.integers(1, 2**20), with_labels=st.booleans(), chunk=st.integers(1, 9)
)
def test_round_trip_property(
    rows: list[list[tuple[int, float]]], n_cols_extra: int, with_labels: bool, chunk: int
) -> None:
    n_cols = max((k for row in rows for k, _ in row), default=0) + n_cols_extra
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows]))).astype(np.int64)
    indices = np.array([k for r in rows for k, _ in sorted(r)], dtype=np.int64)
    data = np.array([v for r in rows for _, v in sorted(r)], dtype=np.float32)
    mat = sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_cols))
    labels = np.linspace(-2, 5, len(rows)).astype(np.float32) if with_labels else None
    body = encode(mat, labels, chunk_rows=chunk)
    assert body == encode(mat, labels)  # chunking never changes the bytes
    chunks = list(iter_spmatrix(io.BytesIO(body), chunk_rows=chunk))
    if not rows:
        assert chunks == []
        return
    got = sp.vstack([c for c, _ in chunks], format="csr")
    assert got.shape == mat.shape
    assert np.array_equal(got.indptr, mat.indptr)
    assert np.array_equal(got.indices, mat.indices)
    assert np.array_equal(got.data.view(np.uint32), mat.data.view(np.uint32))  # bit-exact, -0.0 included
    if with_labels:
        assert np.array_equal(np.concatenate([lab for _, lab in chunks]), labels)
    else:
        assert all(lab is None for _, lab in chunks)


@pytest.mark.slow
def test_streaming_in_small_blocks_matches_whole_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    mat = sp.random(3000, 5000, density=0.002, format="csr", random_state=2, dtype=np.float32)
    labels = rng.random(3000).astype(np.float32)
    path = tmp_path / "part.pbr"
    write_spmatrix_file(path, mat, labels)
    parts = list(iter_records(path, block_bytes=1000))
    assert len(parts) > 20  # many blocks, records split across block edges
    counts = np.concatenate([p[0] for p in parts])
    assert np.array_equal(counts, np.diff(mat.indptr))
    chunks = list(iter_spmatrix(path, chunk_rows=700))
    assert [c.shape[0] for c, _ in chunks] == [700, 700, 700, 700, 200]
    got = sp.vstack([c for c, _ in chunks], format="csr")
    assert (got != mat).nnz == 0
    assert np.array_equal(np.concatenate([lab for _, lab in chunks]), labels)


def test_magic_word_inside_a_payload_is_not_a_record_start() -> None:
    magic_as_float = np.frombuffer(MAGIC_LE, dtype="<f4")[0]
    mat = sp.csr_matrix(
        np.array([[magic_as_float, 0, 1.0], [0, magic_as_float, magic_as_float]], dtype=np.float32)
    )
    body = encode(mat, np.array([1, 0], np.float32))
    assert body.count(MAGIC_LE) > 2
    got, _ = next(iter_spmatrix(io.BytesIO(body)))
    assert np.array_equal(got.toarray().view(np.uint32), mat.toarray().view(np.uint32))


def test_read_folder_in_name_order(tmp_path: Path) -> None:
    a = sp.csr_matrix(np.eye(3, 6, dtype=np.float32))
    b = sp.csr_matrix(np.eye(2, 6, k=3, dtype=np.float32))
    write_spmatrix_file(tmp_path / "part-00001.pbr", b, np.zeros(2, np.float32))
    write_spmatrix_file(tmp_path / "part-00000.pbr", a, np.ones(3, np.float32))
    got, labels = read_spmatrix(tmp_path)
    assert np.array_equal(got.toarray(), np.vstack([a.toarray(), b.toarray()]))
    assert labels is not None and labels.tolist() == [1, 1, 1, 0, 0]


def test_int32_matrix_is_written_as_int32_tensor() -> None:
    mat64 = sp.csr_matrix(np.array([[0, 3, -2], [7, 0, 0]], dtype=np.int64))
    assert encode(mat64.astype(np.int32)) == encode(mat64)
    got, _ = next(iter_spmatrix(io.BytesIO(encode(mat64))))
    assert got.toarray().tolist() == [[0, 3, -2], [7, 0, 0]]


def test_whole_file_read_grows_past_four_bytes_an_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_spmatrix sizes its arrays for a Float32 value's 4 bytes an entry; Int32 values are varints (1 byte
    for small ones), so a file of them holds more entries than that and the arrays must grow, in order."""
    rng = np.random.default_rng(4)
    dense = rng.integers(1, 4, (600, 300)) * (rng.random((600, 300)) < 0.9)
    mat = sp.csr_matrix(dense.astype(np.int32))
    path = tmp_path / "part.pbr"
    labels = np.arange(600, dtype=np.float32)
    write_spmatrix_file(path, mat, labels)
    assert mat.nnz > path.stat().st_size // 4
    orig = reader.iter_records
    monkeypatch.setattr(reader, "iter_records", lambda src, path_hint=None: orig(src, path_hint, 4096))
    got, got_labels = read_spmatrix(path)
    assert got.dtype == np.float32 and got.indices.dtype == np.int32 and got.indptr.dtype == np.int32
    assert np.array_equal(got.toarray(), dense)
    assert got_labels is not None and np.array_equal(got_labels, labels)
    streamed = sp.vstack([m for m, _ in iter_spmatrix(path, chunk_rows=128)], format="csr")
    assert np.array_equal(streamed.indptr, got.indptr) and np.array_equal(streamed.indices, got.indices)


def test_reusing_reads_decodes_a_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside reusing_reads a file (or a hard link of it) is decoded once; a rewritten file is decoded again,
    and outside the block every read decodes."""
    mat = sp.csr_matrix(np.eye(4, 7, dtype=np.float32))
    path = tmp_path / "a" / "part.pbr"
    path.parent.mkdir()
    write_spmatrix_file(path, mat, np.arange(4, dtype=np.float32))
    (tmp_path / "b").mkdir()
    os.link(path, tmp_path / "b" / "part.pbr")
    decoded: list[Path] = []
    read_file = reader._read_file

    def counting(p: Path) -> Any:
        decoded.append(p)
        return read_file(p)

    monkeypatch.setattr(reader, "_read_file", counting)
    with reader.reusing_reads():
        first, _ = read_spmatrix(tmp_path / "a")
        again, labels = read_spmatrix(tmp_path / "b")
        assert again is first and decoded == [path]
        assert labels is not None and labels.tolist() == [0, 1, 2, 3]
        write_spmatrix_file(path, sp.csr_matrix(np.eye(5, 7, dtype=np.float32)), None)  # a new file
        assert read_spmatrix(tmp_path / "a")[0].shape == (5, 7) and len(decoded) == 2
        assert read_spmatrix(tmp_path / "b")[0] is first  # the link still holds the old bytes
    read_spmatrix(tmp_path / "b")
    assert len(decoded) == 3


def test_writer_rejects_what_sdk2_rejects() -> None:
    with pytest.raises(TypeError):
        write_spmatrix(io.BytesIO(), np.eye(2, dtype=np.float32))
    with pytest.raises(ValueError, match="Unsupported dtype"):
        write_spmatrix(io.BytesIO(), sp.csr_matrix(np.eye(2, dtype=np.uint8)))
    with pytest.raises(ValueError, match="Label shape"):
        write_spmatrix(io.BytesIO(), sp.csr_matrix(np.eye(2, dtype=np.float32)), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="out of range"):
        write_spmatrix(io.BytesIO(), sp.csr_matrix(np.array([[2**40]], dtype=np.int64)))


def _golden_bytes() -> bytes:
    return (GOLDEN / "onehot_f32.pbr").read_bytes()


def test_bad_magic_names_file_record_and_offset(tmp_path: Path) -> None:
    body = bytearray(_golden_bytes())
    # record 3 starts after three records of equal structure? find it by walking the framing
    offsets = []
    pos = 0
    while pos < len(body):
        offsets.append(pos)
        (length,) = struct.unpack_from("<I", body, pos + 4)
        pos += 8 + length + (-length) % 4
    body[offsets[3]] ^= 0xFF
    path = tmp_path / "bad.pbr"
    path.write_bytes(bytes(body))
    with pytest.raises(RecordIOError, match=rf"bad\.pbr: record 3 at byte offset {offsets[3]}: bad magic"):
        read_spmatrix(path)
    assert issubclass(RecordIOError, InputError)


@pytest.mark.parametrize("cut", [3, 7, 20])
def test_truncated_file_names_the_last_record(tmp_path: Path, cut: int) -> None:
    body = _golden_bytes()
    path = tmp_path / "cut.pbr"
    path.write_bytes(body[:-cut])
    n_records = 64
    with pytest.raises(
        RecordIOError, match=rf"cut\.pbr: record {n_records - 1} at byte offset \d+: truncated"
    ):
        read_spmatrix(path)


def test_garbage_payload_is_a_clear_error(tmp_path: Path) -> None:
    payload = b"\x0a\x05\xff\xff\xff\xff\xff"
    path = tmp_path / "garbage.pbr"
    path.write_bytes(MAGIC_LE + struct.pack("<I", len(payload)) + payload + b"\x00")
    with pytest.raises(RecordIOError, match=r"garbage\.pbr: record 0 at byte offset 0: malformed record"):
        read_spmatrix(path)


def test_missing_file_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_spmatrix(tmp_path / "nope.pbr")
    with pytest.raises(InputError, match="holds no recordIO"):
        read_spmatrix(tmp_path)


def test_request_round_trip_sparse_and_dense() -> None:
    mat = sp.csr_matrix(np.array([[1, 0, 0, 1], [0, 2.5, 0, 0]], dtype=np.float32))
    assert np.array_equal(decode_request(encode_request(mat), 4).toarray(), mat.toarray())
    # a dense record: Float32 values only, no keys and no shape
    tensor = b"\x0a\x10" + np.array([0, 1, 0, 3], dtype="<f4").tobytes()
    value = b"\x12" + bytes([len(tensor)]) + tensor
    entry = b"\x0a\x06values\x12" + bytes([len(value)]) + value
    rec = b"\x0a" + bytes([len(entry)]) + entry
    body = MAGIC_LE + struct.pack("<I", len(rec)) + rec + bytes((-len(rec)) % 4)
    assert decode_request(body, 4).toarray().tolist() == [[0, 1, 0, 3]]
    with pytest.raises(RecordIOError, match="the model expects 5"):
        decode_request(body, 5)
    with pytest.raises(RecordIOError, match="empty body"):
        decode_request(b"", 4)


def test_predictions_round_trip() -> None:
    body = encode_predictions([0.25, 0.75], [0, 1])
    assert decode_predictions(body) == [
        {"score": 0.25, "predicted_label": 0.0},
        {"score": 0.75, "predicted_label": 1.0},
    ]
    assert decode_predictions(encode_predictions(np.array([1.5]))) == [{"score": 1.5}]
    assert len(body) % 4 == 0


def test_long_runs_decode_with_varying_varint_boundaries() -> None:
    """Runs of equal-length records take the vectorized path; keys (1, 200, 300) and (100, 127, 20000) take
    the same number of bytes with different varint boundaries."""
    keys = np.array([[1, 200, 300], [100, 127, 20000]] * 50 + [[5, 7, 9]] * 40)
    n = keys.shape[0]
    values = np.arange(1, 3 * n + 1, dtype=np.float32)
    mat = sp.csr_matrix((values, keys.ravel(), np.arange(0, 3 * n + 1, 3)), shape=(n, 30000))
    labels = np.linspace(0, 1, n).astype(np.float32)
    body = encode(mat, labels)
    got, got_labels = next(iter_spmatrix(io.BytesIO(body)))
    assert (got != mat).nnz == 0 and np.array_equal(got.data, mat.data)
    assert got_labels is not None and np.array_equal(got_labels, labels)


def test_a_deviating_record_inside_a_run_is_not_missed() -> None:
    a = sp.csr_matrix((np.ones(80, np.float32), np.tile([1, 200], 40), np.arange(0, 81, 2)), shape=(40, 250))
    b = sp.csr_matrix((np.ones(2, np.float32), [1, 200], [0, 2]), shape=(1, 251))  # same length, other shape
    body = encode(a[:20]) + encode(b) + encode(a[20:])
    with pytest.raises(RecordIOError, match="record 20: feature shape 251, earlier records have 250"):
        list(iter_spmatrix(io.BytesIO(body)))


def _record_offsets(body: bytes) -> list[int]:
    offsets, pos = [], 0
    while pos < len(body):
        offsets.append(pos)
        (length,) = struct.unpack_from("<I", body, pos + 4)
        pos += 8 + length + (-length) % 4
    return offsets


def test_threaded_decode_matches_one_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks decoded on worker threads come back in file order, equal to a one-thread read."""
    mat = sp.random(4000, 3000, density=0.004, format="csr", random_state=5, dtype=np.float32)
    path = tmp_path / "part.pbr"
    write_spmatrix_file(path, mat, np.arange(4000, dtype=np.float32))
    threaded = list(iter_records(path, block_bytes=2048))
    monkeypatch.setattr(reader, "_DECODE_THREADS", 1)
    serial = list(iter_records(path, block_bytes=2048))
    assert len(threaded) == len(serial) > 50
    for a, b in zip(threaded, serial, strict=True):
        assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


def test_earlier_bad_record_is_reported_before_a_later_framing_error(tmp_path: Path) -> None:
    """A malformed record in an early block wins over a bad magic word further on, as in a serial read,
    even though the later block is framed while the earlier one is still being decoded."""
    mat = sp.random(2000, 3000, density=0.004, format="csr", random_state=6, dtype=np.float32)
    buf = io.BytesIO()
    write_spmatrix(buf, mat, np.zeros(2000, dtype=np.float32))
    body = bytearray(buf.getvalue())
    offsets = _record_offsets(bytes(body))
    body[offsets[20] + 8 : offsets[20] + 12] = b"\x0a\x05\xff\xff"  # record 20's payload: malformed
    body[offsets[40]] ^= 0xFF  # record 40, in the next block or the one after: bad magic
    path = tmp_path / "two_faults.pbr"
    path.write_bytes(bytes(body))
    with pytest.raises(RecordIOError, match=r"two_faults\.pbr: record 20 at byte offset \d+"):
        list(iter_records(path, block_bytes=4096))
