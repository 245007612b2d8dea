"""The Model Registry twin: model package groups of versioned packages with approval status and metrics."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fmrec.errors import InputError, OutputError
from fmrec.io_utils import atomic_dir, atomic_write_text, exclusive_lock

STATUSES = ("PendingManualApproval", "Approved", "Rejected")
_GROUP_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # CreateModelPackageGroup's name pattern
PACKAGE_FILE = "package.json"
ARN_PREFIX = "arn:aws:sagemaker:local:000000000000:model-package/"


class RegistryError(InputError):
    """A registry request names an unknown group or version, or an invalid status."""


@dataclass(frozen=True)
class Package:
    """One registered model version: its folder holds package.json, model.tar.gz, metrics and lookup/."""

    group: str
    version: int
    folder: Path
    doc: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.doc["ModelApprovalStatus"])

    @property
    def model_tar(self) -> Path:
        return self.folder / "model.tar.gz"

    @property
    def lookup_dir(self) -> Path | None:
        path = self.folder / "lookup"
        return path if path.is_dir() else None

    @property
    def arn(self) -> str:
        return str(self.doc["ModelPackageArn"])


class Registry:
    """A folder of groups: root/<group>/<version>/package.json. Versions are never overwritten."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _group_dir(self, group: str) -> Path:
        if not _GROUP_RE.match(group):
            raise RegistryError(f"model package group {group!r}: expected 1-63 letters, digits or '-'")
        return self.root / group

    def register(
        self,
        group: str,
        *,
        model_tar: Path,
        status: str,
        request: Mapping[str, Any],
        metrics_file: Path | None = None,
        lookup_dir: Path | None = None,
        source: Mapping[str, Any] | None = None,
    ) -> Package:
        """A new version (1 + the highest) holding copies of the model, metrics and lookup."""
        if status not in STATUSES:
            raise RegistryError(f"ModelApprovalStatus {status!r}: expected one of {list(STATUSES)}")
        if not model_tar.is_file():
            raise RegistryError(f"{model_tar}: the model artifact to register does not exist")
        gdir = self._group_dir(group)
        try:
            gdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{gdir}: cannot create the group folder ({exc.strerror or exc})") from exc
        # Choosing the next version and claiming it is one step under the group's lock, so two processes
        # registering at once get two versions; the lock waits (a registration takes well under a second).
        with exclusive_lock(gdir / ".register.lock", wait=True):
            taken = [int(p.name) for p in gdir.iterdir() if p.name.isdigit()]  # complete or not
            version = 1 + max(taken, default=0)
            with atomic_dir(gdir / str(version)) as tmp:
                shutil.copy2(model_tar, tmp / "model.tar.gz")
                if metrics_file is not None and metrics_file.is_file():
                    shutil.copy2(metrics_file, tmp / "model_metrics.json")
                if lookup_dir is not None and lookup_dir.is_dir():
                    shutil.copytree(lookup_dir, tmp / "lookup")
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                doc = {
                    "ModelPackageGroupName": group,
                    "ModelPackageVersion": version,
                    "ModelPackageArn": f"{ARN_PREFIX}{group}/{version}",
                    "ModelApprovalStatus": status,
                    "CreationTime": now,
                    "StatusHistory": [{"status": status, "time": now}],
                    "Request": dict(request),
                    "Source": dict(source or {}),
                    "ModelMetrics": _read_json(tmp / "model_metrics.json"),
                }
                atomic_write_text(tmp / PACKAGE_FILE, json.dumps(doc, indent=2, default=str))
        return self.get(group, version)

    def list(self, group: str | None = None) -> list[Package]:
        groups = (
            [group]
            if group
            else sorted(p.name for p in self.root.iterdir() if p.is_dir())
            if self.root.is_dir()
            else []
        )
        out = []
        for g in groups:
            gdir = self._group_dir(g)
            if not gdir.is_dir():
                continue
            for vdir in gdir.iterdir():
                if vdir.name.isdigit() and (vdir / PACKAGE_FILE).is_file():
                    out.append(
                        Package(g, int(vdir.name), vdir, json.loads((vdir / PACKAGE_FILE).read_text("utf-8")))
                    )
        return sorted(out, key=lambda p: (p.group, p.version))

    def get(self, group: str, version: int) -> Package:
        folder = self._group_dir(group) / str(version)
        if not (folder / PACKAGE_FILE).is_file():
            known = [p.version for p in self.list(group)]
            raise RegistryError(f"{group}/{version}: no such model package version; known versions: {known}")
        return Package(group, version, folder, json.loads((folder / PACKAGE_FILE).read_text("utf-8")))

    def set_status(self, group: str, version: int, status: str) -> Package:
        if status not in STATUSES:
            raise RegistryError(f"status {status!r}: expected one of {list(STATUSES)}")
        package = self.get(group, version)
        with exclusive_lock(package.folder.parent / ".register.lock", wait=True):  # no lost status change
            doc = dict(self.get(group, version).doc)
            doc["ModelApprovalStatus"] = status
            doc["StatusHistory"] = [
                *doc.get("StatusHistory", []),
                {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            ]
            atomic_write_text(package.folder / PACKAGE_FILE, json.dumps(doc, indent=2, default=str))
        return self.get(group, version)

    def latest_approved(self, group: str) -> Package | None:
        approved = [p for p in self.list(group) if p.status == "Approved"]
        return approved[-1] if approved else None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
