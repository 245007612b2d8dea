"""Hostile request bodies (issue 14): ragged arrays, float32 overflow, NaN/Inf and huge shapes get a 400."""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import pytest

from fmrec.codec.reader import decode_request
from fmrec.codec.wire import MAGIC, RecordIOError, vbytes
from tests.support.asgi import asgi_post
from tests.support.model_files import make_model_tar
from twins.endpoint import protocol
from twins.endpoint.app import (
    FREE_BODY_BYTES,
    INLINE_BODY_BYTES,
    EndpointSpec,
    create_app,
    load_endpoints,
)
from twins.endpoint.protocol import EndpointRequestError

D = 12


@pytest.fixture(scope="module", params=["binary_classifier", "regressor"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    path = make_model_tar(tmp_path_factory.mktemp("m") / "model.tar.gz", request.param, 5, D)
    return create_app(load_endpoints([EndpointSpec("fm", path, "v1")]))


def post(app: Any, body: bytes, content_type: str, path: str = "/invocations") -> tuple[int, dict[str, Any]]:
    """One POST through the ASGI app, without a server; (status, JSON body)."""
    status, _, out = asgi_post(app, path, body, {"content-type": content_type})
    return status, orjson.loads(out)


def sparse(keys: list[Any], values: list[Any]) -> dict[str, Any]:
    return {"data": {"features": {"keys": keys, "shape": [D], "values": values}}}


def jsonl(instances: list[Any]) -> bytes:
    return b"\n".join(orjson.dumps(i) for i in instances)


GOOD = sparse([0, 3], [1, 1])
RAGGED = [
    {"features": [[1], [1, 2]]},
    {"features": [[1], [1]] + [0] * (D - 2)},
    sparse([[0], [1, 2]], [1, 1]),
    sparse([0, 1], [[1], [1, 2]]),
    sparse([0, 1], [1, [2, 3]]),
    {"features": {"values": [[1, 2], [3]], "shape": [D]}},
]


@pytest.mark.parametrize("instance", RAGGED, ids=range(len(RAGGED)))
@pytest.mark.parametrize("media", [protocol.JSON, protocol.JSONLINES])
def test_ragged_nested_arrays_are_400_naming_the_instance(app: Any, instance: Any, media: str) -> None:
    body = (
        orjson.dumps({"instances": [GOOD, instance]}) if media == protocol.JSON else jsonl([GOOD, instance])
    )
    status, doc = post(app, body, media)
    assert status == 400, doc
    assert ("instances[1]" if media == protocol.JSON else "line 2") in doc["message"]


@pytest.mark.parametrize(
    "instance",
    [sparse([0, 1], [1e300, 1]), {"features": [1e39] + [0] * (D - 1)}, sparse([2], [-3.5e38])],
    ids=["sparse-1e300", "dense-1e39", "sparse-negative"],
)
@pytest.mark.parametrize("media", [protocol.JSON, protocol.JSONLINES])
def test_values_beyond_float32_are_400_naming_the_instance(app: Any, instance: Any, media: str) -> None:
    body = (
        orjson.dumps({"instances": [GOOD, instance]}) if media == protocol.JSON else jsonl([GOOD, instance])
    )
    status, doc = post(app, body, media)
    assert status == 400, doc
    assert ("instances[1]" if media == protocol.JSON else "line 2") in doc["message"]
    assert "float32" in doc["message"]


@pytest.mark.parametrize("media", [protocol.JSON, protocol.JSONLINES])
def test_values_whose_score_overflows_float32_are_400_naming_the_instance(app: Any, media: str) -> None:
    # 1e30 fits float32, but its square (in the pairwise term) does not: SageMaker's FM would give inf/NaN.
    instances = [GOOD, GOOD, sparse([0, 1], [10**30, 1])]  # a JSON integer of 31 digits
    if media == protocol.JSON:
        body = json.dumps({"instances": instances}).encode()
    else:
        body = b"\n\n" + b"\n".join(json.dumps(i).encode() for i in instances)
    status, doc = post(app, body, media)
    assert status == 400, doc
    assert ("instances[2]" if media == protocol.JSON else "line 5") in doc["message"]
    assert "overflows float32" in doc["message"]


def test_runtime_path_reports_the_overflow_as_a_model_error(app: Any) -> None:
    body = json.dumps(sparse([0, 1], [10**30, 1])).encode()
    status, doc = post(app, body, protocol.JSON, "/endpoints/fm/invocations")
    assert status == 424 and doc["OriginalStatusCode"] == 400
    assert "request body" in doc["OriginalMessage"]


# --- recordIO written by hand: layouts the SDK's writer does not produce ---------------------------------


def _v(x: int) -> bytes:
    return vbytes(x)


def record(values: bytes, keys: list[int] | None, shape: list[int], tensor_tag: int = 0x1A) -> bytes:
    """One aialgs.data.Record with a "values" feature tensor (0x1A: Float64Tensor, 0x12: Float32Tensor)."""
    tensor = b"\x0a" + _v(len(values)) + values
    if keys is not None:
        packed = b"".join(_v(k) for k in keys)
        tensor += b"\x12" + _v(len(packed)) + packed
    dims = b"".join(_v(s) for s in shape)
    tensor += b"\x1a" + _v(len(dims)) + dims
    value = bytes([tensor_tag]) + _v(len(tensor)) + tensor
    entry = b"\x0a\x06values\x12" + _v(len(value)) + value
    rec = b"\x0a" + _v(len(entry)) + entry
    return struct.pack("<II", MAGIC, len(rec)) + rec + bytes((-len(rec)) % 4)


def f64(*xs: float) -> bytes:
    return np.array(xs, "<f8").tobytes()


def f32(*xs: float) -> bytes:
    return np.array(xs, "<f4").tobytes()


@pytest.mark.parametrize("tag", [0x1A, 0x12], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [2**63, 2**63 + 5, 2**64 - 1])
def test_recordio_shape_of_2_63_or_more_is_400_reported_as_sent(app: Any, tag: int, shape: int) -> None:
    values = f64(1.0) if tag == 0x1A else f32(1.0)
    body = record(f64(1.0, 1.0), [0, 1], [D]) + record(values, [0], [shape], tag)
    status, doc = post(app, body, protocol.RECORDIO)
    assert status == 400, doc
    assert "record 1" in doc["message"] and f"shape {shape} " in doc["message"]
    assert "-" + str(2**64 - shape) not in doc["message"]


def test_decode_request_reports_a_huge_shape_as_sent() -> None:
    with pytest.raises(RecordIOError, match=rf"feature shape {2**63}\b") as info:
        decode_request(record(f32(1.0), [0], [2**63], 0x12), D)
    assert info.value.record == 0


def test_decode_of_many_equal_records_with_a_huge_shape_is_an_input_error() -> None:
    # 40 identical records take the codec's vectorised run decoder.
    with pytest.raises(RecordIOError, match=rf"feature shape {2**63}\b"):
        decode_request(record(f32(1.0), [0], [2**63], 0x12) * 40, D)


@pytest.mark.parametrize(
    "make",
    [
        lambda: record(f64(1.0, np.nan), [0, 1], [D]),
        lambda: record(f32(np.inf, 1.0), [0, 1], [D], 0x12),
        lambda: record(f64(1e300), [4], [D]),
        lambda: record(f64(*([0.0] * (D - 1) + [-np.inf])), None, [D]),
    ],
    ids=["nan-f64", "inf-f32", "1e300-f64", "dense-minus-inf"],
)
def test_recordio_nan_inf_and_float32_overflow_are_400_naming_the_record(
    app: Any, make: Callable[[], bytes]
) -> None:
    body = record(f32(1.0, 1.0), [0, 1], [D], 0x12) * 2 + make()
    status, doc = post(app, body, protocol.RECORDIO)
    assert status == 400, doc
    assert "record 2" in doc["message"] and "float32" in doc["message"]


def test_good_requests_still_score(app: Any) -> None:
    for media, body in (
        (protocol.JSON, orjson.dumps({"instances": [GOOD, {"features": [1.5] + [0] * (D - 1)}]})),
        (protocol.JSONLINES, jsonl([GOOD, GOOD])),
        (protocol.RECORDIO, record(f64(1.0, 2.0), [0, 1], [D]) + record(f32(3.0), [2], [D], 0x12)),
    ):
        status, doc = post(app, body, media)
        assert status == 200, doc
        assert len(doc["predictions"]) == 2


def test_instance_name_skips_blank_lines() -> None:
    assert protocol.instance_name(b"\n{}\n \n{}", protocol.JSONLINES, 1) == "line 4"
    assert protocol.instance_name(b'{"features": []}', protocol.JSON, 0) == "request body"
    with pytest.raises(EndpointRequestError, match="line 2"):
        protocol.check_scores(np.array([1.0, np.nan]), b"{}\n{}", protocol.JSONLINES)


# --- the per-worker budget for large bodies --------------------------------------------------------------


def test_large_bodies_share_a_bounded_budget_small_ones_do_not_wait_for_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = make_model_tar(tmp_path_factory.mktemp("b") / "model.tar.gz", "regressor", 5, D)
    app = create_app(load_endpoints([EndpointSpec("fm", path, "v1")]), body_budget=4 * 1024 * 1024)
    small = orjson.dumps({"instances": [GOOD]})

    async def scenario() -> list[tuple[int, dict[bytes, bytes], bytes]]:
        release = asyncio.Event()
        answers: list[tuple[int, dict[bytes, bytes], bytes]] = []

        def request(body: bytes, declared: int, hold: asyncio.Event | None, path: str) -> Any:
            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": path,
                "raw_path": path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(declared).encode()),
                ],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 8080),
            }
            sent_body = [False]
            out: dict[str, Any] = {}

            async def receive() -> dict[str, Any]:
                if not sent_body[0]:
                    sent_body[0] = True
                    return {"type": "http.request", "body": body, "more_body": hold is not None}
                if hold is not None:
                    await hold.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    out["status"], out["headers"] = message["status"], dict(message["headers"])
                elif message["type"] == "http.response.body":
                    out["body"] = out.get("body", b"") + message.get("body", b"")
                    if not message.get("more_body"):
                        answers.append((out["status"], out["headers"], out["body"]))

            return app(scope, receive, send)

        # A declares 3 MiB and stalls after 1 MiB: it holds 3 MiB - FREE_BODY_BYTES of the 4 MiB budget.
        stalled = asyncio.ensure_future(request(b" " * (1 << 20), 3 << 20, release, "/invocations"))
        await asyncio.sleep(0.05)
        # B declares 2 MiB: no room, refused before its body is read (both paths).
        await request(b"", 2 << 20, None, "/invocations")
        await request(b"", 2 << 20, None, "/endpoints/fm/invocations")
        # C is small: it needs nothing from the budget and is scored.
        await request(small, len(small), None, "/invocations")
        release.set()  # A's client goes away: its share comes back
        await stalled
        await request(b"", 3 << 20, None, "/invocations")  # room again (an empty body: a 400, not a 503)
        assert FREE_BODY_BYTES < 1 << 20
        return answers

    answers = asyncio.run(scenario())
    statuses = [status for status, _, _ in answers]
    assert statuses[:3] == [503, 503, 200], answers
    for _, headers, body in answers[:2]:
        assert headers[b"connection"] == b"close" and headers[b"retry-after"] == b"1"
        assert b"busy" in body
    assert answers[1][1][b"x-amzn-errortype"] == b"ServiceUnavailable"
    assert statuses[-1] == 400, answers  # A disconnected quietly; then a 3 MiB body finds room again


@pytest.mark.parametrize("path", ["/invocations", "/endpoints/fm/invocations"])
def test_small_bodies_scored_inline_answer_as_large_ones_on_the_scoring_thread(app: Any, path: str) -> None:
    """Bodies up to INLINE_BODY_BYTES are scored on the event loop, larger ones on the scoring thread: the
    same instances give the same bytes either way."""
    rng = np.random.default_rng(5)
    keys = [sorted(rng.choice(D, 4, replace=False).tolist()) for _ in range(3000)]
    instances = [sparse(k, [1, 1, 0.5, 2]) for k in keys]
    large = orjson.dumps({"instances": instances})
    assert len(large) > INLINE_BODY_BYTES
    status, _, whole = asgi_post(app, path, large, {"content-type": protocol.JSON})
    assert status == 200
    parts = []
    for i in range(0, len(instances), 300):
        small = orjson.dumps({"instances": instances[i : i + 300]})
        assert len(small) <= INLINE_BODY_BYTES
        status, _, out = asgi_post(app, path, small, {"content-type": protocol.JSON})
        assert status == 200
        parts += orjson.loads(out)["predictions"]
    assert orjson.loads(whole)["predictions"] == parts
