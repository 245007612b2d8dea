"""`fmrec pipeline definition` and `fmrec pipeline run --local` argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec_cli.main import main

pytestmark = pytest.mark.slow


def test_definition_command_writes_the_cdk_definition(tmp_path: Path) -> None:
    out = tmp_path / "definition.json"
    assert main(["pipeline", "definition", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["Version"] == "2020-12-01"
    assert "${PipelineRoleArn}" in out.read_text() and "fmrec-local" not in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--param", "NoSuchParam=1"], "NoSuchParam: unknown parameter"),
        (["--param", "TrainingInstanceCount=two"], "TrainingInstanceCount=two: expected integer"),
        (["--param", "Epochs"], "expected NAME=VALUE"),
        ([], "pass --data-dir"),
        (["--param", "NegativeExponent=2"], "negative exponent 2.0: expected a number in [0, 1]"),
    ],
)
def test_run_rejects_bad_arguments_before_any_step(
    tmp_path: Path, tiny_data: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    data = [] if not argv else ["--data-dir", str(tiny_data)]
    rc = main(["pipeline", "run", "--local", "--runs-dir", str(tmp_path), *data, *argv])
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "pipeline").exists()
