"""The training-job twin: SageMaker FM's container contract (/opt/ml layout in, model and metrics out)."""

from __future__ import annotations

import json
import logging
import math
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.codec.reader import read_spmatrix
from fmrec.codec.wire import CONTENT_TYPE as RECORDIO
from fmrec.codec.writer import write_spmatrix_file
from fmrec.errors import FmrecError, InputError, OutputError
from fmrec.io_utils import atomic_write_text
from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.hyperparameters import parse_hyperparameters
from fmrec.model.metrics import LOG_NAMES, SAGEMAKER_NAMES
from fmrec.model.trainer import train

log = logging.getLogger("fmrec.training")

CHANNELS = ("train", "test")  # what SageMaker's FM accepts; train is required
MODEL_NAME = "model.tar.gz"
METRICS_NAME = "metrics.json"
FAILURE_NAME = "failure"


def channel_files(folder: Path) -> list[Path]:
    """Every non-hidden file under a channel folder, sorted (SageMaker copies S3 prefixes as trees)."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def read_channel(folder: Path, channel: str) -> tuple[Any, Any]:
    """(CSR, labels) of every recordIO-protobuf file in a channel folder, in bounded extra memory."""
    files = channel_files(folder)
    if not files:
        raise InputError(f"{folder}: the {channel} channel holds no files; expected recordIO-protobuf shards")
    try:
        X, y = read_spmatrix(files)
    except (ValueError, OverflowError) as exc:  # a record the codec did not foresee (a shape of 2^63, ...)
        raise InputError(
            f"{folder}: the {channel} channel holds a malformed recordIO-protobuf record "
            f"({type(exc).__name__}: {exc}); expected Float32 tensors as SageMaker's "
            "write_spmatrix_to_sparse_tensor writes them"
        ) from exc
    if X.shape[0] == 0:
        raise InputError(f"{folder}: the {channel} channel holds no records ({len(files)} empty file(s))")
    return X, y


# One line per epoch for a human watching the run (the pipeline's and the demo's progress output).
EpochReport = Callable[[str], None]
_SHOWN = ("cross_entropy", "auc", "accuracy", "rmse")


def epoch_line(epoch: int, epochs: int, seconds: float, record: Mapping[str, Any]) -> str:
    """`epoch 3/30 (1.2 s): train cross_entropy 0.4312, accuracy 0.8123; test cross_entropy ...`"""
    parts = []
    for channel in ("train", "test"):
        shown = [f"{name} {record[channel][name]:.4f}" for name in _SHOWN if name in record.get(channel, {})]
        if shown:
            parts.append(f"{channel} {', '.join(shown)}")
    return f"epoch {epoch + 1}/{epochs} ({seconds:.1f} s): {'; '.join(parts)}"


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def run_training(
    raw_hyperparameters: Mapping[str, object],
    channels: Mapping[str, Path],
    model_dir: Path,
    output_dir: Path,
    *,
    seed: int = 0,
    progress: bool = False,
    report: EpochReport | None = None,
) -> dict[str, Any]:
    """Validate, read the channels, train, write model_dir/model.tar.gz and output_dir/data/metrics.json.

    `report`, when given, receives a line when reading is done and one per epoch (epoch_line).
    Raises FmrecError for bad input; writes nothing on failure (the caller writes the failure file).
    """
    hp = parse_hyperparameters(raw_hyperparameters)
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise InputError(
            f"channel {', '.join(unknown)}: Factorization Machines accepts only the channels train and test"
        )
    if "train" not in channels or not channels["train"].is_dir():
        where = channels.get("train", Path("input/data/train"))
        raise InputError(f"{where}: the train channel is missing; it is required")
    t0 = time.perf_counter()
    X, y = read_channel(channels["train"], "train")
    test = None
    if "test" in channels and channels["test"].is_dir():
        test = read_channel(channels["test"], "test")
    else:
        log.info("no test channel: training without test metrics")
    read_seconds = time.perf_counter() - t0
    log.info(
        "read %d train rows%s in %.2f s",
        X.shape[0],
        f", {test[0].shape[0]} test rows" if test else "",
        read_seconds,
    )

    on_record = None
    if report is not None:
        report(
            f"read {X.shape[0]:,} train rows ({X.nnz / X.shape[0]:.0f} columns each) in {read_seconds:.1f} s"
        )

        def on_record(record: Mapping[str, Any]) -> None:
            report(epoch_line(record["epoch"], hp.epochs, record["seconds"], record))

    try:
        # SageMaker's FM scores the test channel once, with the trained model: its page says the test
        # dataset is scored (RMSE, or log loss, accuracy and F1) and calls test:* the metrics it reports
        # (https://docs.aws.amazon.com/sagemaker/latest/dg/fact-machines.html,
        # https://docs.aws.amazon.com/sagemaker/latest/dg/fm-tuning.html); its job logs carry per-epoch
        # `epoch=N, train` lines and one `#test_score (algo-1)` block, with no epoch, at the end
        # (/work/shared/reference/sagemaker-fm-contract.md, Metrics). Scoring the test rows after every
        # epoch cost ~5 % of TrainModel for lines the job never emits.
        params, history = train(
            X, y, hp, test=test, seed=seed, progress=progress, log_metrics=True, on_record=on_record,
            test_each_epoch=False,
        )  # fmt: skip
    except InputError as exc:
        # name the channel folder, not just the channel
        msg = str(exc)
        for name, folder in channels.items():
            if msg.startswith(f"{name}: "):
                raise InputError(f"{folder}: {msg[len(name) + 2 :]}") from exc
        raise
    final: dict[str, float] = {}
    last = history[-1]
    for channel in ("train", "test"):
        for key, value in last.get(channel, {}).items():
            if key in SAGEMAKER_NAMES:
                final[f"{channel}:{SAGEMAKER_NAMES[key]}"] = value
    for key, value in last.get("test", {}).items():
        if key in LOG_NAMES:
            log.info("#test_score (algo-1) : (%r, %s)", LOG_NAMES[key], value)
    hp_strings = {str(k): str(v) for k, v in raw_hyperparameters.items()}
    model = FMModel(
        params=params,
        predictor_type=hp.predictor_type,
        hyperparameters=hp_strings,
        meta={"training_parameters": hp.to_strings(), "algorithm": "factorization-machines"},
    )
    model_path = model_dir / MODEL_NAME
    save_model_tar(model, model_path)
    doc = {
        "predictor_type": hp.predictor_type,
        "hyperparameters": hp.to_strings(),
        "seed": seed,
        "train_rows": int(X.shape[0]),
        "test_rows": int(test[0].shape[0]) if test else 0,
        "read_seconds": read_seconds,
        "train_seconds": float(sum(h["seconds"] for h in history)),
        "history": history,
        "final_metrics": final,
        "FinalMetricDataList": [{"MetricName": k, "Value": v} for k, v in final.items()],
    }
    doc = _json_safe(doc)
    try:
        atomic_write_text(output_dir / "data" / METRICS_NAME, json.dumps(doc, indent=2) + "\n")
    except BaseException:
        model_path.unlink(missing_ok=True)  # a model without its metrics is a half-written output
        raise
    return doc


def _read_config(root: Path) -> tuple[dict[str, object], dict[str, Path]]:
    config = root / "input" / "config"
    hp_path = config / "hyperparameters.json"
    try:
        raw = json.loads(hp_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{hp_path}: missing; the training job needs its hyperparameters") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{hp_path}: not readable JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise InputError(f"{hp_path}: expected a JSON object of name: string value")
    data = root / "input" / "data"
    channels = {p.name: p for p in sorted(data.iterdir()) if p.is_dir()} if data.is_dir() else {}
    idc_path = config / "inputdataconfig.json"
    if idc_path.is_file():
        try:
            idc = json.loads(idc_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{idc_path}: not readable JSON ({exc})") from exc
        for name, spec in (idc or {}).items():
            ctype = (spec or {}).get("ContentType") if isinstance(spec, dict) else None
            if ctype and ctype.split(";")[0].strip() != RECORDIO:
                raise InputError(
                    f"{idc_path}: channel {name} has ContentType {ctype}; FM reads only {RECORDIO}"
                )
            channels.setdefault(name, data / name)
    return raw, channels


def clear_previous_outputs(model_dir: Path, output_dir: Path) -> None:
    """Remove what an earlier run left in these folders (model, metrics, failure) before a new run starts.

    SageMaker starts every job in a fresh container, so a job's outputs are only ever its own: a failed or
    killed run must not leave the previous model looking current beside its failure file.
    """
    for stale in (output_dir / FAILURE_NAME, model_dir / MODEL_NAME, output_dir / "data" / METRICS_NAME):
        stale.unlink(missing_ok=True)


def failure_text(exc: BaseException) -> tuple[str, int]:
    """The failure file's text and the exit code for an exception that ended a training run.

    SageMaker returns the first 1024 characters of /opt/ml/output/failure as the job's FailureReason
    (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html) and turns a
    non-zero exit into a Failed job
    (https://docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-signal-success-failure.html).
    """
    if isinstance(exc, FmrecError):
        return f"{exc}\n", exc.exit_code
    if isinstance(exc, OSError):
        error = OutputError(
            f"{exc.filename or 'output'}: cannot write the job's output ({exc.strerror or exc})"
        )
        return f"{error}\n", error.exit_code
    return f"InternalServerError: {type(exc).__name__}: {exc}\n", 1


def write_failure(path: Path, text: str) -> None:
    """Write the failure file; if even that fails, the log is all that is left."""
    try:
        atomic_write_text(path, text)
    except OutputError as exc:
        log.error("cannot write the failure file: %s", exc)


def compile_kernels() -> float:
    """Run a small training job through this twin (reader, trainer on two threads, artifact) so that numba
    compiles its kernels into its on-disk cache; returns the seconds it took. `make setup` calls it (via
    `python -m twins.training --compile-kernels`): the first TrainModel after an install then loads the
    kernels (~0.5 s) instead of compiling them (~12 CPU-s)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    rows, dim = 3000, 500
    # rows of different widths, like the ranking rows' history columns: the reader's compiled generic path
    widths = rng.integers(2, 40, rows)
    cols = np.concatenate([rng.choice(dim, w, replace=False) for w in widths])
    indptr = np.concatenate([[0], np.cumsum(widths)])
    X = sp.csr_matrix((rng.random(cols.size).astype(np.float32), cols, indptr), shape=(rows, dim))
    y = (rng.random(rows) < 0.5).astype(np.float32)
    hp = {"feature_dim": str(dim), "num_factors": "8", "predictor_type": "binary_classifier", "epochs": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for channel in CHANNELS:
            (root / channel).mkdir()
            write_spmatrix_file(root / channel / "part-0.pbr", X, y)
        run_training(hp, {c: root / c for c in CHANNELS}, root / "model", root / "output")
    return time.perf_counter() - t0


def run_training_job(
    root: str | Path, *, seed: int = 0, progress: bool = False, report: EpochReport | None = None
) -> int:
    """Run one training job over SageMaker's container layout under `root`; 0 on success.

    In: root/input/config/hyperparameters.json (string values), root/input/data/train/ (required) and
    root/input/data/test/ (optional), recordIO-protobuf shards. Out: root/model/model.tar.gz and
    root/output/data/metrics.json, or root/output/failure with the reason and a non-zero return.
    """
    root = Path(root)
    failure = root / "output" / FAILURE_NAME
    try:
        clear_previous_outputs(root / "model", root / "output")
        raw, channels = _read_config(root)
        run_training(
            raw, channels, root / "model", root / "output", seed=seed, progress=progress, report=report
        )
    except Exception as exc:
        text, code = failure_text(exc)
        if code == 1:
            log.error("training job failed with an internal error:\n%s", traceback.format_exc())
        else:
            log.error("training job failed: %s", text.strip())
        write_failure(failure, text)
        return code
    return 0
