"""The running twin: container contract, the Runtime path through real boto3, content types, errors."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from scipy.sparse import csr_matrix

from fmrec.codec.predictions import decode_predictions
from fmrec.codec.writer import encode_request
from fmrec.model.artifact import load_model_tar
from fmrec.model.fm import predict
from tests.support.model_files import make_model_tar
from twins.endpoint import protocol
from twins.endpoint.server import start_in_background

D = 40


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("endpoint-models")
    return {
        "binary": make_model_tar(root / "binary.tar.gz", "binary_classifier", 1, D),
        "regressor": make_model_tar(root / "regressor.tar.gz", "regressor", 2, D),
    }


@pytest.fixture(scope="module")
def twin(models: dict[str, Path]) -> Iterator[Any]:
    """One in-process twin: "fm-binary" (variant Blue, also /invocations) and "fm-reg" (variant Green)."""
    server = start_in_background(
        [models["binary"], models["regressor"]], name=["fm-binary", "fm-reg"], variant=["Blue", "Green"]
    )
    yield server
    server.stop()


def post(
    twin: Any, path: str, data: bytes, content_type: str | None = protocol.JSON, accept: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(twin.host, twin.port, timeout=30)
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if accept is not None:
        headers["Accept"] = accept
    try:
        conn.request("POST", path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def rows(n: int = 25, seed: int = 3) -> csr_matrix:
    """Random sparse rows: a user one-hot, an item one-hot and a real-valued side feature."""
    rng = np.random.default_rng(seed)
    data, cols, indptr = [], [], [0]
    for _ in range(n):
        user, item, side = rng.integers(0, 10), rng.integers(10, 30), rng.integers(30, D)
        cols += [int(user), int(item), int(side)]
        data += [1.0, 1.0, float(np.float32(rng.random()))]
        indptr.append(len(cols))
    return csr_matrix((np.array(data, np.float32), cols, indptr), shape=(n, D))


def sparse_json(X: csr_matrix) -> bytes:
    instances = []
    for i in range(X.shape[0]):
        row = X.getrow(i)
        feats = {"keys": row.indices.tolist(), "shape": [D], "values": row.data.tolist()}
        instances.append({"data": {"features": feats}})
    return orjson.dumps({"instances": instances})


def expected(model_path: Path, X: csr_matrix) -> np.ndarray:
    model = load_model_tar(model_path)
    return np.asarray(predict(model.params, X, model.predictor_type), np.float32)


def request_body(X: csr_matrix, content_type: str) -> bytes:
    if content_type == protocol.JSON:
        return sparse_json(X)
    if content_type == protocol.JSONLINES:
        return b"\n".join(orjson.dumps(inst) for inst in orjson.loads(sparse_json(X))["instances"])
    return encode_request(X)


def decode(out: bytes, accept: str) -> tuple[np.ndarray, np.ndarray | None]:
    if accept == protocol.RECORDIO:
        preds = decode_predictions(out)
    elif accept == protocol.JSONLINES:
        preds = [orjson.loads(line) for line in out.splitlines()]
    else:
        preds = orjson.loads(out)["predictions"]
    scores = np.array([np.asarray(p["score"]).reshape(-1)[0] for p in preds], np.float32)
    if "predicted_label" not in preds[0]:
        return scores, None
    return scores, np.array([np.asarray(p["predicted_label"]).reshape(-1)[0] for p in preds])


def test_ping(twin: Any) -> None:
    conn = http.client.HTTPConnection(twin.host, twin.port, timeout=10)
    conn.request("GET", "/ping")
    assert conn.getresponse().status == 200
    conn.close()


@pytest.mark.parametrize("content_type", protocol.SUPPORTED)
@pytest.mark.parametrize("accept", protocol.SUPPORTED)
def test_every_content_type_and_accept_scores_like_the_model(
    twin: Any, models: dict[str, Path], content_type: str, accept: str
) -> None:
    X = rows()
    status, headers, out = post(twin, "/invocations", request_body(X, content_type), content_type, accept)
    assert status == 200, out
    assert headers["content-type"].startswith(accept)
    assert headers["x-amzn-invoked-production-variant"] == "Blue"
    scores, labels = decode(out, accept)
    want = expected(models["binary"], X)
    np.testing.assert_array_equal(scores, want)
    assert labels is not None
    np.testing.assert_array_equal(labels, (want >= 0.5).astype(labels.dtype))


@pytest.mark.parametrize("accept", protocol.SUPPORTED)
def test_regressor_gives_score_only(twin: Any, models: dict[str, Path], accept: str) -> None:
    X = rows(seed=9)
    status, headers, out = post(twin, "/endpoints/fm-reg/invocations", sparse_json(X), protocol.JSON, accept)
    assert status == 200, out
    assert headers["x-amzn-invoked-production-variant"] == "Green"
    scores, labels = decode(out, accept)
    assert labels is None
    np.testing.assert_array_equal(scores, expected(models["regressor"], X))


def test_dense_json_scores_like_sparse(twin: Any, models: dict[str, Path]) -> None:
    X = rows(n=4, seed=5)
    dense = orjson.dumps({"instances": [{"features": r} for r in X.toarray().tolist()]})
    status, _, out = post(twin, "/invocations", dense)
    assert status == 200, out
    np.testing.assert_array_equal(decode(out, protocol.JSON)[0], expected(models["binary"], X))


def runtime_client(twin: Any) -> Any:
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=twin.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_boto3_round_trip(twin: Any, models: dict[str, Path]) -> None:
    X = rows(seed=11)
    resp = runtime_client(twin).invoke_endpoint(
        EndpointName="fm-binary",
        Body=sparse_json(X),
        ContentType="application/json",
        Accept="application/json",
    )
    assert resp["InvokedProductionVariant"] == "Blue"
    assert resp["ContentType"] == "application/json"
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    scores, _ = decode(resp["Body"].read(), protocol.JSON)
    np.testing.assert_array_equal(scores, expected(models["binary"], X))


def test_boto3_finds_the_twin_through_the_environment(
    twin: Any, models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", twin.url)
    client = boto3.session.Session().client("sagemaker-runtime")
    X = rows(n=3, seed=12)
    resp = client.invoke_endpoint(EndpointName="fm-reg", Body=sparse_json(X), ContentType="application/json")
    assert resp["InvokedProductionVariant"] == "Green"
    np.testing.assert_array_equal(
        decode(resp["Body"].read(), protocol.JSON)[0], expected(models["regressor"], X)
    )


def test_boto3_recordio_round_trip(twin: Any, models: dict[str, Path]) -> None:
    X = rows(seed=13)
    resp = runtime_client(twin).invoke_endpoint(
        EndpointName="fm-binary",
        Body=encode_request(X),
        ContentType=protocol.RECORDIO,
        Accept=protocol.RECORDIO,
    )
    assert resp["ContentType"] == protocol.RECORDIO
    preds = decode_predictions(resp["Body"].read())
    got = np.array([np.asarray(p["score"]).reshape(-1)[0] for p in preds], np.float32)
    np.testing.assert_array_equal(got, expected(models["binary"], X))


def test_boto3_unknown_endpoint_is_validation_error(twin: Any) -> None:
    client = runtime_client(twin)
    with pytest.raises(client.exceptions.ValidationError) as info:
        client.invoke_endpoint(EndpointName="nope", Body=b"{}", ContentType="application/json")
    err = info.value.response
    assert err["Error"]["Code"] == "ValidationError"
    assert err["Error"]["Message"] == "Endpoint nope of account 000000000000 not found."
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize(
    ("data", "content_type", "accept", "status", "fragment"),
    [
        (b"{oops", "application/json", None, 400, "not valid JSON"),
        (b"a,b\n", "text/csv", None, 415, "unsupported Content-Type 'text/csv'"),
        (None, "application/json", "text/csv", 406, "unsupported Accept 'text/csv'"),
    ],
)
def test_boto3_model_errors_carry_the_original_status(
    twin: Any, data: bytes | None, content_type: str, accept: str | None, status: int, fragment: str
) -> None:
    client = runtime_client(twin)
    kwargs = {"Accept": accept} if accept else {}
    with pytest.raises(client.exceptions.ModelError) as info:
        client.invoke_endpoint(
            EndpointName="fm-binary", Body=data or sparse_json(rows(n=2)), ContentType=content_type, **kwargs
        )
    err = info.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == status
    assert fragment in err["OriginalMessage"]
    assert f"Received client error ({status})" in err["Error"]["Message"]


def test_boto3_payload_over_6_mb_is_413(twin: Any) -> None:
    client = runtime_client(twin)
    with pytest.raises(ClientError) as info:
        client.invoke_endpoint(
            EndpointName="fm-binary",
            Body=b" " * (protocol.MAX_PAYLOAD_BYTES + 1),
            ContentType="application/json",
        )
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert info.value.response["Error"]["Code"] == "ValidationError"
    assert "exceeds the real-time invocation limit" in info.value.response["Error"]["Message"]


def test_payload_at_the_limit_is_parsed_not_refused(twin: Any) -> None:
    # Exactly 6 MiB of whitespace-padded JSON: accepted, then scored.
    doc = sparse_json(rows(n=2))
    padded = doc + b" " * (protocol.MAX_PAYLOAD_BYTES - len(doc))
    status, _, out = post(twin, "/invocations", padded)
    assert status == 200, out


def test_container_path_payload_over_6_mb_is_413(twin: Any) -> None:
    status, _, out = post(twin, "/invocations", b"x" * (protocol.MAX_PAYLOAD_BYTES + 10))
    assert status == 413
    assert orjson.loads(out)["code"] == 413


@pytest.mark.parametrize(
    ("data", "content_type", "accept", "status", "fragment"),
    [
        (b"{oops", protocol.JSON, None, 400, "not valid JSON"),
        (
            orjson.dumps({"instances": [{"data": {"features": {"keys": [1], "shape": [7], "values": [1]}}}]}),
            protocol.JSON,
            None,
            400,
            f"shape is [7], expected [{D}]",
        ),
        (
            orjson.dumps({"instances": [{"data": {"features": {"keys": [D], "shape": [D], "values": [1]}}}]}),
            protocol.JSON,
            None,
            400,
            f"key {D} is out of range",
        ),
        (b'{"features": [1, 2]}\n{nope', protocol.JSONLINES, None, 400, "line 2: not valid JSON"),
        (b"\x00\x01\x02", protocol.RECORDIO, None, 400, "recordIO-protobuf request"),
        (b"1,2,3", "text/csv", None, 415, "text/csv"),
        (b"{}", None, None, 415, "missing Content-Type"),
        (b"{}", protocol.JSON, "text/csv", 406, "text/csv"),
    ],
)
def test_container_errors_are_4xx_json_naming_the_problem(
    twin: Any, data: bytes, content_type: str | None, accept: str | None, status: int, fragment: str
) -> None:
    got, headers, out = post(twin, "/invocations", data, content_type, accept)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    doc = orjson.loads(out)
    assert doc["code"] == status
    assert fragment in doc["message"]


def test_unknown_route_is_json_404(twin: Any) -> None:
    status, _, out = post(twin, "/nothing-here", b"{}")
    assert status == 404
    assert "/nothing-here" in orjson.loads(out)["message"]


def test_wrong_method_is_json_405(twin: Any) -> None:
    conn = http.client.HTTPConnection(twin.host, twin.port, timeout=10)
    conn.request("GET", "/invocations")
    resp = conn.getresponse()
    assert resp.status == 405
    assert orjson.loads(resp.read())["code"] == 405
    conn.request("GET", "/endpoints/fm-binary/invocations")
    resp = conn.getresponse()
    assert resp.status == 405
    assert resp.getheader("x-amzn-ErrorType") == "UnknownOperationException"
    resp.read()
    conn.close()


def test_boto3_sees_a_request_id(twin: Any) -> None:
    resp = runtime_client(twin).invoke_endpoint(
        EndpointName="fm-reg", Body=sparse_json(rows(n=1)), ContentType="application/json"
    )
    assert len(resp["ResponseMetadata"]["RequestId"]) == 36


def test_chunked_body_over_6_mb_is_413_without_content_length(twin: Any) -> None:
    chunk = b" " * (1024 * 1024)
    conn = http.client.HTTPConnection(twin.host, twin.port, timeout=30)
    conn.request(
        "POST",
        "/invocations",
        body=iter([chunk] * 7),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        encode_chunked=True,
    )
    resp = conn.getresponse()
    assert resp.status == 413
    assert "exceeds the real-time invocation limit" in orjson.loads(resp.read())["message"]
    conn.close()
