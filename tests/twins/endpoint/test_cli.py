"""`fmrec serve endpoint`: argument checks, and the real multi-worker server in a child process."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import orjson
import pytest

from fmrec.errors import InputError
from fmrec_cli.main import build_parser, main
from tests.support.model_files import make_model_tar
from tests.support.processes import alive, kill_one_worker_and_wait_for_its_replacement, worker_pids
from twins.endpoint.server import build_specs, default_workers, ping, start_in_background

pytestmark = pytest.mark.slow


def test_serve_endpoint_is_registered_with_its_options() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "endpoint",
            "--model",
            "m.tar.gz",
            "--name",
            "a",
            "--name",
            "b",
            "--variant",
            "V2",
            "--port",
            "9",
        ]
    )
    assert args.model == ["m.tar.gz"] and args.name == ["a", "b"] and args.variant == ["V2"]
    assert args.port == 9 and args.workers is None and args.host == "127.0.0.1"


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.tar.gz"
    assert main(["serve", "endpoint", "--model", str(missing), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such file" in err


def test_corrupt_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "model.tar.gz"
    bad.write_bytes(b"not a tarball")
    assert main(["serve", "endpoint", "--model", str(bad), "--port", "0"]) == 2
    assert str(bad) in capsys.readouterr().err


def test_names_models_and_variants_pair_up(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    specs = build_specs([a], ["one", "two"], ["V1", "V2"])
    assert [(s.name, s.model_path, s.variant) for s in specs] == [("one", a, "V1"), ("two", a, "V2")]
    specs = build_specs([a, b], ["one", "two"], [])
    assert [(s.model_path, s.variant) for s in specs] == [(a, "AllTraffic"), (b, "AllTraffic")]
    assert build_specs([a], [], [])[0].name == "fmrec-endpoint"
    with pytest.raises(InputError, match="--model given 2 times for 3 --name"):
        build_specs([a, b], ["x", "y", "z"], [])
    with pytest.raises(InputError, match="unique"):
        build_specs([a], ["x", "x"], [])
    for bad_name in ("", "a/b", "-lead", "x" * 64, "under_score"):
        with pytest.raises(InputError, match="--name"):
            build_specs([a], [bad_name], [])
    with pytest.raises(InputError, match="--variant 'v 1'"):
        build_specs([a], ["x"], ["v 1"])
    assert build_specs([a], ["a-b--c9"], ["Variant-2"])[0].variant == "Variant-2"
    with pytest.raises(InputError, match="--variant given 2 times"):
        build_specs([a], ["x"], ["V1", "V2"])


def test_default_workers_is_the_usable_cores() -> None:
    assert default_workers() >= 1


def test_multi_worker_child_process_serves_and_shuts_down_cleanly(tmp_path: Path) -> None:
    model = make_model_tar(tmp_path / "model.tar.gz", "binary_classifier", 5, 20)
    server = start_in_background(model, process=True, workers=2, name="prod", variant="v7")
    try:
        body = orjson.dumps(
            {"instances": [{"data": {"features": {"keys": [1, 15], "shape": [20], "values": [1, 1]}}}]}
        )
        client = boto3.client("sagemaker-runtime", endpoint_url=server.url)
        for _ in range(4):  # several connections, so more than one worker answers
            resp = client.invoke_endpoint(EndpointName="prod", Body=body, ContentType="application/json")
            assert resp["InvokedProductionVariant"] == "v7"
            score = orjson.loads(resp["Body"].read())["predictions"][0]["score"]
            assert 0.0 < score < 1.0 and np.isfinite(score)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        conn.request("GET", "/ping")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()
    assert server.exit_code == 0  # SIGTERM: graceful shutdown, not a kill


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    model = make_model_tar(tmp_path / "model.tar.gz", "regressor", 6, 20)
    server = start_in_background(model, process=True, workers=2)
    body = orjson.dumps({"instances": [{"features": [1.0] * 20}]})
    head = (
        "POST /invocations HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=20) as sock:
        sock.sendall(head.encode() + body[:10])
        time.sleep(0.3)  # the worker has the headers: the request is in flight
        stopper = threading.Thread(target=server.stop)
        stopper.start()
        time.sleep(0.5)  # SIGTERM delivered while the body is still incomplete
        sock.sendall(body[10:])
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    stopper.join(30)
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", response[:300]
    # The response says the connection closes: the worker was already shutting down when it answered.
    assert b"connection: close" in rest.lower()
    assert b'"predictions":[{"score":' in rest
    assert server.exit_code == 0


def test_a_killed_worker_is_replaced_and_a_second_twin_cannot_take_the_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = make_model_tar(tmp_path / "model.tar.gz", "binary_classifier", 8, 20)
    with start_in_background(model, process=True, workers=2) as server:
        assert server.pid is not None
        assert len(worker_pids(server.pid)) == 2
        kill_one_worker_and_wait_for_its_replacement(server.pid, 20)
        deadline = time.monotonic() + 20
        # The twin answered /ping once one worker listened; on a loaded machine the other may still be loading
        # its model, and the victim may have been the only one listening: wait for a listener.
        while not ping(server.host, server.port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ping(server.host, server.port)

        assert main(["serve", "endpoint", "--model", str(model), "--port", str(server.port)]) == 2
        assert f"--port {server.port}: cannot listen there" in capsys.readouterr().err


def test_workers_exit_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    model = make_model_tar(tmp_path / "model.tar.gz", "binary_classifier", 8, 20)
    server = start_in_background(model, process=True, workers=2)
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
        # and the port is free again at once
        with start_in_background(model, process=True, workers=1, port=server.port) as again:
            conn = http.client.HTTPConnection(again.host, again.port, timeout=10)
            conn.request("GET", "/ping")
            assert conn.getresponse().status == 200
            conn.close()
    finally:
        server.stop()


def test_a_restart_on_the_same_port_after_a_graceful_stop_works_at_once(tmp_path: Path) -> None:
    model = make_model_tar(tmp_path / "model.tar.gz", "regressor", 9, 20)
    first = start_in_background(model, process=True, workers=1)
    conn = http.client.HTTPConnection(first.host, first.port, timeout=10)
    conn.request(
        "GET", "/ping"
    )  # a keep-alive connection the server closes on shutdown: TIME_WAIT on its side
    assert conn.getresponse().status == 200
    first.stop()
    conn.close()
    assert first.exit_code == 0
    with start_in_background(model, process=True, workers=1, port=first.port, startup_timeout=20) as second:
        conn = http.client.HTTPConnection(second.host, second.port, timeout=10)
        conn.request("GET", "/ping")
        assert conn.getresponse().status == 200
        conn.close()
