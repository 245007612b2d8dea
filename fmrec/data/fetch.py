"""MovieLens download from GroupLens: checksum-verified against the published .md5, cached, with progress."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from fmrec.errors import FmrecError, InputError, OutputError
from fmrec.io_utils import atomic_dir

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
BASE_URL_ENV = "FMREC_MOVIELENS_URL"
CACHE_ENV = "FMREC_CACHE"
DATASETS = ("ml-100k", "ml-1m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest")
_MD5 = re.compile(rb"\b([0-9a-fA-F]{32})\b")
_CHUNK = 1 << 20


class NetworkError(FmrecError):
    """GroupLens (or the configured mirror) cannot be reached."""


def default_cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env) / "movielens"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fmrec" / "movielens"


def _base_url(base_url: str | None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV) or BASE_URL
    return url if url.endswith("/") else url + "/"


def _open(url: str, timeout: float) -> Any:
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise InputError(f"{url}: HTTP {exc.code} {exc.reason}; is the dataset name right?") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise NetworkError(
            f"{url}: cannot reach the server ({reason}). No network? Copy the dataset folder here and use "
            f"`fmrec preprocess --data-dir DIR`, or make one with `fmrec data synth --out DIR`."
        ) from None


def published_md5(url: str, timeout: float) -> str:
    """The checksum GroupLens publishes next to each zip (`<zip>.md5`), in either md5sum or BSD format."""
    with _open(url + ".md5", timeout) as resp:
        text = resp.read(4096)
    match = _MD5.search(text)
    if not match:
        raise InputError(f"{url}.md5: no MD5 checksum in {text[:80]!r}")
    return match.group(1).decode().lower()


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int | None, enabled: bool) -> Callable[[int], None]:
    if not enabled:
        return lambda n: None
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, leave=False)
    return bar.update


def download(url: str, target: Path, expected_md5: str, timeout: float, progress: bool) -> None:
    """Stream `url` into `target` (atomically), checking the MD5 as the bytes arrive."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, _open(url, timeout) as resp:
            length = resp.headers.get("Content-Length")
            update = _progress(int(length) if length and length.isdigit() else None, progress)
            try:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(block)
                    digest.update(block)
                    update(len(block))
            except (TimeoutError, ConnectionError, OSError) as exc:
                raise NetworkError(f"{url}: download interrupted ({exc})") from None
        got = digest.hexdigest()
        if got != expected_md5:
            raise InputError(
                f"{url}: MD5 {got} does not match the published {expected_md5}; download discarded"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _extract(zip_path: Path, name: str, out: Path) -> Path:
    """Unzip the archive's top folder `name/` into out/name atomically, refusing paths that escape it."""
    target = out / name
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise InputError(f"{zip_path}: not a zip archive; remove it from the cache and fetch again") from None
    with archive, atomic_dir(target) as tmp:
        for info in archive.infolist():
            parts = Path(info.filename).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts:
                raise InputError(f"{zip_path}: member {info.filename!r} would be written outside {target}")
        archive.extractall(tmp)
        inner = tmp / name
        if inner.is_dir():  # GroupLens zips hold one folder named like the dataset: flatten it
            for child in inner.iterdir():
                shutil.move(str(child), tmp / child.name)
            inner.rmdir()
    return target


def fetch(
    name: str,
    out: str | Path,
    *,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
    timeout: float = 10.0,
    progress: bool = True,
) -> Path:
    """Download (or reuse from the cache) MovieLens `name`, verify it and unzip it to out/name."""
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    url = _base_url(base_url) + f"{name}.zip"
    if not url.startswith(("http://", "https://")):
        raise InputError(f"{url}: only http:// and https:// URLs are supported")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    zip_path, md5_path = cache / f"{name}.zip", cache / f"{name}.zip.md5"
    target = Path(out) / name
    if target.exists():
        raise OutputError(f"{target}: already exists; choose a new --out or remove it first")
    cached = zip_path.exists() and md5_path.exists() and _md5_of(zip_path) == md5_path.read_text().strip()
    if not cached:
        expected = published_md5(url, timeout)
        try:
            download(url, zip_path, expected, timeout, progress)
            md5_path.write_text(expected + "\n")
        except OSError as exc:
            raise OutputError(f"{cache}: cannot write the download cache ({exc.strerror or exc})") from None
    return _extract(zip_path, name, Path(out))
