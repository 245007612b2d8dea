"""Reliability fixtures: a trained serving world (session), a misbehaving endpoint server, HTTP helpers."""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest


def load_world() -> ModuleType:
    """tests/reliability/world.py as a module (pytest's importlib mode gives tests no package imports)."""
    name = "fmrec_reliability_world"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("world.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def rw() -> ModuleType:
    return load_world()


@pytest.fixture(scope="session")
def trained(rw: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Synthetic ratings -> preprocess -> training twin -> published serving version v1 (built once)."""
    return rw.build(tmp_path_factory.mktemp("trained"))


@pytest.fixture(autouse=True)
def _reset_handler() -> Iterator[None]:
    yield
    from lambdas.recommend import app

    app.configure(None)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FaultServer:
    """A tiny HTTP server on 127.0.0.1 that answers InvokeEndpoint with whatever `respond` says."""

    def __init__(self, respond: Callable[[int, bytes], Reply]) -> None:
        self.respond = respond
        self.calls = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with outer._lock:
                    outer.calls += 1
                    n = outer.calls
                reply = outer.respond(n, body)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for key, value in {"Content-Type": "application/json", **reply.headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fault_server() -> Iterator[Callable[[Callable[[int, bytes], Reply]], FaultServer]]:
    servers: list[FaultServer] = []

    def start(respond: Callable[[int, bytes], Reply]) -> FaultServer:
        servers.append(FaultServer(respond))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def http_get(url: str, timeout: float = 30.0) -> HttpAnswer:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return HttpAnswer(
                resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
            )
    except urllib.error.HTTPError as err:
        return HttpAnswer(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode())


@pytest.fixture
def rel() -> ModuleType:
    """The helpers above, for test modules."""
    module = ModuleType("rel")
    module.Reply = Reply  # type: ignore[attr-defined]
    module.closed_port = closed_port  # type: ignore[attr-defined]
    module.http_get = http_get  # type: ignore[attr-defined]
    return module
