"""Item 6 of issue 24: approving a model locally deploys it, as the deployer does on AWS."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from fmrec_cli.main import main
from twins.api.server import start_in_background as start_api
from twins.endpoint.follow import start_following
from twins.registry.registry import Registry

pytestmark = pytest.mark.slow

GROUP = "fmrec-models"


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return dict(json.loads(response.read()))


def _current(serving: Path) -> str:
    return str(json.loads((serving / "current.json").read_text())["modelVersion"])


def test_approve_publishes_the_newest_approved_and_the_twins_serve_it(
    pre: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(tmp_path / "runs" / "registry")
    for _ in range(2):
        registry.register(
            GROUP, model_tar=trained, status="PendingManualApproval", request={}, lookup_dir=pre / "lookup"
        )
    serving = tmp_path / "runs" / "serving"
    models = ["models"]
    reg = ["--registry", str(registry.root)]

    assert main([*models, "approve", "1", *reg]) == 0
    assert _current(serving) == "v1"
    assert "published v1" in capsys.readouterr().out

    endpoint, followed = start_following(serving)
    api = start_api(serving, endpoint.url)
    try:
        url = f"{api.url}/users/1/recommendations?k=5"
        first = _get(url)
        assert first["modelVersion"] == "v1" and followed.variant == "v1"

        assert main([*models, "approve", "2", *reg]) == 0  # the approval deploys v2 at once
        assert _current(serving) == "v2"
        assert _get(url)["modelVersion"] == "v2"

        assert main([*models, "approve", "1", *reg]) == 0  # approving an older one does not roll back
        assert _current(serving) == "v2" and "already published" in capsys.readouterr().out

        assert main([*models, "reject", "2", *reg]) == 0  # rejecting the live one falls back
        assert _current(serving) == "v1"
        assert _get(url)["modelVersion"] == "v1"

        assert main([*models, "list", *reg]) == 0
        out = capsys.readouterr().out
        assert f"* {GROUP}/1" in out and f"  {GROUP}/2" in out and "publishes v1" in out
    finally:
        api.stop()
        endpoint.stop()


def test_reject_of_the_only_approved_leaves_serving_as_it_was(
    pre: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = Registry(tmp_path / "registry")
    registry.register(GROUP, model_tar=trained, status="Approved", request={}, lookup_dir=pre / "lookup")
    reg = ["--registry", str(registry.root)]
    assert main(["models", "approve", "1", *reg]) == 0
    assert main(["models", "reject", "1", *reg]) == 0
    assert _current(tmp_path / "serving") == "v1"  # as on AWS: the endpoint keeps what it serves
    assert "no approved version" in capsys.readouterr().out
    assert main(["models", "approve", "1", *reg, "--no-deploy"]) == 0
