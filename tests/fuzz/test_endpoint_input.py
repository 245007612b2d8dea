"""Property tests of the endpoint twin's input handling: no body, content type or Accept gives a 5xx."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fmrec.codec.writer import encode_request
from tests.support.asgi import asgi_post
from twins.endpoint.app import EndpointSpec, create_app, load_endpoints

pytestmark = pytest.mark.slow

NAME = "fuzz-endpoint"
JSON, JSONL, RECORDIO = "application/json", "application/jsonlines", "application/x-recordio-protobuf"
CONTENT_TYPES = st.one_of(
    st.sampled_from([JSON, JSONL, RECORDIO, f"{JSON}; charset=utf-8", "text/csv", "", "*/*", "application/"]),
    st.text(max_size=30).filter(lambda t: t.isprintable() and t.isascii()),
    st.none(),
)
ACCEPTS = st.one_of(
    st.sampled_from([JSON, JSONL, RECORDIO, "*/*", "application/*", "text/csv", f"{JSONL};q=0.5, {JSON}"]),
    st.text(max_size=30).filter(lambda t: t.isprintable() and t.isascii()),
    st.none(),
)
PATHS = st.sampled_from(["/invocations", f"/endpoints/{NAME}/invocations"])


@pytest.fixture(scope="module")
def endpoint_app(trained: Any) -> Iterator[tuple[Any, asyncio.AbstractEventLoop, int]]:
    app = create_app(load_endpoints([EndpointSpec(NAME, trained.model_path, "v1")]))
    loop = asyncio.new_event_loop()
    yield app, loop, trained.feature_dim
    loop.close()


def call(
    app: Any, loop: asyncio.AbstractEventLoop, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, bytes]:
    """One HTTP request through the ASGI app in-process (what uvicorn would hand it)."""
    status, _, out = asgi_post(app, path, body, headers, loop)
    return status, out


def json_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True),
        st.sampled_from([1e30, -1e30, 3.5e38, 1e300, 10**30]),  # fit float64 but overflow float32 math
        st.text(max_size=5),
        st.lists(st.integers(0, 3), max_size=2),  # nested lists make ragged arrays
    )


@st.composite
def near_valid_instances(draw: st.DrawFn, feature_dim: int) -> Any:
    """Instances in the accepted shapes, with keys, shapes and values that are sometimes wrong."""
    n = draw(st.integers(0, 6))
    keys = draw(
        st.one_of(
            st.lists(st.integers(0, feature_dim - 1), max_size=n),
            st.lists(st.one_of(st.integers(-5, feature_dim + 5), json_scalars()), max_size=n),
        )
    )
    values = draw(
        st.one_of(
            st.lists(st.just(1), min_size=len(keys), max_size=len(keys)), st.lists(json_scalars(), max_size=n)
        )
    )
    shape = draw(
        st.one_of(
            st.just([feature_dim]), st.lists(st.integers(-3, feature_dim + 3), max_size=2), json_scalars()
        )
    )
    dense = draw(
        st.lists(st.floats(allow_nan=False, width=32), min_size=feature_dim, max_size=feature_dim)
        | st.lists(json_scalars(), max_size=4)
    )
    features = {"keys": keys, "shape": shape, "values": values}
    return draw(
        st.sampled_from(
            [
                {"data": {"features": features}},
                {"features": features},
                {"features": dense},
                {"data": {"features": {"values": dense}}},
                {"data": features},
                features,
            ]
        )
    )


def documents(feature_dim: int) -> st.SearchStrategy[Any]:
    anything = st.recursive(
        json_scalars(),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=12,
    )
    instance = near_valid_instances(feature_dim)
    return st.one_of(
        anything,
        st.builds(lambda xs: {"instances": xs}, st.lists(instance, max_size=4)),
        st.builds(lambda xs: {"instances": xs}, anything),
        instance,
    )


def recordio_bodies(feature_dim: int) -> st.SearchStrategy[bytes]:
    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        n = draw(st.integers(1, 4))
        dim = draw(st.sampled_from([feature_dim, feature_dim + 1, 1]))
        dense = np.array(
            draw(st.lists(st.floats(-3, 3, width=32), min_size=n * min(dim, 6), max_size=n * min(dim, 6)))
        ).reshape(n, -1)
        X = sp.csr_matrix(dense, shape=(n, min(dim, 6)))
        X.resize((n, dim))
        body = bytearray(encode_request(X))
        for _ in range(draw(st.integers(0, 3))):
            if body:
                i = draw(st.integers(0, len(body) - 1))
                body[i] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(body)))
        return bytes(body[: cut if draw(st.booleans()) else len(body)])

    return st.one_of(st.binary(max_size=300), mutated())


SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def assert_no_server_error(status: int, body: bytes) -> None:
    assert status < 500, body[:500]
    assert b"Traceback" not in body


@SETTINGS
@given(data=st.data(), path=PATHS, content_type=CONTENT_TYPES, accept=ACCEPTS, body=st.binary(max_size=400))
def test_arbitrary_bytes(
    endpoint_app: Any, data: Any, path: str, content_type: str | None, accept: str | None, body: bytes
) -> None:
    app, loop, _ = endpoint_app
    headers = {k: v for k, v in (("content-type", content_type), ("accept", accept)) if v is not None}
    assert_no_server_error(*call(app, loop, path, body, headers))


@SETTINGS
@given(data=st.data(), path=PATHS, accept=ACCEPTS, media=st.sampled_from([JSON, JSONL]))
def test_arbitrary_json(endpoint_app: Any, data: Any, path: str, accept: str | None, media: str) -> None:
    app, loop, feature_dim = endpoint_app
    doc = data.draw(documents(feature_dim))
    if media == JSON:
        body = json.dumps(doc, allow_nan=True).encode()
    else:
        lines = (
            doc["instances"] if isinstance(doc, dict) and isinstance(doc.get("instances"), list) else [doc]
        )
        body = "\n".join(json.dumps(line, allow_nan=True) for line in lines).encode()
    headers = {"content-type": media} | ({"accept": accept} if accept is not None else {})
    status, out = call(app, loop, path, body, headers)
    assert_no_server_error(status, out)
    if status == 200 and accept in (None, JSON, "*/*"):
        predictions = json.loads(out)["predictions"]
        assert isinstance(predictions, list)
        assert all(p["score"] is not None for p in predictions), predictions  # no NaN/inf served as null


@SETTINGS
@given(data=st.data(), path=PATHS, accept=ACCEPTS)
def test_arbitrary_recordio(endpoint_app: Any, data: Any, path: str, accept: str | None) -> None:
    app, loop, feature_dim = endpoint_app
    body = data.draw(recordio_bodies(feature_dim))
    headers = {"content-type": RECORDIO} | ({"accept": accept} if accept is not None else {})
    assert_no_server_error(*call(app, loop, path, body, headers))


def test_valid_requests_still_score(endpoint_app: Any) -> None:
    """The driver itself works: well-formed requests of each type answer 200 with one score per row."""
    app, loop, feature_dim = endpoint_app
    X = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, feature_dim - 1])), shape=(1, feature_dim))
    inst = {"data": {"features": {"keys": [0, feature_dim - 1], "shape": [feature_dim], "values": [1, 1]}}}
    for media, body in (
        (JSON, json.dumps({"instances": [inst, inst]}).encode()),
        (JSONL, (json.dumps(inst) + "\n" + json.dumps(inst)).encode()),
        (RECORDIO, encode_request(sp.vstack([X, X]).tocsr())),
    ):
        status, out = call(app, loop, f"/endpoints/{NAME}/invocations", body, {"content-type": media})
        assert status == 200, out
        assert len(json.loads(out)["predictions"]) == 2
