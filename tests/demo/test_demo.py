"""`fmrec demo --no-serve` end to end on tiny synthetic data: pipeline, approval, twins, recommendations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec.features.settings import DEFAULTS
from fmrec_cli.main import main
from twins.registry.registry import Registry

pytestmark = pytest.mark.slow

# On 100 users x 150 movies popularity is hard to beat (its NDCG@10 is 0.5): the flow test runs the rating
# objective there; the default (ranking) objective runs on a larger set below.
TINY = ["--synth-users", "100", "--synth-items", "150", "--synth-ratings", "6000"]
# Epochs 15: on 6,000 ratings (12 mini-batches an epoch) the default 4 epochs, chosen for the ranking
# channel's three passes, leave the one-pass rating model short of the biases-only log loss
# (tests/pipeline/conftest.py)
RATING = ["--param", "Objective=rating", "--param", "Epochs=15"]


def test_demo_default_objective_beats_popularity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default (ranking) objective, history columns and all, on 300 users x 600 movies: the model beats
    popularity on NDCG@10 and is registered (GateNdcgMargin 0: at this size the lift is a few percent)."""
    runs = tmp_path / "runs"
    small = ["--synth-users", "300", "--synth-items", "600", "--synth-ratings", "24000"]
    args = [
        "demo",
        "--no-serve",
        "--runs-dir",
        str(runs),
        "--users",
        "1",
        "--param",
        "GateNdcgMargin=0",
        *small,
    ]
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "the model beats popularity on NDCG@10 (+" in err and "path endpoint" in out
    lookup = json.loads(next(runs.glob("serving/v1/lookup/lookup.json")).read_text())
    assert lookup["meta"]["objective"] == "ranking" and lookup["history"]["cap"] == DEFAULTS["history"]


def test_demo_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    assert main(["demo", "--no-serve", "--runs-dir", str(runs), "--users", "1,2", *RATING, *TINY]) == 0
    out, err = capsys.readouterr()
    assert out.count("rank  movieId") == 2 and "user 1  model v1  path endpoint" in out
    titles = {
        line.split("|")[1]
        for line in next((runs / "data").glob("*/u.item")).read_text("latin-1").splitlines()
    }
    assert any(t in out for t in titles)  # titles come from the lookup
    assert "popularity on NDCG@10 (" in err and "users ranked)" in err
    assert len([line for line in out.splitlines() if line.strip()[:3].strip().isdigit()]) == 20
    for stage in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert f"[demo] {stage}" in err
    [package] = Registry(runs / "registry").list()
    assert package.status == "Approved"
    assert json.loads((runs / "serving" / "current.json").read_text()) == {"modelVersion": "v1"}
    assert "demo --reuse" in err  # how to serve it again without retraining

    # --reuse serves the newest approved model again: no data, no pipeline run, no new version.
    run_folders = sorted((runs / "pipeline").iterdir())
    assert main(["demo", "--no-serve", "--reuse", "--runs-dir", str(runs), "--users", "1"]) == 0
    out, err = capsys.readouterr()
    assert "user 1  model v1  path endpoint" in out and "reusing the newest approved model" in err
    assert "2/5 pipeline" not in err and sorted((runs / "pipeline").iterdir()) == run_folders
    assert [p.version for p in Registry(runs / "registry").list()] == [1]


def test_demo_reuse_without_an_approved_model_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--no-serve", "--reuse", "--runs-dir", str(tmp_path)]) == 2
    assert "no approved model" in capsys.readouterr().err


def test_demo_stops_with_the_gate_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    # the rating objective's AUC gate
    args = [*RATING, "--param", "GateMinAuc=0.99"]
    assert main(["demo", "--no-serve", "--runs-dir", str(runs), *args, *TINY]) != 0
    err = capsys.readouterr().err
    # once, rounded, and only the rating gate's checks
    [line] = [x for x in err.splitlines() if "quality gate" in x or "Quality gate" in x]  # said once
    assert "did not register a model: quality gate (rating) failed: model auc 0." in line
    assert ">= GateMinAuc 0.9900 (no)" in line and "NDCG" not in line  # rounded; the rating gate's only
    report = next((runs / "pipeline").glob("*/report.html"))
    text = report.read_text()
    assert all(f"<th style='text-align:left'>{k}</th>" in text for k in ("run id", "date", "data", "gate"))
    assert "max-width:100%" in text and report.stat().st_mode & 0o777 == 0o644
    assert Registry(runs / "registry").list() == []
    assert not (runs / "serving").exists()
