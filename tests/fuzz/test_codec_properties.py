"""Property tests of the recordIO-protobuf codec: arbitrary sparse matrices survive a round trip."""

from __future__ import annotations

import io

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmrec.codec.predictions import decode_predictions, encode_predictions
from fmrec.codec.reader import decode_request, iter_spmatrix
from fmrec.codec.wire import RecordIOError
from fmrec.codec.writer import encode_request, write_spmatrix

pytestmark = pytest.mark.slow

MAX_DIM = 2**31 - 1  # keys are int32 on the wire in SDK 2.x's writer
FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


@st.composite
def sparse_matrices(draw: st.DrawFn) -> sp.csr_matrix:
    """CSR float32 matrices with empty rows, arbitrary finite (non-unit, negative, tiny, huge) values, and
    column indices anywhere up to the int32 limit."""
    n_rows = draw(st.integers(1, 12))
    dim = draw(st.one_of(st.integers(1, 50), st.integers(51, MAX_DIM)))
    rows = []
    for _ in range(n_rows):
        cols = draw(st.lists(st.integers(0, dim - 1), max_size=min(dim, 8), unique=True))
        vals = draw(st.lists(FINITE32.filter(lambda v: v != 0), min_size=len(cols), max_size=len(cols)))
        rows.append((sorted(cols), vals))
    indptr = np.cumsum([0] + [len(c) for c, _ in rows])
    indices = np.array([c for cols, _ in rows for c in cols], dtype=np.int64)
    data = np.array(
        [v for cols, vals in rows for v in [dict(zip(cols, vals, strict=False))[c] for c in cols]]
    )
    return sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(n_rows, dim))


def assert_same(got: sp.csr_matrix, want: sp.csr_matrix) -> None:
    assert got.shape == want.shape
    assert got.dtype == np.float32
    got, want = got.tocsr(), want.tocsr()
    got.sort_indices()
    want.sort_indices()
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.data, want.data)  # bit-exact float32


def read_all(raw: bytes) -> tuple[sp.csr_matrix, np.ndarray | None]:
    parts = list(iter_spmatrix(io.BytesIO(raw)))
    X = sp.vstack([p for p, _ in parts]).tocsr().astype(np.float32)
    labels = [lab for _, lab in parts]
    return X, None if labels[0] is None else np.concatenate(labels)


SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(X=sparse_matrices(), with_labels=st.booleans(), data=st.data())
def test_file_round_trip(X: sp.csr_matrix, with_labels: bool, data: st.DataObject) -> None:
    labels = None
    if with_labels:
        labels = np.array(
            data.draw(st.lists(FINITE32, min_size=X.shape[0], max_size=X.shape[0])), dtype=np.float32
        )
    buf = io.BytesIO()
    written = write_spmatrix(buf, X, labels)
    assert written == len(buf.getvalue())
    got, got_labels = read_all(buf.getvalue())
    assert_same(got, X)
    if labels is None:
        assert got_labels is None
    else:
        assert got_labels is not None
        np.testing.assert_array_equal(got_labels, labels)


@SETTINGS
@given(X=sparse_matrices(), chunk_rows=st.integers(1, 5))
def test_streaming_read_in_chunks(X: sp.csr_matrix, chunk_rows: int) -> None:
    buf = io.BytesIO()
    write_spmatrix(buf, X, np.zeros(X.shape[0], np.float32))
    buf.seek(0)
    parts = list(iter_spmatrix(buf, chunk_rows=chunk_rows))
    assert all(part.shape[0] <= chunk_rows for part, _ in parts)
    assert_same(sp.vstack([p for p, _ in parts]).tocsr().astype(np.float32), X)


@SETTINGS
@given(X=sparse_matrices())
def test_inference_request_round_trip(X: sp.csr_matrix) -> None:
    assert_same(decode_request(encode_request(X), X.shape[1]), X)


@SETTINGS
@given(scores=st.lists(FINITE32, min_size=1, max_size=30), binary=st.booleans())
def test_predictions_round_trip(scores: list[float], binary: bool) -> None:
    s = np.array(scores, dtype=np.float32)
    labels = (s >= 0.5).astype(np.float32) if binary else None
    got = decode_predictions(encode_predictions(s, labels))
    assert [np.float32(p["score"]) for p in got] == list(s)
    if binary:
        assert [p["predicted_label"] for p in got] == list(labels)  # type: ignore[arg-type]
    else:
        assert all("predicted_label" not in p for p in got)


@SETTINGS
@given(X=sparse_matrices(), cut=st.floats(0.0, 0.999))
def test_truncated_file_is_an_error_or_a_prefix(X: sp.csr_matrix, cut: float) -> None:
    buf = io.BytesIO()
    write_spmatrix(buf, X)
    raw = buf.getvalue()
    short = raw[: int(len(raw) * cut)]
    if not short:
        return
    try:
        got, _ = read_all(short)
    except RecordIOError:
        return
    # A cut exactly between records leaves a valid file: then it must hold exactly the leading rows.
    assert_same(got, X[: got.shape[0]])
    assert got.shape[0] < X.shape[0]
