"""manifest.json is one typed record (fmrec/features/manifest.py): written, read back, refused when broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fmrec.errors import InputError
from fmrec.features.manifest import MANIFEST_FILE, Manifest, read_manifest, write_manifest


def _manifest() -> Manifest:
    return Manifest(
        feature_dim=12,
        layout=[{"name": "user", "offset": 0, "size": 5}, {"name": "movie", "offset": 5, "size": 7}],
        label={"mode": "binary", "threshold": 4.0},
        objective="rating",
        sampling=None,
        counts={"train_rows": 3},
        label_balance={"train": {}, "test": {}},
        files={"train": [], "test": [], "holdout": []},
        content_type="application/x-recordio-protobuf",
        source={"data_dir": "/d", "layout": "ml-100k", "split": "ua"},
        config={"objective": "rating"},
    )


def test_written_and_read_back_with_format_version_first(tmp_path: Path) -> None:
    path = write_manifest(tmp_path, _manifest())
    assert path == tmp_path / MANIFEST_FILE
    assert next(iter(json.loads(path.read_text()))) == "format_version"
    assert read_manifest(path) == _manifest()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a readable preprocess manifest"),
        ("[1]", "expected a JSON object, got list"),
        ('{"feature_dim": 3}', "not a preprocess manifest: no config, content_type"),
        (None, "format_version 2; this fmrec reads 1"),
    ],
)
def test_a_broken_manifest_names_the_file_and_the_problem(
    tmp_path: Path, text: str | None, message: str
) -> None:
    path = tmp_path / "manifest.json"
    if text is None:
        text = json.dumps({**_manifest().as_dict(), "format_version": 2})
    path.write_text(text)
    with pytest.raises(InputError, match=message) as caught:
        read_manifest(path)
    assert str(path) in str(caught.value)
