"""Atomic writes: every output appears whole under its final name or not at all."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from fmrec.errors import OutputError


def _prepare_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{path.parent}: cannot create output folder ({exc.strerror or exc})") from exc


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary sibling of `path` for writing; rename it over `path` only if the block succeeds.

    The temporary file is ".NAME.pidPID.RANDOM.tmp"; those of writers of `path` that died (kill -9) are
    removed first. The output gets the mode a plain open() would give it (0666 less the umask).
    """
    target = Path(path)
    _prepare_parent(target)
    _remove_dead_temps(target, want_dir=False)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{target.name}.pid{os.getpid()}.", suffix=".tmp", dir=target.parent
        )
    except OSError as exc:
        raise OutputError(f"{target}: cannot write here ({exc.strerror or exc})") from exc
    try:
        # mkstemp makes the file 0600 whatever the umask; the output must not be more private than open()'s
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise OutputError(f"{target}: write failed ({exc.strerror or exc})") from exc
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


class OutputExistsError(OutputError):
    """The output name is taken: it exists, or another live process is writing it right now."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return True
    return True


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str], *, wait: bool = False, what: str = "") -> Iterator[None]:
    """Hold an exclusive flock on the file `path` (created if need be, removed on exit).

    The kernel drops the lock when its holder dies (even by kill -9), so a lock is never stale. With
    wait=False a lock held by another process is an OutputExistsError naming `what` and the holder's pid.
    """
    lock = Path(path)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"{lock}: cannot create a lock file ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise OutputExistsError(
                f"{what or lock}: another process{f' (pid {holder})' if holder.isdigit() else ''} is "
                "writing it right now; wait for it to finish or choose another output"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The previous holder may have unlinked the file between our open and our flock: then this lock
        # guards a name nobody else sees, so start again on the current file.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding the lock, so no one else can hold this inode meanwhile
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (os.umask reads it only by setting it: threads race)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc (not Linux, or too old a kernel): the racy way
    os.umask(mask)
    return mask


_TMP_RE = r"^\.{name}\.pid(\d+)\.[^.]+\.tmp$"


def _remove_dead_temps(target: Path, *, want_dir: bool) -> None:
    """Remove the temporary files (or folders) of writers of `target` that died (kill -9, power loss).

    Only names made by atomic_open / atomic_dir (".NAME.pidPID.RANDOM.tmp") whose PID is no longer alive
    are touched, and only files for atomic_open, folders for atomic_dir.
    """
    pattern = re.compile(_TMP_RE.format(name=re.escape(target.name)))
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = pattern.match(entry.name)
            if not m or entry.is_dir(follow_symlinks=False) != want_dir or _pid_alive(int(m.group(1))):
                continue
            if want_dir:
                shutil.rmtree(entry.path, ignore_errors=True)
            elif entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def _recover(target: Path) -> None:
    """Clean up after writers of `target` that died (kill -9, power loss): their hidden temporary folders.

    Called under the target's lock, so no live atomic_dir writes `target`; the pid check is a second guard.
    """
    _remove_dead_temps(target, want_dir=True)
    # A writer that died while replacing `target` leaves the previous output as ".NAME.old": beside a new
    # `target` it is garbage; without one it is the only copy, so it goes back under its name.
    old = target.with_name(f".{target.name}.old")
    if old.is_dir() and not old.is_symlink():
        if target.exists() or target.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.replace(old, target)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`; it becomes `path` only if the block succeeds.

    With replace=False an existing `path` is an OutputExistsError, so a finished output is never
    overwritten. The name is claimed for the whole build by a lock file (".NAME.lock" beside it): of two
    concurrent writers of one name exactly one wins, the other gets an OutputExistsError at once.
    """
    target = Path(path)
    _prepare_parent(target)
    exists = f"{target}: already exists; choose a new output folder or remove it first"
    with exclusive_lock(target.with_name(f".{target.name}.lock"), what=str(target)):
        _recover(target)
        if target.exists() and not replace:
            raise OutputExistsError(exists)
        try:
            tmp = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.pid{os.getpid()}.", suffix=".tmp", dir=target.parent)
            )
        except OSError as exc:
            raise OutputError(f"{target}: cannot write here ({exc.strerror or exc})") from exc
        try:
            # mkdtemp makes the folder 0700 whatever the umask; the output gets the mode mkdir would give it
            os.chmod(tmp, 0o777 & ~_umask())
            yield tmp
            if target.exists() or target.is_symlink():
                if not replace:  # made meanwhile by something that does not take the lock
                    raise OutputExistsError(exists)
                old = target.with_name(f".{target.name}.old")
                os.replace(target, old)
                os.replace(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, target)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise OutputError(f"{target}: write failed ({exc.strerror or exc})") from exc
            raise
