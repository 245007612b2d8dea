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
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from fmrec.errors import InputError
from fmrec.model import fm
from fmrec.model.hyperparameters import HyperParameters, parse_hyperparameters
from fmrec.model.metrics import metrics_for, quality_metric_lines, sagemaker_metrics

log = logging.getLogger(__name__)

BETA1 = 0.9
BETA2 = 0.999
DEFAULT_EPS = 1e-8
PROB_EPS = 1e-12

# Reassociation lets LLVM vectorize the k-loops' reductions; inf/nan semantics stay (no nnan/ninf), so a
# diverging run is still detected. Results stay bit-identical run to run.
_FAST = {"reassoc", "contract", "nsz", "arcp"}

EpochCallback = Callable[[int, Mapping[str, Any]], None]
# Metrics of the current parameters that are not a function of the test rows (the local tuner's NDCG@10).
ParamsMetrics = Callable[[fm.FMParams], Mapping[str, float]]


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _adam(weight: float, grad: float, m: float, v: float, lr_t: float, wd: float, clip: float, eps: float):
    g = grad + wd * weight
    if clip >= 0.0:
        g = min(max(g, -clip), clip)
    m = BETA1 * m + (1.0 - BETA1) * g
    v = BETA2 * v + (1.0 - BETA2) * g * g
    return weight - lr_t * m / (math.sqrt(v) + eps), m, v


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _accumulate_batch(
    indptr, indices, data, y, order, start, stop, binary, w0, w, V, grad_w, grad_V, mark, touched, xv
):
    """Sum the loss gradient of rows order[start:stop] into grad_w / grad_V and list the rows they touch.

    Returns (gradient of w0, number of touched rows, sum of loss, number correct), the loss and accuracy
    being those of the parameters before this batch's update.
    """
    k = V.shape[1]
    loss = 0.0
    correct = 0
    n_touched = 0
    grad_w0 = 0.0
    for pos in range(start, stop):
        r = order[pos]
        lo = indptr[r]
        hi = indptr[r + 1]
        for f in range(k):
            xv[f] = 0.0
        lin = 0.0
        sq = 0.0
        for p in range(lo, hi):
            j = indices[p]
            x = data[p]
            lin += w[j] * x
            for f in range(k):
                vx = V[j, f] * x
                xv[f] += vx
                sq += vx * vx
        pair = 0.0
        for f in range(k):
            pair += xv[f] * xv[f]
        score = w0 + lin + 0.5 * (pair - sq)
        label = y[r]
        if binary:
            if score >= 0:
                prob = 1.0 / (1.0 + math.exp(-score))
            else:
                e = math.exp(score)
                prob = e / (1.0 + e)
            g = prob - label
            pc = min(max(prob, PROB_EPS), 1.0 - PROB_EPS)
            loss -= label * math.log(pc) + (1.0 - label) * math.log(1.0 - pc)
            if (prob >= 0.5) == (label >= 0.5):
                correct += 1
        else:
            g = score - label
            loss += g * g
        grad_w0 += g
        for p in range(lo, hi):
            j = indices[p]
            x = data[p]
            if mark[j] == 0:
                mark[j] = 1
                touched[n_touched] = j
                n_touched += 1
            gx = g * x
            grad_w[j] += gx
            for f in range(k):
                grad_V[j, f] += gx * (xv[f] - V[j, f] * x)
    return grad_w0, n_touched, loss, correct


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _apply_adam(
    state,
    grad_w0,
    w,
    V,
    m_w,
    v_w,
    m_V,
    v_V,
    grad_w,
    grad_V,
    mark,
    touched,
    n_touched,
    lr,
    wd,
    clip,
    eps,
    rescale,
):
    """One Adam step: w0 always, w and V only on the touched rows (lazy); clears their gradients and marks."""
    t = state[3] + 1.0
    state[3] = t
    # MXNet folds Adam's bias correction into the step size.
    corr = math.sqrt(1.0 - BETA2**t) / (1.0 - BETA1**t)
    lr_l = lr[1] * corr
    lr_f = lr[2] * corr
    state[0], state[1], state[2] = _adam(
        state[0], grad_w0 * rescale, state[1], state[2], lr[0] * corr, wd[0], clip, eps
    )
    k = V.shape[1]
    for q in range(n_touched):
        j = touched[q]
        mark[j] = 0
        nw, nm, nv = _adam(w[j], grad_w[j] * rescale, m_w[j], v_w[j], lr_l, wd[1], clip, eps)
        w[j] = nw
        m_w[j] = nm
        v_w[j] = nv
        grad_w[j] = 0.0
        for f in range(k):
            nw, nm, nv = _adam(V[j, f], grad_V[j, f] * rescale, m_V[j, f], v_V[j, f], lr_f, wd[2], clip, eps)
            V[j, f] = nw
            m_V[j, f] = nm
            v_V[j, f] = nv
            grad_V[j, f] = 0.0


@numba.njit(cache=True, nogil=True, fastmath=_FAST)
def _run_epoch(
    indptr,
    indices,
    data,
    y,
    order,
    batch_size,
    binary,
    state,
    w,
    V,
    m_w,
    v_w,
    m_V,
    v_V,
    lr,
    wd,
    clip,
    eps,
    rescale,
    grad_w,
    grad_V,
    mark,
    touched,
    xv,
):
    """One epoch in place. state = [w0, m_w0, v_w0, t]; lr/wd = (bias, linear, factors).

    Returns (sum of loss, number correct) over the rows as predicted before each update.
    """
    n = order.shape[0]
    loss = 0.0
    correct = 0
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        grad_w0, n_touched, b_loss, b_correct = _accumulate_batch(
            indptr,
            indices,
            data,
            y,
            order,
            start,
            stop,
            binary,
            state[0],
            w,
            V,
            grad_w,
            grad_V,
            mark,
            touched,
            xv,
        )
        loss += b_loss
        correct += b_correct
        _apply_adam(
            state,
            grad_w0,
            w,
            V,
            m_w,
            v_w,
            m_V,
            v_V,
            grad_w,
            grad_V,
            mark,
            touched,
            n_touched,
            lr,
            wd,
            clip,
            eps,
            rescale,
        )
    return loss, correct


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


