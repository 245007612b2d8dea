"""A broken deployment is the server's fault: mismatched artifacts answer 503, bad configuration 500."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from fmrec.model.artifact import save_model_tar
from lambdas.recommend import app
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import event, handle, make_model
from tests.support.scoring_caller import ScoringCaller


def _mismatched(world: Any, tmp_path: Path) -> None:
    """v1's model.tar.gz replaced by one with two more features than v1's lookup."""
    model = make_model(world.lookup.feature_dim + 2)
    save_model_tar(model, tmp_path / "wide.tar.gz")
    (world.artifacts / "v1" / "model.tar.gz").write_bytes((tmp_path / "wide.tar.gz").read_bytes())


@pytest.mark.parametrize("fast", [True, False])
def test_a_model_whose_feature_dim_differs_from_its_lookup_is_a_logged_503(
    world: Any, tmp_path: Path, fast: bool, caplog: pytest.LogCaptureFixture
) -> None:
    _mismatched(world, tmp_path)
    caller = None if fast else ScoringCaller(world.model, world.lookup, delay=0)
    app.configure(Recommender(DirStore(world.artifacts), caller, fast_path=fast))  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        status, headers, doc = handle(event("/users/1/recommendations"))
    assert status == 503 and headers["retry-after"] == "30", doc
    assert "does not match its lookup" in doc["message"]
    assert "feature_dim 20 but the lookup 18" in caplog.text
    if caller is not None:
        assert caller.bodies == []  # nothing was sent with keys the model would misread
    # A cold-start user needs no model: still served.
    status, _, doc = handle(event("/users/4/recommendations"))
    assert status == 200 and doc["servingPath"] == "cold_start"


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"FMREC_REQUEST_MAX_BYTES": "0"}, "FMREC_REQUEST_MAX_BYTES='0'"),
        ({"FMREC_VERSION_CHECK_SECONDS": "soon"}, "FMREC_VERSION_CHECK_SECONDS='soon'"),
        ({"FMREC_SHORTLIST": "0"}, "FMREC_SHORTLIST='0'"),
        ({"FMREC_ENDPOINT_TIMEOUT_SECONDS": "nan"}, "FMREC_ENDPOINT_TIMEOUT_SECONDS='nan'"),
        ({"FMREC_ARTIFACT_DIR": ""}, "FMREC_ARTIFACT_BUCKET is not set"),
    ],
)
def test_a_bad_lambda_configuration_is_a_500_with_the_reason_logged(
    world: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    env: dict[str, str],
    reason: str,
) -> None:
    base = {"FMREC_ARTIFACT_DIR": str(world.artifacts), "FMREC_ENDPOINT_NAME": "ep"}
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FMREC_ARTIFACT_BUCKET", raising=False)
    app.configure(None)  # the next request builds the recommender from the environment, as a cold start
    for path in ("/users/1/recommendations", "/movies/50/similar"):
        status, _, doc = handle(event(path))
        assert status == 500 and doc["code"] == "InternalError", doc
        assert "misconfigured" in doc["message"] and "FMREC" not in json.dumps(doc)
    lines = [json.loads(app.logger.registered_formatter.format(r)) for r in caplog.records]
    cold = [line for line in lines if line["message"] == "configuration error: the function cannot start"]
    assert cold and cold[0]["level"] == "ERROR" and reason in cold[0]["reason"]
