"""Run a twin in a thread or as a child process until it answers, and stop it cleanly."""

from __future__ import annotations

import contextlib
import http.client
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, Any

import uvicorn

from fmrec.errors import FmrecError
from fmrec.machine import usable_cores
from twins.http_limits import Limits, protocol_factory

GRACEFUL_SHUTDOWN_SECONDS = 10


def default_workers() -> int:
    """One worker per core this process may use."""
    return usable_cores()


@dataclass
class Running:
    """A running twin; `stop()` (or leaving the `with` block) shuts it down gracefully."""

    host: str
    port: int
    _stop: Callable[[], int | None] | None = field(repr=False, default=None)
    exit_code: int | None = None  # the child's exit status after stop() (process mode)
    pid: int | None = None  # the child's process id (process mode)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            self.exit_code = stop()

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def answers(host: str, port: int, path: str, timeout: float = 2.0) -> bool:
    """True when GET `path` answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_thread(
    app: Any, host: str, port: int, *, label: str, timeout: float, limits: Limits | None = None
) -> tuple[int, Callable[[], None]]:
    """Serve `app` with uvicorn in a daemon thread; returns the bound port and a stop function."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        **({"http": protocol_factory(limits)} if limits is not None else {}),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{label}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise FmrecError(f"{label} did not start on {host}:{port}")
        time.sleep(0.01)
    bound = int(server.servers[0].sockets[0].getsockname()[1])

    def stop() -> None:
        server.should_exit = True
        thread.join(GRACEFUL_SHUTDOWN_SECONDS + 5)

    return bound, stop


def start_process(
    cli_args: Sequence[str], host: str, port: int, *, probe_path: str, label: str, timeout: float
) -> tuple[int, Callable[[], int]]:
    """Run `fmrec <cli_args>` as a child; returns its pid and a stop function (SIGTERM, then exit code)."""
    argv = [sys.executable, "-m", "fmrec_cli", *cli_args]
    # stderr goes to a file so a failed start can quote it without a pipe that could fill and block the child
    errlog: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errlog)
    deadline = time.monotonic() + timeout
    while not answers(host, port, probe_path, timeout=1.0):
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
            errlog.seek(0)
            tail = errlog.read().decode(errors="replace")[-2000:]
            errlog.close()
            raise FmrecError(f"{label} did not start on {host}:{port} (exit {proc.returncode}):\n{tail}")
        time.sleep(0.05)

    def stop() -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(GRACEFUL_SHUTDOWN_SECONDS + 5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errlog.close()
        return int(proc.returncode)

    return proc.pid, stop
