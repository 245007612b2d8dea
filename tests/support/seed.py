"""The synthetic ua pair the seed's code preprocessed into tests/golden/seed, and its expected outputs."""

from __future__ import annotations

import shutil
from pathlib import Path

SEED = Path(__file__).resolve().parents[1] / "golden" / "seed"


def seed_data(dest: Path) -> Path:
    """Copy the synthetic ua pair into `dest` under MovieLens names (it is stored under neutral ones)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED / "synthetic-ua.base.tsv", dest / "ua.base")
    shutil.copy(SEED / "synthetic-ua.test.tsv", dest / "ua.test")
    return dest
