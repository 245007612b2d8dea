"""`fmrec serve api` with supervised workers: a dead worker is replaced, none outlives the twin."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from typing import Any

import pytest

from fmrec_cli.main import main
from tests.support.processes import alive, kill_one_worker_and_wait_for_its_replacement, worker_pids
from twins.api.server import ready, start_in_background

pytestmark = pytest.mark.slow


def _recommend(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/users/1/recommendations?k=3", timeout=20) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def test_a_killed_api_worker_is_replaced_and_a_second_twin_cannot_take_the_port(
    world: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_in_background(world.artifacts, None, fast_path=True, process=True, workers=2)
    try:
        assert server.pid is not None
        assert len(worker_pids(server.pid)) == 2
        kill_one_worker_and_wait_for_its_replacement(server.pid, 30)
        deadline = time.monotonic() + 30
        # The other worker may be the only listener while the new one loads the Lambda: wait for one.
        while not ready(server.host, server.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        for _ in range(4):  # new connections each time: whichever worker takes them answers
            doc = _recommend(server.url)
            assert (doc["servingPath"], doc["modelVersion"], len(doc["items"])) == ("fast_path", "v1", 3)

        argv = ["serve", "api", "--artifacts", str(world.artifacts), "--fast-path"]
        assert main([*argv, "--port", str(server.port)]) == 2
        assert f"--port {server.port}: cannot listen there" in capsys.readouterr().err
    finally:
        server.stop()
    assert server.exit_code == 0  # SIGTERM: a graceful stop, not a kill


def test_api_workers_exit_when_the_supervisor_is_killed(world: Any) -> None:
    server = start_in_background(world.artifacts, None, fast_path=True, process=True, workers=2)
    try:
        assert server.pid is not None
        workers = worker_pids(server.pid)
        assert len(workers) == 2
        os.kill(server.pid, signal.SIGKILL)  # no chance to stop its workers
        deadline = time.monotonic() + 20
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        orphans = [p for p in workers if alive(p)]
        for p in orphans:
            os.kill(p, signal.SIGKILL)
        assert not orphans, f"workers {orphans} outlived their supervisor"
    finally:
        server.stop()
