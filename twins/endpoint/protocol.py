"""SageMaker FM inference protocol: content negotiation, request parsing and response encoding."""

from __future__ import annotations

import contextlib
import gc
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
from scipy.sparse import csr_matrix

from fmrec.codec.predictions import encode_predictions
from fmrec.codec.reader import decode_request
from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from fmrec.errors import InputError

JSON = "application/json"
JSONLINES = "application/jsonlines"
SUPPORTED = (JSON, JSONLINES, RECORDIO)

# The real-time invocation limit, 6 MB, read as MiB (the larger reading): nothing SageMaker takes is refused.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

# The model computes in float32: a value beyond this (or NaN, or infinite) cannot be scored.
FLOAT32_MAX = float(np.finfo(np.float32).max)

BINARY = "binary_classifier"
REGRESSOR = "regressor"


class EndpointRequestError(InputError):
    """A request the model container refuses; `status` is the HTTP status the container answers with."""

    def __init__(self, message: str, status: int = 400, error_type: str = "InvalidInput") -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def _media_type(header: str) -> str:
    return header.split(";", 1)[0].strip().lower()


def request_content_type(header: str | None) -> str:
    """The request's content type among SUPPORTED, or a 415 naming what was sent and what is accepted."""
    if not header:
        raise EndpointRequestError(
            f"missing Content-Type; expected one of {', '.join(SUPPORTED)}", 415, "UnsupportedMediaType"
        )
    media = _media_type(header)
    if media not in SUPPORTED:
        raise EndpointRequestError(
            f"unsupported Content-Type {header!r}; expected one of {', '.join(SUPPORTED)}",
            415,
            "UnsupportedMediaType",
        )
    return media


def response_content_type(accept: str | None) -> str:
    """Pick the response type from an Accept header (q-values honoured); JSON when absent or a wildcard."""
    if not accept or not accept.strip():
        return JSON
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        pieces = part.split(";")
        media = pieces[0].strip().lower()
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                with contextlib.suppress(ValueError):
                    quality = float(value)
        if quality <= 0:
            continue
        if media in ("*/*", "application/*"):
            media = JSON
        if media in SUPPORTED:
            choices.append((-quality, position, media))
    if not choices:
        raise EndpointRequestError(
            f"unsupported Accept {accept!r}; expected one of {', '.join(SUPPORTED)}", 406, "NotAcceptable"
        )
    return min(choices)[2]


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    # Parsed JSON holds no reference cycles; the cyclic collector would only rescan thousands of fresh
    # containers several times per request (half the parse time on this machine).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _array(items: list[Any]) -> np.ndarray | None:
    """np.array(items), or None when numpy cannot make one (ragged nested lists raise ValueError)."""
    try:
        return np.array(items)
    except (ValueError, TypeError, OverflowError):
        return None


def _number_array(items: list[Any], where: str, what: str) -> np.ndarray:
    arr = _array(items) if items else np.zeros(0, dtype=np.float64)
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iuf":
        raise EndpointRequestError(f"{where}: {what} must be a list of numbers")
    if arr.dtype.kind == "f" and not (np.abs(arr) <= FLOAT32_MAX).all():
        bad = float(arr[~(np.abs(arr) <= FLOAT32_MAX)][0])
        raise EndpointRequestError(
            f"{where}: {what} holds {bad!r}, beyond float32's range (at most {FLOAT32_MAX:.4g} in magnitude)"
        )
    return arr


def _key_array(items: list[Any], where: str, feature_dim: int) -> np.ndarray:
    arr = _array(items) if items else np.zeros(0, dtype=np.int64)
    if arr is None or arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise EndpointRequestError(f"{where}: keys must be a list of integers")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= feature_dim):
        bad = int(arr[(arr < 0) | (arr >= feature_dim)][0])
        raise EndpointRequestError(
            f"{where}: key {bad} is out of range; keys must be in [0, {feature_dim - 1}] "
            f"(feature_dim {feature_dim})"
        )
    return arr.astype(np.int64, copy=False)


def _check_shape(shape: Any, where: str, feature_dim: int) -> None:
    if shape != [feature_dim]:
        raise EndpointRequestError(
            f"{where}: shape is {shape!r}, expected [{feature_dim}] (the model's feature_dim)"
        )


