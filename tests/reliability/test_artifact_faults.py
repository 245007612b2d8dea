"""Missing or corrupt serving artifacts (lookup, current.json, model): the documented 503, never a 400/500."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmrec.errors import InputError
from fmrec.model.artifact import FMModel, ModelArtifactError, load_model_tar, save_model_tar
from fmrec.model.fm import FMParams
from pipeline.steps.evaluate import main as evaluate_step
from tests.support.loopback import http_get
from tests.support.trained_world import ENDPOINT, VERSION
from twins.api.server import start_in_background
from twins.endpoint.server import start_in_background as start_endpoint

pytestmark = pytest.mark.slow

ERROR_KEYS = {"code", "message", "requestId"}


def copy_artifacts(trained: Any, dest: Path) -> Path:
    return Path(shutil.copytree(trained.artifacts, dest / "serving"))


@pytest.fixture
def endpoint(trained: Any) -> Iterator[Any]:
    with start_endpoint(trained.model_path, name=ENDPOINT, variant=VERSION) as ep:
        yield ep


def serve_once(artifacts: Path, endpoint_url: str | None, path: str) -> Any:
    with start_in_background(
        artifacts, endpoint_url, endpoint_name=ENDPOINT, fast_path=endpoint_url is None
    ) as twin:
        return http_get(twin.url + path)


def assert_unavailable(answer: Any, retry_after: str, *hidden: str) -> dict[str, Any]:
    assert answer.status == 503, answer.text
    doc = answer.json()
    assert set(doc) == ERROR_KEYS and doc["code"] == "ServiceUnavailable"
    assert answer.headers["retry-after"] == retry_after
    assert "Traceback" not in answer.text and "items" not in doc
    for text in hidden:  # internal details stay in the log
        assert text not in answer.text
    return doc


def user_path(trained: Any) -> str:
    return f"/users/{trained.lookup.user_ids[0]}/recommendations?k=3"


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "truncated": lambda b: b[: len(b) // 2],
    "empty": lambda b: b"",
    "garbage": lambda b: bytes(range(256)) * 4,
    "bitflip": lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:],
}


@pytest.mark.parametrize("name", ["lookup.json", "lookup.bin"])
def test_lookup_file_missing(tmp_path: Path, trained: Any, endpoint: Any, name: str) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    (artifacts / VERSION / "lookup" / name).unlink()
    doc = assert_unavailable(serve_once(artifacts, endpoint.url, user_path(trained)), "30")
    assert "no lookup published" in doc["message"]


def test_nothing_published(tmp_path: Path, trained: Any, endpoint: Any) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    shutil.rmtree(artifacts / VERSION)
    assert_unavailable(serve_once(artifacts, endpoint.url, user_path(trained)), "30")


@pytest.mark.parametrize("name", ["lookup.json", "lookup.bin"])
@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_lookup_file_corrupt(tmp_path: Path, trained: Any, endpoint: Any, name: str, how: str) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    target = artifacts / VERSION / "lookup" / name
    target.write_bytes(CORRUPTIONS[how](target.read_bytes()))
    answer = serve_once(artifacts, endpoint.url, user_path(trained))
    if answer.status == 200:
        # A flipped byte inside a title or a score array can still be a valid lookup; then it must serve.
        assert how == "bitflip", answer.text
        return
    # A broken server-side artifact is not the caller's fault: never a 400 that blames the request.
    assert_unavailable(answer, "30", str(tmp_path))


@pytest.mark.parametrize("content", [b"", b"{", b'{"modelVersion": 7}', b'{"other": "v1"}', b"[]"])
def test_current_json_corrupt(tmp_path: Path, trained: Any, endpoint: Any, content: bytes) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    (artifacts / "current.json").write_bytes(content)
    assert_unavailable(serve_once(artifacts, endpoint.url, user_path(trained)), "5")


def test_current_json_names_an_unpublished_version(tmp_path: Path, trained: Any, endpoint: Any) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    (artifacts / "current.json").write_text('{"modelVersion": "v9"}')
    assert_unavailable(serve_once(artifacts, endpoint.url, user_path(trained)), "30")


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_fast_path_model_corrupt(tmp_path: Path, trained: Any, how: str) -> None:
    artifacts = copy_artifacts(trained, tmp_path)
    model = artifacts / VERSION / "model.tar.gz"
    model.write_bytes(CORRUPTIONS[how](model.read_bytes()))
    answer = serve_once(artifacts, None, user_path(trained))
    if answer.status == 200:
        assert how == "bitflip", answer.text  # gzip's CRC normally catches it; a lucky flip may not matter
        return
    assert_unavailable(answer, "30", str(tmp_path))
    # Cold-start answers need no model and keep working.
    cold = serve_once(artifacts, None, "/users/999999/recommendations?k=3")
    assert cold.status == 200 and cold.json()["servingPath"] == "cold_start"


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_endpoint_twin_refuses_a_corrupt_model(tmp_path: Path, trained: Any, how: str) -> None:
    model = tmp_path / "model.tar.gz"
    model.write_bytes(CORRUPTIONS[how](trained.model_path.read_bytes()))
    try:
        load_model_tar(model)
    except ModelArtifactError as exc:
        assert str(model) in str(exc)
    else:
        pytest.skip("this corruption left a loadable model")
    # `fmrec serve endpoint` reports it before any worker starts, exits 2, and prints no traceback.
    proc = subprocess.run(
        [sys.executable, "-m", "fmrec_cli", "serve", "endpoint", "--model", str(model), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(model) in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("fault", ["missing", "corrupt"])
def test_cold_start_failure_recovers_once_the_lookup_is_published(
    tmp_path: Path, trained: Any, endpoint: Any, fault: str
) -> None:
    """A broken lookup at the Lambda's first request answers 503 until it is fixed, then serves at once: the
    failed load must not be cached as a successful version check (that gave 500s for 5 minutes)."""
    artifacts = copy_artifacts(trained, tmp_path)
    lookup_bin = artifacts / VERSION / "lookup" / "lookup.bin"
    good = lookup_bin.read_bytes()
    if fault == "missing":
        lookup_bin.unlink()
    else:
        lookup_bin.write_bytes(good[:100])
    with start_in_background(artifacts, endpoint.url, endpoint_name=ENDPOINT) as twin:
        for _ in range(3):
            assert_unavailable(http_get(twin.url + user_path(trained)), "30", str(tmp_path))
        lookup_bin.write_bytes(good)
        answer = http_get(twin.url + user_path(trained))
        assert answer.status == 200, answer.text
        assert answer.json()["servingPath"] == "endpoint"


def test_model_and_lookup_disagree_on_feature_dim(tmp_path: Path, trained: Any) -> None:
    """An endpoint serving a model of another feature layout refuses every request (ModelError): 503."""
    dim = trained.feature_dim + 7
    params = FMParams(w0=0.0, w=np.zeros(dim, np.float32), V=np.zeros((dim, 4), np.float32))
    other = tmp_path / "other.tar.gz"
    hp = {"feature_dim": str(dim), "num_factors": "4", "predictor_type": "binary_classifier"}
    save_model_tar(FMModel(params, "binary_classifier", hp, {}), other)
    with start_endpoint(other, name=ENDPOINT, variant=VERSION) as endpoint:
        answer = serve_once(trained.artifacts, endpoint.url, user_path(trained))
    doc = assert_unavailable(answer, "5")
    assert "ModelError" in doc["message"]


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_evaluate_step_refuses_a_corrupt_model(tmp_path: Path, trained: Any, how: str) -> None:
    """The evaluate step names the corrupt model and writes no evaluation (the gate sees nothing)."""
    base = tmp_path / "processing"
    for channel in ("test", "train", "lookup"):
        shutil.copytree(trained.prep_dir / channel, base / "input" / channel)
    model = base / "input" / "model" / "model.tar.gz"
    model.parent.mkdir(parents=True)
    model.write_bytes(CORRUPTIONS[how](trained.model_path.read_bytes()))
    with pytest.raises(InputError, match=r"model\.tar\.gz"):
        evaluate_step(base)
    assert not (base / "output").exists()
