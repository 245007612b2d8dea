"""atomic_open after kill -9, and the modes of atomic outputs (issue 23 items 9 and 12)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmrec.io_utils import atomic_dir, atomic_open, atomic_write_text


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _writer_killed_mid_write(target: Path) -> str:
    """Kill -9 a process writing `target` with atomic_open, mid-write; return its temporary file's name."""
    code = (
        "import pathlib, sys, time\n"
        "from fmrec.io_utils import atomic_open\n"
        "target = pathlib.Path(sys.argv[1])\n"
        "with atomic_open(target, 'w') as fh:\n"
        "    fh.write('x' * 100000)\n"
        "    fh.flush()\n"
        "    print(*[p.name for p in target.parent.glob('.*.tmp')], flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return name


def test_the_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path: Path) -> None:
    target = tmp_path / "recs.jsonl"
    name = _writer_killed_mid_write(target)
    assert name.startswith(".recs.jsonl.") and (tmp_path / name).is_file()
    atomic_write_text(target, "ok\n")
    assert target.read_text() == "ok\n"
    assert hidden(tmp_path) == []


def test_temporary_files_of_live_writers_and_of_other_names_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "recs.jsonl"
    live = tmp_path / f".recs.jsonl.pid{os.getpid()}.abc123.tmp"  # this process is alive
    other = tmp_path / ".recs.jsonl.gz.pid999999999.x1y2.tmp"  # another output's name
    dead_dir = tmp_path / ".recs.jsonl.pid999999999.zz.tmp"  # a folder: atomic_dir's, never touched here
    unnamed = tmp_path / ".recs.jsonl.q9w8.tmp"  # no pid in the name: not provably dead
    live.write_text("")
    other.write_text("")
    dead_dir.mkdir()
    unnamed.write_text("")
    atomic_write_text(target, "ok\n")
    assert live.is_file() and other.is_file() and dead_dir.is_dir() and unnamed.is_file()


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


def test_atomic_open_honours_the_umask(tmp_path: Path, umask_027: None) -> None:
    target = tmp_path / "out.txt"
    with atomic_open(target, "w") as fh:
        fh.write("x")
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o640


def test_atomic_dir_honours_the_umask(tmp_path: Path, umask_027: None) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("x")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o750
    assert stat.S_IMODE((target / "a.txt").stat().st_mode) == 0o640


def test_a_world_readable_umask_gives_world_readable_outputs(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "out.txt", "x")
        with atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
