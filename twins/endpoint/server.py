"""Run the endpoint twin under uvicorn: in the foreground with workers, or in the background for tests."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fmrec.errors import InputError
from fmrec.serving.artifacts import VARIANT_NAME, is_variant_name
from twins.background import (
    Running,
    answers,
    default_workers,
    free_port,
    start_process,
    start_thread,
)
from twins.endpoint.app import (
    DEFAULT_NAME,
    DEFAULT_VARIANT,
    SPECS_ENV,
    EndpointSpec,
    app_from_env,
    create_app,
    load_endpoints,
    specs_to_env,
)
from twins.http_limits import Limits
from twins.supervisor import Worker, claim_port, supervise

log = logging.getLogger(__name__)

# Per worker process (docs/endpoint.md, "Limits"). SageMaker documents no such limits for a container; these
# keep memory bounded: at most 128 connections, each with a head of at most 32 KiB and a body of at most 6 MB
# (protocol.MAX_PAYLOAD_BYTES) that must arrive within 30 s. The model must answer within 60 s
# (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html), so a client
# that needs longer than half of that only to send its request gets a 408.
ENDPOINT_LIMITS = Limits(max_connections=128, max_head_bytes=32 * 1024, request_timeout=30.0)


def build_specs(
    models: Sequence[str | os.PathLike[str]], names: Sequence[str], variants: Sequence[str]
) -> list[EndpointSpec]:
    """Pair endpoint names with models and variants: one model (or variant) for all names, or one per name."""
    if not models:
        raise InputError("--model: give at least one model.tar.gz")
    names = list(names) or [DEFAULT_NAME]
    variants = list(variants) or [DEFAULT_VARIANT]
    if len(models) not in (1, len(names)):
        raise InputError(
            f"--model given {len(models)} times for {len(names)} --name; give one, or one per --name"
        )
    if len(variants) not in (1, len(names)):
        raise InputError(
            f"--variant given {len(variants)} times for {len(names)} --name; give one, or one per --name"
        )
    seen: set[str] = set()
    pattern = VARIANT_NAME.pattern
    for name in names:
        if not is_variant_name(name) or name in seen:  # EndpointName has the same pattern
            raise InputError(
                f"--name {name!r}: endpoint names must be unique and match {pattern} (as in SageMaker)"
            )
        seen.add(name)
    for variant in variants:
        if not is_variant_name(variant):
            raise InputError(f"--variant {variant!r}: variant names must match {pattern} (as in SageMaker)")
    specs = []
    for i, name in enumerate(names):
        model = Path(models[0] if len(models) == 1 else models[i])
        if not model.is_file():
            raise InputError(f"--model {model}: no such file (expected a model.tar.gz)")
        specs.append(EndpointSpec(name, model, variants[0] if len(variants) == 1 else variants[i]))
    return specs


def serve(
    specs: Sequence[EndpointSpec],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    """Serve until SIGINT/SIGTERM with `workers` worker processes (see twins.supervisor.supervise)."""
    load_endpoints(specs)  # fail here, with a clear message, rather than in every worker
    workers = workers or default_workers()
    port = claim_port(host, port)
    log.info(
        "endpoint twin on http://%s:%d: %s; %d worker(s)",
        host,
        port,
        ", ".join(f"{s.name} ({s.variant}) <- {s.model_path}" for s in specs),
        workers,
    )
    env = {SPECS_ENV: specs_to_env(specs)}
    worker = Worker("endpoint twin", app_from_env, host, port, ENDPOINT_LIMITS, env, log_level, access_log)
    supervise(worker, workers)


def ping(host: str, port: int, timeout: float = 2.0) -> bool:
    return answers(host, port, "/ping", timeout)


@dataclass
class BackgroundServer(Running):
    """A running endpoint twin; `url` is boto3's `endpoint_url` (or $AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME)."""

    names: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.names[0]


def start_in_background(
    model_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    port: int = 0,
    *,
    name: str | Sequence[str] = DEFAULT_NAME,
    variant: str | Sequence[str] = DEFAULT_VARIANT,
    host: str = "127.0.0.1",
    workers: int = 1,
    process: bool = False,
    startup_timeout: float = 60.0,
    limits: Limits = ENDPOINT_LIMITS,
) -> BackgroundServer:
    """Start the twin and return once /ping answers 200.

    In-process (a uvicorn thread, one event loop) by default; `process=True` runs `fmrec serve endpoint` as a
    child process with `workers` workers. port 0 picks a free loopback port (see `.port` / `.url`).
    `limits` applies in-process; a child process always has ENDPOINT_LIMITS.
    """
    models = [model_path] if isinstance(model_path, str | os.PathLike) else list(model_path)
    names = [name] if isinstance(name, str) else list(name)
    variants = [variant] if isinstance(variant, str) else list(variant)
    specs = build_specs(models, names, variants)
    if process:
        return _start_process(specs, host, port or free_port(host), workers, startup_timeout)
    if workers != 1:
        raise InputError("an in-process twin runs one event loop; use process=True for several workers")
    return _start_thread(specs, host, port, startup_timeout, limits)


def _start_thread(
    specs: Sequence[EndpointSpec], host: str, port: int, timeout: float, limits: Limits
) -> BackgroundServer:
    app = create_app(load_endpoints(specs))
    bound, stop = start_thread(app, host, port, label="endpoint twin", timeout=timeout, limits=limits)
    names, variants = [s.name for s in specs], [s.variant for s in specs]
    return BackgroundServer(host, bound, stop, names=names, variants=variants)


def _start_process(
    specs: Sequence[EndpointSpec], host: str, port: int, workers: int, timeout: float
) -> BackgroundServer:
    args = ["serve", "endpoint", "--host", host, "--port", str(port), "--workers", str(workers)]
    for spec in specs:
        args += ["--model", str(spec.model_path), "--name", spec.name, "--variant", spec.variant]
    pid, stop = start_process(args, host, port, probe_path="/ping", label="endpoint twin", timeout=timeout)
    names, variants = [s.name for s in specs], [s.variant for s in specs]
    return BackgroundServer(host, port, stop, pid=pid, names=names, variants=variants)
