"""Vectorised parse of records in the writer's own layout; records it cannot vouch for are left to `parse`."""

from __future__ import annotations

import numpy as np

from fmrec.codec.parse import parse_record
from fmrec.codec.wire import (
    MAX_DIM,
    VALUES_KEY,
    compiled_kernels,
    decode_varints,
    record_template,
    varint_len,
)

# (counts, keys, values float32, shape dims, has_label, labels) of consecutive records
Decoded = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _gather(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.uint8)
    kernels = compiled_kernels() if total >= 1 << 16 else None
    if kernels is not None:
        return kernels.gather(buf, starts.astype(np.int64), lens.astype(np.int64), total)
    offs = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    return buf[offs + np.arange(total)]


def _varints_per_range(raw: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """How many varints end in each of the consecutive byte ranges of `raw` with these lengths."""
    kernels = compiled_kernels() if raw.size >= 1 << 16 else None
    if kernels is not None:
        return kernels.terminators_per_range(raw, lens.astype(np.int64))
    term = np.concatenate(([0], np.cumsum(raw < 0x80)))
    return np.diff(np.concatenate(([0], term[np.cumsum(lens)])))


def _varints_at(buf: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized varint decode at each position (buf padded with 10 zero bytes); length 0 means invalid."""
    window = buf[pos[:, None] + np.arange(10)]
    cont = window >= 0x80
    length = np.where(cont.all(axis=1), 0, np.argmin(cont, axis=1) + 1)
    k = np.arange(10)
    use = k[None, :] < length[:, None]
    value = (((window & 0x7F).astype(np.uint64) << (7 * k).astype(np.uint64)) * use).sum(
        axis=1, dtype=np.uint64
    )
    return value.astype(np.int64), length


def fast_parse(
    buf: np.ndarray, starts: np.ndarray, lens: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """Vectorized parse of records in the exact layout the writer produces (Float32 features with keys and
    shape, optional Float32 label). Returns (ok mask, arrays for the ok records) or None if none match."""
    n = starts.size
    ends = starts + lens
    ok = np.ones(n, dtype=bool)

    def expect(pos: np.ndarray, byte: int) -> None:
        ok[:] &= buf[pos] == byte

    p = starts.copy()
    expect(p, 0x0A)
    e_len, e_l = _varints_at(buf, p + 1)
    ok &= e_l > 0
    p = p + 1 + e_l
    f_end = p + e_len
    for j, byte in enumerate(VALUES_KEY + b"\x12"):
        expect(p + j, byte)
    p = p + 9
    v_len, v_l = _varints_at(buf, p)
    ok &= v_l > 0
    p = p + v_l
    expect(p, 0x12)
    t_len, t_l = _varints_at(buf, p + 1)
    ok &= t_l > 0
    p = p + 1 + t_l
    t_end = p + t_len
    ok &= (t_end == f_end) & (p + v_len - 1 - t_l == t_end) & (f_end <= ends)
    has_vals = ok & (buf[p] == 0x0A) & (p < t_end)
    vb, vb_l = _varints_at(buf, p + 1)
    vstart = np.where(has_vals, p + 1 + vb_l, p)
    vbytes = np.where(has_vals, vb, 0)
    ok &= ~has_vals | ((vb_l > 0) & (vbytes % 4 == 0))
    p = vstart + vbytes
    p = np.minimum(p, ends)
    has_keys = ok & (buf[p] == 0x12) & (p < t_end)
    kb, kb_l = _varints_at(buf, p + 1)
    kstart = np.where(has_keys, p + 1 + kb_l, p)
    kbytes = np.where(has_keys, kb, 0)
    ok &= has_vals == has_keys
    p = np.minimum(kstart + kbytes, ends)
    expect(p, 0x1A)
    s_len, s_l = _varints_at(buf, p + 1)
    shape, sh_l = _varints_at(buf, p + 1 + s_l)
    # shape >= 2**63 wraps negative in int64: such records go to the generic parser, which refuses them.
    ok &= (s_l == 1) & (sh_l == s_len) & (p + 1 + s_l + s_len == t_end) & (shape >= 0)
    p = np.minimum(t_end, ends)
    has_label = ok & (p < ends)
    label_tpl = b"\x12\x12" + VALUES_KEY + b"\x12\x08\x12\x06\x0a\x04"
    lp = np.where(has_label, p, 0)
    for j, byte in enumerate(label_tpl):
        ok &= ~has_label | (buf[np.minimum(lp + j, buf.size - 1)] == byte)
    ok &= ~has_label | (p + len(label_tpl) + 4 == ends)
    if not ok.any():
        return None
    idx = np.flatnonzero(ok)
    vals = _gather(buf, vstart[idx], vbytes[idx]).view("<f4")
    kraw = _gather(buf, kstart[idx], kbytes[idx])
    keys = decode_varints(kraw.tobytes()) if kraw.size else np.empty(0, dtype=np.uint64)
    counts = vbytes[idx] // 4
    # every key region must hold exactly as many varints as there are values
    nkeys = _varints_per_range(kraw, kbytes[idx])
    bad = nkeys != counts
    if kraw.size and kraw[-1] >= 0x80:
        bad[:] = True
    if bad.any():
        ok[idx[bad]] = False
        return _fast_parse_subset(buf, starts, lens, ok)
    lstart = p[idx] + len(label_tpl)
    labels = np.where(
        has_label[idx],
        _gather(buf, np.where(has_label[idx], lstart, 0), np.full(idx.size, 4)).view("<f4"),
        np.nan,
    ).astype(np.float32)
    return ok, {
        "values": vals,
        "keys": keys,
        "counts": counts,
        "shape": shape[idx],
        "has_label": has_label[idx],
        "labels": labels,
    }


def _fast_parse_subset(
    buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, ok: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    idx = np.flatnonzero(ok)
    if idx.size == 0:
        return None
    res = fast_parse(buf, starts[idx], lens[idx])
    if res is None:
        return None
    sub_ok, arrays = res
    full = np.zeros(ok.size, dtype=bool)
    full[idx[sub_ok]] = True
    return full, arrays


def decode_run(buf: np.ndarray, raw: bytes, start: int, m: int, width: int) -> Decoded | None:
    """Vectorized decode of `m` consecutive records of `width` bytes each (header included), when all are in
    the writer's layout with the first record's (nnz, key bytes, label); None otherwise."""
    length = int.from_bytes(raw[start + 4 : start + 8], "little")
    try:
        features, label = parse_record(raw, start + 8, start + 8 + length)
    except (ValueError, UnicodeDecodeError):
        return None
    tensor = features.get("values")
    if tensor is None or tensor.kind != "Float32" or set(features) != {"values"} or set(label) - {"values"}:
        return None
    vals, keys, shape = tensor.arrays()
    if keys is None or keys.size != vals.size or len(shape) != 1 or shape[0] > MAX_DIM:
        return None
    lab = label.get("values")
    if lab is not None and (lab.kind != "Float32" or lab.arrays()[0].size != 1):
        return None
    nnz = int(vals.size)
    kb = int(varint_len(keys).sum()) if nnz else 0
    template, vs, ks, ls = record_template(
        shape[0], "Float32", nnz, 4 * nnz, kb, lab is not None, "Float32", 4
    )
    if len(template) != width:
        return None
    mat = buf[start : start + m * width].reshape(m, width)
    fixed = np.ones(width, dtype=bool)
    if nnz:
        fixed[vs : vs + 4 * nnz] = False
        fixed[ks : ks + kb] = False
    if lab is not None:
        fixed[ls : ls + 4] = False
    proto = np.frombuffer(template, dtype=np.uint8)
    cols = np.flatnonzero(fixed)
    if not (mat[:, cols] == proto[cols]).all():
        return None
    counts = np.full(m, nnz, dtype=np.int64)
    if nnz:
        values = np.ascontiguousarray(mat[:, vs : vs + 4 * nnz]).view("<f4").ravel()
        region = mat[:, ks : ks + kb]
        term = region < 0x80
        if (term == term[0]).all() and term[0, -1]:  # same varint boundaries in every row: decode by columns
            ends = np.flatnonzero(term[0])
            begins = np.concatenate(([0], ends[:-1] + 1))
            out = np.zeros((m, nnz), dtype=np.uint64)
            for j, (b0, e0) in enumerate(zip(begins.tolist(), ends.tolist(), strict=True)):
                for k, col in enumerate(range(b0, e0 + 1)):
                    out[:, j] |= (region[:, col] & 0x7F).astype(np.uint64) << np.uint64(7 * k)
            key_arr = out.ravel()
        else:
            if not (term.sum(axis=1) == nnz).all() or not term[:, -1].all():
                return None
            key_arr = decode_varints(np.ascontiguousarray(region).tobytes())
        if int(key_arr.max()) >= shape[0]:
            return None
    else:
        values = np.empty(0, dtype=np.float32)
        key_arr = np.empty(0, dtype=np.uint64)
    dims = np.full(m, shape[0], dtype=np.int64)
    has = np.full(m, lab is not None)
    labels = (
        np.ascontiguousarray(mat[:, ls : ls + 4]).view("<f4").ravel()
        if lab is not None
        else np.full(m, np.nan, dtype=np.float32)
    )
    return counts, key_arr, values, dims, has, labels
