"""SageMaker FM's model.tar.gz: model_algo-1, a zip of symbol.json, params (NDArray file) and meta.json."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

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
# Bounds on what a model artifact may make a reader allocate (a hostile archive is a few KB that expands).
MAX_ELEMENTS = 1 << 28  # feature_dim x num_factors: 1 GiB of float32
MAX_INNER_BYTES = 1 << 30  # model_algo-1
SPOOL_BYTES = 16 << 20  # model_algo-1 is held in memory up to this size, then in a temporary file
MAX_ARCHIVE_BYTES = MAX_INNER_BYTES + (1 << 20)  # the whole decompressed tar stream
MAX_JSON_BYTES = 16 << 20  # symbol.json, meta.json
_CHUNK_BYTES = 1 << 20  # what a large member is read by


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


class _Capped(io.RawIOBase):
    """A read-only stream over `raw` that fails once more than `cap` bytes have come out of it."""

    def __init__(self, raw: IO[bytes], cap: int, fail: Callable[[], ModelArtifactError]) -> None:
        self.raw, self.left, self.fail = raw, cap, fail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self.raw.read(min(len(view), self.left + 1))
        if len(chunk) > self.left:
            raise self.fail()
        self.left -= len(chunk)
        view[: len(chunk)] = chunk
        return len(chunk)


def _decompressed(raw: IO[bytes]) -> IO[bytes]:
    """The tar stream of model.tar.gz, decompressed lazily (gzip, as SageMaker writes it; bz2, xz, none)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic[:2] == b"\x1f\x8b":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if magic[:3] == b"BZh":
        return bz2.BZ2File(raw)
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


def _member_kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"a symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"a hard link to {member.linkname!r}"
    if member.isdir():
        return "a directory"
    if member.ischr() or member.isblk():
        return "a device"
    if member.isfifo():
        return "a FIFO"
    return f"a tar member of type {member.type!r}"


def _inner_zip(raw: IO[bytes], source: str) -> IO[bytes]:
    """model_algo-1's bytes, in a spooled file (memory up to SPOOL_BYTES, then disk), every size capped.

    `raw` (model.tar.gz) is read as a stream: the archive is never held whole next to what it holds.
    """
    too_big = lambda: ModelArtifactError(  # noqa: E731
        f"{source}: decompresses to more than {MAX_ARCHIVE_BYTES:,} bytes; refused (an archive bomb?)"
    )
    names: list[str] = []
    try:
        with tarfile.open(fileobj=_Capped(_decompressed(raw), MAX_ARCHIVE_BYTES, too_big), mode="r|") as tf:
            for member in tf:
                if Path(member.name).name != INNER_NAME:
                    names.append(member.name)
                    continue
                if not member.isfile():
                    raise ModelArtifactError(
                        f"{source}: {member.name} is {_member_kind(member)}; expected a regular file"
                    )
                if member.size > MAX_INNER_BYTES:
                    raise ModelArtifactError(
                        f"{source}: {member.name} declares {member.size:,} bytes, "
                        f"more than the {MAX_INNER_BYTES:,} allowed"
                    )
                fh = tf.extractfile(member)
                assert fh is not None  # a regular file always has a reader
                out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned open)
                try:
                    shutil.copyfileobj(fh, out, 1 << 20)
                    out.seek(0)
                except BaseException:
                    out.close()
                    raise
                return cast(IO[bytes], out)
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as exc:
        raise ModelArtifactError(f"{source}: not a readable tar.gz ({exc})") from exc
    found = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    raise ModelArtifactError(f"{source}: no {INNER_NAME} inside (found {found or 'nothing'})")


def _member_info(zf: zipfile.ZipFile, name: str, cap: int, where: str) -> zipfile.ZipInfo:
    info = zf.getinfo(name)
    if info.file_size > cap:
        raise ModelArtifactError(
            f"{where}/{name}: declares {info.file_size:,} bytes uncompressed, more than the {cap:,} "
            "this model's dimensions allow"
        )
    return info


def _read_capped(zf: zipfile.ZipFile, name: str, cap: int, where: str) -> bytes:
    info = _member_info(zf, name, cap, where)
    with zf.open(info) as fh:
        return fh.read(cap + 1)[:cap]  # file_size bounds the reader too; this bounds a lying header


def _read_into_buffer(zf: zipfile.ZipFile, name: str, cap: int, where: str) -> bytearray:
    """A member's bytes in one buffer of its declared size (capped before it is allocated), filled a chunk
    at a time: no second whole copy, as one read() of the whole member makes while it joins its pieces."""
    info = _member_info(zf, name, cap, where)
    out = bytearray(info.file_size)
    view = memoryview(out)
    filled = 0
    with zf.open(info) as fh:  # zipfile never yields more than file_size, and checks the CRC at the end
        while filled < len(out):
            chunk = fh.read(min(_CHUNK_BYTES, len(out) - filled))
            if not chunk:
                raise ModelArtifactError(
                    f"{where}/{name}: ends after {filled:,} of its {len(out):,} declared bytes"
                )
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        fh.read(1)  # reaches the end of the member's stream, where zipfile checks its CRC
    return out


