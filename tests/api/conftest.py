"""Fixtures for the API twin tests: the ones of tests/lambda/conftest.py, re-exported."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "fmrec_lambda_conftest", Path(__file__).parent.parent / "lambda" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

w = _shared.w
world = _shared.world
_reset_handler = _shared._reset_handler
