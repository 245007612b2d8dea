"""twins.supervisor (under both twins' serve): the port check, and giving up on workers that keep dying."""

from __future__ import annotations

import functools
import logging
import signal
import socket
import sys

import pytest

from fmrec.errors import FmrecError, InputError
from twins.http_limits import Limits
from twins.supervisor import RESTARTS_PER_WORKER, Worker, claim_port, supervise

LIMITS = Limits(max_connections=4, max_head_bytes=1024, request_timeout=5.0)


def test_claim_port_refuses_a_port_where_a_socket_listens_and_frees_it_again() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(InputError, match=f"--port {port}: cannot listen there"):
            claim_port("127.0.0.1", port)
    assert claim_port("127.0.0.1", port) == port  # nothing listens any more; the probe itself does not stay
    assert claim_port("127.0.0.1", 0) > 0


@pytest.mark.slow
def test_workers_that_keep_dying_stop_the_supervisor(caplog: pytest.LogCaptureFixture) -> None:
    port = claim_port("127.0.0.1", 0)
    # A worker whose app factory exits at once: as a worker whose model cannot load.
    worker = Worker("test twin", functools.partial(sys.exit, 3), "127.0.0.1", port, LIMITS)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with (
        caplog.at_level(logging.WARNING, logger="twins.supervisor"),
        pytest.raises(FmrecError, match=r"test twin workers keep dying \(last exit code 3\); stopping"),
    ):
        supervise(worker, 1)
    restarts = [r for r in caplog.records if "exited with 3; starting a new one" in r.getMessage()]
    assert len(restarts) == RESTARTS_PER_WORKER  # replaced twice, then given up on
    assert {sig: signal.getsignal(sig) for sig in before} == before  # its signal handlers are undone