def _positive_int(value: Any, what: str, where: str) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit() or int(text) <= 0 or len(text) > 12:
        raise ModelArtifactError(f"{where}: {what} {value!r}; expected a positive integer")
    return int(text)


def _symbol_dims(symbol: dict[str, Any], where: str) -> tuple[int | None, int | None]:
    """feature_dim and num_factors from the `v` variable's __shape__ in symbol.json, when it records one."""
    for node in symbol.get("nodes", []) if isinstance(symbol.get("nodes"), list) else []:
        if isinstance(node, dict) and node.get("name") == V and node.get("op") == "null":
            attrs = node.get("attrs") or node.get("attr") or {}  # "attr" in MXNet before 1.0
            dims = re.findall(r"\d+", str(attrs.get("__shape__", ""))) if isinstance(attrs, dict) else []
            if len(dims) == 2:
                return (
                    _positive_int(dims[0], "symbol.json v shape", where),
                    _positive_int(dims[1], "symbol.json v shape", where),
                )
    return None, None


def _declared_dims(
    hyperparameters: dict[str, str], symbol: dict[str, Any], where: str
) -> tuple[int | None, int | None]:
    """feature_dim and num_factors as meta.json and symbol.json declare them (they must agree)."""
    meta_d = _positive_int(hyperparameters.get("feature_dim"), "meta.json feature_dim", where)
    meta_k = _positive_int(hyperparameters.get("num_factors"), "meta.json num_factors", where)
    sym_d, sym_k = _symbol_dims(symbol, where)
    for what, a, b in (("feature_dim", meta_d, sym_d), ("num_factors", meta_k, sym_k)):
        if a is not None and b is not None and a != b:
            raise ModelArtifactError(f"{where}: meta.json {what} {a} but symbol.json declares {b}")
    d = meta_d if meta_d is not None else sym_d
    k = meta_k if meta_k is not None else sym_k
    if d is not None and d * (k or 1) > MAX_ELEMENTS:
        raise ModelArtifactError(
            f"{where}: declares feature_dim {d} x num_factors {k}, more than the {MAX_ELEMENTS:,} "
            "parameters allowed"
        )
    return d, k


def load_model_bytes(data: bytes, source: str = "model.tar.gz") -> FMModel:
    """Parse the bytes of a model.tar.gz (ours or one SageMaker wrote).

    Hostile archives are refused before they cost memory: every decompressed size is capped, and the
    parameter file may not be larger than the dimensions meta.json or symbol.json declare allow.
    """
    return _load_model(io.BytesIO(data), source)  # BytesIO shares the bytes: no copy


