"""Broken serving artifacts (issue 14): folders where files belong are 503s; versions are plain names only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from fmrec.serving.lookup import LOOKUP_FILES
from lambdas.recommend import app
from lambdas.recommend.errors import ServiceUnavailable
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import event, handle


class CountingStore(DirStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super().get(key)


def fast(world: Any) -> Recommender:
    recommender = Recommender(DirStore(world.artifacts), None, fast_path=True)
    app.configure(recommender)
    return recommender


def replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()
    (path / "x").write_text("not the file")


@pytest.mark.parametrize("name", ["current.json", "a-lookup-file", "v1/lookup"])
def test_a_folder_where_an_artifact_file_belongs_is_503(world: Any, name: str) -> None:
    target = world.artifacts / name
    if name == "a-lookup-file":
        target = world.artifacts / "v1" / "lookup" / LOOKUP_FILES[0]
    if target.is_dir():
        shutil.rmtree(target)
        target.write_text("a file where the lookup folder belongs")
    else:
        replace_with_folder(target)
    fast(world)
    status, headers, doc = handle(event("/users/1/recommendations"))
    assert status == 503, doc
    assert doc["code"] == "ServiceUnavailable" and "retry-after" in headers
    assert str(world.artifacts) not in json.dumps(doc)  # paths go to the log, not to the caller


def test_dirstore_reads_a_folder_as_unavailable_and_a_missing_parent_as_absent(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    store = DirStore(tmp_path)
    with pytest.raises(ServiceUnavailable):
        store.get("d")
    assert store.get("f/below") is None  # a file where a folder belongs: nothing is there
    assert store.get("nothing") is None


@pytest.mark.parametrize("version", ["../pre", "..", "v1/../v1", "/tmp", "", "v1/", "a" * 64, "v_1"])
def test_a_published_version_that_is_not_a_plain_name_is_refused(world: Any, version: str) -> None:
    # a complete lookup outside --artifacts that "../pre" would reach
    shutil.copytree(world.artifacts / "v1", world.artifacts.parent / "pre")
    (world.artifacts / "current.json").write_text(json.dumps({"modelVersion": version}))
    store = CountingStore(world.artifacts)
    app.configure(Recommender(store, None, fast_path=True))
    status, _, doc = handle(event("/users/1/recommendations"))
    assert status == 503, doc
    assert store.reads == ["current.json"]  # nothing was read under the bad version


def test_an_endpoint_variant_that_is_not_a_plain_name_is_not_used_as_a_path(world: Any) -> None:
    shutil.copytree(world.artifacts / "v1", world.artifacts.parent / "pre")
    store = CountingStore(world.artifacts)
    recommender = Recommender(store, None, fast_path=True)
    current = recommender.current_bundle()
    assert recommender.bundle_for_variant("../pre", current) is current
    assert not any("pre" in key for key in store.reads), store.reads
