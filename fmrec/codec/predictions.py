"""Inference response codec: one record per row with a {"score", "predicted_label"} label map."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from fmrec.codec.parse import frame_block, parse_record
from fmrec.codec.wire import MAGIC_LE, RecordIOError, vbytes


def _label_entry(name: str, value: float) -> bytes:
    tensor = b"\x0a\x04" + struct.pack("<f", value)
    val = b"\x12" + vbytes(len(tensor)) + tensor
    key = name.encode()
    entry = b"\x0a" + vbytes(len(key)) + key + b"\x12" + vbytes(len(val)) + val
    return b"\x12" + vbytes(len(entry)) + entry


def encode_predictions(scores: Sequence[float] | np.ndarray, predicted_labels: Any = None) -> bytes:
    """Inference response: one record per row, label map {"score", "predicted_label"} of Float32 tensors."""
    columns = {"score": np.asarray(scores, dtype="<f4").reshape(-1)}
    if predicted_labels is not None:
        columns["predicted_label"] = np.asarray(predicted_labels, dtype="<f4").reshape(-1)
        if columns["predicted_label"].size != columns["score"].size:
            raise ValueError(f"{columns['predicted_label'].size} labels for {columns['score'].size} scores")
    n = columns["score"].size
    # Every record has the same bytes but its floats: tile one template and write the floats in place.
    entries = [_label_entry(name, 0.0) for name in columns]
    rec = b"".join(entries)
    template = MAGIC_LE + struct.pack("<I", len(rec)) + rec + bytes((-len(rec)) % 4)
    out = np.tile(np.frombuffer(template, dtype=np.uint8), n).reshape(n, len(template))
    end = 8
    for entry, values in zip(entries, columns.values(), strict=True):
        end += len(entry)  # each label entry ends with its 4 float bytes
        out[:, end - 4 : end] = values.view(np.uint8).reshape(n, 4)
    return out.tobytes()


def decode_predictions(body: bytes) -> list[dict[str, float]]:
    """Inverse of `encode_predictions`: one {label name: value} dict per record."""
    buf = np.frombuffer(body + bytes(32), dtype=np.uint8)
    starts, lens, _ = frame_block(buf[: len(body)], 0, "response body", 0, at_eof=True)
    out: list[dict[str, float]] = []
    for i, (s, ln) in enumerate(zip(starts.tolist(), lens.tolist(), strict=True)):
        try:
            _, label = parse_record(body, s, s + ln)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecordIOError("response body", i, s - 8, f"malformed record: {exc}") from None
        row: dict[str, float] = {}
        for key, tensor in label.items():
            vals = tensor.arrays()[0]
            if vals.size != 1:
                raise RecordIOError("response body", i, s - 8, f"label {key!r} holds {vals.size} values")
            row[key] = float(vals[0])
        out.append(row)
    return out