def _dense_row(values: Any, where: str, feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(values, list):
        raise EndpointRequestError(f"{where}: expected a list of {feature_dim} numbers")
    arr = _number_array(values, where, "features")
    if arr.size != feature_dim:
        raise EndpointRequestError(
            f"{where}: has {arr.size} values, expected {feature_dim} (the model's feature_dim)"
        )
    keys = np.flatnonzero(arr)
    return keys, arr[keys]


def _instance_row(inst: Any, where: str, feature_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """One instance in any accepted form → (column keys, values), with a message naming what is wrong."""
    if not isinstance(inst, dict):
        raise EndpointRequestError(f"{where}: expected an object, got {type(inst).__name__}")
    if "features" in inst:
        feats, where = inst["features"], f"{where}.features"
    elif "data" in inst:
        data = inst["data"]
        if not isinstance(data, dict) or "features" not in data:
            raise EndpointRequestError(f'{where}.data: expected an object with a "features" field')
        feats, where = data["features"], f"{where}.data.features"
    else:
        raise EndpointRequestError(f'{where}: expected a "features" or "data" field')
    if isinstance(feats, list):
        return _dense_row(feats, where, feature_dim)
    if not isinstance(feats, dict):
        raise EndpointRequestError(f"{where}: expected a list of numbers or an object with keys/shape/values")
    if "values" not in feats:
        raise EndpointRequestError(f'{where}: missing "values"')
    if "keys" not in feats:
        if "shape" in feats:
            _check_shape(feats["shape"], where, feature_dim)
        return _dense_row(feats["values"], f"{where}.values", feature_dim)
    if "shape" not in feats:
        raise EndpointRequestError(f'{where}: missing "shape" (expected [{feature_dim}])')
    _check_shape(feats["shape"], where, feature_dim)
    keys, values = feats["keys"], feats["values"]
    if not isinstance(keys, list) or not isinstance(values, list):
        raise EndpointRequestError(f"{where}: keys and values must be lists")
    if len(keys) != len(values):
        raise EndpointRequestError(f"{where}: {len(keys)} keys but {len(values)} values")
    return _key_array(keys, where, feature_dim), _number_array(values, where, "values")


def _fast_sparse(instances: list[Any], feature_dim: int) -> csr_matrix | None:
    """The common case (every instance {"data": {"features": {keys, shape, values}}}) without per-row numpy.

    Returns None whenever anything is unusual; the general path then parses it or names the problem.
    """
    try:
        feats = [inst["data"]["features"] for inst in instances]
        key_lists = [f["keys"] for f in feats]
        value_lists = [f["values"] for f in feats]
        shapes = [f["shape"] for f in feats]
        if shapes.count([feature_dim]) != len(shapes):
            return None
        lengths = list(map(len, key_lists))
        if lengths != list(map(len, value_lists)):
            return None
    except (KeyError, TypeError):
        return None
    keys = _array(list(itertools.chain.from_iterable(key_lists)))
    values = _array(list(itertools.chain.from_iterable(value_lists)))
    if keys is None or values is None or keys.size == 0 or keys.ndim != 1 or values.ndim != 1:
        return None
    if keys.dtype.kind not in "iu" or values.dtype.kind not in "iuf":
        return None
    if values.dtype.kind == "f" and not (np.abs(values) <= FLOAT32_MAX).all():
        return None
    if int(keys.min()) < 0 or int(keys.max()) >= feature_dim:
        return None
    indptr = np.zeros(len(instances) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return _csr(values, keys, indptr, len(instances), feature_dim)


def _csr(values: np.ndarray, keys: np.ndarray, indptr: np.ndarray, n: int, feature_dim: int) -> csr_matrix:
    X = csr_matrix(
        (values.astype(np.float32, copy=False), keys.astype(np.int32, copy=False), indptr.astype(np.int32)),
        shape=(n, feature_dim),
    )
    X.sum_duplicates()  # a key given twice means x_i is their sum, as the scoring formula assumes
    return X


def instances_to_csr(
    instances: Sequence[Any], feature_dim: int, names: Sequence[str] | None = None
) -> csr_matrix:
    """Rows of any accepted instance form (sparse keys/shape/values, dense lists) → float32 CSR.

    `names` label each instance in error messages (default "instances[i]").
    """
    if len(instances) == 0:
        raise EndpointRequestError("instances: no instances to score")
    instances = list(instances)
    fast = _fast_sparse(instances, feature_dim)
    if fast is not None:
        return fast
    if names is None:
        names = [f"instances[{i}]" for i in range(len(instances))]
    rows = [_instance_row(inst, name, feature_dim) for inst, name in zip(instances, names, strict=True)]
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([k.size for k, _ in rows], out=indptr[1:])
    keys = np.concatenate([k for k, _ in rows]) if rows else np.zeros(0, np.int64)
    values = np.concatenate([v.astype(np.float64) for _, v in rows]) if rows else np.zeros(0)
    return _csr(values, keys, indptr, len(rows), feature_dim)


def parse_json(body: bytes, feature_dim: int) -> csr_matrix:
    with _no_gc():
        return _parse_json(body, feature_dim)


def _parse_json(body: bytes, feature_dim: int) -> csr_matrix:
    # Runs inside _no_gc and returns before it ends, so the parsed document is freed while the collector is
    # still off (otherwise the first collection after gc.enable() scans the whole document once more).
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EndpointRequestError(f"request body is not valid JSON: {exc}") from None
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise EndpointRequestError("instances: expected a list of instances")
        return instances_to_csr(instances, feature_dim)
    if isinstance(doc, dict) and ("features" in doc or "data" in doc):
        return instances_to_csr([doc], feature_dim, ["request body"])
    raise EndpointRequestError(
        'request body: expected {"instances": [...]} (or a single {"features": ...} / {"data": ...} instance)'
    )


def parse_jsonlines(body: bytes, feature_dim: int) -> csr_matrix:
    with _no_gc():
        return _parse_jsonlines(body, feature_dim)


def _parse_jsonlines(body: bytes, feature_dim: int) -> csr_matrix:
    instances: list[Any] = []
    names: list[str] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            instances.append(orjson.loads(line))
            names.append(f"line {number}")
        except orjson.JSONDecodeError as exc:
            raise EndpointRequestError(f"line {number}: not valid JSON: {exc}") from None
    if not instances:
        raise EndpointRequestError("request body: no JSON Lines instances to score")
    return instances_to_csr(instances, feature_dim, names)


def parse_recordio(body: bytes, feature_dim: int) -> csr_matrix:
    try:
        X = decode_request(body, feature_dim)
    except (InputError, ValueError) as exc:
        raise EndpointRequestError(f"recordIO-protobuf request: {exc}") from None
    if X.shape[0] == 0:
        raise EndpointRequestError("recordIO-protobuf request: no records to score")
    X = csr_matrix(X, dtype=np.float32)
    X.sum_duplicates()
    finite = np.isfinite(X.data)
    if not finite.all():
        row = int(np.searchsorted(X.indptr, int(np.flatnonzero(~finite)[0]), side="right")) - 1
        raise EndpointRequestError(
            f"recordIO-protobuf request: record {row}: a value is NaN, infinite or beyond float32's range "
            f"(at most {FLOAT32_MAX:.4g} in magnitude)"
        )
    return X


def parse_request(body: bytes, content_type: str, feature_dim: int) -> csr_matrix:
    if content_type == JSON:
        return parse_json(body, feature_dim)
    if content_type == JSONLINES:
        return parse_jsonlines(body, feature_dim)
    if content_type == RECORDIO:
        return parse_recordio(body, feature_dim)
    raise EndpointRequestError(f"unsupported Content-Type {content_type!r}", 415, "UnsupportedMediaType")


def instance_name(body: bytes, content_type: str, row: int) -> str:
    """How error messages name instance `row` of a request that parsed (worked out only when needed)."""
    if content_type == RECORDIO:
        return f"recordIO-protobuf request: record {row}"
    if content_type == JSONLINES:
        lines = (n for n, line in enumerate(body.split(b"\n"), start=1) if line.strip())
        return f"line {next(itertools.islice(lines, row, None))}"
    doc = orjson.loads(body)
    return f"instances[{row}]" if isinstance(doc, dict) and "instances" in doc else "request body"


def check_scores(scores: np.ndarray, body: bytes, content_type: str) -> None:
    """A 400 naming the first instance whose raw score is not a finite float32 (SageMaker's FM computes in
    float32, so such values would give it inf or NaN)."""
    finite = np.abs(scores) <= FLOAT32_MAX
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise EndpointRequestError(
            f"{instance_name(body, content_type, row)}: the score overflows float32 (the values are too "
            "large for the model); scale them down"
        )


def predicted_labels(scores: np.ndarray) -> np.ndarray:
    """The binary classifier's label: 1 when score >= 0.5."""
    return (scores >= 0.5).astype(np.int8)


def encode_response(scores: np.ndarray, predictor_type: str, accept: str) -> bytes:
    """Scores → the response body SageMaker FM gives for `accept`."""
    scores = np.asarray(scores, dtype=np.float32)
    binary = predictor_type == BINARY
    if accept == RECORDIO:
        labels = predicted_labels(scores).astype(np.float32) if binary else None
        return encode_predictions(scores, labels)
    with _no_gc():
        return _encode_json(scores, binary, accept == JSONLINES)


def _encode_json(scores: np.ndarray, binary: bool, lines: bool) -> bytes:
    # float32 scalars keep the shortest float32 repr on the wire ("0.4", not "0.4000000059604645").
    score_items = list(scores)
    if binary:
        rows: list[dict[str, Any]] = [
            {"score": s, "predicted_label": lab}
            for s, lab in zip(score_items, predicted_labels(scores).tolist(), strict=True)
        ]
    else:
        rows = [{"score": s} for s in score_items]
    if lines:
        return b"".join(
            orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE) for r in rows
        )
    return orjson.dumps({"predictions": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
