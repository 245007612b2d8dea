"""Item 9 of issue 24: `fmrec models list` shows NDCG@10, the gate's metric, beside popularity's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec_cli.main import main
from twins.registry.registry import Registry


def test_models_list_shows_ndcg_first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def entry(v: float) -> dict[str, object]:
        return {"value": v, "standard_deviation": "NaN"}

    metrics = {
        "binary_classification_metrics": {"auc": entry(0.81), "log_loss": entry(0.52)},
        "ranking_metrics": {"ndcg_at_10": entry(0.333), "users": entry(943)},
        "ranking_baseline_metrics": {"popularity_ndcg_at_10": entry(0.122)},
    }
    (tmp_path / "model_metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "model.tar.gz").write_bytes(b"not read by the registry")
    Registry(tmp_path / "reg").register(
        "fmrec-models",
        model_tar=tmp_path / "model.tar.gz",
        status="PendingManualApproval",
        request={},
        metrics_file=tmp_path / "model_metrics.json",
    )
    assert main(["models", "list", "--registry", str(tmp_path / "reg")]) == 0
    line = capsys.readouterr().out.strip()
    assert "ndcg_at_10=0.3330 (popularity 0.1220) auc=0.8100 log_loss=0.5200" in line
