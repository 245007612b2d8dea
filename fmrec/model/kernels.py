"""The trainer's numba kernels: one mini-batch's forward pass, gradient and lazy Adam step, in float32.

A batch is first indexed by feature (a CSC of its rows: for each feature it touches, the rows and values in
row order); with T threads, T batches are indexed at once, one per thread (the index depends on the visiting
order alone), and the rows' entries are prefetched AHEAD rows ahead. Both passes then walk features, not rows,
so each factor row V_j is read once per batch and kept in registers while its occurrences are visited; the
batch's per-row sums (xv, 128 KB at batch 500, k 64) stay in cache. Row-wise, V_j would be fetched once per
occurrence, and V (4.7 MB for a 9k-movie catalogue with history columns) does not fit a core's cache: that
fetch was most of an epoch.
- forward, rows in blocks per thread: per row, w.x, sum_j V_j x_j and sum_j |V_j|^2 x_j^2; then score, loss
  gradient g, loss;
- backward + Adam, features in parallel: feature j's gradient is sum_i g_i x_ij (xv_i - V_j x_ij), summed
  in row order whatever the thread count; then MXNet's adam_update on w_j and V_j (lazy: only touched rows).
Every weight is written by one thread, so a run gives the same bits on 1 or 8 threads. Arithmetic is float32
like MXNet's (its weights, moments and gradients are float32 too), which also lets LLVM vectorize the k-loops.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

BETA1 = 0.9
BETA2 = 0.999
PROB_EPS = 1e-12
# Rows whose entries index_batch asks the memory for ahead of use: a batch's rows are random rows of a
# channel far larger than the caches, and waiting for each row's first bytes was half the indexing time.
AHEAD = 8

# Reassociation lets LLVM vectorize the k-loops' reductions; inf/nan semantics stay (no nnan/ninf), so a
# diverging run is still detected. Results stay bit-identical run to run.
FAST = {"reassoc", "contract", "nsz", "arcp"}

F32 = np.float32


@intrinsic
def _prefetch(typingctx, arr, idx):  # pragma: no cover - compiled
    """A hint to bring arr[idx] into the caches (LLVM's prefetch: read, high locality); it never faults, so
    an index past the end costs nothing."""

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        builder.call(fn, [builder.bitcast(builder.gep(ary.data, [args[1]]), i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, types.intp), codegen


prefetch: Any = _prefetch  # called from compiled code as prefetch(arr, idx)


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
    """Per-batch work arrays, allocated once per training run. The index arrays have one slot per thread:
    the threads index that many batches at once (each its own), then the batches train one after another."""

    seen: np.ndarray  # (slots, D) int64: occurrences of feature j in the batch; zero between batches
    touched: np.ndarray  # (slots, D) int32: the batch's features, in first-seen order
    qstart: np.ndarray  # (slots, D + 1) int64: touched[q]'s occurrences are occ_*[qstart[q] : qstart[q + 1]]
    occ_row: np.ndarray  # (slots, occurrences) int32: the batch row of each occurrence
    occ_x: np.ndarray  # (slots, occurrences) float32: its value
    nts: np.ndarray  # (slots,) int64: how many features each slot's batch touches
    xv: np.ndarray  # (batch, k) float32: sum_j V_j x_j of each row of the batch
    lin: np.ndarray  # (batch,) float32: w.x
    sq: np.ndarray  # (batch,) float32: sum_j |V_j|^2 x_j^2
    g: np.ndarray  # (batch,) float32: d loss / d score of each row
    loss: np.ndarray  # (batch,) float64
    correct: np.ndarray  # (batch,) uint8
    acc: np.ndarray  # (threads, k) float32: a thread's gradient accumulator
    parts: int  # row blocks of the forward pass (the thread count; the result does not depend on it)


class Optim(NamedTuple):
    """Adam's settings: lr and wd per group (bias, linear, factors); clip < 0 means none."""

    lr: np.ndarray  # float32 (3,)
    wd: np.ndarray  # float32 (3,)
    clip: float
    eps: float
    rescale: float


def new_scratch(D: int, k: int, batch: int, occurrences: int, threads: int) -> Scratch:
    """Work arrays for batches of up to `batch` rows holding up to `occurrences` entries."""
    occurrences = max(occurrences, 1)
    slots = max(threads, 1)
    return Scratch(
        seen=np.zeros((slots, D), np.int64),
        touched=np.zeros((slots, D), np.int32),
        qstart=np.zeros((slots, D + 1), np.int64),
        occ_row=np.zeros((slots, occurrences), np.int32),
        occ_x=np.zeros((slots, occurrences), F32),
        nts=np.zeros(slots, np.int64),
        xv=np.zeros((batch, k), F32),
        lin=np.zeros(batch, F32),
        sq=np.zeros(batch, F32),
        g=np.zeros(batch, F32),
        loss=np.zeros(batch, np.float64),
        correct=np.zeros(batch, np.uint8),
        # indexed by numba's thread id, which can reach the pool's size
        acc=np.zeros((max(threads, int(getattr(numba.config, "NUMBA_NUM_THREADS", 1))), k), F32),
        parts=max(threads, 1),
    )


@numba.njit(cache=True, nogil=True)
def index_batch(indptr, indices, data, order, start, stop, count, touched, qstart, occ_row, occ_x):
    """The batch rows order[start:stop] by feature; returns how many features they touch."""
    nt = 0
    nb = stop - start
    for i in range(min(AHEAD, nb)):
        prefetch(indices, indptr[order[start + i]])
        prefetch(data, indptr[order[start + i]])
    for i in range(nb):
        if i + AHEAD < nb:  # the entries of the row AHEAD rows on, a cache line (16 of each) at a time
            ahead = order[start + i + AHEAD]
            for p in range(indptr[ahead], indptr[ahead + 1], 16):
                prefetch(indices, p)
                prefetch(data, p)
        r = order[start + i]
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            if count[j] == 0:
                touched[nt] = j
                nt += 1
            count[j] += 1
    qstart[0] = 0
    for q in range(nt):
        j = touched[q]
        qstart[q + 1] = qstart[q] + count[j]
        count[j] = qstart[q]  # now the fill cursor
    for i in range(stop - start):
        r = order[start + i]
        for p in range(indptr[r], indptr[r + 1]):
            j = indices[p]
            c = count[j]
            occ_row[c] = i
            occ_x[c] = data[p]
            count[j] = c + 1
    for q in range(nt):
        count[touched[q]] = 0
    return nt


@numba.njit(cache=True, nogil=True, parallel=True)
def index_chunk(
    indptr, indices, data, order, start, batch_size, nbat, seen, touched, qstart, occ_row, occ_x, nts
):
    """Index the nbat batches from order[start] on, batch s into slot s, the slots in parallel. (Plain arrays:
    see step_features.)"""
    n = order.shape[0]
    for s in numba.prange(nbat):
        b0 = start + s * batch_size
        nts[s] = index_batch(
            indptr, indices, data, order, b0, min(b0 + batch_size, n), seen[s], touched[s], qstart[s],
            occ_row[s], occ_x[s],
        )  # fmt: skip


@numba.njit(cache=True, nogil=True, fastmath=FAST, parallel=True)
def forward(y, order, start, stop, binary, w0, w, V, nt, touched, qstart, occ_row, occ_x, sc):
    """Scores of the indexed batch under the current weights: each row's xv, g, loss and correctness. The
    rows split into one block per thread; a row's sums run over the features in the same order either way."""
    nb = stop - start
    parts = min(sc.parts, nb)
    xv, lin, sq, g, loss, correct = sc.xv, sc.lin, sc.sq, sc.g, sc.loss, sc.correct
    for t in numba.prange(parts):
        forward_rows(
            t * nb // parts, (t + 1) * nb // parts, y, order, start, binary, w0, w, V, nt, touched, qstart,
            occ_row, occ_x, xv, lin, sq, g, loss, correct,
        )  # fmt: skip


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def forward_rows(
    r0, r1, y, order, start, binary, w0, w, V, nt, touched, qstart, occ_row, occ_x, xv, lin, sq, gb, lossb,
    correctb,
):  # fmt: skip
    """forward for the batch rows r0..r1 (a feature's occurrences are in row order: two binary searches)."""
    k = V.shape[1]
    for i in range(r0, r1):
        for f in range(k):
            xv[i, f] = F32(0.0)
        lin[i] = F32(0.0)
        sq[i] = F32(0.0)
    for q in range(nt):
        a, b = qstart[q], qstart[q + 1]
        rows = occ_row[a:b]
        lo = a + np.searchsorted(rows, r0)
        hi = a + np.searchsorted(rows, r1)
        if lo == hi:
            continue
        j = touched[q]
        Vj = V[j]
        wj = w[j]
        vv = F32(0.0)
        for f in range(k):
            vv += Vj[f] * Vj[f]
        for p in range(lo, hi):
            i = occ_row[p]
            x = occ_x[p]
            lin[i] += wj * x
            sq[i] += vv * x * x
            xi = xv[i]
            for f in range(k):
                xi[f] += Vj[f] * x
    for i in range(r0, r1):
        xi = xv[i]
        pair = F32(0.0)
        for f in range(k):
            pair += xi[f] * xi[f]
        score = w0 + float(lin[i]) + 0.5 * float(pair - sq[i])
        label = float(y[order[start + i]])
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


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def feature_gradient(q, qstart, occ_row, occ_x, g, xv, A):
    """Sums over touched feature q's occurrences, in row order: returns (d/dw_j, c) and fills A so that
    d/dV_j = A - c * V_j, i.e. sum_i g_i x_ij (xv_i - V_j x_ij)."""
    k = A.shape[0]
    for f in range(k):
        A[f] = F32(0.0)
    gw = F32(0.0)
    c = F32(0.0)
    for p in range(qstart[q], qstart[q + 1]):
        i = occ_row[p]
        x = occ_x[p]
        gx = g[i] * x
        gw += gx
        c += gx * x
        xi = xv[i]
        for f in range(k):
            A[f] += gx * xi[f]
    return gw, c


@numba.njit(cache=True, nogil=True, fastmath=FAST, inline="always")
def _adam(weight, grad, m, v, lr_t, wd, clip, eps):
    """MXNet's adam_update for one weight (grad already rescaled): g = grad + wd * weight, clipped; lr_t
    carries the bias correction."""
    g = grad + wd * weight
    if clip >= 0:
        g = min(max(g, -clip), clip)
    m = F32(BETA1) * m + F32(1 - BETA1) * g
    v = F32(BETA2) * v + F32(1 - BETA2) * g * g
    return weight - lr_t * m / (np.sqrt(v) + eps), m, v


@numba.njit(cache=True, nogil=True, fastmath=FAST, parallel=True)
def step_features(
    nt, touched, qstart, occ_row, occ_x, g, xv, acc, w, V, m_w, v_w, m_V, v_V, lr_l, lr_f, wd_l, wd_f, clip,
    eps, rescale,
):  # fmt: skip
    """Gradient and lazy Adam step of every touched feature row, features in parallel. (Plain arrays: numba
    0.68 drops writes made in a prange body to arrays that came in through a NamedTuple.)"""
    k = V.shape[1]
    for q in numba.prange(nt):
        j = touched[q]
        A = acc[numba.get_thread_id()]
        gw, c = feature_gradient(q, qstart, occ_row, occ_x, g, xv, A)
        w[j], m_w[j], v_w[j] = _adam(w[j], gw * rescale, m_w[j], v_w[j], lr_l, wd_l, clip, eps)
        Vj, Mj, Sj = V[j], m_V[j], v_V[j]
        for f in range(k):
            nw, nm, ns = _adam(Vj[f], (A[f] - c * Vj[f]) * rescale, Mj[f], Sj[f], lr_f, wd_f, clip, eps)
            Vj[f] = nw
            Mj[f] = nm
            Sj[f] = ns


@numba.njit(cache=True, nogil=True, fastmath=FAST)
def run_epoch(indptr, indices, data, y, order, batch_size, binary, wt, sc, opt):
    """One epoch in place; returns (sum of loss, number correct), each row scored before its batch's step."""
    n = order.shape[0]
    loss = 0.0
    correct = 0
    wd_l, wd_f = F32(opt.wd[1]), F32(opt.wd[2])
    clip, eps, rescale = F32(opt.clip), F32(opt.eps), F32(opt.rescale)
    st = wt.scalars
    slots = sc.nts.shape[0]
    for start in range(0, n, batch_size):
        s = (start // batch_size) % slots
        if s == 0:  # index the next `slots` batches at once, one per thread: they depend on `order` alone
            nbat = min(slots, (n - start + batch_size - 1) // batch_size)
            index_chunk(
                indptr, indices, data, order, start, batch_size, nbat, sc.seen, sc.touched, sc.qstart,
                sc.occ_row, sc.occ_x, sc.nts,
            )  # fmt: skip
        stop = min(start + batch_size, n)
        nt = sc.nts[s]
        touched, qstart, occ_row, occ_x = sc.touched[s], sc.qstart[s], sc.occ_row[s], sc.occ_x[s]
        forward(y, order, start, stop, binary, st[0], wt.w, wt.V, nt, touched, qstart, occ_row, occ_x, sc)
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
        step_features(
            nt, touched, qstart, occ_row, occ_x, sc.g, sc.xv, sc.acc, wt.w, wt.V, wt.m_w, wt.v_w, wt.m_V,
            wt.v_V, lr_l, lr_f, wd_l, wd_f, clip, eps, rescale,
        )  # fmt: skip
        g0 = grad_w0 * opt.rescale + opt.wd[0] * st[0]
        if opt.clip >= 0:
            g0 = min(max(g0, -opt.clip), opt.clip)
        st[1] = BETA1 * st[1] + (1.0 - BETA1) * g0
        st[2] = BETA2 * st[2] + (1.0 - BETA2) * g0 * g0
        st[0] -= opt.lr[0] * corr * st[1] / (math.sqrt(st[2]) + opt.eps)
    return loss, correct
