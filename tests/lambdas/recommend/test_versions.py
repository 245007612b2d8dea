"""Model versions: the lookup follows the endpoint's production variant, cached across warm invocations."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from botocore.stub import ANY, Stubber

from fmrec.model.artifact import save_model_tar
from fmrec.serving.lookup import write_lookup
from fmrec.serving.requests import RequestBuilder
from lambdas.recommend import app
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.service import Recommender
from lambdas.recommend.store import DirStore
from tests.support.lambda_world import (
    ENDPOINT,
    USERS,
    endpoint_scores,
    event,
    handle,
    invoke_response,
    make_lookup,
    make_model,
    runtime_client,
)
from twins.api.publish import publish_version


class CountingStore(DirStore):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get(self, key: str) -> bytes | None:
        self.reads.append(key)
        return super().get(key)


def _publish(root: Path, version: str, lookup: Any, seed: int) -> Any:
    model = make_model(lookup.feature_dim, seed)
    write_lookup(root / f"lookup-{version}", lookup)
    save_model_tar(model, root / f"model-{version}.tar.gz")
    publish_version(root / "serving", version, root / f"lookup-{version}", root / f"model-{version}.tar.gz")
    return model


def _answer(stub: Stubber, model: Any, lookup: Any, user: int, variant: str) -> None:
    pos = lookup.user_position(user)
    rated = set(lookup.rated_positions(pos))
    (payload,) = RequestBuilder(lookup).build(
        pos, [p for p in range(len(lookup.movie_ids)) if p not in rated]
    )
    scores = endpoint_scores(model, lookup, payload.body)
    stub.add_response(
        "invoke_endpoint",
        invoke_response(scores, variant),
        {"EndpointName": ENDPOINT, "Body": payload.body, "ContentType": "application/json", "Accept": ANY},
    )


def test_lookup_is_read_once_and_cached_across_warm_invocations(world: Any) -> None:
    store = CountingStore(world.artifacts)
    client = runtime_client()
    stub = Stubber(client)
    app.configure(Recommender(store, EndpointCaller(client, ENDPOINT)))
    for _ in range(3):
        _answer(stub, world.model, world.lookup, 1, "v1")
    with stub:
        for _ in range(3):
            status, _, doc = handle(event("/users/1/recommendations"))
            assert status == 200 and doc["modelVersion"] == "v1"
    assert store.reads.count("current.json") == 1
    assert all(store.reads.count(key) == 1 for key in store.reads)


def test_a_new_variant_with_the_same_layout_is_asked_again_with_its_own_shortlist(
    world: Any, tmp_path: Path
) -> None:
    model2 = _publish(tmp_path, "v2", world.lookup, seed=5)
    # current.json now says v2, but the Lambda read v1 at cold start and re-reads only every 300 s.
    (world.artifacts / "current.json").write_text(json.dumps({"modelVersion": "v1"}))
    client = runtime_client()
    stub = Stubber(client)
    rec = Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT))
    app.configure(rec)
    _answer(stub, world.model, world.lookup, 1, "v1")
    _answer(stub, model2, world.lookup, 1, "v2")  # scores of v2 for a shortlist v1 retrieved: asked again
    _answer(stub, model2, world.lookup, 1, "v2")
    with stub:
        assert handle(event("/users/1/recommendations"))[2]["modelVersion"] == "v1"
        status, _, doc = handle(event("/users/1/recommendations"))
    stub.assert_no_pending_responses()
    assert status == 200 and doc["modelVersion"] == "v2"
    assert rec.current_bundle().version == "v2"


def test_a_new_variant_with_a_new_layout_rebuilds_the_request(world: Any, tmp_path: Path) -> None:
    lookup2 = make_lookup(users=(*USERS, 21))  # one more user: every movie column moves by one
    model2 = _publish(tmp_path, "v2", lookup2, seed=9)
    (world.artifacts / "current.json").write_text(json.dumps({"modelVersion": "v1"}))
    client = runtime_client()
    stub = Stubber(client)
    app.configure(Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT)))
    # The first answer comes from v2 to a request built with v1's lookup; the Lambda must rebuild and resend.
    _answer(stub, model2, world.lookup, 1, "v2")
    _answer(stub, model2, lookup2, 1, "v2")
    with stub:
        status, _, doc = handle(event("/users/1/recommendations", {"k": "4"}))
    stub.assert_no_pending_responses()
    assert status == 200 and doc["modelVersion"] == "v2"
    # A user that only v2 knows is scored, not cold-started, from now on.
    _answer(stub, model2, lookup2, 21, "v2")
    with stub:
        status, _, doc = handle(event("/users/21/recommendations"))
    assert status == 200 and doc["servingPath"] == "endpoint"


def test_alternating_variants_mid_shift_answer_503(world: Any, tmp_path: Path) -> None:
    lookup2 = make_lookup(users=(*USERS, 21))
    model2 = _publish(tmp_path, "v2", lookup2, seed=9)
    (world.artifacts / "current.json").write_text(json.dumps({"modelVersion": "v1"}))
    client = runtime_client()
    stub = Stubber(client)
    app.configure(Recommender(DirStore(world.artifacts), EndpointCaller(client, ENDPOINT)))
    _answer(stub, model2, world.lookup, 1, "v2")
    _answer(stub, model2, lookup2, 1, "v1")  # the rebuilt request lands on the old fleet
    with stub:
        status, headers, doc = handle(event("/users/1/recommendations"))
    assert status == 503 and headers["retry-after"] == "1"
    assert "being updated" in doc["message"]


def test_current_json_is_rechecked_after_the_interval(world: Any, tmp_path: Path) -> None:
    now = [0.0]
    store = CountingStore(world.artifacts)
    rec = Recommender(store, None, fast_path=True, version_check_seconds=60, clock=lambda: now[0])
    assert rec.current_bundle().version == "v1"
    _publish(tmp_path, "v2", world.lookup, seed=5)
    now[0] = 59.0
    assert rec.current_bundle().version == "v1"
    now[0] = 60.0
    assert rec.current_bundle().version == "v2"
    assert store.reads.count("current.json") == 2


def test_a_bare_lookup_folder_serves_whatever_variant_answers(world: Any, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    write_lookup(bare, world.lookup)
    shutil.copy(world.model_path, bare / "model.tar.gz")  # the shortlist is retrieved from the model
    client = runtime_client()
    stub = Stubber(client)
    app.configure(Recommender(DirStore(bare), EndpointCaller(client, ENDPOINT)))
    _answer(stub, world.model, world.lookup, 1, "AllTraffic")
    with stub:
        status, _, doc = handle(event("/users/1/recommendations"))
    assert status == 200 and doc["modelVersion"] == "AllTraffic"
