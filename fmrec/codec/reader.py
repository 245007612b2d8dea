"""Streaming recordIO-protobuf reader: files, folders and request bodies as float32 CSR (+ labels)."""

from __future__ import annotations

import io
import itertools
import os
import struct
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.fast_parse import Decoded, decode_run, fast_parse
from fmrec.codec.parse import frame_block, parse_record
from fmrec.codec.wire import MAGIC, MAX_DIM, RecordIOError
from fmrec.errors import InputError
from fmrec.machine import usable_cores

_READ_BLOCK_BYTES = 8 << 20
# Worker threads decoding blocks: two cores are what FM's local trainer uses too (fmrec.model.trainer).
_DECODE_THREADS = min(2, usable_cores())
_MIN_RUN = 32


def _decode_records(
    buf: np.ndarray, raw: bytes, starts: np.ndarray, lens: np.ndarray, name: str, first_record: int, base: int
) -> Decoded:
    """(counts, keys, values float32, shape dims, has_label, labels) of consecutive records: long runs of
    equal-length records by `decode_run`, the rest record by record."""
    n = starts.size
    if n == 0:
        return _decode_generic(buf, raw, starts, lens, name, first_record, base)
    cuts = np.flatnonzero(lens[1:] != lens[:-1]) + 1
    bounds = np.concatenate(([0], cuts, [n])).tolist()
    parts: list[Decoded] = []
    pending = 0  # first record not yet decoded
    for a, b in itertools.pairwise(bounds):
        if b - a < _MIN_RUN:
            continue
        length = int(lens[a])
        decoded = decode_run(buf, raw, int(starts[a]) - 8, b - a, 8 + length + (-length) % 4)
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
) -> Decoded:
    """(counts, keys, values float32, shape dims, has_label, labels) of records, one by one where needed."""
    n = starts.size
    counts = np.zeros(n, dtype=np.int64)
    dims = np.zeros(n, dtype=np.int64)
    has_label = np.zeros(n, dtype=bool)
    labels = np.full(n, np.nan, dtype=np.float32)
    per_keys: list[np.ndarray | None] = [None] * n
    per_vals: list[np.ndarray | None] = [None] * n
    fast = fast_parse(buf, starts, lens) if n else None
    ok = fast[0] if fast is not None else np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~ok):
        s, ln = int(starts[i]), int(lens[i])
        try:
            features, label = parse_record(raw, s, s + ln)
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


def _frames(
    fh: IO[bytes], name: str, block_bytes: int
) -> Iterator[tuple[np.ndarray, bytes, np.ndarray, np.ndarray, int, int]]:
    """(buf, raw, starts, lens, first record number, file offset) per block of complete records, in order."""
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
        starts, lens, consumed = frame_block(buf[: len(raw)], base, name, record_no, at_eof=eof)
        if starts.size:
            yield buf, raw, starts, lens, record_no, base
        record_no += starts.size
        if consumed == 0 and len(raw) > 8:
            # a single record larger than the block: read on, unless its header is already bad
            magic = struct.unpack_from("<I", raw, 0)[0]
            if magic != MAGIC:
                raise RecordIOError(name, record_no, base, f"bad magic 0x{magic:08x}, expected 0x{MAGIC:08x}")
        carry = raw[consumed:]
        base += consumed


def iter_records(
    source: Any, path_hint: str | None = None, block_bytes: int = _READ_BLOCK_BYTES
) -> Iterator[Decoded]:
    """Stream (counts, keys, values, dims, has_label, labels) per block of complete records.

    Blocks are framed in order and decoded on worker threads (the decoders spend most of their time in numpy
    and in nogil numba kernels), with at most _DECODE_THREADS + 1 blocks in memory. Results and errors come
    back in file order, so a bad record is reported exactly as a serial read reports it."""
    fh, name, owned = _open_source(source)
    name = path_hint or name
    pool = ThreadPoolExecutor(max_workers=_DECODE_THREADS)
    pending: deque[Future[Decoded]] = deque()
    try:
        try:
            for buf, raw, starts, lens, first, base in _frames(fh, name, block_bytes):
                pending.append(pool.submit(_decode_records, buf, raw, starts, lens, name, first, base))
                if len(pending) > _DECODE_THREADS:
                    yield pending.popleft().result()
        except Exception:
            # a later block's framing error: the blocks before it (and their own errors) come first
            while pending:
                yield pending.popleft().result()
            raise
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        if owned:
            fh.close()


