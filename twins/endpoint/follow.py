"""The endpoint twin following a serving folder: it serves the model version current.json publishes."""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
from pathlib import Path

from starlette.types import ASGIApp

from fmrec.errors import FmrecError, InputError
from fmrec.serving.artifacts import CURRENT_KEY, model_key, parse_current
from twins.background import Running, default_workers, start_thread
from twins.endpoint.app import DEFAULT_NAME, EndpointSpec, ServedEndpoint, create_app, load_endpoint
from twins.endpoint.server import ENDPOINT_LIMITS
from twins.http_limits import Limits
from twins.supervisor import Worker, claim_port, supervise

log = logging.getLogger(__name__)

FOLLOW_ENV = "FMREC_ENDPOINT_FOLLOW"


class FollowingEndpoint:
    """One endpoint name whose model is the version published in `artifacts` (current.json).

    On AWS the deployer updates the endpoint to the newest approved version (lambdas/deployer); locally the
    registry twin publishes that version into the serving folder (twins/registry/deploy.py) and this
    endpoint swaps to it at its next invocation. A version that fails to load is logged and the old model
    keeps serving: UpdateEndpoint shifts traffic to the new fleet only once it is up, with "no availability
    loss" (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_UpdateEndpoint.html).
    """

    def __init__(self, artifacts: str | os.PathLike[str], name: str = DEFAULT_NAME) -> None:
        self.artifacts = Path(artifacts)
        self.name = name
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._served = self._load()
        if self._served is None:
            raise InputError(
                f"{self.artifacts / CURRENT_KEY}: no published version to serve (approve a model with "
                "`fmrec models approve N`, or publish one with `fmrec publish`)"
            )

    @property
    def variant(self) -> str:
        return self._current().variant

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = (self.artifacts / CURRENT_KEY).stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)  # an atomic write is a new inode

    def _load(self) -> ServedEndpoint | None:
        """The version current.json names, loaded; None when it is missing or unreadable."""
        stamp = self._stat()
        self._stamp = stamp
        if stamp is None:
            return None
        try:
            version = parse_current((self.artifacts / CURRENT_KEY).read_bytes(), str(self.artifacts))
            served = load_endpoint(EndpointSpec(self.name, self.artifacts / model_key(version), version))
        except (OSError, FmrecError) as exc:
            log.error("endpoint %s: cannot serve the published version (%s)", self.name, exc)
            return None
        log.info("endpoint %s now serves %s", self.name, served.variant)
        gc.collect()
        return served

    def _current(self) -> ServedEndpoint:
        # One stat per invocation (microseconds) sees a new current.json at once.
        with self._lock:
            if self._stat() != self._stamp:
                fresh = self._load()
                if fresh is not None:
                    self._served = fresh
            assert self._served is not None
            return self._served

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        return self._current().invoke(body, content_type, accept)


def follow_app_from_env() -> ASGIApp:
    """App factory for uvicorn workers: $FMREC_ENDPOINT_FOLLOW is {"artifacts": DIR, "name": NAME}."""
    text = os.environ.get(FOLLOW_ENV)
    if not text:
        raise InputError(f"${FOLLOW_ENV} is not set; start the twin with `fmrec serve endpoint --artifacts`")
    doc = json.loads(text)
    return create_app([FollowingEndpoint(doc["artifacts"], doc["name"])])  # type: ignore[list-item]


def serve_following(
    artifacts: str | os.PathLike[str],
    name: str = DEFAULT_NAME,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve the published version of `artifacts` until SIGINT/SIGTERM, swapping on each new publication."""
    first = FollowingEndpoint(artifacts, name)  # fail here, with a clear message, rather than in every worker
    workers = workers or default_workers()
    port = claim_port(host, port)
    log.info(
        "endpoint twin on http://%s:%d: %s (%s) following %s; %d worker(s)",
        *(host, port, name, first.variant, Path(artifacts) / CURRENT_KEY, workers),
    )
    env = {FOLLOW_ENV: json.dumps({"artifacts": str(Path(artifacts).resolve()), "name": name})}
    worker = Worker(
        "endpoint twin", follow_app_from_env, host, port, ENDPOINT_LIMITS, env, log_level, access_log
    )
    supervise(worker, workers)


def start_following(
    artifacts: str | os.PathLike[str],
    port: int = 0,
    *,
    name: str = DEFAULT_NAME,
    host: str = "127.0.0.1",
    timeout: float = 60.0,
    limits: Limits = ENDPOINT_LIMITS,
) -> tuple[Running, FollowingEndpoint]:
    """An in-process endpoint twin following `artifacts`; returns it and the followed endpoint."""
    endpoint = FollowingEndpoint(artifacts, name)
    app = create_app([endpoint])  # type: ignore[list-item]
    bound, stop = start_thread(app, host, port, label="endpoint twin", timeout=timeout, limits=limits)
    return Running(host, bound, stop), endpoint
