"""The deployer's local twin: on an approval change, publish the newest approved version for serving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fmrec.errors import FmrecError
from fmrec.serving.artifacts import CURRENT_KEY, parse_current, version_name
from twins.api.publish import publish_version
from twins.registry.registry import Registry


@dataclass(frozen=True)
class Deployment:
    """What one reconciliation did: action is "published", "unchanged" or "no approved package"."""

    action: str
    version: str | None  # the version the serving folder publishes afterwards (None: nothing published)
    package: str | None  # the model package ARN deployed, if any
    artifacts: Path


def published_version(artifacts: Path) -> str | None:
    """The version current.json publishes in a serving folder; None when nothing is published there."""
    path = artifacts / CURRENT_KEY
    if not path.is_file():
        return None
    return parse_current(path.read_bytes(), str(path))


def reconcile(registry: Registry, group: str, artifacts: Path) -> Deployment:
    """Publish the group's newest approved version into `artifacts`, as lambdas/deployer does on AWS.

    The deployer's rule (lambdas/deployer/handler.py, Deployer.reconcile): only the newest approved package is
    ever deployed, whatever the event was about, so approving an old version does not roll back a newer one,
    rejecting the serving version falls back to the newest still approved, and with no approved version the
    endpoint keeps what it serves. On AWS the endpoint update comes first and current.json is written once the
    endpoint is InService; here the endpoint twin follows current.json (`fmrec serve endpoint --artifacts`),
    so writing it last, after the version's files, is the whole deployment.
    """
    approved = [p for p in registry.list(group) if p.status == "Approved"]
    current = published_version(artifacts)
    if not approved:
        return Deployment("no approved package", current, None, artifacts)
    target = approved[-1]  # the newest: the registry numbers versions in creation order
    version = version_name(target.version)
    if current == version and (artifacts / version / "model.tar.gz").is_file():
        return Deployment("unchanged", version, target.arn, artifacts)
    if target.lookup_dir is None:
        raise FmrecError(
            f"{target.folder}: the approved package has no lookup/ folder, so the API cannot serve it "
            "(the pipeline's register step copies it; a package registered by hand needs one)"
        )
    publish_version(artifacts, version, target.lookup_dir, target.model_tar)
    return Deployment("published", version, target.arn, artifacts)