class _Shapes:
    """The checks every block of a file passes: one feature shape, and labels on all records or none."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dim: int | None = None
        self.seen_label: bool | None = None
        self.record_no = 0

    def check(self, dims: np.ndarray, has: np.ndarray) -> None:
        if dims.size:
            lo, hi = int(dims.min()), int(dims.max())
            if self.dim is None:
                self.dim = lo
            if lo != self.dim or hi != self.dim:
                bad = int(np.flatnonzero(dims != self.dim)[0])
                raise RecordIOError(
                    self.name,
                    self.record_no + bad,
                    -1,
                    f"feature shape {int(dims[bad])}, earlier records have {self.dim}",
                )
            mixed = bool(has.any()) and not bool(has.all())
            if mixed or (self.seen_label is not None and bool(has[0]) != self.seen_label):
                bad = int(np.flatnonzero(has != has[0])[0]) if mixed else 0
                raise RecordIOError(
                    self.name, self.record_no + bad, -1, "some records carry a label and some do not"
                )
            self.seen_label = bool(has[0])
        self.record_no += dims.size


def _index_dtype(dim: int | None, entries: int) -> type[np.signedinteger[Any]]:
    return np.int32 if (dim or 0) < 2**31 and entries < 2**31 else np.int64


def iter_spmatrix(
    source: Any, chunk_rows: int = 65536, path_hint: str | None = None
) -> Iterator[tuple[sp.csr_matrix, np.ndarray | None]]:
    """Stream a recordIO-protobuf file (path or binary file object) as float32 CSR chunks of at most
    `chunk_rows` rows, with float32 labels (None when the records carry none). Memory is bounded."""
    pending: list[tuple[np.ndarray, ...]] = []
    pending_rows = 0
    name: str = path_hint or (
        str(source) if isinstance(source, (str, os.PathLike)) else str(getattr(source, "name", "<stream>"))
    )
    shapes = _Shapes(name)

    def emit(parts: list[tuple[np.ndarray, ...]]) -> tuple[sp.csr_matrix, np.ndarray | None]:
        counts = np.concatenate([p[0] for p in parts])
        vals = np.concatenate([p[2] for p in parts]).astype(np.float32, copy=False)
        has = np.concatenate([p[4] for p in parts])
        labs = np.concatenate([p[5] for p in parts])
        indptr = np.concatenate(([0], np.cumsum(counts)))
        idx_dtype = _index_dtype(shapes.dim, vals.size)
        # keys < the shape (checked by the decoders), so the cast to the index type keeps every value
        keys = np.concatenate([p[1] for p in parts], dtype=idx_dtype, casting="unsafe")
        mat = sp.csr_matrix((vals, keys, indptr.astype(idx_dtype)), shape=(counts.size, shapes.dim or 0))
        return (mat, labs) if has.size and has[0] else (mat, None)

    for block in iter_records(source, path_hint=name):
        counts, keys, vals, dims, has, labs = block
        shapes.check(dims, has)
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


def _read_file(path: Path) -> tuple[sp.csr_matrix, np.ndarray | None] | None:
    """One whole file as CSR + labels (None: no records). Each decoded block is copied into the final arrays
    as it comes and then freed: the arrays are sized once, for the most entries the file can hold (a
    Float32 value takes 4 bytes; memory never written is never paged in), instead of every block being kept
    and concatenated at the end (1.3 GB of fresh memory more at 64M entries; docs/benchmarks.md, "Training
    in a minute")."""
    name = str(path)
    shapes = _Shapes(name)
    keys_out: np.ndarray | None = None
    vals_out = np.empty(0, np.float32)
    counts: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    has_label = False
    nnz = 0
    for counts_b, keys, vals, dims, has, labs in iter_records(path, path_hint=name):
        shapes.check(dims, has)
        if keys_out is None:  # the file opened (iter_records names a missing one): size it
            capacity = max(path.stat().st_size // 4, keys.size)
            keys_out = np.empty(capacity, _index_dtype(shapes.dim, capacity))
            vals_out = np.empty(capacity, np.float32)
        end = nnz + keys.size
        if end > keys_out.size:  # only records of narrower values (Int32 varints) get here
            keys_out = np.concatenate((keys_out[:nnz], np.empty(max(end, 2 * nnz) - nnz, keys_out.dtype)))
            vals_out = np.concatenate((vals_out[:nnz], np.empty(keys_out.size - nnz, np.float32)))
        # keys < the shape (checked by the decoders), so the cast to the index type keeps every value
        np.copyto(keys_out[nnz:end], keys, casting="unsafe")
        np.copyto(vals_out[nnz:end], vals, casting="unsafe")
        nnz = end
        counts.append(counts_b)
        labels.append(labs)
        has_label = has_label or bool(has.size and has[0])
    if keys_out is None:
        return None
    rows = np.concatenate(counts)
    indptr = np.concatenate(([0], np.cumsum(rows))).astype(keys_out.dtype)
    mat = sp.csr_matrix((vals_out[:nnz], keys_out[:nnz], indptr), shape=(rows.size, shapes.dim or 0))
    return mat, (np.concatenate(labels) if has_label else None)


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


# Files decoded inside reusing_reads(), by (device, inode, size, mtime); None outside it.
_reused: dict[tuple[int, int, int, int], tuple[sp.csr_matrix, np.ndarray | None] | None] | None = None


@contextmanager
def reusing_reads() -> Iterator[None]:
    """Within the block, read_spmatrix decodes each file once: reading the same file again (the same device,
    inode, size and modification time: a hard link of it too) returns the arrays of the first read.

    For one process that runs several steps over the same files: the local pipeline twin runs its steps in
    its own process and stages their inputs by hard links, so TrainModel and EvaluateModel read one train
    channel (twins/pipeline/runner.py). The arrays are shared: the callers only read them, as every step
    treats its inputs. The decoded files are let go when the outermost block ends."""
    global _reused
    outer = _reused
    _reused = {} if outer is None else outer
    try:
        yield
    finally:
        _reused = outer


def _read_reused(path: Path) -> tuple[sp.csr_matrix, np.ndarray | None] | None:
    if _reused is None:
        return _read_file(path)
    try:
        st = path.stat()
    except OSError:
        return _read_file(path)  # which names the problem
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _reused:
        _reused[key] = _read_file(path)
    return _reused[key]


def read_spmatrix(sources: Any) -> tuple[sp.csr_matrix, np.ndarray | None]:
    """Read a file, a folder (every file, sorted by name) or a list of them into one float32 CSR + labels."""
    mats: list[sp.csr_matrix] = []
    labs: list[np.ndarray | None] = []
    dim: int | None = None
    for path in _expand_sources(sources):
        whole = _read_reused(path)
        if whole is None:
            continue
        mat, lab = whole
        if dim is not None and mat.shape[1] != dim and mat.shape[0]:
            raise RecordIOError(str(path), 0, 0, f"feature shape {mat.shape[1]}, earlier files have {dim}")
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
