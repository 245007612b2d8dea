"""Fuzz fixtures: the trained world of tests/support; the API twin over the endpoint twin on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.recommend import app
from tests.support.trained_world import ENDPOINT, VERSION, build
from twins.api.server import start_in_background
from twins.endpoint.server import start_in_background as start_endpoint


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Synthetic ratings -> preprocess -> training twin -> published serving version v1."""
    return build(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def api_url(trained: Any) -> Iterator[str]:
    """The API twin (the recommend Lambda's own handler) backed by the endpoint twin serving the model."""
    with (
        start_endpoint(trained.model_path, name=ENDPOINT, variant=VERSION) as endpoint,
        start_in_background(trained.artifacts, endpoint.url, endpoint_name=ENDPOINT) as api,
    ):
        yield api.url
    app.configure(None)
