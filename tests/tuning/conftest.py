"""Fixtures of the tuning tests: the pipeline definition with the tuning branch, built offline once."""

from __future__ import annotations

import socket
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tuning_definition() -> dict[str, Any]:
    """get_pipeline with the CDK placeholders and the tuning branch, no credentials, every connect refused."""
    from pipeline.definition import CDK_ARGUMENTS, get_pipeline
    from pipeline.tuning import TuningOptions

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the definition build tried to open a network connection: {args}")

    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", "/nonexistent-home")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        return get_pipeline(region="us-east-1", **CDK_ARGUMENTS, tuning=TuningOptions())
