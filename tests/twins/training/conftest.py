"""Training-job twin fixtures: SageMaker container layouts under the test's temporary folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.training_channels import make_layout


@pytest.fixture
def layout(tmp_path: Path) -> Callable[..., Path]:
    """layout(hp=None, test=True, shards=2) -> a container root under tmp_path."""
    return lambda **kw: make_layout(tmp_path / "job", **kw)
