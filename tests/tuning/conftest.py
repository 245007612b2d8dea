"""Fixtures of the tuning tests: the pipeline definition with the tuning branch, built offline once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.codec.writer import write_spmatrix_file


@pytest.fixture(scope="session")
def tuning_definition(offline_pipeline: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """get_pipeline with the CDK placeholders and the tuning branch, no credentials, every connect refused."""
    # local import: the SageMaker SDK takes ~3 s to import; this conftest loads for every tuning test file
    from pipeline.tuning import TuningOptions

    return offline_pipeline(tuning=TuningOptions())


@pytest.fixture(scope="session")
def tiny_channels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A planted-factor one-hot data set (60 users, 80 items, 4,000 rows): folder with train/ and test/."""
    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    n_users, n_items = 60, 80
    U, V = rng.normal(size=(n_users, 3)), rng.normal(size=(n_items, 3))
    for name, n in (("train", 4000), ("test", 600)):
        u, i = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
        y = (((U[u] * V[i]).sum(1) + rng.normal(scale=0.5, size=n)) > 0).astype(np.float32)
        rows, cols = np.repeat(np.arange(n), 2), np.stack([u, n_users + i], 1).ravel()
        X = sp.csr_matrix((np.ones(2 * n, np.float32), (rows, cols)), shape=(n, n_users + n_items))
        write_spmatrix_file(root / name / "part-00000.pbr", X, y)
    return root
