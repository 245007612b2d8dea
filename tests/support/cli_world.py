"""Fixtures of the CLI and docs tests: tiny synthetic data, preprocessed as the pipeline does, a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from fmrec.data.synth import SynthConfig, write_synth
from fmrec.features.options import PreprocessConfig
from fmrec.features.preprocess import run
from fmrec_cli.main import main

TINY = SynthConfig(users=60, items=90, ratings=2500, seed=5)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "ml"
    write_synth(out, TINY)
    return out


@pytest.fixture(scope="session")
def pre(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pre") / "pre"
    run(data_dir, out, PreprocessConfig(objective="ranking"))
    return out


@pytest.fixture(scope="session")
def trained(pre: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`fmrec train` on the channels with only epochs given (the README's command, shortened)."""
    model_dir = tmp_path_factory.mktemp("fm") / "fm"
    assert main(["train", "--channels", str(pre), "--model-dir", str(model_dir), "--hp", "epochs=3"]) == 0
    return model_dir / "model.tar.gz"
