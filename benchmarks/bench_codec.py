"""Codec throughput (rows/s), write and read, ua.base-shaped and 25M-rating data, SDK 2.x side by side.

.venv/bin/python benchmarks/bench_codec.py                 # SDK 2.x figures when sagemaker 2.x is importable
.venv/bin/python benchmarks/bench_codec.py --big-rows 0    # skip the 25M-rating case
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import iter_spmatrix
from fmrec.codec.writer import write_spmatrix, write_spmatrix_file


def _sdk_codec() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """SDK 2.x's (write_spmatrix_to_sparse_tensor, read_records), or None when it is not importable."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    try:  # local import: the SDK 2.x is optional (a throwaway venv may lack it)
        from sagemaker.amazon.common import read_records, write_spmatrix_to_sparse_tensor
    except Exception:
        return None
    return write_spmatrix_to_sparse_tensor, read_records


def onehot(n_rows: int, n_users: int, n_items: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Rows like the preprocess output: one user and one movie column, Zipf-like movie popularity."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.integers(0, n_users, n_rows))
    weight = 1.0 / (np.arange(n_items) + 10.0) ** 1.1
    items = np.searchsorted(np.cumsum(weight) / weight.sum(), rng.random(n_rows))
    items = np.minimum(rng.permutation(n_items)[np.minimum(items, n_items - 1)], n_items - 1)
    cols = np.stack([users, n_users + items], axis=1).ravel().astype(np.int32)
    indptr = np.arange(0, 2 * n_rows + 1, 2, dtype=np.int64)
    mat = sp.csr_matrix((np.ones(2 * n_rows, np.float32), cols, indptr), shape=(n_rows, n_users + n_items))
    return mat, (rng.random(n_rows) < 0.55).astype(np.float32)


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def ua_shaped(repeat: int) -> None:
    X, y = onehot(90_570, 943, 1_680, seed=1)
    buf = io.BytesIO()
    n_bytes = write_spmatrix(buf, X, y)
    body = buf.getvalue()
    t_w = best_of(lambda: write_spmatrix(io.BytesIO(), X, y), repeat)
    t_r = best_of(lambda: [None for _ in iter_spmatrix(io.BytesIO(body), chunk_rows=1 << 20)], repeat)
    rows = X.shape[0]
    print(f"ua.base-shaped: {rows:,} rows x {X.shape[1]:,} columns, {n_bytes:,} bytes")
    print(f"  fmrec write  {t_w * 1000:8.1f} ms  {rows / t_w:12,.0f} rows/s")
    print(f"  fmrec read   {t_r * 1000:8.1f} ms  {rows / t_r:12,.0f} rows/s")
    sdk_codec = _sdk_codec()
    if sdk_codec is None:
        print("  SDK 2.x not importable: no side-by-side figures")
        return
    write_spmatrix_to_sparse_tensor, read_records = sdk_codec
    sdk = io.BytesIO()
    write_spmatrix_to_sparse_tensor(sdk, X, y)
    assert sdk.getvalue() == body, "fmrec and SDK 2.x bytes differ"
    s_w = best_of(lambda: write_spmatrix_to_sparse_tensor(io.BytesIO(), X, y), 1)
    s_r = best_of(lambda: read_records(io.BytesIO(body)), 1)
    print(f"  SDK 2.x write {s_w * 1000:7.1f} ms  {rows / s_w:12,.0f} rows/s   (bytes identical: yes)")
    print(
        f"  SDK 2.x read  {s_r * 1000:7.1f} ms  {rows / s_r:12,.0f} rows/s   (read_records: protobuf objects)"
    )
    print(f"  ratio fmrec/SDK: write {s_w / t_w:6.1f}x   read {s_r / t_r:6.1f}x")


def big(rows: int) -> None:
    X, y = onehot(rows, 162_541, 59_047, seed=2)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as tmp:
        path = Path(tmp) / "part-00000.pbr"
        t = time.perf_counter()
        n_bytes = write_spmatrix_file(path, X, y)
        t_w = time.perf_counter() - t
        t = time.perf_counter()
        seen = sum(m.shape[0] for m, _ in iter_spmatrix(path))
        t_r = time.perf_counter() - t
    assert seen == rows
    print(f"25M-rating shape: {rows:,} rows x {X.shape[1]:,} columns, {n_bytes:,} bytes (file in {tmp})")
    print(f"  fmrec write  {t_w:8.2f} s   {rows / t_w:12,.0f} rows/s (atomic file write incl. fsync)")
    print(f"  fmrec read   {t_r:8.2f} s   {rows / t_r:12,.0f} rows/s (streamed, 65,536-row chunks)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--big-rows", type=int, default=23_374_590, help="rows of the 25M case (its ua.base part)")
    args = p.parse_args()
    print(
        f"python {sys.version.split()[0]}, numpy {np.__version__}, cpus {os.cpu_count()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    ua_shaped(args.repeat)
    if args.big_rows:
        big(args.big_rows)


if __name__ == "__main__":
    main()
