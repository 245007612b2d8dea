"""The FM trainer: mini-batch Adam with lazy (row-sparse) updates, as SageMaker's MXNet-based FM trains.

Design choices (docs/training.md explains them):
- Loss: binary_classifier uses the logistic output (gradient sigmoid(y) - label), regressor the linear
  output (gradient y - label), as MXNet's LogisticRegressionOutput / LinearRegressionOutput do.
- Optimizer: MXNet's Adam (beta1 0.9, beta2 0.999, eps 1e-8 unless set) with per-group lr and wd for the
  bias (w0), the linear weights (w) and the factors (V). Per weight: g = rescale_grad * grad + wd * weight,
  clipped to [-clip_gradient, clip_gradient]; the step size carries Adam's bias correction.
- Lazy updates: for sparse input MXNet updates only the rows of w and V whose features occur in the batch
  (their weight decay and moments too). We do the same; it also makes an epoch O(nnz * k), not
  O(batches * D * k).
- rescale_grad defaults to 1/mini_batch_size (MXNet Module's default): a step follows the mean gradient.
- Rows are visited in a fresh random order every epoch, drawn from the seed; one seed gives one result.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from fmrec.errors import InputError
from fmrec.machine import usable_cores
from fmrec.model import fm, kernels
from fmrec.model.hyperparameters import HyperParameters, parse_hyperparameters
from fmrec.model.metrics import metrics_for, quality_metric_lines, sagemaker_metrics

log = logging.getLogger(__name__)

DEFAULT_EPS = 1e-8
# Worker threads never exceed this: a batch's two parallel passes sync twice per mini-batch, and past two
# threads the sync costs more than the rows it splits at FM's batch sizes.
MAX_THREADS = 2
THREADS_ENV = "FMREC_TRAIN_THREADS"

EpochCallback = Callable[[int, Mapping[str, Any]], None]
# Metrics of the current parameters that are not a function of the test rows (the local tuner's NDCG@10).
ParamsMetrics = Callable[[fm.FMParams], Mapping[str, float]]


def _fixed_threads(requested: int | None) -> bool:
    return requested is not None or bool(os.environ.get(THREADS_ENV, "").strip())


def training_threads(requested: int | None = None, own: int = 0) -> int:
    """Threads for the kernels: `requested`, else $FMREC_TRAIN_THREADS, else the free cores (up to
    MAX_THREADS). The result is the same for any count (kernels.py), so this only decides speed: on a machine
    whose load already fills its cores, a second thread waits for a core at every mini-batch's sync and the
    run gets slower, so a busy machine gets one thread. `own`: the threads this run is already running,
    which the load average counts too (train asks again before every epoch)."""
    if requested is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise InputError(f"{THREADS_ENV}={raw!r}: expected a positive whole number of threads")
            requested = int(raw)
    cores = usable_cores()
    limit = min(cores, int(getattr(numba.config, "NUMBA_NUM_THREADS", cores)))  # the pool numba started
    if requested is not None:
        return max(1, min(requested, limit))
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] - own >= cores
    return 1 if busy else max(1, min(MAX_THREADS, limit))


def _init(rng: np.random.Generator, hp: HyperParameters, group: str, shape: tuple[int, ...]) -> np.ndarray:
    method = getattr(hp, f"{group}_init_method")
    if method == "normal":
        out = rng.normal(0.0, getattr(hp, f"{group}_init_sigma"), size=shape)
    elif method == "uniform":
        scale = getattr(hp, f"{group}_init_scale")
        out = rng.uniform(-scale, scale, size=shape)
    else:
        out = np.full(shape, getattr(hp, f"{group}_init_value"))
    return np.ascontiguousarray(out, dtype=np.float32)


def init_params(hp: HyperParameters, seed: int = 0) -> fm.FMParams:
    """Initial w0, w and V from the *_init_* hyperparameters, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    w0 = float(_init(rng, hp, "bias", (1,))[0])
    w = _init(rng, hp, "linear", (hp.feature_dim,))
    V = _init(rng, hp, "factors", (hp.feature_dim, hp.num_factors))
    return fm.FMParams(w0, w, V)


