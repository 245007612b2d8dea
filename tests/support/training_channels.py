"""SageMaker training-container layouts with small learnable recordIO channels, for the training twin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fmrec.codec.writer import write_spmatrix_file

N_USERS, N_ITEMS = 30, 40
FEATURE_DIM = N_USERS + N_ITEMS


def one_hot(n: int, seed: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """User/item one-hot rows whose label depends on the user's and item's parity (learnable, not trivial)."""
    rng = np.random.default_rng(seed)
    u = rng.integers(0, N_USERS, n)
    i = rng.integers(0, N_ITEMS, n)
    p = np.where((u % 2) == (i % 2), 0.8, 0.25)
    y = (rng.random(n) < p).astype(np.float32)
    rows = np.repeat(np.arange(n), 2)
    X = sp.csr_matrix(
        (np.ones(2 * n, np.float32), (rows, np.stack([u, N_USERS + i], 1).ravel())), (n, FEATURE_DIM)
    )
    return X, y


def write_channel(folder: Path, X: sp.csr_matrix, y: np.ndarray | None, shards: int = 1) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, X.shape[0], shards + 1).astype(int)
    for s in range(shards):
        part = slice(bounds[s], bounds[s + 1])
        write_spmatrix_file(folder / f"part-{s:05d}.pbr", X[part], None if y is None else y[part])


def default_hp(**extra: str) -> dict[str, str]:
    return {
        "feature_dim": str(FEATURE_DIM),
        "num_factors": "4",
        "predictor_type": "binary_classifier",
        "epochs": "4",
        "mini_batch_size": "50",
        **extra,
    }


def make_layout(root: Path, hp: dict[str, str] | None = None, test: bool = True, shards: int = 2) -> Path:
    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hp or default_hp()))
    X, y = one_hot(800, 0)
    write_channel(root / "input" / "data" / "train", X, y, shards=shards)
    if test:
        Xt, yt = one_hot(200, 1)
        write_channel(root / "input" / "data" / "test", Xt, yt)
    return root
