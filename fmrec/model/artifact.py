"""SageMaker FM's model.tar.gz: model_algo-1, a zip of symbol.json, params (NDArray file) and meta.json."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmrec.errors import InputError
from fmrec.io_utils import atomic_write_bytes
from fmrec.model.fm import BINARY_CLASSIFIER, PREDICTOR_TYPES, REGRESSOR, FMParams
from fmrec.model.ndarray import load_ndarrays, save_ndarrays

INNER_NAME = "model_algo-1"
SYMBOL_NAME = "symbol.json"
PARAMS_NAME = "params"
META_NAME = "meta.json"
W0, W1, V = "w0_weight", "w1_weight", "v"
# The MXNet version recorded in symbol.json (1.3.0, the 1.x line SageMaker's FM container is built on).
MXNET_VERSION = 10300
_OUTPUT_OPS = {BINARY_CLASSIFIER: "LogisticRegressionOutput", REGRESSOR: "LinearRegressionOutput"}


class ModelArtifactError(InputError):
    """A model.tar.gz that is not an FM model artifact; the message names the file and the part at fault."""


@dataclass
class FMModel:
    """A trained FM: its parameters, predictor type, the hyperparameters it was trained with and meta.json."""

    params: FMParams
    predictor_type: str
    hyperparameters: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.params.feature_dim

    @property
    def num_factors(self) -> int:
        return self.params.num_factors


def build_symbol(predictor_type: str, feature_dim: int, num_factors: int) -> dict[str, Any]:
    """The FM graph as an MXNet symbol JSON: w0 + x.w1 + 1/2 sum((x.v)^2 - (x*x).(v*v)) into the output op."""
    nodes: list[dict[str, Any]] = []

    def add(op: str, name: str, inputs: list[int], attrs: dict[str, str] | None = None) -> int:
        node: dict[str, Any] = {"op": op, "name": name, "inputs": [[i, 0, 0] for i in inputs]}
        if attrs:
            node["attrs"] = attrs
        nodes.append(node)
        return len(nodes) - 1

    data = add("null", "data", [], {"__storage_type__": "2"})
    w1 = add("null", W1, [], {"__shape__": f"({feature_dim}, 1)", "__storage_type__": "1"})
    w0 = add("null", W0, [], {"__shape__": "(1,)"})
    v = add("null", V, [], {"__shape__": f"({feature_dim}, {num_factors})", "__storage_type__": "1"})
    linear = add("dot", "linear_dot", [data, w1])
    biased = add("broadcast_add", "linear_bias", [linear, w0])
    xv = add("dot", "xv", [data, v])
    xv2 = add("square", "xv_square", [xv])
    x2 = add("square", "x_square", [data])
    v2 = add("square", "v_square", [v])
    x2v2 = add("dot", "x2v2", [x2, v2])
    diff = add("elemwise_sub", "pair_diff", [xv2, x2v2])
    pair_sum = add("sum", "pair_sum", [diff], {"axis": "1", "keepdims": "True"})
    half = add("_mul_scalar", "pair_half", [pair_sum], {"scalar": "0.5"})
    score = add("elemwise_add", "score", [biased, half])
    label = add("null", "out_label", [])
    out = add(_OUTPUT_OPS[predictor_type], "out", [score, label])
    arg_nodes = [i for i, n in enumerate(nodes) if n["op"] == "null"]
    return {
        "nodes": nodes,
        "arg_nodes": arg_nodes,
        "node_row_ptr": list(range(len(nodes) + 1)),
        "heads": [[out, 0, 0]],
        "attrs": {"mxnet_version": ["int", MXNET_VERSION]},
    }


def _meta(model: FMModel) -> dict[str, Any]:
    meta = json.loads(json.dumps(model.meta))  # a deep copy that also proves it is JSON
    training = {str(k): str(v) for k, v in model.hyperparameters.items()}
    training.update({str(k): str(v) for k, v in meta.get("training_parameters", {}).items()})
    # The model's own shape is authoritative for the three values every reader needs.
    training.update(
        feature_dim=str(model.params.feature_dim),
        num_factors=str(model.params.num_factors),
        predictor_type=model.predictor_type,
    )
    meta["training_parameters"] = training
    return meta


def model_tar_bytes(model: FMModel) -> bytes:
    """The bytes of model.tar.gz for `model` (deterministic: fixed timestamps and order)."""
    if model.predictor_type not in PREDICTOR_TYPES:
        raise InputError(
            f"predictor_type {model.predictor_type!r}: expected one of {', '.join(PREDICTOR_TYPES)}"
        )
    p = model.params
    params = save_ndarrays(
        {
            f"arg:{W0}": np.asarray([p.w0], dtype=np.float32),
            f"arg:{W1}": np.asarray(p.w, dtype=np.float32).reshape(-1, 1),
            f"arg:{V}": np.asarray(p.V, dtype=np.float32),
        }
    )
    symbol = build_symbol(model.predictor_type, p.feature_dim, p.num_factors)
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, payload in (
            (SYMBOL_NAME, json.dumps(symbol, indent=2).encode()),
            (PARAMS_NAME, params),
            (META_NAME, json.dumps(_meta(model), indent=2, sort_keys=True).encode()),
        ):
            zinfo = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zinfo.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zinfo, payload)
    inner = zbuf.getvalue()
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:gz", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo(INNER_NAME)
        info.size = len(inner)
        info.mode = 0o644
        tf.addfile(info, io.BytesIO(inner))
    return tbuf.getvalue()


def save_model_tar(model: FMModel, path: str | Path) -> None:
    """Write model.tar.gz atomically."""
    atomic_write_bytes(path, model_tar_bytes(model))


def _predictor_from_symbol(symbol: dict[str, Any]) -> str | None:
    ops = {n.get("op") for n in symbol.get("nodes", []) if isinstance(n, dict)}
    for ptype, op in _OUTPUT_OPS.items():
        if op in ops:
            return ptype
    return None


def load_model_bytes(data: bytes, source: str = "model.tar.gz") -> FMModel:
    """Parse the bytes of a model.tar.gz (ours or one SageMaker wrote)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
            member = next(
                (m for m in tf.getmembers() if m.isfile() and Path(m.name).name == INNER_NAME),
                None,
            )
            if member is None:
                names = ", ".join(m.name for m in tf.getmembers()) or "nothing"
                raise ModelArtifactError(f"{source}: no {INNER_NAME} inside (found {names})")
            fh = tf.extractfile(member)
            assert fh is not None
            inner = fh.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ModelArtifactError(f"{source}: not a readable tar.gz ({exc})") from exc
    where = f"{source}!{INNER_NAME}"
    try:
        with zipfile.ZipFile(io.BytesIO(inner)) as zf:
            members = set(zf.namelist())
            missing = [n for n in (PARAMS_NAME, META_NAME) if n not in members]
            if missing:
                raise ModelArtifactError(
                    f"{where}: missing {', '.join(missing)} (found {', '.join(sorted(members))})"
                )
            params_bytes = zf.read(PARAMS_NAME)
            meta_bytes = zf.read(META_NAME)
            symbol_bytes = zf.read(SYMBOL_NAME) if SYMBOL_NAME in members else b"{}"
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelArtifactError(f"{where}: not a readable zip archive ({exc})") from exc
    try:
        meta = json.loads(meta_bytes)
        symbol = json.loads(symbol_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelArtifactError(f"{where}: meta.json or symbol.json is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelArtifactError(f"{where}/{META_NAME}: expected a JSON object")
    arrays = load_ndarrays(params_bytes, f"{where}/{PARAMS_NAME}")
    found: dict[str, np.ndarray] = {}
    for key in (W0, W1, V):
        value = arrays.get(f"arg:{key}", arrays.get(key))
        if value is None:
            raise ModelArtifactError(
                f"{where}/{PARAMS_NAME}: no arg:{key} (found {', '.join(arrays) or 'no arrays'})"
            )
        found[key] = value
    v = found[V].astype(np.float32)
    w = found[W1].astype(np.float32)
    if v.ndim != 2 or w.size != v.shape[0] or found[W0].size != 1:
        raise ModelArtifactError(
            f"{where}/{PARAMS_NAME}: inconsistent shapes w0 {found[W0].shape}, w1 {w.shape}, v {v.shape}; "
            "expected (1,), (feature_dim, 1), (feature_dim, num_factors)"
        )
    training = meta.get("training_parameters")
    training = training if isinstance(training, dict) else {}
    hyperparameters = {str(k): str(val) for k, val in training.items()}
    predictor_type = hyperparameters.get("predictor_type") or _predictor_from_symbol(symbol)
    if predictor_type not in PREDICTOR_TYPES:
        raise ModelArtifactError(
            f"{where}: predictor_type {predictor_type!r} in meta.json; "
            f"expected one of {', '.join(PREDICTOR_TYPES)}"
        )
    declared = hyperparameters.get("feature_dim")
    if declared is not None and declared.strip() != str(v.shape[0]):
        raise ModelArtifactError(
            f"{where}: meta.json feature_dim {declared} but params hold {v.shape[0]} rows"
        )
    params = FMParams(w0=float(found[W0].reshape(-1)[0]), w=np.ascontiguousarray(w.reshape(-1)), V=v)
    return FMModel(params=params, predictor_type=predictor_type, hyperparameters=hyperparameters, meta=meta)


def load_model_tar(path: str | Path) -> FMModel:
    """Read model.tar.gz → model_algo-1 → params and meta.json (symbol.json if meta lacks predictor_type)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelArtifactError(f"{path}: cannot read model artifact ({exc.strerror or exc})") from exc
    return load_model_bytes(data, str(path))
