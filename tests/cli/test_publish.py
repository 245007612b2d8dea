"""Item 7 of issue 24: a bare lookup folder says what is missing; `fmrec publish` makes a version."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from fmrec.errors import InputError
from fmrec.serving.lookup import read_lookup
from fmrec_cli.main import main
from fmrec_cli.serve_api import check_artifacts
from twins.api.server import start_in_background as start_api

pytestmark = pytest.mark.slow
NO_ENDPOINT = "http://127.0.0.1:9"  # similar movies never call the endpoint


def _similar(api_url: str, movie: int) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{api_url}/movies/{movie}/similar?k=3", timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bare_folder_says_what_is_missing_and_publish_fixes_it(
    pre: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    movie = int(read_lookup(pre / "lookup").movie_ids[0])
    with start_api(pre / "lookup", NO_ENDPOINT) as api:
        status, body = _similar(api.url, movie)
    assert status == 503
    assert "no model published" in str(body["message"]) and "version None" not in str(body["message"])

    check_artifacts(pre / "lookup", fast_path=False)  # the twin warns at start, naming the command
    err = capsys.readouterr().err
    assert "similar will answer 503" in err and " publish --artifacts" in err
    with pytest.raises(InputError, match="bare lookup folder"):
        check_artifacts(pre / "lookup", fast_path=True)

    serving = tmp_path / "serving"
    args = ["publish", "--artifacts", str(serving), "--lookup", str(pre / "lookup"), "--model", str(trained)]
    assert main(args) == 0 and main(args) == 0
    assert json.loads((serving / "current.json").read_text()) == {"modelVersion": "v2"}
    assert (serving / "v1" / "model.tar.gz").is_file() and (serving / "v2" / "lookup").is_dir()
    check_artifacts(serving, fast_path=True)
    with start_api(serving, NO_ENDPOINT) as api:
        status, body = _similar(api.url, movie)
    assert status == 200 and body["modelVersion"] == "v2"


def test_publish_refuses_a_model_of_another_preprocess_run(
    pre: Path, trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "lookup"
    other.mkdir()
    for item in (pre / "lookup").iterdir():
        (other / item.name).write_bytes(item.read_bytes())
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not a model")
    args = ["publish", "--artifacts", str(tmp_path / "s"), "--lookup", str(other), "--model", str(bad)]
    assert main(args) == 2
    assert not (tmp_path / "s" / "current.json").exists()