def _load_model(raw: IO[bytes], source: str) -> FMModel:
    """load_model_bytes over a stream of model.tar.gz, read once, front to back."""
    where = f"{source}!{INNER_NAME}"
    inner = _inner_zip(raw, source)
    try:
        with inner, zipfile.ZipFile(inner) as zf:
            members = set(zf.namelist())
            # SageMaker's own FM artifact holds symbol.json and params (the layout MXNet's Module.load reads:
            # https://aws.amazon.com/blogs/machine-learning/extending-amazon-sagemaker-factorization-machines-algorithm-to-predict-top-x-recommendations/);
            # meta.json is ours, so either it or symbol.json must be there.
            missing = [PARAMS_NAME] if PARAMS_NAME not in members else []
            if META_NAME not in members and SYMBOL_NAME not in members:
                missing.append(f"{META_NAME} and {SYMBOL_NAME}")
            if missing:
                listing = ", ".join(sorted(members)[:10]) or "nothing"
                raise ModelArtifactError(f"{where}: missing {', '.join(missing)} (found {listing})")
            meta_bytes = _read_capped(zf, META_NAME, MAX_JSON_BYTES, where) if META_NAME in members else b"{}"
            symbol_bytes = (
                _read_capped(zf, SYMBOL_NAME, MAX_JSON_BYTES, where) if SYMBOL_NAME in members else b"{}"
            )
            try:
                meta = json.loads(meta_bytes)
                symbol = json.loads(symbol_bytes)
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise ModelArtifactError(
                    f"{where}: meta.json or symbol.json is not valid JSON ({exc})"
                ) from exc
            if not isinstance(meta, dict):
                raise ModelArtifactError(f"{where}/{META_NAME}: expected a JSON object")
            if not isinstance(symbol, dict):
                raise ModelArtifactError(f"{where}/{SYMBOL_NAME}: expected a JSON object")
            training = meta.get("training_parameters")
            training = training if isinstance(training, dict) else {}
            hyperparameters = {str(k): str(val) for k, val in training.items()}
            dim, factors = _declared_dims(hyperparameters, symbol, where)
            max_elements = dim * (factors or 1) if dim is not None else MAX_ELEMENTS
            # float64 at worst, plus row indices and per-array headers and names
            params_cap = min(MAX_INNER_BYTES, 8 * (1 + 2 * max_elements) + 16 * (dim or 0) + (64 << 10))
            params_buffer = _read_into_buffer(zf, PARAMS_NAME, params_cap, where)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        zlib.error,
        NotImplementedError,
    ) as exc:
        raise ModelArtifactError(f"{where}: not a readable zip archive ({exc})") from exc
    # Views into params_buffer, not copies: the buffer is the arrays' memory (V is nearly all of it).
    arrays = load_ndarrays(
        params_buffer, f"{where}/{PARAMS_NAME}", max_elements=max(max_elements, 1), copy=False
    )
    del params_buffer
    found: dict[str, np.ndarray] = {}
    for key in (W0, W1, V):
        value = arrays.get(f"arg:{key}", arrays.get(key))
        if value is None:
            raise ModelArtifactError(
                f"{where}/{PARAMS_NAME}: no arg:{key} (found {', '.join(arrays) or 'no arrays'})"
            )
        found[key] = value
    with np.errstate(over="ignore", invalid="ignore"):  # values beyond float32 become inf: refused below
        v, w = _float32(found[V]), _float32(found[W1])
    if v.ndim != 2 or w.size != v.shape[0] or found[W0].size != 1:
        raise ModelArtifactError(
            f"{where}/{PARAMS_NAME}: inconsistent shapes w0 {found[W0].shape}, w1 {w.shape}, v {v.shape}; "
            "expected (1,), (feature_dim, 1), (feature_dim, num_factors)"
        )
    predictor_type = hyperparameters.get("predictor_type") or _predictor_from_symbol(symbol)
    if predictor_type not in PREDICTOR_TYPES:
        raise ModelArtifactError(
            f"{where}: predictor_type {predictor_type!r} in meta.json; "
            f"expected one of {', '.join(PREDICTOR_TYPES)}"
        )
    if dim is not None and dim != v.shape[0]:
        raise ModelArtifactError(f"{where}: meta.json feature_dim {dim} but params hold {v.shape[0]} rows")
    if factors is not None and factors != v.shape[1]:
        raise ModelArtifactError(
            f"{where}: meta.json num_factors {factors} but params hold {v.shape[1]} factors"
        )
    w0 = found[W0].astype(np.float64).reshape(-1)
    for key, array in ((W0, w0), (W1, w), (V, v)):
        bad = _non_finite(array)
        if bad:
            raise ModelArtifactError(
                f"{where}/{PARAMS_NAME}: {key} holds {bad} NaN or infinite value(s) (after conversion to "
                "float32); a model with non-finite weights cannot score"
            )
    params = FMParams(w0=float(w0[0]), w=np.ascontiguousarray(w.reshape(-1)), V=v)
    if not hyperparameters:  # SageMaker's artifact has no meta.json: record what the model itself shows
        hyperparameters = {
            "feature_dim": str(params.feature_dim),
            "num_factors": str(params.num_factors),
            "predictor_type": predictor_type,
        }
        meta = {"training_parameters": dict(hyperparameters), **meta}
    return FMModel(params=params, predictor_type=predictor_type, hyperparameters=hyperparameters, meta=meta)


def load_model_tar(path: str | Path) -> FMModel:
    """Read model.tar.gz → model_algo-1 → params and meta.json (symbol.json when meta.json lacks a value)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below; a stream, so the archive is never held whole)
    except OSError as exc:
        raise ModelArtifactError(f"{path}: cannot read model artifact ({exc.strerror or exc})") from exc
    with fh:
        return _load_model(fh, str(path))


def _float32(array: np.ndarray) -> np.ndarray:
    """`array` as aligned float32: itself when it already is (a view of the params buffer), else a copy."""
    return np.require(array, dtype=np.float32, requirements=["C", "A"])


def _non_finite(array: np.ndarray) -> int:
    """How many NaN or infinite values `array` holds, by row blocks (no whole-array boolean temporary)."""
    flat = array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(-1, 1)
    step = max(1, (1 << 22) // max(1, flat.shape[1]))
    total = 0
    for start in range(0, flat.shape[0], step):
        block = flat[start : start + step]
        total += block.size - int(np.count_nonzero(np.isfinite(block)))
    return total
