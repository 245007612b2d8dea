"""Shared test set-up: fake AWS credentials and region (no account is reachable); tests/stacks is slow."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
}
os.environ.update(_FAKE_ENV)
for _var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in _FAKE_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def offline_pipeline() -> Callable[..., dict[str, Any]]:
    """Build get_pipeline(...) with the CDK placeholders, no credentials and every socket connect refused."""

    def build(**kwargs: Any) -> dict[str, Any]:
        # local import: the SageMaker SDK takes ~3 s to import; this conftest loads for every test run
        from pipeline.definition import CDK_ARGUMENTS, get_pipeline

        def refuse(*args: Any, **_: Any) -> None:
            raise AssertionError(f"the definition build tried to open a network connection: {args}")

        with pytest.MonkeyPatch.context() as mp:
            for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
                mp.delenv(var, raising=False)
            mp.setenv("HOME", "/nonexistent-home")
            mp.setattr(socket.socket, "connect", refuse)
            mp.setattr(socket, "create_connection", refuse)
            return get_pipeline(region="us-east-1", **CDK_ARGUMENTS, **kwargs)

    return build


_CDK_TESTS = Path(__file__).parent / "stacks"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every tests/stacks test needs a synthesized app (jsii, node, the npm CLI): the whole folder is slow."""
    for item in items:
        if item.path.is_relative_to(_CDK_TESTS):
            item.add_marker(pytest.mark.slow)