def check_channel(X: Any, y: Any, hp: HyperParameters, channel: str) -> tuple[sp.csr_matrix, np.ndarray]:
    """Validate one channel against the hyperparameters; returns float32 CSR (n, feature_dim) and labels."""
    if not sp.issparse(X):
        raise InputError(f"{channel}: expected a sparse matrix of features")
    X = X.tocsr() if X.format != "csr" else X
    if y is None:
        raise InputError(f"{channel}: the records carry no label; FM training needs a label per record")
    labels = np.asarray(y, dtype=np.float32).ravel()
    if X.shape[0] == 0:
        raise InputError(
            f"{channel}: no records; the {channel} channel must hold at least one labelled record"
        )
    if labels.size != X.shape[0]:
        raise InputError(f"{channel}: {X.shape[0]} feature rows but {labels.size} labels")
    if X.nnz and int(X.indices.max()) >= hp.feature_dim:
        row = int(np.searchsorted(X.indptr, int(np.argmax(X.indices >= hp.feature_dim)), side="right") - 1)
        raise InputError(
            f"{channel}: record {row} has feature key {int(X.indices[X.indptr[row] :].max())} >= feature_dim "
            f"{hp.feature_dim}; keys must be in [0, {hp.feature_dim})"
        )
    if X.nnz and not np.all(np.isfinite(X.data)):
        row = int(np.searchsorted(X.indptr, int(np.argmax(~np.isfinite(X.data))), side="right") - 1)
        raise InputError(f"{channel}: record {row} has a feature value that is not a finite number")
    bad = ~np.isfinite(labels)
    if hp.predictor_type == fm.BINARY_CLASSIFIER:
        bad |= (labels != 0) & (labels != 1)
    if bad.any():
        row = int(np.argmax(bad))
        want = (
            "0 or 1 (binary_classifier)" if hp.predictor_type == fm.BINARY_CLASSIFIER else "a finite number"
        )
        raise InputError(f"{channel}: record {row} has label {float(labels[row])!r}; expected {want}")
    if X.shape[1] != hp.feature_dim:
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], hp.feature_dim))
    X = sp.csr_matrix((X.data.astype(np.float32, copy=False), X.indices, X.indptr), shape=X.shape, copy=False)
    return X, labels


def _params(wt: kernels.Weights) -> fm.FMParams:
    return fm.FMParams(float(wt.scalars[0]), wt.w.copy(), wt.V.copy())


def _epoch_metrics(hp: HyperParameters, loss: float, correct: int, n: int) -> dict[str, float]:
    if hp.predictor_type == fm.BINARY_CLASSIFIER:
        return {"accuracy": correct / n, "cross_entropy": loss / n}
    return {"rmse": math.sqrt(loss / n)}


