"""The trainer: gradients against finite differences, the Adam step, learning, determinism, bad input."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from fmrec.errors import InputError
from fmrec.model import fm, kernels, trainer
from fmrec.model.hyperparameters import parse_hyperparameters
from fmrec.model.kernels import BETA1, BETA2
from fmrec.model.metrics import binary_metrics
from fmrec.model.trainer import init_params, train, training_threads
from tests.support.planted import planted

D = 100


def _hp(**extra: str) -> dict[str, str]:
    return {"feature_dim": str(D), "num_factors": "4", "predictor_type": "binary_classifier", **extra}


def _loss(params: fm.FMParams, X: sp.csr_matrix, y: np.ndarray, binary: bool) -> float:
    s = fm.raw_scores(params, X)
    if binary:
        p = fm.sigmoid(s)
        return float(-np.sum(y * np.log(p) + (1 - y) * np.log1p(-p)))
    return float(0.5 * np.sum((s - y) ** 2))  # gradient s - y, as MXNet's LinearRegressionOutput


@pytest.mark.parametrize("binary", [True, False])
def test_gradient_matches_finite_differences(binary: bool) -> None:
    rng = np.random.default_rng(7)
    d, k, n = 9, 3, 6
    X = sp.random(n, d, density=0.4, random_state=3, format="csr", dtype=np.float32)
    X.data = rng.normal(size=X.nnz).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32) if binary else rng.normal(size=n).astype(np.float32)
    w0 = 0.3
    w = rng.normal(0, 0.5, d).astype(np.float32)
    V = rng.normal(0, 0.5, (d, k)).astype(np.float32)
    grad_w, grad_V, g0 = _batch_gradient(X, y, binary, w0, w, V)
    base = fm.FMParams(w0, w.astype(np.float64), V.astype(np.float64))
    h = 1e-5

    def num(fn: Any) -> float:
        return (_loss(fn(h), X, y, binary) - _loss(fn(-h), X, y, binary)) / (2 * h)

    assert math.isclose(g0, num(lambda e: fm.FMParams(w0 + e, base.w, base.V)), rel_tol=1e-4, abs_tol=1e-4)
    for j in range(d):
        ej = np.eye(d)[j]
        assert math.isclose(
            grad_w[j], num(lambda e, ej=ej: fm.FMParams(w0, base.w + e * ej, base.V)), abs_tol=2e-4
        )
        for f in range(k):
            E = np.zeros((d, k))
            E[j, f] = 1
            expected = num(lambda e, E=E: fm.FMParams(w0, base.w, base.V + e * E))
            assert math.isclose(grad_V[j, f], expected, abs_tol=2e-4), (j, f)


class Indexed(NamedTuple):
    """The whole of X as one indexed batch (slot 0 of the scratch)."""

    sc: kernels.Scratch
    nt: int
    order: np.ndarray
    seen: np.ndarray
    touched: np.ndarray
    qstart: np.ndarray
    occ_row: np.ndarray
    occ_x: np.ndarray


def _index(X: sp.csr_matrix, k: int, threads: int = 1) -> Indexed:
    n = X.shape[0]
    sc = kernels.new_scratch(X.shape[1], k, n, X.nnz, threads)
    order = np.arange(n, dtype=np.int32)
    slot = (sc.seen[0], sc.touched[0], sc.qstart[0], sc.occ_row[0], sc.occ_x[0])
    nt = kernels.index_batch(X.indptr.astype(np.int64), X.indices, X.data, order, 0, n, *slot)
    return Indexed(sc, nt, order, *slot)


def _batch_gradient(
    X: sp.csr_matrix, y: np.ndarray, binary: bool, w0: float, w: np.ndarray, V: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """The kernels' summed loss gradient of one batch (all of X): (d/dw, d/dV, d/dw0)."""
    d, k = V.shape
    ix = _index(X, k)
    sc, nt = ix.sc, ix.nt
    assert sorted(ix.touched[:nt].tolist()) == sorted(set(X.indices.tolist()))
    assert not ix.seen.any()  # left clean for the next batch
    kernels.forward(
        y, ix.order, 0, X.shape[0], binary, w0, w, V, nt, ix.touched, ix.qstart, ix.occ_row, ix.occ_x, sc
    )
    grad_w, grad_V = np.zeros(d), np.zeros((d, k))
    A = np.zeros(k, np.float32)
    for q in range(nt):
        j = ix.touched[q]
        gw, c = kernels.feature_gradient(q, ix.qstart, ix.occ_row, ix.occ_x, sc.g, sc.xv, A)
        grad_w[j], grad_V[j] = gw, A - c * V[j]
    return grad_w, grad_V, float(sc.g.astype(np.float64).sum())


