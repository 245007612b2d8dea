"""Fixtures for the API twin tests: the ones of tests/lambdas/recommend/conftest.py."""

from __future__ import annotations

from tests.lambdas.recommend.conftest import _reset_handler, world

__all__ = ["_reset_handler", "world"]
