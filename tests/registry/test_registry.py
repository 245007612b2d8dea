"""The Model Registry twin and `fmrec models`."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from fmrec.cli import main
from twins.registry.registry import Registry, RegistryError


@pytest.fixture()
def model_tar(tmp_path: Path) -> Path:
    path = tmp_path / "model.tar.gz"
    with tarfile.open(path, "w:gz"):
        pass
    return path


@pytest.fixture()
def metrics(tmp_path: Path) -> Path:
    path = tmp_path / "model_metrics.json"
    path.write_text(
        json.dumps({"binary_classification_metrics": {"auc": {"value": 0.8, "standard_deviation": "NaN"}}})
    )
    return path


def test_versions_count_up_and_keep_copies(tmp_path: Path, model_tar: Path, metrics: Path) -> None:
    reg = Registry(tmp_path / "reg")
    a = reg.register(
        "fm", model_tar=model_tar, status="PendingManualApproval", request={}, metrics_file=metrics
    )
    b = reg.register("fm", model_tar=model_tar, status="Approved", request={"x": 1})
    assert (a.version, b.version) == (1, 2)
    assert a.model_tar.read_bytes() == model_tar.read_bytes() and a.model_tar != model_tar
    assert a.doc["ModelMetrics"]["binary_classification_metrics"]["auc"]["value"] == 0.8
    assert b.doc["ModelMetrics"] is None
    assert reg.latest_approved("fm") == reg.get("fm", 2)
    assert [p.version for p in reg.list()] == [1, 2]


def test_status_changes_are_recorded(tmp_path: Path, model_tar: Path) -> None:
    reg = Registry(tmp_path)
    reg.register("fm", model_tar=model_tar, status="PendingManualApproval", request={})
    reg.set_status("fm", 1, "Approved")
    package = reg.set_status("fm", 1, "Rejected")
    assert package.status == "Rejected"
    assert [h["status"] for h in package.doc["StatusHistory"]] == [
        "PendingManualApproval",
        "Approved",
        "Rejected",
    ]
    assert reg.latest_approved("fm") is None


def test_bad_requests_are_clear_errors(tmp_path: Path, model_tar: Path) -> None:
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="ModelApprovalStatus 'Maybe'"):
        reg.register("fm", model_tar=model_tar, status="Maybe", request={})
    with pytest.raises(RegistryError, match="does not exist"):
        reg.register("fm", model_tar=tmp_path / "missing.tar.gz", status="Approved", request={})
    with pytest.raises(RegistryError, match="model package group"):
        reg.register("bad group!", model_tar=model_tar, status="Approved", request={})
    reg.register("fm", model_tar=model_tar, status="Approved", request={})
    with pytest.raises(RegistryError, match=r"fm/7: no such model package version; known versions: \[1\]"):
        reg.set_status("fm", 7, "Approved")
    assert reg.list() == [reg.get("fm", 1)]  # nothing half-written by the failures


def test_models_cli(
    tmp_path: Path, model_tar: Path, metrics: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "reg"
    Registry(root).register(
        "fmrec-models", model_tar=model_tar, status="PendingManualApproval", request={}, metrics_file=metrics
    )
    assert main(["models", "approve", "1", "--registry", str(root)]) == 0
    assert main(["models", "list", "--registry", str(root)]) == 0
    out = capsys.readouterr().out
    assert "fmrec-models/1: Approved" in out and "auc=0.8000" in out
    assert main(["models", "reject", "5", "--registry", str(root)]) == 2
    assert "no such model package version" in capsys.readouterr().err
