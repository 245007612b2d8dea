"""Pure-numpy reader and writer of MXNet's NDArray list file (what `mx.nd.save` writes), no MXNet needed.

The layout follows MXNet's src/ndarray/ndarray.cc (NDArray::Save/Load) and dmlc-core's stream serializers,
all little-endian:

    file    := uint64 0x112 (kMXAPINDArrayListMagic), uint64 0 (reserved),
               uint64 n, n * ndarray, uint64 m, m * (uint64 len, len bytes of name)   # m is 0 or n
    ndarray := uint32 0xF993fac9 (V2 magic), int32 storage type (0 dense, 1 row_sparse, 2 csr),
               [shape storage_shape if sparse], shape,                              # ndim 0: empty, stop here
               int32 dev_type, int32 dev_id, int32 type flag,
               [per aux array: int32 aux type flag, shape aux_shape],
               data (storage_shape for sparse), [aux data arrays]
    shape   := uint32 ndim, ndim * int64
Older files start an ndarray with 0xF993fac8 (V1: dense, int64 shape) or with ndim (legacy: uint32 dims).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping

import numpy as np

from fmrec.errors import InputError

LIST_MAGIC = 0x112
V1_MAGIC = 0xF993FAC8
V2_MAGIC = 0xF993FAC9
DEFAULT_STORAGE, ROW_SPARSE_STORAGE, CSR_STORAGE = 0, 1, 2
CPU_DEV_TYPE = 1

# mshadow type flags.
TYPE_FLAGS: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}

_NUM_AUX = {DEFAULT_STORAGE: 0, ROW_SPARSE_STORAGE: 1, CSR_STORAGE: 2}
# A sparse array is a few bytes that can declare any dense shape: no array may hold more elements than this
# (2^28 float32 is 1 GiB) unless the caller, who knows the model's dimensions, gives a tighter bound.
DEFAULT_MAX_ELEMENTS = 1 << 28


class NDArrayFormatError(InputError):
    """Bytes that are not a valid MXNet NDArray file; the message names the source and byte offset."""


class _Reader:
    def __init__(self, data: bytes | bytearray, source: str, copy: bool = True) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.source = source
        self.copy = copy

    def fail(self, what: str) -> NDArrayFormatError:
        return NDArrayFormatError(f"{self.source}: not a valid MXNet NDArray file at byte {self.pos}: {what}")

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(
                f"truncated while reading {what} ({n} bytes wanted, {len(self.data) - self.pos} left)"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0])

    def shape(self, what: str, legacy_ndim: int | None = None) -> tuple[int, ...]:
        if legacy_ndim is not None:
            ndim, item = legacy_ndim, "<u4"
        else:
            ndim, item = self.unpack("<i", f"{what} ndim"), "<i8"
        if ndim < 0:  # unknown shape (numpy-shape semantics): an empty array
            return ()
        if ndim > 32:
            raise self.fail(f"{what} has {ndim} dimensions")
        dims = np.frombuffer(self.take(ndim * np.dtype(item).itemsize, what), dtype=item)
        if np.any(dims < 0):
            raise self.fail(f"{what} has a negative dimension {dims.tolist()}")
        return tuple(int(d) for d in dims)

    def array(self, dtype: np.dtype, shape: tuple[int, ...], what: str) -> np.ndarray:
        count = math.prod(shape)  # Python ints: a hostile shape cannot overflow, take() refuses it
        raw = self.take(count * dtype.itemsize, what)
        view = np.frombuffer(raw, dtype=dtype).reshape(shape)
        return view.copy() if self.copy else view

    def check_size(self, shape: tuple[int, ...], max_elements: int, what: str) -> None:
        count = math.prod(shape)
        if count > max_elements:
            raise self.fail(
                f"{what} declares shape {shape} ({count:,} elements), above the {max_elements:,} allowed"
            )

    def type_flag(self, what: str) -> np.dtype:
        flag = self.unpack("<i", what)
        if flag not in TYPE_FLAGS:
            raise self.fail(f"unknown {what} {flag}")
        return TYPE_FLAGS[flag]


def _read_ndarray(r: _Reader, index: int, max_elements: int) -> np.ndarray | None:
    where = f"array {index}"
    magic = r.unpack("<I", f"{where} magic")
    if magic != V2_MAGIC:
        shape = r.shape(f"{where} shape", legacy_ndim=None if magic == V1_MAGIC else magic)
        if not shape:
            return None
        r.check_size(shape, max_elements, where)
        r.take(8, f"{where} context")
        dtype = r.type_flag(f"{where} type flag")
        return r.array(dtype, shape, f"{where} data")
    stype = r.unpack("<i", f"{where} storage type")
    if stype not in _NUM_AUX:
        raise r.fail(f"{where} has unknown storage type {stype}")
    nad = _NUM_AUX[stype]
    storage_shape = r.shape(f"{where} storage shape") if nad else ()
    shape = r.shape(f"{where} shape")
    if not shape:
        return None
    r.check_size(shape, max_elements, where)  # before the dense array of a sparse one is allocated
    dev_type = r.unpack("<i", f"{where} context")
    r.unpack("<i", f"{where} device id")
    if dev_type not in (1, 2, 3, 5):
        raise r.fail(f"{where} has unknown device type {dev_type}")
    dtype = r.type_flag(f"{where} type flag")
    aux = [(r.type_flag(f"{where} aux type"), r.shape(f"{where} aux shape")) for _ in range(nad)]
    values = r.array(dtype, storage_shape if nad else shape, f"{where} data")
    aux_data = [r.array(t, s, f"{where} aux data") for t, s in aux]
    if stype == DEFAULT_STORAGE:
        return values
    if stype == ROW_SPARSE_STORAGE:
        rows = aux_data[0].astype(np.int64).reshape(-1)
        if values.shape != (rows.size, *shape[1:]):
            raise r.fail(f"{where} row_sparse data {values.shape} does not match {rows.size} rows of {shape}")
        if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
            raise r.fail(f"{where} row_sparse index out of range")
        dense = np.zeros(shape, dtype=dtype)
        dense[rows] = values
        return dense
    indptr, indices = (a.astype(np.int64).reshape(-1) for a in aux_data)
    values = values.reshape(-1)
    if len(shape) != 2 or indptr.size != shape[0] + 1 or indptr[-1] != values.size:
        raise r.fail(f"{where} csr indptr does not match its shape")
    if indices.size != values.size or indptr[0] != 0 or np.any(np.diff(indptr) < 0):
        raise r.fail(f"{where} csr indptr or indices do not match its data")
    if indices.size and (indices.min() < 0 or indices.max() >= shape[1]):
        raise r.fail(f"{where} csr column index out of range")
    dense = np.zeros(shape, dtype=dtype)
    rows = np.repeat(np.arange(shape[0]), np.diff(indptr))
    dense[rows, indices] = values
    return dense


def load_ndarrays(
    data: bytes | bytearray,
    source: str = "<bytes>",
    max_elements: int = DEFAULT_MAX_ELEMENTS,
    *,
    copy: bool = True,
) -> dict[str, np.ndarray | None]:
    """Decode an NDArray list file into {name: array}; unnamed lists get names "0", "1", ...

    Sparse arrays are returned dense; an empty (none) array is returned as None. An array declaring more
    than `max_elements` elements is refused before anything is allocated for it. copy=False returns dense
    arrays as views of `data` (no second copy of a large file; writable when `data` is a bytearray).
    """
    r = _Reader(data, source, copy)
    if r.unpack("<Q", "header") != LIST_MAGIC:
        r.pos = 0
        raise r.fail("the header is not kMXAPINDArrayListMagic 0x112")
    r.unpack("<Q", "reserved word")
    count = r.unpack("<Q", "array count")
    if count > len(data):
        raise r.fail(f"array count {count} exceeds the file size")
    arrays = [_read_ndarray(r, i, max_elements) for i in range(count)]
    n_names = r.unpack("<Q", "name count")
    if n_names not in (0, count):
        raise r.fail(f"{n_names} names for {count} arrays")
    names: list[str] = []
    for i in range(n_names):
        length = r.unpack("<Q", f"name {i} length")
        raw = bytes(r.take(length, f"name {i}"))
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise r.fail(f"name {i} is not UTF-8") from exc
    if r.pos != len(data):
        raise r.fail(f"{len(data) - r.pos} unexpected trailing bytes")
    if not names:
        names = [str(i) for i in range(count)]
    if len(set(names)) != len(names):
        raise r.fail("duplicate array names")
    return dict(zip(names, arrays, strict=True))


def _shape_bytes(shape: tuple[int, ...]) -> bytes:
    return struct.pack("<I", len(shape)) + np.asarray(shape, dtype="<i8").tobytes()


def save_ndarrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Encode {name: dense array} as MXNet writes it (V2 magic, dense storage, CPU context)."""
    parts = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    for name, value in arrays.items():
        arr = np.asarray(value)
        # Compare kind and size only, so a big-endian array is written little-endian.
        flag = next((f for f, dt in TYPE_FLAGS.items() if dt.str[1:] == arr.dtype.str[1:]), None)
        if flag is None:
            raise ValueError(f"array {name!r}: dtype {arr.dtype} has no MXNet type flag")
        if arr.ndim == 0:
            arr = arr.reshape(1)  # MXNet reads ndim 0 as an empty array
        parts.append(struct.pack("<Ii", V2_MAGIC, DEFAULT_STORAGE))
        parts.append(_shape_bytes(arr.shape))
        parts.append(struct.pack("<iii", CPU_DEV_TYPE, 0, flag))
        parts.append(np.ascontiguousarray(arr, dtype=TYPE_FLAGS[flag]).tobytes())
    parts.append(struct.pack("<Q", len(arrays)))
    for name in arrays:
        raw = name.encode("utf-8")
        parts.append(struct.pack("<Q", len(raw)) + raw)
    return b"".join(parts)
