"""The preprocess manifest (manifest/manifest.json): one typed record, written and read only here."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fmrec.errors import InputError

MANIFEST_FILE = Path("manifest") / "manifest.json"  # in a preprocess output folder
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """What a preprocess run wrote and with which settings; the FM training's feature_dim comes from it."""

    feature_dim: int
    layout: list[dict[str, Any]]  # the column blocks: name, offset, size
    label: dict[str, Any]  # mode, threshold (None for regression)
    objective: str
    sampling: dict[str, Any] | None  # the ranking objective's settings and row counts; None for rating
    counts: dict[str, int]
    label_balance: dict[str, Any]
    files: dict[str, list[Any]]
    content_type: str
    source: dict[str, str]
    config: dict[str, Any]  # the PreprocessConfig, as JSON
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, format_version first (the order manifest.json has always had)."""
        doc = {"format_version": self.format_version}
        doc.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "format_version"})
        return doc


def write_manifest(out: Path, manifest: Manifest, name: str = MANIFEST_FILE.name) -> Path:
    """out/manifest/manifest.json, or another name in that folder (a user shard's); the caller's output folder
    is published atomically as a whole."""
    path = out / MANIFEST_FILE.parent / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.as_dict(), indent=2, allow_nan=False) + "\n")  # strict JSON
    return path


def read_manifest(path: Path) -> Manifest:
    """A manifest.json, or InputError naming the file and what is wrong with it."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable preprocess manifest ({exc})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    names = {f.name for f in fields(Manifest)}
    missing = sorted(n for n in names - set(doc) if n != "format_version")
    if missing:
        raise InputError(f"{path}: not a preprocess manifest: no {', '.join(missing)}")
    if doc.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise InputError(
            f"{path}: format_version {doc['format_version']!r}; this fmrec reads {FORMAT_VERSION}"
        )
    return Manifest(**{k: v for k, v in doc.items() if k in names})
