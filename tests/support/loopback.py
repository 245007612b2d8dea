"""Loopback HTTP plumbing for tests: a background server with a fast stop, a refused port, a plain GET."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import HTTPServer
from typing import Any

# serve_forever checks for shutdown() once per poll; its 0.5 s default made every test's teardown wait for it.
POLL_SECONDS = 0.01


def serve_in_background(httpd: HTTPServer) -> Callable[[], None]:
    """Serve `httpd` on a daemon thread; returns stop(), which shuts it down within one short poll."""
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join()

    return stop


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
