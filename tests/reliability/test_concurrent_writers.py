"""Concurrent writers of one output name, and what writers killed by kill -9 leave behind (items 3, 12)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fmrec.errors import OutputError
from fmrec.io_utils import OutputExistsError, atomic_dir

pytestmark = pytest.mark.slow


def fmrec(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fmrec_cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- atomic_dir: claiming a name ---------------------------------------------------------------------------


def test_a_second_writer_of_a_name_being_written_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as first:
        (first / "a.txt").write_text("first")
        busy = r"out: another process \(pid \d+\) is writing it"
        with pytest.raises(OutputExistsError, match=busy), atomic_dir(target) as second:
            (second / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "first"  # the winner's output, whole
    assert hidden(tmp_path) == []


def test_a_writer_never_replaces_an_output_that_appeared_during_its_build(tmp_path: Path) -> None:
    """Something that does not take the lock (a user's mkdir) creates the name mid-build: refused, kept."""
    target = tmp_path / "out"
    with pytest.raises(OutputExistsError, match="already exists"), atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("mine")
        target.mkdir()
        (target / "theirs.txt").write_text("theirs")
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert hidden(tmp_path) == []


def test_two_concurrent_preprocess_runs_one_wins(trained: Any, tmp_path: Path) -> None:
    """Real processes started together: exactly one exits 0 and owns the output, the other exits 2."""
    out = tmp_path / "prep"
    procs = [
        fmrec("preprocess", "--data-dir", str(trained.data_dir), "--out", str(out), "--seed", str(seed))
        for seed in (1, 2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results  # [0, 0] was one output silently lost
    loser = next(err for rc, err in results if rc == 2)
    assert str(out) in loser and "Traceback" not in loser
    assert "already exists" in loser or "another process" in loser, loser
    winner_seed = 1 + [rc for rc, _ in results].index(0)
    manifest = json.loads((out / "manifest" / "manifest.json").read_text())
    assert manifest["config"]["seed"] == winner_seed
    assert hidden(tmp_path) == []


# --- leftovers of killed writers (item 12) ------------------------------------------------------------------


def _writer_killed_mid_build(target: Path) -> str:
    """Kill -9 a process building `target` with atomic_dir, mid-build; return its temp folder's name."""
    code = (
        "import sys, time\n"
        "from fmrec.io_utils import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'big.bin').write_bytes(b'x' * 100000)\n"
        "    print(tmp.name, flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    name = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    return name


def test_temp_folders_of_a_killed_writer_are_removed_by_the_next_run(tmp_path: Path) -> None:
    target = tmp_path / "out"
    name = _writer_killed_mid_build(target)
    assert name.startswith(".out.") and (tmp_path / name).is_dir()
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("ok")
    assert not (tmp_path / name).exists()
    assert hidden(tmp_path) == []


def test_temp_folders_of_live_writers_and_other_names_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "out"
    live = tmp_path / f".out.pid{os.getpid()}.abc123.tmp"  # this process is alive
    other = tmp_path / ".out.json.x1y2.tmp"  # atomic_open's temp file pattern for another name
    dead_file = tmp_path / ".out.pid999999999.zz.tmp"  # not a folder: never touched
    live.mkdir()
    other.mkdir()
    dead_file.write_text("")
    with atomic_dir(target) as tmp:
        (tmp / "a.txt").write_text("ok")
    assert live.is_dir() and other.is_dir() and dead_file.is_file()


def test_a_leftover_old_folder_does_not_break_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "v1.txt").write_text("1")
    old = tmp_path / ".out.old"
    old.mkdir()
    (old / "junk.txt").write_text("from a killed run")
    with atomic_dir(target, replace=True) as tmp:
        (tmp / "v2.txt").write_text("2")
    assert [p.name for p in target.iterdir()] == ["v2.txt"]
    assert hidden(tmp_path) == []


def test_a_writer_killed_between_the_two_renames_loses_nothing(tmp_path: Path) -> None:
    """The previous output sits in .out.old and `out` is gone: the next run puts it back first."""
    target = tmp_path / "out"
    old = tmp_path / ".out.old"
    old.mkdir()
    (old / "v1.txt").write_text("1")
    with pytest.raises(OutputExistsError, match="already exists"), atomic_dir(target):
        pass
    assert (target / "v1.txt").read_text() == "1"
    assert hidden(tmp_path) == []


def test_preprocess_overwrite_after_kill_9(trained: Any, tmp_path: Path) -> None:
    """`fmrec preprocess --overwrite` killed mid-build, then run again: it succeeds, nothing is left over."""
    out = tmp_path / "prep"
    first = fmrec("preprocess", "--data-dir", str(trained.data_dir), "--out", str(out))
    assert first.wait(timeout=120) == 0
    proc = fmrec("preprocess", "--data-dir", str(trained.data_dir), "--out", str(out), "--overwrite")
    deadline = time.monotonic() + 60
    while not any(n.endswith(".tmp") for n in hidden(tmp_path)) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    (tmp_path / ".prep.old").mkdir(exist_ok=True)  # as if killed while removing the replaced output
    again = fmrec("preprocess", "--data-dir", str(trained.data_dir), "--out", str(out), "--overwrite")
    assert again.wait(timeout=120) == 0, again.stderr.read() if again.stderr else ""
    assert (out / "manifest" / "manifest.json").is_file()
    assert hidden(tmp_path) == []


def test_unwritable_lock_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "out"
    (tmp_path / ".out.lock").mkdir()  # a folder where the lock file goes
    with pytest.raises(OutputError, match=r"\.out\.lock: cannot create a lock file"), atomic_dir(target):
        pass
