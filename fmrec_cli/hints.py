"""Commands printed for the user to type next, spelled so that they work as typed in this shell."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path


def fmrec_command(path_env: str | None = None, cwd: Path | None = None) -> str:
    """How to type `fmrec` here: plain `fmrec` when PATH finds this installation's, else the venv's script.

    `make demo` runs .venv/bin/fmrec without activating the venv, so a plain `fmrec` in a hint would fail
    with "command not found" (issue 24, item 1).
    """
    bin_dir = Path(sys.executable).parent
    script = bin_dir / "fmrec"
    found = shutil.which("fmrec", path=path_env if path_env is not None else os.environ.get("PATH"))
    if found is not None and Path(found).parent.absolute() == bin_dir.absolute():
        return "fmrec"
    if script.is_file():
        here = (cwd or Path.cwd()).absolute()
        try:
            return shlex.quote(str(script.absolute().relative_to(here)))
        except ValueError:
            return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m fmrec_cli"


def command(*words: object) -> str:
    """`fmrec WORDS...` as a shell command line that runs here."""
    return " ".join([fmrec_command(), *(shlex.quote(str(w)) for w in words)])
