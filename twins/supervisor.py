"""One supervisor for the twins' worker processes: own sockets, restarts, graceful stop, no orphans."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from fmrec.errors import FmrecError, InputError
from twins.background import GRACEFUL_SHUTDOWN_SECONDS
from twins.http_limits import Limits, protocol_factory

log = logging.getLogger(__name__)

# A worker that dies is replaced, unless more than this many per worker died in the last RESTART_WINDOW s.
RESTARTS_PER_WORKER = 2
RESTART_WINDOW = 60.0


@dataclass(frozen=True)
class Worker:
    """What each worker process serves: `app_factory()` (run after `env` is set) with uvicorn on host:port.

    `app_factory` must be a module-level function: the spawned process imports it by name.
    """

    label: str  # "endpoint twin": log lines and process names
    app_factory: Callable[[], Any]
    host: str
    port: int
    limits: Limits
    env: Mapping[str, str] = field(default_factory=dict)
    log_level: str = "warning"
    access_log: bool = False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def claim_port(host: str, port: int) -> int:
    """Check that (host, port) is free, without SO_REUSEPORT, so a second twin cannot join this one's port.

    SO_REUSEADDR lets the probe bind while connections of a stopped twin linger in TIME_WAIT (up to 60 s on
    Linux), yet still fails while a socket listens there. Port 0 gives a free port.
    """
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc})"
            ) from None
        return int(probe.getsockname()[1])


def supervise(worker: Worker, workers: int) -> None:
    """Run `workers` worker processes until SIGINT/SIGTERM; in-flight requests finish before exit.

    Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads connections evenly over the
    workers. With one shared socket (uvicorn's --workers) the first worker to wake accepts a whole burst of
    keep-alive connections, and a few clients can end up all on one core. Call claim_port first: the workers'
    SO_REUSEPORT binds would not notice another twin on the port. A worker that dies is replaced; when they
    keep dying the supervisor stops them all and raises FmrecError. Even one worker runs under the
    supervisor: the same restart and exit-0-on-SIGTERM behaviour everywhere.
    """
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    name = worker.label.replace(" ", "-") + "-worker"

    def start() -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker_main, args=(worker, workers > 1, os.getpid()), name=name)
        proc.start()
        return proc

    procs = [start() for _ in range(workers)]
    restarts: list[float] = []
    try:
        while not stop.wait(0.5):
            for i, proc in enumerate(procs):
                if proc.is_alive():
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW] + [now]
                if len(restarts) > RESTARTS_PER_WORKER * workers:
                    raise FmrecError(
                        f"{worker.label} workers keep dying (last exit code {proc.exitcode}); stopping"
                    )
                log.warning(
                    "%s worker %s exited with %s; starting a new one", worker.label, proc.pid, proc.exitcode
                )
                procs[i] = start()
    finally:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(GRACEFUL_SHUTDOWN_SECONDS + 5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("%s stopped", worker.label)


def _die_with_parent(parent: int) -> None:
    """SIGTERM this worker when the supervisor dies, even by SIGKILL, so no orphan keeps the port.

    Linux: prctl(PR_SET_PDEATHSIG). Elsewhere: a thread that watches the parent id.
    """
    pr_set_pdeathsig = 1
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        ok = libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        ok = False
    if not ok:

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(worker: Worker, reuse_port: bool, parent: int) -> None:
    """One worker: build the app (load models), then listen (so no connection waits on a loading worker)."""
    _die_with_parent(parent)
    os.environ.update(worker.env)
    app = worker.app_factory()
    sock = socket.socket(_family(worker.host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((worker.host, worker.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    config = uvicorn.Config(
        app,
        host=worker.host,
        port=worker.port,
        log_level=worker.log_level,
        access_log=worker.access_log,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        http=protocol_factory(worker.limits),
    )
    # uvicorn re-raises the signal it shut down on; a terminal's Ctrl-C then needs no traceback per worker.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])
