"""Item 6 of issue 24: approving a model locally deploys it, as the deployer does on AWS."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from fmrec.serving.lookup import read_lookup
from fmrec.serving.requests import build_requests
from fmrec_cli.main import main
from twins.api.server import start_in_background as start_api
from twins.background import free_port, start_process
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


def test_serve_endpoint_artifacts_follows_each_publication_across_workers(
    pre: Path, trained: Path, tmp_path: Path
) -> None:
    """`fmrec serve endpoint --artifacts DIR` (worker processes): each invocation answers with the version
    current.json publishes at that moment."""
    serving = tmp_path / "serving"
    lookup_dir = str(pre / "lookup")
    publish = ["publish", "--artifacts", str(serving), "--lookup", lookup_dir, "--model", str(trained)]
    assert main(publish) == 0
    port = free_port("127.0.0.1")
    args = ["serve", "endpoint", "--artifacts", str(serving), "--port", str(port), "--workers", "2"]
    _, stop = start_process(args, "127.0.0.1", port, probe_path="/ping", label="endpoint", timeout=120)
    try:
        lookup = read_lookup(pre / "lookup")
        [payload] = build_requests(lookup, 0, [0])
        runtime = boto3.client(
            "sagemaker-runtime",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )

        def variants() -> set[str]:
            return {
                runtime.invoke_endpoint(
                    EndpointName="fmrec-endpoint", ContentType="application/json", Body=payload.body
                )["InvokedProductionVariant"]
                for _ in range(6)  # enough connections to reach both workers
            }

        assert variants() == {"v1"}
        assert main(publish) == 0  # v2
        assert variants() == {"v2"}
    finally:
        assert stop() == 0
