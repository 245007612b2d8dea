"""The trainer's numba kernels: one mini-batch's forward pass, gradient and lazy Adam step, in float32.

A batch runs in two parallel passes with no shared writes, so the result is the same on 1 or 8 threads:
- forward: rows in parallel; each row's score, loss gradient g and sum_j V_j x_j go to per-row buffers;
- backward + Adam: the feature rows split into parts by `owner[j]`; each part walks the whole batch in
  row order and accumulates only its own feature rows, then gives them their Adam step. A weight's gradient
  is thus summed in the same row order as a serial loop, and every weight is written by exactly one thread.
Arithmetic is float32 like MXNet's (its weights, moments and gradients are float32 too), which also lets
LLVM vectorize the k-loops.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

BETA1 = 0.9
BETA2 = 0.999
PROB_EPS = 1e-12

# Reassociation lets LLVM vectorize the k-loops' reductions; inf/nan semantics stay (no nnan/ninf), so a
# diverging run is still detected. Results stay bit-identical run to run.
FAST = {"reassoc", "contract", "nsz", "arcp"}

F32 = np.float32


class Weights(NamedTuple):
    """The trained arrays and Adam's moments (float32; w0 and its moments live in the float64 `scalars`)."""

    w: np.ndarray  # (D,)
    V: np.ndarray  # (D, k)
    m_w: np.ndarray
    v_w: np.ndarray
    m_V: np.ndarray
    v_V: np.ndarray
    scalars: np.ndarray  # [w0, m_w0, v_w0, t] float64


class Scratch(NamedTuple):
    """Per-batch work arrays, allocated once per training run."""

    grad_w: np.ndarray  # (D,) float32, zero between batches
    grad_V: np.ndarray  # (D, k) float32, zero between batches
    mark: np.ndarray  # (D,) uint8, zero between batches
    touched: np.ndarray  # (parts, D) int32: each part's feature rows seen in the batch
    owner: np.ndarray  # (D,) uint8: the part that owns feature row j
    xv: np.ndarray  # (batch, k) float32: sum_j V_j x_j of each row of the batch
    g: np.ndarray  # (batch,) float32: d loss / d score of each row
    loss: np.ndarray  # (batch,) float64
    correct: np.ndarray  # (batch,) uint8


class Optim(NamedTuple):
    """Adam's settings: lr and wd per group (bias, linear, factors); clip < 0 means none."""

    lr: np.ndarray  # float32 (3,)
    wd: np.ndarray  # float32 (3,)
    clip: float
    eps: float
    rescale: float


def new_scratch(D: int, k: int, batch: int, parts: int) -> Scratch:
    return Scratch(
        grad_w=np.zeros(D, F32),
        grad_V=np.zeros((D, k), F32),
        mark=np.zeros(D, np.uint8),
        touched=np.zeros((parts, D), np.int32),
        owner=(np.arange(D) % parts).astype(np.uint8),
        xv=np.zeros((batch, k), F32),
        g=np.zeros(batch, F32),
        loss=np.zeros(batch, np.float64),
        correct=np.zeros(batch, np.uint8),
    )


@numba.njit(cache=True, nogil=True, fastmath=FAST, parallel=True)
def forward(indptr, indices, data, y, order, start, stop, binary, w0, w, V, xvb, gb, lossb, correctb):
    """Scores of rows order[start:stop] under the current weights: their g, xv, loss and correctness.

    Plain arrays, not the NamedTuples: numba (0.68) drops writes made in a prange body to an array that came
    in through a heterogeneous NamedTuple argument."""
    k = V.shape[1]
    for i in numba.prange(stop - start):
        r = order[start + i]
        xv = xvb[i]
        for f in range(k):
            xv[f] = F32(0.0)
        lin = F32(0.0)
        sq = F32(0.0)
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            x = data[p]
            lin += w[j] * x
            Vj = V[j]
            for f in range(k):
                vx = Vj[f] * x
                xv[f] += vx
                sq += vx * vx
        pair = F32(0.0)
        for f in range(k):
            pair += xv[f] * xv[f]
        score = w0 + float(lin) + 0.5 * float(pair - sq)
        label = float(y[r])
        if binary:
            if score >= 0:
                prob = 1.0 / (1.0 + math.exp(-score))
            else:
                e = math.exp(score)
                prob = e / (1.0 + e)
            g = prob - label
            pc = min(max(prob, PROB_EPS), 1.0 - PROB_EPS)
            lossb[i] = -(label * math.log(pc) + (1.0 - label) * math.log(1.0 - pc))
            correctb[i] = 1 if (prob >= 0.5) == (label >= 0.5) else 0
        else:
            g = score - label
            lossb[i] = g * g
            correctb[i] = 0
        gb[i] = F32(g)


