"""Run the API twin: in the foreground with supervised workers, or in the background (tests, the demo)."""

from __future__ import annotations

import logging
import os

from twins.api.environment import (
    CONFIG_ENV,
    ApiTwinConfig,
    app_from_env,
    make_handler,
    make_handlers,
    openapi_bytes,
)
from twins.api.gateway import API_LIMITS, create_app
from twins.background import Running, answers, free_port, start_process, start_thread
from twins.http_limits import Limits
from twins.supervisor import Worker, claim_port, supervise

log = logging.getLogger(__name__)


def serve(config: ApiTwinConfig, host: str = "127.0.0.1", port: int = 3000, workers: int = 1) -> None:
    """Serve until SIGINT/SIGTERM with `workers` worker processes (see twins.supervisor.supervise)."""
    make_handler(config)  # fail here, with a clear message, rather than in every worker
    port = claim_port(host, port)
    log.info(
        "API twin on http://%s:%d -> endpoint %s at %s; artifacts %s; ratings %s; %d worker(s)",
        host,
        port,
        config.endpoint_name,
        config.endpoint_url or "(fast path)",
        config.artifacts,
        config.ratings_path(),
        workers,
    )
    supervise(
        Worker("API twin", app_from_env, host, port, API_LIMITS, {CONFIG_ENV: config.to_env()}), workers
    )


def ready(host: str, port: int, timeout: float = 2.0) -> bool:
    return answers(host, port, "/openapi.json", timeout)


class BackgroundApi(Running):
    """A running API twin (see twins.background.Running)."""


def start_in_background(
    artifacts: str | os.PathLike[str],
    endpoint_url: str | None,
    *,
    endpoint_name: str = "fmrec-endpoint",
    port: int = 0,
    host: str = "127.0.0.1",
    fast_path: bool = False,
    process: bool = False,
    workers: int = 1,
    startup_timeout: float = 60.0,
    limits: Limits = API_LIMITS,
    ratings_db: str | os.PathLike[str] = "",
) -> BackgroundApi:
    """Start the API twin and return once it answers; port 0 picks a free loopback port (see `.url`).

    In-process (a uvicorn thread) by default; `process=True` runs `fmrec serve api` as a child process.
    `limits` applies in-process; a child process always has API_LIMITS.
    """
    config = ApiTwinConfig(
        str(artifacts), endpoint_url, endpoint_name, fast_path, ratings_db=str(ratings_db or "")
    )
    if process:
        return _start_process(config, host, port or free_port(host), workers, startup_timeout)
    return _start_thread(config, host, port, startup_timeout, limits)


def _start_thread(
    config: ApiTwinConfig, host: str, port: int, timeout: float, limits: Limits
) -> BackgroundApi:
    app = create_app(make_handlers(config, config.environments), openapi_bytes())
    bound, stop = start_thread(app, host, port, label="API twin", timeout=timeout, limits=limits)
    return BackgroundApi(host, bound, stop)


def _start_process(
    config: ApiTwinConfig, host: str, port: int, workers: int, timeout: float
) -> BackgroundApi:
    args = ["serve", "api", "--host", host, "--port", str(port), "--artifacts", config.artifacts]
    args += ["--endpoint-name", config.endpoint_name, "--workers", str(workers)]
    if config.endpoint_url:
        args += ["--endpoint-url", config.endpoint_url]
    if config.fast_path:
        args.append("--fast-path")
    if config.ratings_db:
        args += ["--ratings-db", config.ratings_db]
    pid, stop = start_process(args, host, port, probe_path="/openapi.json", label="API twin", timeout=timeout)
    return BackgroundApi(host, port, stop, pid=pid)