def test_adam_step_is_mxnet_lazy_adam() -> None:
    d, k = 5, 2
    rng = np.random.default_rng(1)
    w = rng.normal(size=d).astype(np.float32)
    V = rng.normal(size=(d, k)).astype(np.float32)
    X = sp.csr_matrix(np.array([[0, 1.5, 0, -0.5, 0], [0, 0, 0, 2.0, 0]], np.float32))  # touches 1 and 3
    y = np.array([1.0, 0.0], np.float32)
    grad_w, grad_V, _ = _batch_gradient(X, y, True, 0.1, w, V)
    lr, wd = (0.01, 0.001), (0.02, 0.03)
    rescale, clip, eps = 0.5, 0.3, 1e-8
    w_before, V_before = w.copy(), V.copy()
    zeros_w, zeros_V = np.zeros(d, np.float32), np.zeros((d, k), np.float32)
    m_w, v_w, m_V, v_V = zeros_w.copy(), zeros_w.copy(), zeros_V.copy(), zeros_V.copy()
    ix = _index(X, k, threads=2)
    sc, nt = ix.sc, ix.nt
    kernels.forward(y, ix.order, 0, 2, True, 0.1, w, V, nt, ix.touched, ix.qstart, ix.occ_row, ix.occ_x, sc)
    corr = math.sqrt(1 - BETA2) / (1 - BETA1)  # the first step's bias correction, folded into lr
    f32 = np.float32
    kernels.step_features(
        nt, ix.touched, ix.qstart, ix.occ_row, ix.occ_x, sc.g, sc.xv, sc.acc, w, V, m_w, v_w, m_V, v_V,
        f32(lr[0] * corr), f32(lr[1] * corr), f32(wd[0]), f32(wd[1]), f32(clip), f32(eps), f32(rescale),
    )  # fmt: skip

    def ref(weight: np.ndarray, grad: np.ndarray, lr_: float, wd_: float) -> np.ndarray:
        g = np.clip(rescale * grad.astype(np.float64) + wd_ * weight, -clip, clip)
        m, v = (1 - BETA1) * g, (1 - BETA2) * g * g
        lr_t = lr_ * math.sqrt(1 - BETA2) / (1 - BETA1)
        return weight - lr_t * m / (np.sqrt(v) + eps)

    np.testing.assert_allclose(w[[1, 3]], ref(w_before[[1, 3]], grad_w[[1, 3]], 0.01, 0.02), rtol=1e-5)
    np.testing.assert_allclose(V[[1, 3]], ref(V_before[[1, 3]], grad_V[[1, 3]], 0.001, 0.03), rtol=1e-5)
    assert np.allclose(
        m_V[[1, 3]], (1 - BETA1) * np.clip(rescale * grad_V[[1, 3]] + 0.03 * V_before[[1, 3]], -clip, clip)
    )
    # lazy: rows not in the batch keep their weights and moments, even under weight decay
    np.testing.assert_array_equal(w[[0, 2, 4]], w_before[[0, 2, 4]])
    np.testing.assert_array_equal(V[[0, 2, 4]], V_before[[0, 2, 4]])
    assert not m_V[[0, 2, 4]].any() and not v_w[[0, 2, 4]].any()