@numba.njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _adam(weight, grad, m, v, lr_t, wd, clip, eps):
    """MXNet's adam_update for one weight: g = grad + wd * weight (rescaled before), clipped, bias-corrected
    step size lr_t."""
    g = grad + wd * weight
    if clip >= 0:
        g = min(max(g, -clip), clip)
    m = BETA1 * m + (1 - BETA1) * g
    v = BETA2 * v + (1 - BETA2) * g * g
    return weight - lr_t * m / (math.sqrt(v) + eps), m, v


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def accumulate_part(t, indptr, indices, data, order, start, stop, V, sc):
    """Part t: sum the batch's loss gradient into grad_w / grad_V on the feature rows it owns, in row order;
    returns how many rows it touched (listed in sc.touched[t])."""
    grad_w, grad_V, mark, owner, touched = sc.grad_w, sc.grad_V, sc.mark, sc.owner, sc.touched[t]
    k = V.shape[1]
    n_touched = 0
    for i in range(stop - start):
        r = order[start + i]
        g = sc.g[i]
        xv = sc.xv[i]
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            if owner[j] != t:
                continue
            x = data[p]
            if mark[j] == 0:
                mark[j] = 1
                touched[n_touched] = j
                n_touched += 1
            gx = g * x
            grad_w[j] += gx
            Vj = V[j]
            Gj = grad_V[j]
            for f in range(k):
                Gj[f] += gx * (xv[f] - Vj[f] * x)
    return n_touched


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def adam_part(t, n_touched, wt, sc, lr_l, lr_f, wd_l, wd_f, clip, eps, rescale):
    """MXNet's adam_update on part t's touched rows of w and V (lazy: no other row moves, not even by weight
    decay); clears their gradients and marks. lr_l / lr_f carry Adam's bias correction."""
    w, V, grad_w, grad_V = wt.w, wt.V, sc.grad_w, sc.grad_V
    k = V.shape[1]
    touched = sc.touched[t]
    for q in range(n_touched):
        j = touched[q]
        sc.mark[j] = 0
        w[j], wt.m_w[j], wt.v_w[j] = _adam(
            w[j], grad_w[j] * rescale, wt.m_w[j], wt.v_w[j], lr_l, wd_l, clip, eps
        )
        grad_w[j] = 0
        Vj, Gj, Mj, Sj = V[j], grad_V[j], wt.m_V[j], wt.v_V[j]
        for f in range(k):
            g = Gj[f] * rescale + wd_f * Vj[f]
            if clip >= 0:
                g = min(max(g, -clip), clip)
            m = F32(BETA1) * Mj[f] + F32(1 - BETA1) * g
            s = F32(BETA2) * Sj[f] + F32(1 - BETA2) * g * g
            Mj[f] = m
            Sj[f] = s
            Vj[f] -= lr_f * m / (np.sqrt(s) + eps)
            Gj[f] = 0


@numba.njit(cache=True, nogil=True, fastmath=FAST, parallel=True)
def step_parts(indptr, indices, data, order, start, stop, wt, sc, lr_l, lr_f, wd_l, wd_f, clip, eps, rescale):
    """Gradient and lazy Adam step of every feature row the batch touches, the parts in parallel."""
    for t in numba.prange(sc.touched.shape[0]):
        n_touched = accumulate_part(t, indptr, indices, data, order, start, stop, wt.V, sc)
        adam_part(t, n_touched, wt, sc, lr_l, lr_f, wd_l, wd_f, clip, eps, rescale)


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def run_epoch(indptr, indices, data, y, order, batch_size, binary, wt, sc, opt):
    """One epoch in place; returns (sum of loss, number correct), each row scored before its batch's step."""
    n = order.shape[0]
    loss = 0.0
    correct = 0
    wd_l, wd_f = F32(opt.wd[1]), F32(opt.wd[2])
    clip, eps, rescale = F32(opt.clip), F32(opt.eps), F32(opt.rescale)
    st = wt.scalars
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        xv, gb, lb, cb = sc.xv, sc.g, sc.loss, sc.correct
        forward(indptr, indices, data, y, order, start, stop, binary, st[0], wt.w, wt.V, xv, gb, lb, cb)
        grad_w0 = 0.0
        for i in range(stop - start):
            grad_w0 += float(sc.g[i])
            loss += sc.loss[i]
            correct += sc.correct[i]
        # MXNet folds Adam's bias correction into the step size.
        t = st[3] + 1.0
        st[3] = t
        corr = math.sqrt(1.0 - BETA2**t) / (1.0 - BETA1**t)
        lr_l = F32(opt.lr[1] * corr)
        lr_f = F32(opt.lr[2] * corr)
        g0 = grad_w0 * opt.rescale + opt.wd[0] * st[0]
        if opt.clip >= 0:
            g0 = min(max(g0, -opt.clip), opt.clip)
        st[1] = BETA1 * st[1] + (1.0 - BETA1) * g0
        st[2] = BETA2 * st[2] + (1.0 - BETA2) * g0 * g0
        step_parts(
            indptr, indices, data, order, start, stop, wt, sc, lr_l, lr_f, wd_l, wd_f, clip, eps, rescale
        )
        st[0] -= opt.lr[0] * corr * st[1] / (math.sqrt(st[2]) + opt.eps)
    return loss, correct
