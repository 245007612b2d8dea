"""Fixtures for the recommend Lambda: a tiny published model version and a configured handler."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdas.recommend import app
from tests.support.lambda_world import World, build_world


@pytest.fixture
def world(tmp_path: Path) -> World:
    return build_world(tmp_path)


@pytest.fixture(autouse=True)
def _reset_handler() -> Iterator[None]:
    yield
    app.configure(None)