@dataclass
class _State:
    w: np.ndarray
    V: np.ndarray
    scalars: np.ndarray  # [w0, m_w0, v_w0, t]
    m_w: np.ndarray
    v_w: np.ndarray
    m_V: np.ndarray
    v_V: np.ndarray

    def params(self) -> fm.FMParams:
        return fm.FMParams(float(self.scalars[0]), self.w.copy(), self.V.copy())


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
) -> tuple[fm.FMParams, list[dict[str, Any]]]:
    """Train an FM on CSR features X and labels y; returns (params, per-epoch history).

    After each epoch, `on_epoch(epoch, metrics)` receives the test metrics (short names such as "accuracy"
    and SageMaker names such as "test:binary_classification_accuracy") when `test` is given, otherwise the
    training metrics under "train:..." names; an exception it raises stops training and propagates.
    `params_metrics(params)`, when given, is called after every epoch too: its metrics join the callback's
    and the epoch's history record (under "params_metrics").
    """
    if not isinstance(hp, HyperParameters):
        hp = parse_hyperparameters(hp)
    Xtr, ytr = check_channel(X, y, hp, "train")
    Xte: sp.csr_matrix | None = None
    yte: np.ndarray | None = None
    if test is not None:
        Xte, yte = check_channel(test[0], test[1], hp, "test")
    init = init_params(hp, seed)
    D, k = hp.feature_dim, hp.num_factors
    st = _State(
        w=init.w.copy(),
        V=np.ascontiguousarray(init.V.copy()),
        scalars=np.array([init.w0, 0.0, 0.0, 0.0], dtype=np.float64),
        m_w=np.zeros(D, np.float32),
        v_w=np.zeros(D, np.float32),
        m_V=np.zeros((D, k), np.float32),
        v_V=np.zeros((D, k), np.float32),
    )
    grad_w = np.zeros(D, np.float32)
    grad_V = np.zeros((D, k), np.float32)
    mark = np.zeros(D, np.uint8)
    touched = np.zeros(D, np.int32)
    xv = np.zeros(k, np.float32)
    lr = np.array([hp.bias_lr, hp.linear_lr, hp.factors_lr], np.float32)
    wd = np.array([hp.bias_wd, hp.linear_wd, hp.factors_wd], np.float32)
    clip = -1.0 if hp.clip_gradient is None else float(hp.clip_gradient)
    eps = DEFAULT_EPS if hp.eps is None else float(hp.eps)
    rescale = 1.0 / hp.mini_batch_size if hp.rescale_grad is None else float(hp.rescale_grad)
    binary = hp.predictor_type == fm.BINARY_CLASSIFIER
    indptr = Xtr.indptr.astype(np.int64, copy=False)
    rng = np.random.default_rng([seed, 1])  # a stream apart from the initialisation's
    order = np.arange(Xtr.shape[0], dtype=np.int64 if Xtr.shape[0] >= 2**31 else np.int32)
    history: list[dict[str, Any]] = []
    epochs: Any = range(hp.epochs)
    if progress:
        epochs = tqdm(epochs, desc="training", unit="epoch", leave=False)
    n = Xtr.shape[0]
    for epoch in epochs:
        t0 = time.perf_counter()
        rng.shuffle(order)
        loss, correct = _run_epoch(
            indptr,
            Xtr.indices,
            Xtr.data,
            ytr,
            order,
            hp.mini_batch_size,
            binary,
            st.scalars,
            st.w,
            st.V,
            st.m_w,
            st.v_w,
            st.m_V,
            st.v_V,
            lr,
            wd,
            clip,
            eps,
            rescale,
            grad_w,
            grad_V,
            mark,
            touched,
            xv,
        )
        seconds = time.perf_counter() - t0
        if not (math.isfinite(loss) and math.isfinite(float(st.scalars[0]))):
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
        if log_metrics:
            for line in quality_metric_lines(record["train"], "train", epoch=epoch):
                log.info(line)
        callback_metrics: dict[str, Any]
        if Xte is not None and yte is not None:
            scores = fm.predict(st.params(), Xte, hp.predictor_type)
            record["test"] = metrics_for(hp.predictor_type, yte, scores)
            callback_metrics = {**record["test"], **sagemaker_metrics(record["test"])}
            if log_metrics:
                for line in quality_metric_lines(record["test"], "test"):
                    log.info(line)
        else:
            callback_metrics = {f"train:{name}": v for name, v in record["train"].items()}
        if params_metrics is not None:
            extra = {name: float(v) for name, v in params_metrics(st.params()).items()}
            record["params_metrics"] = extra
            callback_metrics = {**callback_metrics, **extra}
        history.append(record)
        if progress and hasattr(epochs, "set_postfix"):
            shown = record.get("test", record["train"])
            epochs.set_postfix({name: f"{v:.4f}" for name, v in shown.items()})
        if on_epoch is not None:
            on_epoch(epoch, callback_metrics)
    return st.params(), history