def train(
    X: Any,
    y: Any,
    hp: HyperParameters | Mapping[str, object],
    test: tuple[Any, Any] | None = None,
    on_epoch: EpochCallback | None = None,
    *,
    params_metrics: ParamsMetrics | None = None,
    seed: int = 0,
    progress: bool = False,
    log_metrics: bool = False,
    threads: int | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    test_each_epoch: bool = True,
) -> tuple[fm.FMParams, list[dict[str, Any]]]:
    """Train an FM on CSR features X and labels y; returns (params, per-epoch history).

    After each epoch, `on_epoch(epoch, metrics)` receives the test metrics (short names such as "accuracy"
    and SageMaker names such as "test:binary_classification_accuracy") when `test` is given, otherwise the
    training metrics under "train:..." names; an exception it raises stops training and propagates.
    `params_metrics(params)`, when given, is called after every epoch too: its metrics join the callback's
    and the epoch's history record (under "params_metrics"). `on_record(record)` gets each epoch's history
    record as it is made (progress lines). `threads`: see training_threads (the result does not depend on
    it). `test_each_epoch=False` scores the test rows after the last epoch only, as SageMaker's FM scores
    its test channel once (the training-job twin); the weights are the same either way.
    """
    if not isinstance(hp, HyperParameters):
        hp = parse_hyperparameters(hp)
    Xtr, ytr = check_channel(X, y, hp, "train")
    test_set = None if test is None else check_channel(test[0], test[1], hp, "test")
    init = init_params(hp, seed)
    D, k = hp.feature_dim, hp.num_factors
    wt = kernels.Weights(
        w=init.w.copy(),
        V=np.ascontiguousarray(init.V.copy()),
        m_w=np.zeros(D, np.float32),
        v_w=np.zeros(D, np.float32),
        m_V=np.zeros((D, k), np.float32),
        v_V=np.zeros((D, k), np.float32),
        scalars=np.array([init.w0, 0.0, 0.0, 0.0], dtype=np.float64),
    )
    parts = training_threads(threads)
    # the most threads a later epoch may take (train asks again before each): the scratch has a slot for each
    top = parts if _fixed_threads(threads) else max(parts, training_threads(MAX_THREADS))
    batch = min(hp.mini_batch_size, Xtr.shape[0])
    # a batch holds at most `batch` of the widest rows, and never more than the channel's entries
    occurrences = min(batch * int(np.diff(Xtr.indptr).max()), Xtr.nnz)
    sc = kernels.new_scratch(D, k, batch, occurrences, top)._replace(parts=parts)
    opt = kernels.Optim(
        lr=np.array([hp.bias_lr, hp.linear_lr, hp.factors_lr], np.float32),
        wd=np.array([hp.bias_wd, hp.linear_wd, hp.factors_wd], np.float32),
        clip=-1.0 if hp.clip_gradient is None else float(hp.clip_gradient),
        eps=DEFAULT_EPS if hp.eps is None else float(hp.eps),
        rescale=1.0 / hp.mini_batch_size if hp.rescale_grad is None else float(hp.rescale_grad),
    )
    binary = hp.predictor_type == fm.BINARY_CLASSIFIER
    indptr = Xtr.indptr.astype(np.int64, copy=False)
    rng = np.random.default_rng([seed, 1])  # a stream apart from the initialisation's
    order = np.arange(Xtr.shape[0], dtype=np.int64 if Xtr.shape[0] >= 2**31 else np.int32)
    history: list[dict[str, Any]] = []
    epochs: Any = range(hp.epochs)
    if progress:
        epochs = tqdm(epochs, desc="training", unit="epoch", leave=False)
    n = Xtr.shape[0]
    log.info("training %d rows x %d epochs on %d thread(s)", n, hp.epochs, parts)
    threads_before = numba.get_num_threads()
    numba.set_num_threads(parts)
    try:
        for epoch in epochs:
            if epoch and not _fixed_threads(threads):
                # The load can rise mid-run (other jobs start): two threads waiting for one core took an
                # epoch from 3 s to 12-33 s. The scratch keeps its slots; the weights do not depend on it.
                now = min(training_threads(None, own=numba.get_num_threads()), top)
                if now != numba.get_num_threads():
                    log.info("epoch %d on %d thread(s): the load average changed", epoch, now)
                    numba.set_num_threads(now)
                    sc = sc._replace(parts=now)  # the forward pass's row blocks: one per thread
            t0 = time.perf_counter()
            rng.shuffle(order)
            loss, correct = kernels.run_epoch(
                indptr, Xtr.indices, Xtr.data, ytr, order, hp.mini_batch_size, binary, wt, sc, opt
            )
            seconds = time.perf_counter() - t0
            if not (math.isfinite(loss) and math.isfinite(float(wt.scalars[0]))):
                raise InputError(
                    f"training diverged in epoch {epoch} (loss {loss}); "
                    "lower the learning rates or set clip_gradient"
                )
            record: dict[str, Any] = {
                "epoch": epoch,
                "seconds": seconds,
                "samples_per_second": n / seconds if seconds > 0 else None,
                "train": _epoch_metrics(hp, float(loss), int(correct), n),
            }
            scored = test_set if test_each_epoch or epoch == hp.epochs - 1 else None
            callback_metrics = _evaluate(record, hp, wt, scored, params_metrics, log_metrics)
            history.append(record)
            if on_record is not None:
                on_record(record)
            if progress and hasattr(epochs, "set_postfix"):
                shown = record.get("test", record["train"])
                epochs.set_postfix({name: f"{v:.4f}" for name, v in shown.items()})
            if on_epoch is not None:
                on_epoch(epoch, callback_metrics)
    finally:
        numba.set_num_threads(threads_before)
    return _params(wt), history


def _evaluate(
    record: dict[str, Any],
    hp: HyperParameters,
    wt: kernels.Weights,
    test: tuple[sp.csr_matrix, np.ndarray] | None,
    params_metrics: ParamsMetrics | None,
    log_metrics: bool,
) -> dict[str, Any]:
    """After an epoch: log its train metrics, add the test (and params) metrics to its record; returns the
    epoch callback's metrics."""
    epoch = record["epoch"]
    if log_metrics:
        for line in quality_metric_lines(record["train"], "train", epoch=epoch):
            log.info(line)
    callback_metrics: dict[str, Any]
    if test is not None:
        scores = fm.predict(_params(wt), test[0], hp.predictor_type)
        record["test"] = metrics_for(hp.predictor_type, test[1], scores)
        callback_metrics = {**record["test"], **sagemaker_metrics(record["test"])}
        if log_metrics:
            for line in quality_metric_lines(record["test"], "test"):
                log.info(line)
    else:
        callback_metrics = {f"train:{name}": v for name, v in record["train"].items()}
    if params_metrics is not None:
        extra = {name: float(v) for name, v in params_metrics(_params(wt)).items()}
        record["params_metrics"] = extra
        callback_metrics = {**callback_metrics, **extra}
    return callback_metrics
