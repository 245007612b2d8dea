"""Fixtures for the recommend Lambda: a tiny published model version and a configured handler."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest


def load_world() -> ModuleType:
    """tests/lambda/world.py as a module (tests run with --import-mode=importlib, so no package import)."""
    name = "fmrec_test_world"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("world.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def w() -> ModuleType:
    return load_world()


@pytest.fixture
def world(tmp_path: Path, w: ModuleType) -> object:
    return w.build_world(tmp_path)


@pytest.fixture(autouse=True)
def _reset_handler() -> Iterator[None]:
    from lambdas.recommend import app

    yield
    app.configure(None)
