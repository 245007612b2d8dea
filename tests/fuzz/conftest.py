"""Fuzz fixtures: the trained world of tests/reliability; the API twin over the endpoint twin on loopback."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def _world_module() -> ModuleType:
    name = "fmrec_reliability_world"
    if name not in sys.modules:
        path = Path(__file__).parent.parent / "reliability" / "world.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def rw() -> ModuleType:
    return _world_module()


@pytest.fixture(scope="session")
def trained(rw: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Synthetic ratings -> preprocess -> training twin -> published serving version v1."""
    return rw.build(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def api_url(trained: Any, rw: ModuleType) -> Iterator[str]:
    """The API twin (the recommend Lambda's own handler) backed by the endpoint twin serving the model."""
    from lambdas.recommend import app
    from twins.api.server import start_in_background
    from twins.endpoint.server import start_in_background as start_endpoint

    with (
        start_endpoint(trained.model_path, name=rw.ENDPOINT, variant=rw.VERSION) as endpoint,
        start_in_background(trained.artifacts, endpoint.url, endpoint_name=rw.ENDPOINT) as api,
    ):
        yield api.url
    app.configure(None)