def test_learns_the_planted_structure_and_beats_biases() -> None:
    X, y = planted(6000)
    Xt, yt = planted(2000, seed=1)
    hp = _hp(
        epochs="15", mini_batch_size="100", factors_lr="0.01", linear_lr="0.01", factors_init_sigma="0.1"
    )
    params, history = train(X, y, hp, test=(Xt, yt))
    assert len(history) == 15
    assert history[-1]["test"]["cross_entropy"] < history[0]["test"]["cross_entropy"]
    full = binary_metrics(yt, fm.predict(params, Xt, "binary_classifier"))
    assert full == pytest.approx(history[-1]["test"])
    biases_only = fm.FMParams(params.w0, params.w, np.zeros_like(params.V))
    bias = binary_metrics(yt, fm.predict(biases_only, Xt, "binary_classifier"))
    assert full["auc"] > bias["auc"] + 0.03


def test_regressor_reduces_rmse() -> None:
    X, y = planted(4000, regression=True)
    Xt, yt = planted(1000, seed=1, regression=True)
    hp = _hp(
        predictor_type="regressor", epochs="10", mini_batch_size="100", linear_lr="0.01", factors_lr="0.01"
    )
    _, history = train(X, y, hp, test=(Xt, yt))
    assert history[-1]["test"]["rmse"] < 0.8 * float(np.std(yt))
    assert set(history[-1]["train"]) == {"rmse"}


def test_deterministic_for_a_seed() -> None:
    X, y = planted(1500)
    hp = _hp(epochs="3", mini_batch_size="64", clip_gradient="0.5", factors_init_method="uniform",
             factors_init_scale="0.05")  # fmt: skip
    a, ha = train(X, y, hp, seed=3)
    b, hb = train(X, y, hp, seed=3)
    c, _ = train(X, y, hp, seed=4)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.w0 == b.w0 and [h["train"] for h in ha] == [h["train"] for h in hb]
    assert not np.array_equal(a.V, c.V)


def test_init_methods() -> None:
    raw = _hp(bias_init_method="constant", bias_init_value="0.25", linear_init_method="uniform")
    hp = parse_hyperparameters({**raw, "linear_init_scale": "0.5", "factors_init_sigma": "0.2"})
    p = init_params(hp, seed=0)
    assert p.w0 == 0.25
    assert p.w.min() >= -0.5 and p.w.max() <= 0.5 and p.w.std() > 0.2
    assert abs(p.V.std() - 0.2) < 0.02 and p.V.dtype == np.float32


def test_on_epoch_gets_metrics_and_can_stop() -> None:
    X, y = planted(500)
    seen: list[Mapping[str, Any]] = []

    class Stop(Exception):
        pass

    def cb(epoch: int, metrics: Mapping[str, Any]) -> None:
        seen.append(metrics)
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(X, y, _hp(epochs="5"), test=(X, y), on_epoch=cb)
    assert len(seen) == 2
    assert {"accuracy", "cross_entropy", "f1", "auc", "test:binary_classification_accuracy"} <= set(seen[0])
    seen.clear()
    train(X, y, _hp(epochs="1"), on_epoch=lambda e, m: seen.append(m))
    assert set(seen[0]) == {"train:accuracy", "train:cross_entropy"}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda X, y: (X, np.where(y == 1, 2.0, y)), r"train: record \d+ has label 2\.0; expected 0 or 1"),
        (lambda X, y: (X, None), "carry no label"),
        (lambda X, y: (X[:0], y[:0]), "train: no records"),
        (lambda X, y: (X, y[:-1]), "labels"),
        (
            lambda X, y: (
                sp.csr_matrix((X.data, X.indices + (X.indices == 99) * 5, X.indptr), shape=(X.shape[0], 105)),
                y,
            ),
            r"feature key 104 >= feature_dim 100",
        ),
    ],
)
def test_bad_train_input(mutate: Any, message: str) -> None:
    X, y = planted(300)
    X = X.tolil()
    X[5, 99] = 1.0
    X = X.tocsr()
    Xb, yb = mutate(X, y)
    with pytest.raises(InputError, match=message):
        train(Xb, yb, _hp())


