"""Item 3 of issue 24: `fmrec pipeline run` needs --data-dir, says so, and every printed command passes it."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from fmrec_cli.main import main
from fmrec_cli.tune import _data_dir_flag

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # builds the pipeline definition with the SageMaker SDK
def test_pipeline_run_without_data_dir_names_the_flag_not_an_s3_parameter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["pipeline", "run", "--local", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--data-dir" in err and "s3://" not in err
    assert not (tmp_path / "pipeline").exists()


def test_docs_never_show_data_dir_as_optional_for_the_pipeline() -> None:
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in path.read_text(encoding="utf-8").splitlines():
            for cmd in re.findall(r"fmrec pipeline run --local[^`]*", line):
                assert "--data-dir" in cmd and "[--data-dir" not in cmd, f"{path.name}: {cmd}"


def test_the_printed_pipeline_command_names_the_folder_train_came_from(tmp_path: Path) -> None:
    (tmp_path / "pre" / "manifest").mkdir(parents=True)
    (tmp_path / "pre" / "train").mkdir()
    manifest = {"source": {"data_dir": "/data/ml-100k"}}
    (tmp_path / "pre" / "manifest" / "manifest.json").write_text(json.dumps(manifest))
    args = argparse.Namespace(data_dir=None, train=tmp_path / "pre" / "train")
    assert _data_dir_flag(args) == ["--data-dir", "/data/ml-100k"]
    args.data_dir = Path("mine")
    assert _data_dir_flag(args) == ["--data-dir", "mine"]
