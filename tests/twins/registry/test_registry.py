"""The Model Registry twin and `fmrec models`."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from fmrec_cli.main import main
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
    # --no-deploy: this hand-registered package has no lookup/, which the deployer twin needs (tests/cli)
    assert main(["models", "approve", "1", "--registry", str(root), "--no-deploy"]) == 0
    assert main(["models", "list", "--registry", str(root)]) == 0
    out = capsys.readouterr().out
    assert "fmrec-models/1: Approved" in out and "auc=0.8000" in out
    assert main(["models", "reject", "5", "--registry", str(root)]) == 2
    assert "no such model package version" in capsys.readouterr().err


_REGISTER_MANY = """
import sys, tarfile, io
from pathlib import Path
from twins.registry.registry import Registry

root, who, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
import time
time.sleep(max(0.0, start - time.time()))  # both processes begin together
model = Path(root).parent / f"model-{who}.tar.gz"
reg = Registry(root)
for i in range(n):
    payload = f"{who}-{i}".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("who")
        info.size = len(payload)
        tf.addfile(info, io.BytesIO(payload))
    model.write_bytes(buf.getvalue())
    package = reg.register("fm", model_tar=model, status="Approved", request={"who": who, "i": i})
    print(package.version, flush=True)
"""


@pytest.mark.slow
def test_concurrent_registrations_never_share_a_version(tmp_path: Path) -> None:
    """Two real processes register 25 models each at once: 50 distinct versions, each with its own model."""
    root = tmp_path / "reg"
    start = time.time() + 1.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REGISTER_MANY, str(root), who, "25", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    claimed = [int(v) for out, _ in outs for v in out.split()]
    assert sorted(claimed) == list(range(1, 51))  # no version given twice, none lost
    reg = Registry(root)
    for package in reg.list("fm"):
        with tarfile.open(package.model_tar) as tf:
            member = tf.extractfile("who")
            assert member is not None
            payload = member.read().decode()
        request = package.doc["Request"]
        assert payload == f"{request['who']}-{request['i']}"  # the package holds the model it registered
    assert sorted(p.name for p in (root / "fm").iterdir() if p.name.startswith(".")) == []
