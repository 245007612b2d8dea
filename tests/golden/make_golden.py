"""Regenerates the golden files with SageMaker SDK 2.x in a throwaway venv (never a project dependency).

python -m venv /tmp/sdk2venv && /tmp/sdk2venv/bin/pip install sagemaker==2.257.7 scikit-learn pandas
SAGEMAKER_SUPPRESS_V2_WARNING=1 /tmp/sdk2venv/bin/python tests/golden/make_golden.py
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sagemaker.amazon.common import write_spmatrix_to_sparse_tensor
from sklearn.preprocessing import OneHotEncoder

HERE = Path(__file__).parent
CODEC = HERE / "codec"
SEED = HERE / "seed"
SEED_BASE, SEED_TEST = "synthetic-ua.base.tsv", "synthetic-ua.test.tsv"


def save_case(name: str, X: sp.csr_matrix, y: np.ndarray | None) -> None:
    buf = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buf, X, y)
    (CODEC / f"{name}.pbr").write_bytes(buf.getvalue())
    arrays = {"data": X.data, "indices": X.indices.astype(np.int64), "indptr": X.indptr.astype(np.int64)}
    arrays["shape"] = np.array(X.shape, dtype=np.int64)
    if y is not None:
        arrays["labels"] = y
    np.savez_compressed(CODEC / f"{name}.npz", **arrays)


def codec_cases() -> None:
    CODEC.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261124)
    n = 64
    users, items = rng.integers(0, 40, n), 40 + rng.integers(0, 200, n)
    onehot = sp.csr_matrix(
        (np.ones(2 * n, np.float32), np.stack([users, items], 1).ravel(), np.arange(0, 2 * n + 1, 2)),
        shape=(n, 240),
    )
    save_case("onehot_f32", onehot, (rng.random(n) < 0.5).astype(np.float32))
    save_case("onehot_nolabel", onehot, None)
    rows = [rng.choice(300, size=k, replace=False) for k in rng.integers(0, 4, 30)]
    rows[0] = np.array([], dtype=np.int64)
    indptr = np.concatenate(([0], np.cumsum([len(r) for r in rows])))
    indices = np.concatenate([np.sort(r) for r in rows]).astype(np.int64)
    vals = rng.normal(0, 3, indices.size).astype(np.float32)
    save_case(
        "empty_and_nonunit",
        sp.csr_matrix((vals, indices, indptr), shape=(30, 300)),
        rng.normal(size=30).astype(np.float32),
    )
    dense = sp.random(12, 400, density=0.6, format="csr", random_state=7, dtype=np.float32)
    save_case("many_nonzeros", dense, rng.integers(1, 6, 12).astype(np.float32))
    cols = np.sort(rng.integers(0, 2**40, (25, 4)), axis=1).ravel()
    cols[:4] = [0, 127, 128, 2**21 + 5]
    big = sp.csr_matrix((rng.random(100).astype(np.float32), cols, np.arange(0, 101, 4)), shape=(25, 2**40))
    save_case("large_indices", big, rng.random(25).astype(np.float32))
    save_case("float64", dense.astype(np.float64), rng.random(12))
    ints = sp.csr_matrix(
        (rng.integers(-70000, 70000, dense.nnz), dense.indices, dense.indptr), shape=dense.shape
    )
    save_case("int_values", ints, rng.integers(-3, 300, 12))
    save_case("all_empty", sp.csr_matrix((5, 2**21 + 1), dtype=np.float32), np.zeros(5, np.float32))


def synthetic_ua(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tiny ml-100k-style ua.base/ua.test pair (synthesized, not MovieLens): 10 test ratings per user,
    some movies only in the test split, ids not contiguous."""
    frames = []
    movie_ids = np.sort(rng.choice(np.arange(1, 400), size=90, replace=False))
    for user in sorted(rng.choice(np.arange(1, 200), size=35, replace=False)):
        k = int(rng.integers(20, 45))
        movies = rng.choice(movie_ids, size=k, replace=False)
        ts = 874000000 + rng.integers(0, 10**7, k)
        ratings = rng.integers(1, 6, k)
        frames.append(pd.DataFrame({"userId": user, "movieId": movies, "rating": ratings, "timestamp": ts}))
    df = pd.concat(frames, ignore_index=True)
    # test: the 10 latest ratings of each user
    df = df.sort_values(["userId", "timestamp", "movieId"]).reset_index(drop=True)
    test_mask = df.groupby("userId").cumcount(ascending=False) < 10
    base = df[~test_mask].sort_values(["userId", "movieId"])
    test = df[test_mask]
    # movies only in the test split (as in the real ua split) and one user only in the test split
    users = base.userId.unique()
    extra = pd.DataFrame(
        {
            "userId": [users[0], users[3], users[7], 250, 250],
            "movieId": [401, 402, 401, int(movie_ids[0]), 403],
            "rating": [5, 2, 4, 4, 1],
            "timestamp": [884000000, 884000001, 884000002, 884000003, 884000004],
        }
    )
    test = pd.concat([test, extra]).sort_values(["userId", "movieId"])
    return base, test


def seed_case() -> None:
    SEED.mkdir(parents=True, exist_ok=True)
    base, test = synthetic_ua(np.random.default_rng(4))
    # Neutral names: tracked files called ua.base look like MovieLens, which may not be committed.
    for frame, name in ((base, SEED_BASE), (test, SEED_TEST)):
        frame.to_csv(SEED / name, sep="\t", header=False, index=False)
    # the seed's code, verbatim apart from S3 and the sklearn 1.2 rename sparse -> sparse_output
    ratings = pd.read_csv(SEED / SEED_BASE, sep="\t", names=["userId", "movieId", "rating", "timestamp"])
    ratings_test = pd.read_csv(SEED / SEED_TEST, sep="\t", names=["userId", "movieId", "rating", "timestamp"])
    ratings["rating_bin"] = (ratings.rating >= 4).astype("float32")
    ratings_test["rating_bin"] = (ratings_test.rating >= 4).astype("float32")
    enc = OneHotEncoder(handle_unknown="ignore", sparse_output=True)
    enc.fit(ratings[["userId", "movieId"]])
    X_train = enc.transform(ratings[["userId", "movieId"]]).astype("float32")
    X_test = enc.transform(ratings_test[["userId", "movieId"]]).astype("float32")
    for X, Y, name in (
        (X_train, ratings["rating_bin"], "train.pbr"),
        (X_test, ratings_test["rating_bin"], "test.pbr"),
    ):
        buf = io.BytesIO()
        write_spmatrix_to_sparse_tensor(buf, X, Y)
        (SEED / name).write_bytes(buf.getvalue())


if __name__ == "__main__":
    codec_cases()
    seed_case()
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"golden files: {total} bytes")
