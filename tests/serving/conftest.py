"""Fixtures of the serving library's tests: the tiny published world, the preprocessed synthetic folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.features.conftest import preprocessed, synth_dir
from tests.support.lambda_world import World, build_world

__all__ = ["preprocessed", "synth_dir"]  # the preprocess tests' session fixtures, for the lookup tests


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)
