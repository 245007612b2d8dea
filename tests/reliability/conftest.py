"""Reliability fixtures: a trained serving world (session) and misbehaving endpoint servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas.recommend import app
from tests.support.fault_server import FaultServer, Reply
from tests.support.trained_world import build


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Synthetic ratings -> preprocess -> training twin -> published serving version v1 (built once)."""
    return build(tmp_path_factory.mktemp("trained"))


@pytest.fixture(autouse=True)
def _reset_handler() -> Iterator[None]:
    yield
    app.configure(None)


@pytest.fixture
def fault_server() -> Iterator[Callable[[Callable[[int, bytes], Reply]], FaultServer]]:
    servers: list[FaultServer] = []

    def start(respond: Callable[[int, bytes], Reply]) -> FaultServer:
        servers.append(FaultServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
