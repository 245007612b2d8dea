"""Fixtures of the pipeline tests: the definition as the CDK app builds it (built once per session)."""

from __future__ import annotations

import socket
from typing import Any

import pytest


@pytest.fixture(scope="session")
def cdk_definition() -> dict[str, Any]:
    """get_pipeline with the CDK placeholders, built with no credentials and every socket connect refused."""
    from pipeline.definition import CDK_ARGUMENTS, get_pipeline

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the definition build tried to open a network connection: {args}")

    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        mp.setenv("HOME", "/nonexistent-home")
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        return get_pipeline(region="us-east-1", **CDK_ARGUMENTS)
