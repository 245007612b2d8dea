"""Item 9 of issue 24: a run holds each channel once; `fmrec runs list|compare|clean`; `fmrec evaluate`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fmrec_cli.main import main

pytestmark = pytest.mark.slow


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def test_a_run_holds_the_train_channel_once(tiny_run: Any) -> None:
    folder = tiny_run.folder
    [pre_train] = [p for p in folder.glob("s3/*/pipeline/*/preprocess/train") if p.is_dir()] or [None]
    assert pre_train is not None
    inodes = {p.stat().st_ino for p in _files(pre_train)}
    staged = [
        folder / "steps" / "TrainModel" / "job" / "input" / "data" / "train",
        folder / "steps" / "Preprocess" / "processing" / "output" / "train",
    ]
    for copy in staged:
        assert {p.stat().st_ino for p in _files(copy)} == inodes, copy  # hard links, not copies
    evaluate_inputs = list(folder.glob("steps/EvaluateModel*/processing/input/train"))
    assert evaluate_inputs and all({p.stat().st_ino for p in _files(d)} == inodes for d in evaluate_inputs)


def test_runs_list_compare_and_clean(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(tiny_run.folder, runs / "pipeline" / tiny_run.folder.name)
    older = runs / "pipeline" / "20000101T000000Z-aaaaaa"
    shutil.copytree(tiny_run.folder, older)
    doc = json.loads((older / "run.json").read_text())
    doc.update(run_id=older.name, parameters={**doc["parameters"], "Epochs": 3})
    (older / "run.json").write_text(json.dumps(doc))

    assert main(["runs", "list", "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert out.index(older.name) < out.index(tiny_run.run_id)  # oldest first
    assert "NDCG@10 0." in out and "(popularity 0." in out and " MB" in out

    assert main(["runs", "compare", older.name[:12], tiny_run.run_id, "--runs-dir", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "Epochs" in out and "model ndcg_at_10" in out and "Objective" not in out  # only what differs

    assert main(["runs", "clean", "--keep", "1", "--dry-run", "--runs-dir", str(runs)]) == 0
    assert older.is_dir() and "would remove 20000101T000000Z-aaaaaa" in capsys.readouterr().out
    assert main(["runs", "clean", "--keep", "1", "--runs-dir", str(runs)]) == 0
    assert not older.exists() and (runs / "pipeline" / tiny_run.folder.name).is_dir()


def test_evaluate_any_model_outside_the_pipeline(
    tiny_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [model] = tiny_run.folder.glob("s3/*/models/*/output/model.tar.gz")
    pre = tiny_run.folder / "steps" / "Preprocess" / "processing" / "output"  # train, test, lookup, holdout
    assert main(["evaluate", "--model", str(model), "--channels", str(pre), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    doc = json.loads((tmp_path / "evaluation.json").read_text())
    assert f"ndcg_at_10 {doc['ranking']['model']['ndcg_at_10']:.4f}" in out
    # the same figures as the pipeline's own evaluate step
    [pipeline_doc] = tiny_run.folder.glob("s3/*/pipeline/*/evaluate/evaluation/evaluation.json")
    assert json.loads(pipeline_doc.read_text())["ranking"]["model"] == doc["ranking"]["model"]


def test_pipeline_run_prints_its_report_with_the_run_facts(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Item 11 of issue 24: the report's path is printed; it names the run, data, objective and gate."""
    args = ["pipeline", "run", "--local", "--data-dir", str(tiny_data), "--runs-dir", str(tmp_path)]
    assert main([*args, "--param", "Objective=rating", "--param", "Epochs=1"]) == 1  # too short: gate fails
    out, err = capsys.readouterr()
    [line] = [x for x in out.splitlines() if x.startswith("report: ")]
    report = Path(line.removeprefix("report: "))
    text = report.read_text()
    assert report.parent.parent == tmp_path / "pipeline" and report.stat().st_mode & 0o777 == 0o644
    assert report.parent.name in text and str(tiny_data.resolve()) in text and "epochs=1" in text
    assert "quality gate (rating) failed: model auc" in text and "not registered" in text
    # the reason once, rounded, the rating gate's checks only
    assert err.count("quality gate") == 1 and "Quality gate failed for" not in err
    assert "GateMinAuc 0.6000" in err and "NDCG" not in err
