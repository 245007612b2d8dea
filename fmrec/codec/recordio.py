"""RecordIO-protobuf (aialgs.data.Record) codec, byte-identical to SageMaker SDK 2.x, vectorized numpy."""

from __future__ import annotations

import io
import itertools
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.io_utils import atomic_open

MAGIC = 0xCED7230A
_MAGIC_LE = struct.pack("<I", MAGIC)
_VALUES_KEY = b"\x0a\x06values"  # map entry field 1 (key) = "values"

# Value.oneof field numbers (wire type 2): Float32Tensor 2, Float64Tensor 3, Int32Tensor 7.
_TENSOR_TAG = {"Float32": 0x12, "Float64": 0x1A, "Int32": 0x3A}
_TAG_KIND = {v: k for k, v in _TENSOR_TAG.items()}
_ITEMSIZE = {"Float32": 4, "Float64": 8}
_NP_DTYPE: dict[str, Any] = {"Float32": np.dtype("<f4"), "Float64": np.dtype("<f8")}

# Shapes are kept as int64: a declared dimension above this is refused, not wrapped to a negative number.
MAX_DIM = 2**63 - 1

WRITE_CHUNK_ROWS = 131072
_READ_BLOCK_BYTES = 8 << 20


class RecordIOError(InputError):
    """Malformed recordIO-protobuf; the message names the file, record number and byte offset."""

    def __init__(self, source: str, record: int, offset: int, problem: str) -> None:
        self.source, self.record, self.offset, self.problem = source, record, offset, problem
        where = f"record {record} at byte offset {offset}" if offset >= 0 else f"record {record}"
        super().__init__(f"{source}: {where}: {problem}")


# --------------------------------------------------------------------------------------------- varints


def _varint_len(values: np.ndarray) -> np.ndarray:
    """Bytes each uint64 takes as a protobuf varint (1..10)."""
    v = values.astype(np.uint64, copy=False)
    n = np.ones(v.shape, dtype=np.int64)
    top = int(v.max()) if v.size else 0
    for k in range(1, 10):
        if top < 1 << (7 * k):
            break
        n += v >= np.uint64(1 << (7 * k))
    return n


def _vlen(x: int) -> int:
    n = 1
    while x >= 0x80:
        x >>= 7
        n += 1
    return n


