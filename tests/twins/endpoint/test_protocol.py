"""Request parsing, content negotiation and response encoding of the endpoint twin (no server)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from scipy.sparse import csr_matrix

from fmrec.codec.predictions import decode_predictions
from fmrec.codec.writer import encode_request
from twins.endpoint import protocol
from twins.endpoint.protocol import EndpointRequestError

D = 12


def sparse(keys: list[int], values: list[float] | None = None, shape: object = None) -> dict[str, object]:
    values = [1] * len(keys) if values is None else values
    return {"data": {"features": {"keys": keys, "shape": [D] if shape is None else shape, "values": values}}}


def body(instances: list[object]) -> bytes:
    return orjson.dumps({"instances": instances})


def test_content_type_accepts_the_three_and_ignores_parameters() -> None:
    assert protocol.request_content_type("application/json; charset=utf-8") == protocol.JSON
    assert protocol.request_content_type("application/jsonlines") == protocol.JSONLINES
    assert protocol.request_content_type("Application/X-RecordIO-Protobuf") == protocol.RECORDIO


@pytest.mark.parametrize("header", ["text/csv", "application/octet-stream", "", None])
def test_unsupported_content_type_is_415_naming_it(header: str | None) -> None:
    with pytest.raises(EndpointRequestError) as info:
        protocol.request_content_type(header)
    assert info.value.status == 415
    assert "application/x-recordio-protobuf" in str(info.value)
    if header:
        assert header in str(info.value)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, protocol.JSON),
        ("*/*", protocol.JSON),
        ("application/jsonlines", protocol.JSONLINES),
        ("application/x-recordio-protobuf", protocol.RECORDIO),
        ("text/html, application/jsonlines;q=0.5, application/json;q=0.9", protocol.JSON),
        ("application/json;q=0, application/jsonlines", protocol.JSONLINES),
    ],
)
def test_accept_negotiation(accept: str | None, expected: str) -> None:
    assert protocol.response_content_type(accept) == expected


def test_unsupported_accept_is_406() -> None:
    with pytest.raises(EndpointRequestError) as info:
        protocol.response_content_type("text/csv")
    assert info.value.status == 406
    assert "text/csv" in str(info.value)


def test_sparse_json_builds_the_rows_with_duplicates_summed() -> None:
    X = protocol.parse_json(body([sparse([0, 5]), sparse([11, 3, 3], [2.5, 1, 1])]), D)
    dense = X.toarray()
    assert X.dtype == np.float32 and X.shape == (2, D)
    expected = np.zeros((2, D), np.float32)
    expected[0, [0, 5]] = 1
    expected[1, 11] = 2.5
    expected[1, 3] = 2
    np.testing.assert_array_equal(dense, expected)


def test_every_instance_form_gives_the_same_row() -> None:
    row = [0.0] * D
    row[2], row[7] = 1.0, 0.5
    forms = [
        sparse([2, 7], [1, 0.5]),
        {"features": {"keys": [7, 2], "shape": [D], "values": [0.5, 1]}},
        {"features": row},
        {"data": {"features": {"values": row}}},
        {"data": {"features": {"shape": [D], "values": row}}},
    ]
    X = protocol.parse_json(body(forms), D).toarray()
    for i in range(len(forms)):
        np.testing.assert_array_equal(X[i], np.array(row, np.float32), err_msg=f"form {i}")
    single = protocol.parse_json(orjson.dumps({"features": row}), D).toarray()
    np.testing.assert_array_equal(single[0], np.array(row, np.float32))


def test_jsonlines_one_instance_per_line_blank_lines_skipped() -> None:
    text = (
        b'{"data": {"features": {"keys": [1], "shape": [12], "values": [1]}}}\n\n{"features": ['
        + b",".join(b"1" if i == 4 else b"0" for i in range(D))
        + b"]}\n"
    )
    X = protocol.parse_jsonlines(text, D).toarray()
    assert X.shape == (2, D)
    assert X[0, 1] == 1 and X[1, 4] == 1 and X.sum() == 2


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", 'expected {"instances"'),
        (body([]), "no instances"),
        (orjson.dumps({"instances": {"a": 1}}), "instances: expected a list"),
        (body([sparse([1], shape=[D + 1])]), f"shape is [{D + 1}], expected [{D}]"),
        (body([sparse([1]), sparse([1, D])]), f"instances[1].data.features: key {D} is out of range"),
        (body([sparse([-1])]), "key -1 is out of range"),
        (body([sparse([1, 2], [1])]), "2 keys but 1 values"),
        (body([sparse([1], ["x"])]), "values must be a list of numbers"),
        (body([sparse([1.5])]), "keys must be a list of integers"),
        (body([{"features": [1.0] * (D - 1)}]), f"has {D - 1} values, expected {D}"),
        (body([{"feature": [1.0] * D}]), 'instances[0]: expected a "features" or "data" field'),
        (body([{"data": {"features": {"keys": [1], "values": [1]}}}]), 'missing "shape"'),
        (body([{"data": {"x": 1}}]), 'expected an object with a "features" field'),
        (body(["abc"]), "instances[0]: expected an object"),
    ],
)
def test_bad_json_is_400_naming_the_problem(payload: bytes, fragment: str) -> None:
    with pytest.raises(EndpointRequestError) as info:
        protocol.parse_request(payload, protocol.JSON, D)
    assert info.value.status == 400
    assert fragment in str(info.value)


def test_bad_jsonlines_names_the_line() -> None:
    good = orjson.dumps(sparse([1]))
    with pytest.raises(EndpointRequestError, match="line 3: not valid JSON"):
        protocol.parse_jsonlines(good + b"\n\n{oops\n", D)
    with pytest.raises(EndpointRequestError, match=r"line 3\.data\.features: shape is \[3\]"):
        protocol.parse_jsonlines(good + b"\n\n" + orjson.dumps(sparse([1], shape=[3])), D)
    with pytest.raises(EndpointRequestError, match="no JSON Lines instances"):
        protocol.parse_jsonlines(b"\n \n", D)


def test_json_response_binary_and_regressor() -> None:
    scores = np.array([0.25, 0.5, 0.875], np.float32)
    doc = orjson.loads(protocol.encode_response(scores, protocol.BINARY, protocol.JSON))
    assert doc == {
        "predictions": [
            {"score": 0.25, "predicted_label": 0},
            {"score": 0.5, "predicted_label": 1},
            {"score": 0.875, "predicted_label": 1},
        ]
    }
    doc = orjson.loads(
        protocol.encode_response(np.array([3.5, -1.25], np.float32), protocol.REGRESSOR, protocol.JSON)
    )
    assert doc == {"predictions": [{"score": 3.5}, {"score": -1.25}]}


def test_json_scores_round_trip_to_the_same_float32() -> None:
    scores = np.random.default_rng(0).random(500).astype(np.float32)
    doc = orjson.loads(protocol.encode_response(scores, protocol.BINARY, protocol.JSON))
    got = np.array([p["score"] for p in doc["predictions"]], np.float32)
    np.testing.assert_array_equal(got, scores)


def test_jsonlines_response_one_object_per_line() -> None:
    out = protocol.encode_response(np.array([0.1, 0.9], np.float32), protocol.BINARY, protocol.JSONLINES)
    lines = out.decode().splitlines()
    assert [orjson.loads(line) for line in lines] == [
        {"score": pytest.approx(0.1), "predicted_label": 0},
        {"score": pytest.approx(0.9), "predicted_label": 1},
    ]
    assert out.endswith(b"\n")


def test_recordio_request_round_trips_through_the_codec() -> None:
    X = protocol.parse_json(body([sparse([0, 5]), sparse([11, 3], [2.5, 1])]), D)
    got = protocol.parse_request(encode_request(X), protocol.RECORDIO, D)
    np.testing.assert_array_equal(got.toarray(), X.toarray())


def test_recordio_key_out_of_range_is_400_naming_the_record() -> None:
    # scipy builds this without checking indices and would score it from memory past the weights.
    bad = csr_matrix((np.ones(3, np.float32), np.array([1, 2, D + 3]), np.array([0, 1, 3])), shape=(2, D))
    with pytest.raises(EndpointRequestError, match=r"record 1\b.*key") as info:
        protocol.parse_request(encode_request(bad), protocol.RECORDIO, D)
    assert info.value.status == 400


def test_recordio_shape_mismatch_is_400() -> None:
    other = csr_matrix((np.ones(1, np.float32), np.array([1]), np.array([0, 1])), shape=(1, D + 1))
    with pytest.raises(EndpointRequestError, match="recordIO-protobuf request") as info:
        protocol.parse_request(encode_request(other), protocol.RECORDIO, D)
    assert info.value.status == 400
    assert str(D) in str(info.value)


def test_recordio_response_carries_score_and_label() -> None:
    scores = np.array([0.25, 0.5], np.float32)
    assert decode_predictions(protocol.encode_response(scores, protocol.BINARY, protocol.RECORDIO)) == [
        {"score": 0.25, "predicted_label": 0.0},
        {"score": 0.5, "predicted_label": 1.0},
    ]
    assert decode_predictions(protocol.encode_response(scores, protocol.REGRESSOR, protocol.RECORDIO)) == [
        {"score": 0.25},
        {"score": 0.5},
    ]
