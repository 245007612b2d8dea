"""Item 12 of issue 24: your own ratings.csv (titles optional) and implicit feedback, every row a positive."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fmrec.evaluation.holdout import read_holdout
from fmrec_cli.main import main


def _clicks(folder: Path, users: int = 40, movies: int = 60, per_user: int = 20) -> Path:
    """A ratings.csv of clicks: the rating column is a constant 1 (no stars), and no movies.csv."""
    rng = np.random.default_rng(3)
    folder.mkdir()
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, users + 1):
        for m in rng.choice(np.arange(1, movies + 1), per_user, replace=False):
            lines.append(f"{u},{int(m)},1,{1_600_000_000 + int(m)}")
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_clicks_with_implicit_are_all_positives_and_relevant(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _clicks(tmp_path / "clicks")
    out = tmp_path / "pre"
    assert main(["preprocess", "--data-dir", str(data), "--out", str(out), "--implicit"]) == 0
    manifest = json.loads((out / "manifest" / "manifest.json").read_text())
    assert manifest["config"]["implicit"] is True and manifest["source"]["layout"] == "ml-latest"
    held = read_holdout(out / "holdout")
    assert len(held) > 0 and bool((held.rating >= manifest["config"]["threshold"]).all())  # all relevant
    assert "have no title" in caplog.text  # titles are optional: the API shows empty titles


def test_clicks_without_implicit_have_nothing_relevant_and_implicit_needs_ranking(tmp_path: Path) -> None:
    data = _clicks(tmp_path / "clicks")
    out = tmp_path / "pre"
    assert main(["preprocess", "--data-dir", str(data), "--out", str(out)]) == 0
    assert not bool((read_holdout(out / "holdout").rating >= 4.0).any())  # why --implicit exists
    args = ["preprocess", "--data-dir", str(data), "--out", str(tmp_path / "r"), "--implicit"]
    assert main([*args, "--objective", "rating"]) == 2
