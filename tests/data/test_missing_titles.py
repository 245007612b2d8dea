"""Missing movie titles are reported (issue 14 item 7): a warning and data_quality.json["titles"]."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from fmrec.data.synth import SynthConfig, write_synth
from fmrec_cli.main import main as fmrec_main


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("t") / "ml-100k"
    write_synth(out, SynthConfig(users=30, items=40, ratings=900, seed=3))
    return out


def _rated(data: Path) -> int:
    """Movies rated in train (ua.base): the generator also makes test-only movies, which are not counted."""
    return len({line.split("\t")[1] for line in (data / "ua.base").read_text().splitlines() if line})


def _preprocess(data: Path, out: Path, caplog: pytest.LogCaptureFixture) -> tuple[dict[str, Any], str]:
    with caplog.at_level(logging.WARNING, logger="fmrec.preprocess"):
        assert fmrec_main(["preprocess", "--data-dir", str(data), "--out", str(out)]) == 0
    quality = json.loads((out / "manifest" / "data_quality.json").read_text())
    return quality, caplog.text


def test_all_titles_present(ml100k: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    quality, err = _preprocess(ml100k, tmp_path / "out", caplog)
    titles = quality["titles"]
    assert titles["source"] == str(ml100k / "u.item")
    assert titles["movies"] == _rated(ml100k)
    assert titles["movies_without_title"] == 0 and titles["examples"] == []
    assert "no title" not in err


def test_without_u_item(ml100k: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = Path(shutil.copytree(ml100k, tmp_path / "data"))
    (data / "u.item").unlink()
    quality, err = _preprocess(data, tmp_path / "out", caplog)
    assert quality["titles"]["source"] is None
    n = _rated(ml100k)
    assert quality["titles"]["movies_without_title"] == quality["titles"]["movies"] == n
    assert f"{n} of {n} rated movies have no title (no movie file)" in err


def test_rated_movies_missing_from_u_item(
    ml100k: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = Path(shutil.copytree(ml100k, tmp_path / "data"))
    lines = (data / "u.item").read_bytes().split(b"\n")
    kept = [ln for ln in lines if ln and ln.split(b"|")[0] not in (b"3", b"17")]
    (data / "u.item").write_bytes(b"\n".join(kept) + b"\n")
    quality, err = _preprocess(data, tmp_path / "out", caplog)
    assert quality["titles"]["movies_without_title"] == 2 and quality["titles"]["examples"] == [3, 17]
    assert f"2 of {_rated(ml100k)} rated movies have no title (not in" in err and "[3, 17]" in err
