"""What the supervisor's worker processes look like from /proc: their ids, and whether one still runs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path


def worker_pids(parent: int) -> set[int]:
    """The multiprocessing workers among `parent`'s children (not its resource tracker)."""
    pids = set()
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:  # the child exited between the two reads (a killed worker being reaped)
            continue
        if b"multiprocessing.spawn" in cmdline and b"resource_tracker" not in cmdline:
            pids.add(int(child))
    return pids


def alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_one_worker_and_wait_for_its_replacement(supervisor: int, timeout: float) -> None:
    """SIGKILL the lowest-numbered worker of `supervisor` and wait until a new one takes its place."""
    workers = worker_pids(supervisor)
    assert len(workers) >= 2, f"expected several workers, found {sorted(workers)}"
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = worker_pids(supervisor)
        if len(now) == len(workers) and victim not in now:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker {victim} was not replaced: {sorted(worker_pids(supervisor))}")
