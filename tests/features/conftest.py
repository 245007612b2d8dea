"""Fixtures: a tiny synthetic ml-100k folder (and its preprocessed output) shared by the preprocess tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmrec.data.synth import SynthConfig, write_synth
from fmrec.features.options import PreprocessConfig
from fmrec.stages.preprocess import run

TINY = SynthConfig(users=50, items=80, ratings=2000, seed=11)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ml"
    write_synth(out, TINY)
    return out


@pytest.fixture(scope="session")
def preprocessed(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "out"
    run(synth_dir, out, PreprocessConfig(objective="rating"))  # the seed's rows, for the parity tests
    return out


@pytest.fixture(scope="session")
def ranked(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ranking rows with one-hot columns only and every rated movie once per pass: the sampler's channel."""
    out = tmp_path_factory.mktemp("rank") / "out"
    run(synth_dir, out, PreprocessConfig(objective="ranking", positives="all", history=0, neighbours=0))
    return out


@pytest.fixture(scope="session")
def ranked_default(synth_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ranking rows as the pipeline writes them by default (weighted positives, history columns, the
    neighbour column and its table)."""
    out = tmp_path_factory.mktemp("rank-default") / "out"
    run(synth_dir, out, PreprocessConfig(objective="ranking"))
    return out
