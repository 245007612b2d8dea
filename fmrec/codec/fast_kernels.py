"""Compiled byte loops for large recordIO blocks (a training channel): gather byte ranges, decode varints."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def gather(buf, starts, lens, total):  # pragma: no cover - compiled
    """The byte ranges buf[starts[i] : starts[i] + lens[i]], concatenated (total = lens.sum())."""
    out = np.empty(total, np.uint8)
    o = 0
    for i in range(starts.size):
        s = starts[i]
        for b in range(lens[i]):
            out[o + b] = buf[s + b]
        o += lens[i]
    return out


@numba.njit(cache=True, nogil=True)
def varints(arr):  # pragma: no cover - compiled
    """Packed base-128 varints as uint64; (values, n) with n = -1 when truncated, -2 when one is overlong."""
    out = np.empty(arr.size, np.uint64)
    n = 0
    value = np.uint64(0)
    shift = 0
    for i in range(arr.size):
        b = arr[i]
        if shift >= 70:
            return out, -2
        value |= np.uint64(b & 0x7F) << np.uint64(shift)
        if b < 0x80:
            out[n] = value
            n += 1
            value = np.uint64(0)
            shift = 0
        else:
            shift += 7
    if shift:
        return out, -1
    return out, n


@numba.njit(cache=True, nogil=True)
def terminators_per_range(raw, lens):  # pragma: no cover - compiled
    """Per consecutive range of `lens` bytes: how many bytes < 0x80 (the varints ending there)."""
    out = np.zeros(lens.size, np.int64)
    o = 0
    for i in range(lens.size):
        c = 0
        for b in range(o, o + lens[i]):
            c += raw[b] < 0x80
        out[i] = c
        o += lens[i]
    return out