def test_regressor_accepts_any_finite_label_but_not_nan() -> None:
    X, y = planted(200, regression=True)
    train(X, y * 10, _hp(predictor_type="regressor"))
    y[3] = np.nan
    with pytest.raises(InputError, match="record 3 has label nan; expected a finite number"):
        train(X, y, _hp(predictor_type="regressor"))


def test_bias_follows_mxnet_adam_in_an_epoch() -> None:
    # one batch, factors and linear weights frozen (lr 0): w0's step is Adam's on the mean of the batch's g
    X, y = planted(64)
    hp = _hp(epochs="1", mini_batch_size="64", bias_lr="0.1", linear_lr="0", factors_lr="0", bias_wd="0.01",
             bias_init_method="constant", bias_init_value="0.5", clip_gradient="0.3")  # fmt: skip
    init = init_params(parse_hyperparameters(hp))
    p0 = fm.predict(init, X, "binary_classifier")
    params, _ = train(X, y, hp, threads=1)
    g = np.clip(float(np.mean(p0 - y)) + 0.01 * 0.5, -0.3, 0.3)
    lr_t = 0.1 * math.sqrt(1 - BETA2) / (1 - BETA1)
    expected = 0.5 - lr_t * ((1 - BETA1) * g) / (math.sqrt((1 - BETA2) * g * g) + 1e-8)
    assert params.w0 == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("rows", [3000, 3020])
def test_same_result_on_one_or_two_threads(rows: int) -> None:
    # the parallel passes never change the order a weight's gradient is summed in, and two threads index two
    # batches at once (3020 rows: an odd number of batches, the last one short): bit-identical results
    X, y = planted(rows)
    hp = _hp(epochs="3", mini_batch_size="50", factors_lr="0.01", linear_lr="0.01")
    a, ha = train(X, y, hp, threads=1)
    b, hb = train(X, y, hp, threads=2)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.w0 == b.w0 and [h["train"] for h in ha] == [h["train"] for h in hb]


def test_threads_follow_the_load_between_epochs(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no thread count asked for, each epoch after the first asks the load again, counting its own
    threads in it: two threads on an idle machine, one once other jobs fill the cores, two again when they
    end; the weights are those of a one-thread run."""
    if int(getattr(numba.config, "NUMBA_NUM_THREADS", 1)) < 2 or trainer.usable_cores() < 2:
        pytest.skip("needs two cores")
    monkeypatch.delenv("FMREC_TRAIN_THREADS", raising=False)
    others = iter([0.0, 0.0, 2.5, 2.5, 0.0])  # other jobs' load at each decision (epoch 0 first)
    seen: list[int] = []
    monkeypatch.setattr(
        trainer.os, "getloadavg", lambda: (next(others) + numba.get_num_threads() * (bool(seen)),) * 3
    )
    X, y = planted(3000)
    hp = _hp(epochs="5", mini_batch_size="50", factors_lr="0.01", linear_lr="0.01")
    got, _ = train(X, y, hp, on_epoch=lambda e, m: seen.append(numba.get_num_threads()))
    assert seen == [2, 2, 1, 1, 2]
    ref, _ = train(X, y, hp, threads=1)
    np.testing.assert_array_equal(got.V, ref.V)
    assert got.w0 == ref.w0


def test_thread_count_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FMREC_TRAIN_THREADS", "1")
    assert training_threads() == 1
    assert 1 <= training_threads(64) <= 64
    monkeypatch.setenv("FMREC_TRAIN_THREADS", "two")
    with pytest.raises(InputError, match=r"FMREC_TRAIN_THREADS='two': expected a positive whole number"):
        training_threads()
