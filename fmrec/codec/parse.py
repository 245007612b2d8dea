"""Record framing and the generic protobuf parse of one aialgs.data.Record, for any layout."""

from __future__ import annotations

import struct

import numpy as np

from fmrec.codec.wire import (
    ITEMSIZE,
    MAGIC,
    MAGIC_LE,
    NP_DTYPE,
    TAG_KIND,
    RecordIOError,
    decode_varints,
    read_varint,
)


def frame_block(
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
        if tail >= 4 and bytes(buf[consumed : consumed + 4]) != MAGIC_LE:
            magic = struct.unpack_from("<I", buf.data, consumed)[0]
            raise RecordIOError(
                name, rec, base + consumed, f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}"
            )
        need = "header" if tail < 8 else f"{int(lens[n_ok]) + 8 + (-int(lens[n_ok])) % 4} bytes"
        raise RecordIOError(
            name, rec, base + consumed, f"truncated record: {tail} bytes left, expected {need}"
        )
    return starts[:n_ok] + 8, lens[:n_ok], consumed


class Tensor:
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


def _skip_field(data: bytes, pos: int, end: int, wire: int) -> int:
    if wire == 0:
        return read_varint(data, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        n, pos = read_varint(data, pos, end)
        pos += n
    else:
        raise ValueError(f"unsupported wire type {wire}")
    if pos > end:
        raise ValueError("field runs past the end of its message")
    return pos


def _parse_tensor(data: bytes, pos: int, end: int, kind: str) -> Tensor:
    t = Tensor(kind)
    while pos < end:
        tag, pos = read_varint(data, pos, end)
        field, wire = tag >> 3, tag & 7
        if field in (1, 2, 3) and wire == 2:
            n, pos = read_varint(data, pos, end)
            if pos + n > end:
                raise ValueError("packed field runs past the end of its tensor")
            chunk = data[pos : pos + n]
            pos += n
            if field == 1 and kind in NP_DTYPE:
                if n % ITEMSIZE[kind]:
                    raise ValueError(f"packed {kind} values of {n} bytes")
                t.values.append(np.frombuffer(chunk, dtype=NP_DTYPE[kind]))
            elif field == 1:
                t.values.append(decode_varints(chunk).view(np.int64).astype(np.int32))
            else:
                (t.keys if field == 2 else t.shape).append(decode_varints(chunk))
        elif field == 1 and kind == "Float32" and wire == 5:
            t.values.append(np.frombuffer(data[pos : pos + 4], dtype="<f4"))
            pos += 4
        elif field == 1 and kind == "Float64" and wire == 1:
            t.values.append(np.frombuffer(data[pos : pos + 8], dtype="<f8"))
            pos += 8
        elif field in (1, 2, 3) and wire == 0:
            v, pos = read_varint(data, pos, end)
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


def parse_record(data: bytes, pos: int, end: int) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Generic protobuf parse of one aialgs.data.Record: (features, label) maps of tensors."""
    maps: tuple[dict[str, Tensor], dict[str, Tensor]] = ({}, {})
    while pos < end:
        tag, pos = read_varint(data, pos, end)
        field, wire = tag >> 3, tag & 7
        if field in (1, 2) and wire == 2:
            n, pos = read_varint(data, pos, end)
            e_end = pos + n
            if e_end > end:
                raise ValueError("map entry runs past the end of the record")
            key = ""
            tensor: Tensor | None = None
            while pos < e_end:
                etag, pos = read_varint(data, pos, e_end)
                if etag == 0x0A:
                    kn, pos = read_varint(data, pos, e_end)
                    key = data[pos : pos + kn].decode("utf-8")
                    pos += kn
                elif etag == 0x12:
                    vn, pos = read_varint(data, pos, e_end)
                    v_end = pos + vn
                    if v_end > e_end:
                        raise ValueError("Value runs past the end of its map entry")
                    while pos < v_end:
                        vtag, pos = read_varint(data, pos, v_end)
                        if vtag in TAG_KIND:
                            tn, pos = read_varint(data, pos, v_end)
                            if pos + tn > v_end:
                                raise ValueError("tensor runs past the end of its Value")
                            tensor = _parse_tensor(data, pos, pos + tn, TAG_KIND[vtag])
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
