"""What the supervisor's worker processes look like from /proc: their ids, and whether one still runs."""

from __future__ import annotations

from pathlib import Path


def worker_pids(parent: int) -> set[int]:
    """The multiprocessing workers among `parent`'s children (not its resource tracker)."""
    pids = set()
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
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
