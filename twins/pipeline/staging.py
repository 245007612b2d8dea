"""Stage step data in a local run by hard links, so a run holds each channel's bytes once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Hard-link `src` at `dst` (a copy across file systems); a copytree/copy2 `copy_function`.

    SageMaker downloads each input into the container, and the preprocess output, the "S3" copy, the training
    job's channel and the evaluation's input were four copies of the train channel (430 MB each at ml-25m's
    shape, issue 24). Steps write only new files and never modify an input in place, so a link is safe.
    """
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
    return str(dst)


def stage(src: Path, dest: Path, run_folder: Path, dirs_exist_ok: bool = False) -> None:
    """Copy file or folder `src` to `dest`, by hard links when `src` is inside the run's own folder.

    Data from outside the run (the user's MovieLens folder) is copied: the run keeps what it read even if the
    source is later edited in place.
    """
    inside = run_folder.resolve() in src.resolve().parents
    copy = link_or_copy if inside else shutil.copy2
    if src.is_dir():
        shutil.copytree(src, dest, copy_function=copy, dirs_exist_ok=dirs_exist_ok)
    else:
        copy(src, dest)