def _vbytes(x: int) -> bytes:
    out = bytearray()
    while x >= 0x80:
        out.append((x & 0x7F) | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def _varint_stream(values: np.ndarray) -> np.ndarray:
    """Concatenated protobuf varints of `values` (uint64) as one uint8 array."""
    v = values.astype(np.uint64, copy=False).ravel()
    if v.size == 0:
        return np.empty(0, dtype=np.uint8)
    lens = _varint_len(v)
    lo, hi = int(lens.min()), int(lens.max())
    if lo == hi:  # every varint the same width: fill columns, no scatter
        out2 = np.empty((v.size, hi), dtype=np.uint8)
        for k in range(hi):
            byte = (v >> np.uint64(7 * k)) & np.uint64(0x7F)
            if k < hi - 1:
                byte |= np.uint64(0x80)
            out2[:, k] = byte
        return out2.ravel()
    ends = np.cumsum(lens)
    starts = ends - lens
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    for k in range(hi):
        mask = lens > k if k >= lo else None
        vv = v if mask is None else v[mask]
        byte = (vv >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (lens > k + 1) if mask is None else (lens[mask] > k + 1)
        byte |= more.astype(np.uint64) << np.uint64(7)
        pos = (starts if mask is None else starts[mask]) + k
        out[pos] = byte
    return out


# --------------------------------------------------------------------------------------------- writer


def _resolve_type(dtype: np.dtype[Any]) -> str:
    """SDK 2.x `_resolve_type`: int (int64) -> Int32, float (float64) -> Float64, float32 -> Float32.

    int32 arrays are also written as Int32 tensors (SDK 2.x rejects that dtype; the bytes would be the same).
    """
    if dtype == np.dtype(int) or dtype == np.dtype(np.int32):
        return "Int32"
    if dtype == np.dtype(float):
        return "Float64"
    if dtype == np.dtype("float32"):
        return "Float32"
    raise ValueError(f"Unsupported dtype {dtype} on array")


def _as_int32_varint_source(values: np.ndarray) -> np.ndarray:
    """int32 protobuf values are varints of the sign-extended 64-bit two's complement."""
    v = np.asarray(values).astype(np.int64, copy=False)
    if v.size and (v.min() < -(2**31) or v.max() > 2**31 - 1):
        raise ValueError("Value out of range for an Int32 tensor")
    return v.view(np.uint64)


def _segment_sums(per_elem: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    cs = np.concatenate(([0], np.cumsum(per_elem, dtype=np.int64)))
    return cs[indptr[1:]] - cs[indptr[:-1]]


def _encode_chunk(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    n_cols: int,
    kind: str,
    labels: np.ndarray | None,
    label_kind: str | None,
) -> np.ndarray:
    """Bytes (uint8) of every record of one chunk of CSR rows; indptr is relative to indices/data."""
    n = indptr.size - 1
    nnz = np.diff(indptr).astype(np.int64)
    keys = indices.astype(np.uint64, copy=False)
    klen = _varint_len(keys)
    key_bytes = _segment_sums(klen, indptr)
    if kind == "Int32":
        ivals = _as_int32_varint_source(data)
        val_bytes = _segment_sums(_varint_len(ivals), indptr)
    else:
        ivals = None
        val_bytes = nnz * _ITEMSIZE[kind]
    if labels is not None:
        if label_kind == "Int32":
            lvals = _as_int32_varint_source(labels)
            lab_bytes = _varint_len(lvals)
        else:
            lvals = None
            lab_bytes = np.full(n, _ITEMSIZE[str(label_kind)], dtype=np.int64)
    else:
        lvals = None
        lab_bytes = np.zeros(n, dtype=np.int64)

    # Rows with equal (nnz, value bytes, key bytes, label bytes) share every length field, so one template
    # per group covers them and only the payload bytes differ. Preprocess output is sorted by user, so equal
    # rows come in long runs that are filled in place; otherwise rows are grouped by class and scattered.
    sig = np.stack([nnz, val_bytes, key_bytes, lab_bytes])
    if n > 1:
        change = np.flatnonzero(np.any(sig[:, 1:] != sig[:, :-1], axis=0)) + 1
    else:
        change = np.empty(0, dtype=np.int64)
    row_starts = indptr[:-1]
    has_labels = labels is not None

    def fill(
        mat: np.ndarray, rows: Any, r0: int, layout: tuple[bytes, int, int, int], c: tuple[int, ...]
    ) -> None:
        template, vs, ks, ls = layout
        c_nnz, c_vb, c_kb, c_lb = c
        m = mat.shape[0]
        mat[:] = np.frombuffer(template, dtype=np.uint8)
        if c_nnz:
            if isinstance(rows, slice):
                eidx: Any = slice(int(indptr[rows.start]), int(indptr[rows.stop]))
            else:
                eidx = (row_starts[rows][:, None] + np.arange(c_nnz)).ravel()
            if ivals is None:
                vals = np.ascontiguousarray(data[eidx], dtype=_NP_DTYPE[kind])
                mat[:, vs : vs + c_vb] = vals.view(np.uint8).reshape(m, c_vb)
            else:
                mat[:, vs : vs + c_vb] = _varint_stream(ivals[eidx]).reshape(m, c_vb)
            mat[:, ks : ks + c_kb] = _varint_stream(keys[eidx]).reshape(m, c_kb)
        if labels is not None:
            if lvals is None:
                lab = np.ascontiguousarray(labels[rows], dtype=_NP_DTYPE[str(label_kind)])
                mat[:, ls : ls + c_lb] = lab.view(np.uint8).reshape(m, c_lb)
            else:
                mat[:, ls : ls + c_lb] = _varint_stream(lvals[rows]).reshape(m, c_lb)

    def layout_of(r0: int) -> tuple[tuple[bytes, int, int, int], tuple[int, ...]]:
        c = (int(nnz[r0]), int(val_bytes[r0]), int(key_bytes[r0]), int(lab_bytes[r0]))
        return _record_template(n_cols, kind, c[0], c[1], c[2], has_labels, label_kind, c[3]), c

    if change.size <= 8 or change.size * 64 <= n:
        bounds = np.concatenate(([0], change, [n])).tolist()
        runs = []
        total = 0
        for a, b in itertools.pairwise(bounds):
            layout, c = layout_of(a)
            runs.append((a, b, total, layout, c))
            total += (b - a) * len(layout[0])
        out = np.empty(total, dtype=np.uint8)
        for a, b, pos, layout, c in runs:
            width = len(layout[0])
            fill(out[pos : pos + (b - a) * width].reshape(b - a, width), slice(a, b), a, layout, c)
        return out

    widths = [max(int(x.max()).bit_length(), 1) for x in sig]
    if sum(widths) <= 62:
        packed = np.zeros(n, dtype=np.int64)
        for x, w in zip(sig, widths, strict=True):
            packed = (packed << w) | x
        order = np.argsort(packed.astype(np.uint16) if sum(widths) <= 16 else packed, kind="stable")
        sorted_sig = packed[order]
        cuts = np.flatnonzero(sorted_sig[1:] != sorted_sig[:-1]) + 1
    else:
        order = np.lexsort(sig[::-1])
        s_sorted = sig[:, order]
        cuts = np.flatnonzero(np.any(s_sorted[:, 1:] != s_sorted[:, :-1], axis=0)) + 1
    classes = []
    total_words = np.zeros(n, dtype=np.int64)
    for a, b in itertools.pairwise(np.concatenate(([0], cuts, [n])).tolist()):
        rows = order[a:b]
        layout, c = layout_of(int(rows[0]))
        total_words[rows] = len(layout[0]) // 4
        classes.append((rows, layout, c))
    word_starts = np.concatenate(([0], np.cumsum(total_words)))
    out32 = np.empty(int(word_starts[-1]), dtype="<u4")
    for rows, layout, c in classes:
        width = len(layout[0])
        mat = np.empty((rows.size, width), dtype=np.uint8)
        fill(mat, rows, int(rows[0]), layout, c)
        out32[(word_starts[rows][:, None] + np.arange(width // 4)).ravel()] = mat.view("<u4").ravel()
    return out32.view(np.uint8)


def _record_template(
    n_cols: int,
    kind: str,
    nnz: int,
    val_bytes: int,
    key_bytes: int,
    has_label: bool,
    label_kind: str | None,
    label_bytes: int,
) -> tuple[bytes, int, int, int]:
    """One record with zeroed payload, and the offsets of its values, keys and label bytes."""
    tensor = bytearray()
    vs = ks = ls = -1
    if nnz:
        tensor += b"\x0a" + _vbytes(val_bytes)
        vs = len(tensor)
        tensor += bytes(val_bytes) + b"\x12" + _vbytes(key_bytes)
        ks = len(tensor)
        tensor += bytes(key_bytes)
    shape = _vbytes(n_cols)
    tensor += b"\x1a" + _vbytes(len(shape)) + shape
    value = bytes([_TENSOR_TAG[kind]]) + _vbytes(len(tensor))
    entry = _VALUES_KEY + b"\x12" + _vbytes(len(value) + len(tensor))
    head = b"\x0a" + _vbytes(len(entry) + len(value) + len(tensor)) + entry + value
    record = bytearray(head) + tensor
    shift = 8 + len(head)
    vs, ks = (vs + shift, ks + shift) if nnz else (vs, ks)
    if has_label:
        ltensor = b"\x0a" + _vbytes(label_bytes)
        lvalue_len = len(ltensor) + label_bytes
        lvalue = bytes([_TENSOR_TAG[str(label_kind)]]) + _vbytes(lvalue_len)
        lentry = _VALUES_KEY + b"\x12" + _vbytes(len(lvalue) + lvalue_len)
        lhead = b"\x12" + _vbytes(len(lentry) + len(lvalue) + lvalue_len) + lentry + lvalue + ltensor
        ls = 8 + len(record) + len(lhead)
        record += lhead + bytes(label_bytes)
    length = len(record)
    pad = (-length) % 4
    return _MAGIC_LE + struct.pack("<I", length) + bytes(record) + bytes(pad), vs, ks, ls


def write_spmatrix(
    fileobj: IO[bytes], csr: Any, labels: Any = None, chunk_rows: int = WRITE_CHUNK_ROWS
) -> int:
    """Write a sparse matrix (+ labels) as recordIO-protobuf records, exactly as SDK 2.x
    `write_spmatrix_to_sparse_tensor` does; returns the number of bytes written.

    Rows are encoded in chunks of `chunk_rows`, so memory stays bounded by the chunk.
    """
    if not sp.issparse(csr):
        raise TypeError("Array must be sparse")
    if len(csr.shape) != 2:
        raise ValueError("Array must be a Matrix")
    kind = _resolve_type(csr.dtype)
    label_arr: np.ndarray | None = None
    label_kind: str | None = None
    if labels is not None:
        label_arr = np.asarray(labels)
        if label_arr.ndim != 1:
            raise ValueError("Labels must be a Vector")
        if label_arr.shape[0] != csr.shape[0]:
            raise ValueError(f"Label shape {label_arr.shape} not compatible with array shape {csr.shape}")
        label_kind = _resolve_type(label_arr.dtype)
    mat = csr.tocsr()
    n_rows, n_cols = mat.shape
    indptr = mat.indptr.astype(np.int64, copy=False)
    written = 0
    for r0 in range(0, n_rows, max(1, chunk_rows)):
        r1 = min(n_rows, r0 + chunk_rows)
        lo, hi = int(indptr[r0]), int(indptr[r1])
        chunk = _encode_chunk(
            indptr[r0 : r1 + 1] - lo,
            mat.indices[lo:hi],
            mat.data[lo:hi],
            n_cols,
            kind,
            None if label_arr is None else label_arr[r0:r1],
            label_kind,
        )
        fileobj.write(chunk.data)
        written += chunk.size
    return written


def write_spmatrix_file(path: str | os.PathLike[str], csr: Any, labels: Any = None) -> int:
    """`write_spmatrix` into `path` atomically (a temporary sibling renamed on success)."""
    with atomic_open(path, "wb") as fh:
        return write_spmatrix(fh, csr, labels)


def encode_request(csr: Any) -> bytes:
    """What a client sends to an endpoint: one float32 sparse record per row, no label."""
    buf = io.BytesIO()
    write_spmatrix(buf, sp.csr_matrix(csr, dtype=np.float32))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- framing


def _frame_block(
    buf: np.ndarray, base: int, name: str, first_record: int, at_eof: bool
) -> tuple[np.ndarray, np.ndarray, int]:
    """Record (payload start, payload length) pairs in `buf` (which starts at a record boundary) and the
    number of bytes consumed; an incomplete last record is left for the next block unless at EOF."""
    size = buf.size
    nwords = size // 4
    words = buf[: nwords * 4].view("<u4")
    cand = np.flatnonzero(words == MAGIC)
    starts = lens = None
    if cand.size and cand[-1] + 1 >= nwords:
        cand = cand[:-1]  # its length word is in the next block
    if cand.size and cand[0] == 0:
        clen = words[cand + 1].astype(np.int64)
        nxt = cand + 2 + (clen + 3) // 4
        if np.array_equal(nxt[:-1], cand[1:]):
            starts, lens = cand * 4, clen
    if starts is None:  # a magic-like word inside a payload: walk the chain record by record
        s_list: list[int] = []
        l_list: list[int] = []
        pos = 0
        while pos + 8 <= size:
            (magic, length) = struct.unpack_from("<II", buf.data, pos)
            if magic != MAGIC:
                raise RecordIOError(
                    name,
                    first_record + len(s_list),
                    base + pos,
                    f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}",
                )
            s_list.append(pos)
            l_list.append(length)
            pos += 8 + length + (-length) % 4
        starts = np.asarray(s_list, dtype=np.int64)
        lens = np.asarray(l_list, dtype=np.int64)
    assert lens is not None
    ends = starts + 8 + lens + (-lens) % 4
    complete = ends <= size
    n_ok = int(np.argmin(complete)) if not complete.all() else complete.size
    consumed = int(ends[n_ok - 1]) if n_ok else 0
    if at_eof and consumed < size:
        rec = first_record + n_ok
        tail = size - consumed
        if tail >= 4 and bytes(buf[consumed : consumed + 4]) != _MAGIC_LE:
            magic = struct.unpack_from("<I", buf.data, consumed)[0]
            raise RecordIOError(
                name, rec, base + consumed, f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}"
            )
        need = "header" if tail < 8 else f"{int(lens[n_ok]) + 8 + (-int(lens[n_ok])) % 4} bytes"
        raise RecordIOError(
            name, rec, base + consumed, f"truncated record: {tail} bytes left, expected {need}"
        )
    return starts[:n_ok] + 8, lens[:n_ok], consumed


# --------------------------------------------------------------------------------------------- parsing


class _Tensor:
    __slots__ = ("keys", "kind", "shape", "values")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.values: list[np.ndarray] = []
        self.keys: list[np.ndarray] = []
        self.shape: list[np.ndarray] = []

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None, list[int]]:
        vals = np.concatenate(self.values) if self.values else np.empty(0, dtype=np.float64)
        keys = np.concatenate(self.keys) if self.keys else None
        shape = [int(x) for x in np.concatenate(self.shape)] if self.shape else []
        return vals, keys, shape


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _decode_varints(data: bytes) -> np.ndarray:
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size == 0:
        return np.empty(0, dtype=np.uint64)
    term = arr < 0x80
    if not term[-1]:
        raise ValueError("truncated packed varints")
    ends = np.flatnonzero(term)
    starts = np.concatenate(([0], ends[:-1] + 1))
    lens = ends - starts + 1
    if lens.max() > 10:
        raise ValueError("overlong varint")
    pos_in = np.arange(arr.size) - np.repeat(starts, lens)
    contrib = (arr & 0x7F).astype(np.uint64) << (7 * pos_in).astype(np.uint64)
    return np.add.reduceat(contrib, starts)


def _skip_field(data: bytes, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return _read_varint(data, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        n, pos = _read_varint(data, pos, end)
        pos += n
    else:
        raise ValueError(f"unsupported wire type {wire}")
    if pos > end:
        raise ValueError("field runs past the end of its message")
    return pos


def _parse_tensor(data: bytes, pos: int, end: int, kind: str) -> _Tensor:
    t = _Tensor(kind)
    while pos < end:
        tag, pos = _read_varint(data, pos, end)
        field, wire = tag >> 3, tag & 7
        if field in (1, 2, 3) and wire == 2:
            n, pos = _read_varint(data, pos, end)
            if pos + n > end:
                raise ValueError("packed field runs past the end of its tensor")
            chunk = data[pos : pos + n]
            pos += n
            if field == 1 and kind in _NP_DTYPE:
                if n % _ITEMSIZE[kind]:
                    raise ValueError(f"packed {kind} values of {n} bytes")
                t.values.append(np.frombuffer(chunk, dtype=_NP_DTYPE[kind]))
            elif field == 1:
                t.values.append(_decode_varints(chunk).view(np.int64).astype(np.int32))
            else:
                (t.keys if field == 2 else t.shape).append(_decode_varints(chunk))
        elif field == 1 and kind == "Float32" and wire == 5:
            t.values.append(np.frombuffer(data[pos : pos + 4], dtype="<f4"))
            pos += 4
        elif field == 1 and kind == "Float64" and wire == 1:
            t.values.append(np.frombuffer(data[pos : pos + 8], dtype="<f8"))
            pos += 8
        elif field in (1, 2, 3) and wire == 0:
            v, pos = _read_varint(data, pos, end)
            if field == 1:
                t.values.append(
                    np.array([v - (1 << 64) if v >= 1 << 63 else v], dtype=np.int64).astype(np.int32)
                )
            else:
                (t.keys if field == 2 else t.shape).append(np.array([v], dtype=np.uint64))
        else:
            pos = _skip_field(data, pos, end, wire)
    if pos != end:
        raise ValueError("tensor runs past its length")
    return t


def _parse_record(data: bytes, pos: int, end: int) -> tuple[dict[str, _Tensor], dict[str, _Tensor]]:
    """Generic protobuf parse of one aialgs.data.Record: (features, label) maps of tensors."""
    maps: tuple[dict[str, _Tensor], dict[str, _Tensor]] = ({}, {})
    while pos < end:
        tag, pos = _read_varint(data, pos, end)
        field, wire = tag >> 3, tag & 7
        if field in (1, 2) and wire == 2:
            n, pos = _read_varint(data, pos, end)
            e_end = pos + n
            if e_end > end:
                raise ValueError("map entry runs past the end of the record")
            key = ""
            tensor: _Tensor | None = None
            while pos < e_end:
                etag, pos = _read_varint(data, pos, e_end)
                if etag == 0x0A:
                    kn, pos = _read_varint(data, pos, e_end)
                    key = data[pos : pos + kn].decode("utf-8")
                    pos += kn
                elif etag == 0x12:
                    vn, pos = _read_varint(data, pos, e_end)
                    v_end = pos + vn
                    if v_end > e_end:
                        raise ValueError("Value runs past the end of its map entry")
                    while pos < v_end:
                        vtag, pos = _read_varint(data, pos, v_end)
                        if vtag in _TAG_KIND:
                            tn, pos = _read_varint(data, pos, v_end)
                            if pos + tn > v_end:
                                raise ValueError("tensor runs past the end of its Value")
                            tensor = _parse_tensor(data, pos, pos + tn, _TAG_KIND[vtag])
                            pos += tn
                        elif vtag == 0x4A:
                            raise ValueError("Bytes values are not supported")
                        else:
                            pos = _skip_field(data, pos, v_end, vtag & 7)
                else:
                    pos = _skip_field(data, pos, e_end, etag & 7)
            if tensor is not None:
                maps[field - 1][key] = tensor
        else:
            pos = _skip_field(data, pos, end, wire)
    if pos != end:
        raise ValueError("record runs past its length")
    return maps


def _gather(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint8)
    offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return buf[offs + np.arange(total)]


def _varints_at(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized varint decode at each position (buf padded with 10 zero bytes); length 0 means invalid."""
    window = buf[pos[:, None] + np.arange(10)]
    cont = window >= 0x80
    length = np.where(cont.all(axis=1), 0, np.argmin(cont, axis=1) + 1)
    k = np.arange(10)
    use = k[None, :] < length[:, None]
    value = (((window & 0x7F).astype(np.uint64) << (7 * k).astype(np.uint64)) * use).sum(
        axis=1, dtype=np.uint64
    )
    return value.astype(np.int64), length


def _fast_parse(
    buf: np.ndarray, starts: np.ndarray, lens: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """Vectorized parse of records in the exact layout the writer produces (Float32 features with keys and
    shape, optional Float32 label). Returns (ok mask, arrays for the ok records) or None if none match."""
    n = starts.size
    ends = starts + lens
    ok = np.ones(n, dtype=bool)

    def expect(pos: np.ndarray, byte: int) -> None:
        ok[:] &= buf[pos] == byte

    p = starts.copy()
    expect(p, 0x0A)
    e_len, e_l = _varints_at(buf, p + 1)
    ok &= e_l > 0
    p = p + 1 + e_l
    f_end = p + e_len
    for j, byte in enumerate(_VALUES_KEY + b"\x12"):
        expect(p + j, byte)
    p = p + 9
    v_len, v_l = _varints_at(buf, p)
    ok &= v_l > 0
    p = p + v_l
    expect(p, 0x12)
    t_len, t_l = _varints_at(buf, p + 1)
    ok &= t_l > 0
    p = p + 1 + t_l
    t_end = p + t_len
    ok &= (t_end == f_end) & (p + v_len - 1 - t_l == t_end) & (f_end <= ends)
    has_vals = ok & (buf[p] == 0x0A) & (p < t_end)
    vb, vb_l = _varints_at(buf, p + 1)
    vstart = np.where(has_vals, p + 1 + vb_l, p)
    vbytes = np.where(has_vals, vb, 0)
    ok &= ~has_vals | ((vb_l > 0) & (vbytes % 4 == 0))
    p = vstart + vbytes
    p = np.minimum(p, ends)
    has_keys = ok & (buf[p] == 0x12) & (p < t_end)
    kb, kb_l = _varints_at(buf, p + 1)
    kstart = np.where(has_keys, p + 1 + kb_l, p)
    kbytes = np.where(has_keys, kb, 0)
    ok &= has_vals == has_keys
    p = np.minimum(kstart + kbytes, ends)
    expect(p, 0x1A)
    s_len, s_l = _varints_at(buf, p + 1)
    shape, sh_l = _varints_at(buf, p + 1 + s_l)
    # shape >= 2**63 wraps negative in int64: such records go to the generic parser, which refuses them.
    ok &= (s_l == 1) & (sh_l == s_len) & (p + 1 + s_l + s_len == t_end) & (shape >= 0)
    p = np.minimum(t_end, ends)
    has_label = ok & (p < ends)
    label_tpl = b"\x12\x12" + _VALUES_KEY + b"\x12\x08\x12\x06\x0a\x04"
    lp = np.where(has_label, p, 0)
    for j, byte in enumerate(label_tpl):
        ok &= ~has_label | (buf[np.minimum(lp + j, buf.size - 1)] == byte)
    ok &= ~has_label | (p + len(label_tpl) + 4 == ends)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    vals = _gather(buf, vstart[idx], vbytes[idx]).view("<f4")
    kraw = _gather(buf, kstart[idx], kbytes[idx])
    keys = _decode_varints(kraw.tobytes()) if kraw.size else np.empty(0, dtype=np.uint64)
    counts = vbytes[idx] // 4
    # every key region must hold exactly as many varints as there are values
    term = np.concatenate(([0], np.cumsum(kraw < 0x80)))
    kend = np.cumsum(kbytes[idx])
    nkeys = np.diff(np.concatenate(([0], term[kend])))
    bad = nkeys != counts
    if kraw.size and kraw[-1] >= 0x80:
        bad[:] = True
    if bad.any():
        ok[idx[bad]] = False
        return _fast_parse_subset(buf, starts, lens, ok)
    lstart = p[idx] + len(label_tpl)
    labels = np.where(
        has_label[idx],
        _gather(buf, np.where(has_label[idx], lstart, 0), np.full(idx.size, 4)).view("<f4"),
        np.nan,
    ).astype(np.float32)
    return ok, {
        "values": vals,
        "keys": keys,
        "counts": counts,
        "shape": shape[idx],
        "has_label": has_label[idx],
        "labels": labels,
    }


def _fast_parse_subset(
    buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    res = _fast_parse(buf, starts[idx], lens[idx])
    if res is None:
        return None
    sub_ok, arrays = res
    full = np.zeros(ok.size, dtype=bool)
    full[idx[sub_ok]] = True
    return full, arrays


_Decoded = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_MIN_RUN = 32


def _decode_run(buf: np.ndarray, raw: bytes, start: int, m: int, width: int) -> _Decoded | None:
    """Vectorized decode of `m` consecutive records of `width` bytes each (header included), when all are in
    the writer's layout with the first record's (nnz, key bytes, label); None otherwise."""
    length = int.from_bytes(raw[start + 4 : start + 8], "little")
    try:
        features, label = _parse_record(raw, start + 8, start + 8 + length)
    except (ValueError, UnicodeDecodeError):
        return None
    tensor = features.get("values")
    if tensor is None or tensor.kind != "Float32" or set(features) != {"values"} or set(label) - {"values"}:
        return None
    vals, keys, shape = tensor.arrays()
    if keys is None or keys.size != vals.size or len(shape) != 1 or shape[0] > MAX_DIM:
        return None
    lab = label.get("values")
    if lab is not None and (lab.kind != "Float32" or lab.arrays()[0].size != 1):
        return None
    nnz = int(vals.size)
    kb = int(_varint_len(keys).sum()) if nnz else 0
    template, vs, ks, ls = _record_template(
        shape[0], "Float32", nnz, 4 * nnz, kb, lab is not None, "Float32", 4
    )
    if len(template) != width:
        return None
    mat = buf[start : start + m * width].reshape(m, width)
    fixed = np.ones(width, dtype=bool)
    if nnz:
        fixed[vs : vs + 4 * nnz] = False
        fixed[ks : ks + kb] = False
    if lab is not None:
        fixed[ls : ls + 4] = False
    proto = np.frombuffer(template, dtype=np.uint8)
    cols = np.flatnonzero(fixed)
    if not (mat[:, cols] == proto[cols]).all():
        return None
    counts = np.full(m, nnz, dtype=np.int64)
    if nnz:
        values = np.ascontiguousarray(mat[:, vs : vs + 4 * nnz]).view("<f4").ravel()
        region = mat[:, ks : ks + kb]
        term = region < 0x80
        if (term == term[0]).all() and term[0, -1]:  # same varint boundaries in every row: decode by columns
            ends = np.flatnonzero(term[0])
            begins = np.concatenate(([0], ends[:-1] + 1))
            out = np.zeros((m, nnz), dtype=np.uint64)
            for j, (b0, e0) in enumerate(zip(begins.tolist(), ends.tolist(), strict=True)):
                for k, col in enumerate(range(b0, e0 + 1)):
                    out[:, j] |= (region[:, col] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
            key_arr = out.ravel()
        else:
            if not (term.sum(axis=1) == nnz).all() or not term[:, -1].all():
                return None
            key_arr = _decode_varints(np.ascontiguousarray(region).tobytes())
        if int(key_arr.max()) >= shape[0]:
            return None
    else:
        values = np.empty(0, dtype=np.float32)
        key_arr = np.empty(0, dtype=np.uint64)
    dims = np.full(m, shape[0], dtype=np.int64)
    has = np.full(m, lab is not None)
    labels = (
        np.ascontiguousarray(mat[:, ls : ls + 4]).view("<f4").ravel()
        if lab is not None
        else np.full(m, np.nan, dtype=np.float32)
    )
    return counts, key_arr, values, dims, has, labels


def _decode_records(
    buf: np.ndarray, raw: bytes, starts: np.ndarray, lens: np.ndarray, name: str, first_record: int, base: int
) -> _Decoded:
    """(counts, keys, values float32, shape dims, has_label, labels) of consecutive records: long runs of
    equal-length records by `_decode_run`, the rest record by record."""
    n = starts.size
    if n == 0:
        return _decode_generic(buf, raw, starts, lens, name, first_record, base)
    cuts = np.flatnonzero(lens[1:] != lens[:-1]) + 1
    bounds = np.concatenate(([0], cuts, [n])).tolist()
    parts: list[_Decoded] = []
    pending = 0  # first record not yet decoded
    for a, b in itertools.pairwise(bounds):
        if b - a < _MIN_RUN:
            continue
        length = int(lens[a])
        decoded = _decode_run(buf, raw, int(starts[a]) - 8, b - a, 8 + length + (-length) % 4)
        if decoded is None:
            continue
        if pending < a:
            parts.append(
                _decode_generic(
                    buf, raw, starts[pending:a], lens[pending:a], name, first_record + pending, base
                )
            )
        parts.append(decoded)
        pending = b
    if pending < n:
        parts.append(
            _decode_generic(buf, raw, starts[pending:], lens[pending:], name, first_record + pending, base)
        )
    if len(parts) == 1:
        return parts[0]
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(6))  # type: ignore[return-value]


def _decode_generic(
    buf: np.ndarray, raw: bytes, starts: np.ndarray, lens: np.ndarray, name: str, first_record: int, base: int
) -> _Decoded:
    """(counts, keys, values float32, shape dims, has_label, labels) of records, one by one where needed."""
    n = starts.size
    counts = np.zeros(n, dtype=np.int64)
    dims = np.zeros(n, dtype=np.int64)
    has_label = np.zeros(n, dtype=bool)
    labels = np.full(n, np.nan, dtype=np.float32)
    per_keys: list[np.ndarray | None] = [None] * n
    per_vals: list[np.ndarray | None] = [None] * n
    fast = _fast_parse(buf, starts, lens) if n else None
    ok = fast[0] if fast is not None else np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~ok):
        s, ln = int(starts[i]), int(lens[i])
        try:
            features, label = _parse_record(raw, s, s + ln)
            if "values" not in features:
                raise ValueError('no "values" feature tensor')
            vals, keys, shape = features["values"].arrays()
            if keys is None:
                keys = np.arange(vals.size, dtype=np.uint64)
                shape = shape or [vals.size]
            if keys.size != vals.size:
                raise ValueError(f"{keys.size} keys for {vals.size} values")
            if len(shape) != 1:
                raise ValueError(f"feature shape {shape}, expected one dimension")
            if shape[0] > MAX_DIM:
                raise ValueError(f"feature shape {shape[0]} is too large (at most {MAX_DIM})")
            if keys.size and int(keys.max()) >= shape[0]:
                raise ValueError(f"key {int(keys.max())} outside shape {shape[0]}")
            if "values" in label:
                lv = label["values"].arrays()[0]
                if lv.size != 1:
                    raise ValueError(f"label holds {lv.size} values, expected 1")
                has_label[i], labels[i] = True, np.float32(lv[0])
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordIOError(
                name, first_record + int(i), base + s - 8, f"malformed record: {exc}"
            ) from None
        counts[i], dims[i] = keys.size, shape[0]
        with np.errstate(over="ignore"):  # a Float64 beyond float32 becomes inf; callers check values
            per_keys[i], per_vals[i] = keys.astype(np.uint64), vals.astype(np.float32)
    if fast is None:
        keys_all = np.concatenate([k for k in per_keys if k is not None]) if n else np.empty(0, np.uint64)
        vals_all = np.concatenate([v for v in per_vals if v is not None]) if n else np.empty(0, np.float32)
        return counts, keys_all, vals_all, dims, has_label, labels
    ok_idx = np.flatnonzero(ok)
    arrays = fast[1]
    counts[ok_idx] = arrays["counts"]
    dims[ok_idx] = arrays["shape"]
    has_label[ok_idx] = arrays["has_label"]
    labels[ok_idx] = arrays["labels"]
    if ok.all():
        keys_all, vals_all = arrays["keys"], arrays["values"]
    else:  # interleave fast and generic records in order
        fk = np.split(arrays["keys"], np.cumsum(arrays["counts"])[:-1])
        fv = np.split(arrays["values"], np.cumsum(arrays["counts"])[:-1])
        for j, i in enumerate(ok_idx):
            per_keys[i], per_vals[i] = fk[j], fv[j]
        keys_all = np.concatenate([k for k in per_keys if k is not None])
        vals_all = np.concatenate([v for v in per_vals if v is not None]).astype(np.float32)
    bad = np.flatnonzero(arrays["keys"] >= np.repeat(arrays["shape"], arrays["counts"]).astype(np.uint64))
    if bad.size:
        rec = int(ok_idx[np.searchsorted(np.cumsum(arrays["counts"]), bad[0], side="right")])
        raise RecordIOError(
            name, first_record + rec, base + int(starts[rec]) - 8, "key outside the feature shape"
        )
    return counts, keys_all, vals_all, dims, has_label, labels


def _open_source(source: Any) -> tuple[IO[bytes], str, bool]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            return open(path, "rb"), str(path), True  # closed by the caller
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise InputError(f"{path}: is a folder, expected a recordIO-protobuf file") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return source, getattr(source, "name", "<stream>"), False


def iter_records(
    source: Any, path_hint: str | None = None, block_bytes: int = _READ_BLOCK_BYTES
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Stream (counts, keys, values, dims, has_label, labels) per block of complete records."""
    fh, name, owned = _open_source(source)
    name = path_hint or name
    try:
        carry = b""
        base = 0  # file offset of carry[0]
        record_no = 0
        eof = False
        while not eof:
            block = fh.read(block_bytes)
            eof = not block
            raw = carry + block if carry else block
            if not raw:
                break
            buf = np.frombuffer(raw + bytes(32), dtype=np.uint8)
            view = buf[: len(raw)]
            starts, lens, consumed = _frame_block(view, base, name, record_no, at_eof=eof)
            if starts.size:
                yield _decode_records(buf, raw, starts, lens, name, record_no, base)
            record_no += starts.size
            if consumed == 0 and len(raw) > 8:
                # a single record larger than the block: read on, unless its header is already bad
                magic = struct.unpack_from("<I", raw, 0)[0]
                if magic != MAGIC:
                    raise RecordIOError(
                        name, record_no, base, f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}"
                    )
            carry = raw[consumed:]
            base += consumed
    finally:
        if owned:
            fh.close()


def iter_spmatrix(
    source: Any, chunk_rows: int = 65536, path_hint: str | None = None
) -> Iterator[tuple[sp.csr_matrix, np.ndarray | None]]:
    """Stream a recordIO-protobuf file (path or binary file object) as float32 CSR chunks of at most
    `chunk_rows` rows, with float32 labels (None when the records carry none). Memory is bounded."""
    pending: list[tuple[np.ndarray, ...]] = []
    pending_rows = 0
    dim: int | None = None
    name: str = path_hint or (
        str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "<stream>"))
    )
    record_no = 0
    seen_label: bool | None = None

    def emit(parts: list[tuple[np.ndarray, ...]]) -> tuple[sp.csr_matrix, np.ndarray | None]:
        counts = np.concatenate([p[0] for p in parts])
        keys = np.concatenate([p[1] for p in parts])
        vals = np.concatenate([p[2] for p in parts]).astype(np.float32, copy=False)
        has = np.concatenate([p[4] for p in parts])
        labs = np.concatenate([p[5] for p in parts])
        indptr = np.concatenate(([0], np.cumsum(counts)))
        idx_dtype = np.int32 if (dim or 0) < 2**31 and keys.size < 2**31 else np.int64
        mat = sp.csr_matrix(
            (vals, keys.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(counts.size, dim or 0)
        )
        return (mat, labs) if has.size and has[0] else (mat, None)

    for block in iter_records(source, path_hint=name):
        counts, keys, vals, dims, has, labs = block
        if dims.size:
            lo, hi = int(dims.min()), int(dims.max())
            if dim is None:
                dim = lo
            if lo != dim or hi != dim:
                bad = int(np.flatnonzero(dims != dim)[0])
                raise RecordIOError(
                    name, record_no + bad, -1, f"feature shape {int(dims[bad])}, earlier records have {dim}"
                )
            mixed = bool(has.any()) and not bool(has.all())
            if mixed or (seen_label is not None and bool(has[0]) != seen_label):
                bad = int(np.flatnonzero(has != has[0])[0]) if mixed else 0
                raise RecordIOError(name, record_no + bad, -1, "some records carry a label and some do not")
            seen_label = bool(has[0])
        record_no += counts.size
        offs = np.concatenate(([0], np.cumsum(counts)))
        pos = 0
        while pos < counts.size:
            take = min(chunk_rows - pending_rows, counts.size - pos)
            sl = slice(pos, pos + take)
            pending.append(
                (
                    counts[sl],
                    keys[offs[pos] : offs[pos + take]],
                    vals[offs[pos] : offs[pos + take]],
                    dims[sl],
                    has[sl],
                    labs[sl],
                )
            )
            pending_rows += take
            pos += take
            if pending_rows >= chunk_rows:
                yield emit(pending)
                pending, pending_rows = [], 0
    if pending:
        yield emit(pending)


def _expand_sources(sources: Any) -> list[Path]:
    if isinstance(sources, (str, os.PathLike)):
        path = Path(sources)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise InputError(f"{path}: folder holds no recordIO-protobuf files")
            return files
        return [path]
    out: list[Path] = []
    for s in sources:
        out.extend(_expand_sources(s))
    return out


def read_spmatrix(sources: Any) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Read a file, a folder (every file, sorted by name) or a list of them into one float32 CSR + labels."""
    mats: list[sp.csr_matrix] = []
    labs: list[np.ndarray | None] = []
    dim: int | None = None
    for path in _expand_sources(sources):
        for mat, lab in iter_spmatrix(path, chunk_rows=1 << 22):
            if dim is not None and mat.shape[1] != dim and mat.shape[0]:
                raise RecordIOError(
                    str(path), 0, 0, f"feature shape {mat.shape[1]}, earlier files have {dim}"
                )
            dim = mat.shape[1] if dim is None else dim
            mats.append(mat)
            labs.append(lab)
    if not mats:
        return sp.csr_matrix((0, 0), dtype=np.float32), None
    if any(lab is None for lab in labs) and not all(lab is None for lab in labs):
        raise InputError(f"{sources}: some files carry labels and some do not")
    shaped = [
        m if m.shape[1] == dim else sp.csr_matrix((m.shape[0], dim or 0), dtype=np.float32) for m in mats
    ]
    mat = sp.vstack(shaped, format="csr", dtype=np.float32) if len(shaped) > 1 else shaped[0]
    labels = None if labs[0] is None else np.concatenate([lab for lab in labs if lab is not None])
    return mat, labels


# --------------------------------------------------------------------------------------------- inference


def decode_request(body: bytes, feature_dim: int) -> sp.csr_matrix:
    """An inference request body (records with a "values" feature tensor, sparse with keys+shape or dense)
    as a float32 CSR of shape (records, feature_dim)."""
    if not body:
        raise RecordIOError("request body", 0, 0, "empty body")
    parts = list(iter_records(io.BytesIO(body), path_hint="request body"))
    counts = np.concatenate([p[0] for p in parts])
    keys = np.concatenate([p[1] for p in parts])
    vals = np.concatenate([p[2] for p in parts]).astype(np.float32, copy=False)
    dims = np.concatenate([p[3] for p in parts])
    bad = np.flatnonzero(dims != feature_dim)
    if bad.size:
        raise RecordIOError(
            "request body",
            int(bad[0]),
            -1,
            f"feature shape {int(dims[bad[0]])}, the model expects {feature_dim}",
        )
    indptr = np.concatenate(([0], np.cumsum(counts)))
    return sp.csr_matrix((vals, keys.astype(np.int64), indptr), shape=(counts.size, feature_dim))


def _label_entry(name: str, value: float) -> bytes:
    tensor = b"\x0a\x04" + struct.pack("<f", value)
    val = b"\x12" + _vbytes(len(tensor)) + tensor
    key = name.encode()
    entry = b"\x0a" + _vbytes(len(key)) + key + b"\x12" + _vbytes(len(val)) + val
    return b"\x12" + _vbytes(len(entry)) + entry


def encode_predictions(scores: Sequence[float] | np.ndarray, predicted_labels: Any = None) -> bytes:
    """Inference response: one record per row, label map {"score", "predicted_label"} of Float32 tensors."""
    columns = {"score": np.asarray(scores, dtype="<f4").reshape(-1)}
    if predicted_labels is not None:
        columns["predicted_label"] = np.asarray(predicted_labels, dtype="<f4").reshape(-1)
        if columns["predicted_label"].size != columns["score"].size:
            raise ValueError(f"{columns['predicted_label'].size} labels for {columns['score'].size} scores")
    n = columns["score"].size
    # Every record has the same bytes but its floats: tile one template and write the floats in place.
    entries = [_label_entry(name, 0.0) for name in columns]
    rec = b"".join(entries)
    template = _MAGIC_LE + struct.pack("<I", len(rec)) + rec + bytes((-len(rec)) % 4)
    out = np.tile(np.frombuffer(template, dtype=np.uint8), n).reshape(n, len(template))
    end = 8
    for entry, values in zip(entries, columns.values(), strict=True):
        end += len(entry)  # each label entry ends with its 4 float bytes
        out[:, end - 4 : end] = values.view(np.uint8).reshape(n, 4)
    return out.tobytes()


def decode_predictions(body: bytes) -> list[dict[str, float]]:
    """Inverse of `encode_predictions`: one {label name: value} dict per record."""
    buf = np.frombuffer(body + bytes(32), dtype=np.uint8)
    starts, lens, _ = _frame_block(buf[: len(body)], 0, "response body", 0, at_eof=True)
    out: list[dict[str, float]] = []
    for i, (s, ln) in enumerate(zip(starts.tolist(), lens.tolist(), strict=True)):
        try:
            _, label = _parse_record(body, s, s + ln)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordIOError("response body", i, s - 8, f"malformed record: {exc}") from None
        row: dict[str, float] = {}
        for key, tensor in label.items():
            vals = tensor.arrays()[0]
            if vals.size != 1:
                raise RecordIOError("response body", i, s - 8, f"label {key!r} holds {vals.size} values")
            row[key] = float(vals[0])
        out.append(row)
    return out
