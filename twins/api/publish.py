"""Publish a model version into a local serving-artifacts folder, the way the deployer does in S3."""

from __future__ import annotations

import os
from pathlib import Path

from fmrec.errors import InputError
from fmrec.io_utils import atomic_dir, atomic_write_bytes, atomic_write_text
from fmrec.serving.artifacts import CURRENT_KEY, check_version, dump_current, lookup_prefix, model_key
from fmrec.serving.lookup import LOOKUP_FILES


def publish_version(
    artifacts: str | os.PathLike[str],
    version: str,
    lookup_dir: str | os.PathLike[str],
    model_tar: str | os.PathLike[str] | None = None,
) -> Path:
    """Lay out one model version in a local serving-artifacts folder (the S3 layout of docs/api.md).

    Copies the lookup files (and the model for the fast path), then points current.json at the version last,
    so a reader never sees a version whose files are incomplete.
    """
    check_version(version, str(artifacts))
    root = Path(artifacts)
    source = Path(lookup_dir)
    missing = [name for name in LOOKUP_FILES if not (source / name).is_file()]
    if missing:
        raise InputError(f"{source}: not a lookup folder (missing {', '.join(missing)})")
    with atomic_dir(root / lookup_prefix(version), replace=True) as tmp:
        for name in LOOKUP_FILES:
            (tmp / name).write_bytes((source / name).read_bytes())
    if model_tar is not None:
        atomic_write_bytes(root / model_key(version), Path(model_tar).read_bytes())
    # A text file for people: the bytes the deployer writes to S3, and a newline.
    atomic_write_text(root / CURRENT_KEY, dump_current(version).decode() + "\n")
    return root
