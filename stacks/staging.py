"""Builds asset folders at synth time, no Docker: entry files plus the fmrec modules they import."""

from __future__ import annotations

import ast
import hashlib
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from fmrec.errors import InputError

REPO_ROOT = Path(__file__).resolve().parent.parent
# The deployer Lambda (also the model package group's custom resource): handler.py at the asset's top.
DEPLOYER_DIR = REPO_ROOT / "lambdas" / "deployer"

# Packages of this repository that are shipped beside the entry code; anything else (numpy, powertools,
# boto3) comes from the runtime, a layer or the processing container.
LOCAL_PACKAGES = ("fmrec",)


class StagingError(InputError):
    """An asset's entry file or one of the local modules it imports is missing or unparsable."""


def _module_file(module: str, root: Path) -> Path | None:
    """The file that defines `module` under root (a package's __init__.py or a .py), or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, root: Path) -> set[str]:
    """Every absolute module name `path` imports (including `from pkg import mod` as pkg.mod)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError as exc:
        raise StagingError(f"{path}:{exc.lineno}: cannot parse: {exc.msg}") from exc
    found: set[str] = set()
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name == "__init__.py":
        package = package.rsplit(".", 1)[0] + ".__init__"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: -node.level]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def local_closure(
    entries: Iterable[Path], root: Path = REPO_ROOT, packages: Sequence[str] = LOCAL_PACKAGES
) -> list[Path]:
    """Files (relative to root) of the local-package modules the entries import, transitively, with the
    __init__.py of every package on the way so that the imports resolve."""
    todo = [Path(p) for p in entries]
    seen: set[Path] = set()
    needed: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in sorted(_imports(path, root)):
            if module.split(".")[0] not in packages:
                continue
            file = _module_file(module, root)
            if file is None:
                if "." in module and _module_file(module.rsplit(".", 1)[0], root) is not None:
                    continue  # `from pkg.mod import name`: `name` is an attribute, not a module
                raise StagingError(f"{path}: imports {module}, which is not in {root}")
            parts = module.split(".")
            for depth in range(1, len(parts) + 1):
                init = _module_file(".".join(parts[:depth]), root)
                if init is not None and init not in needed:
                    needed.add(init)
                    todo.append(init)
    return sorted(p.relative_to(root) for p in needed)


def stage(dest: Path, files: dict[str, Path]) -> Path:
    """Write exactly `files` (name in the asset → source file) into a fresh `dest`; returns dest.

    Only the listed files are copied (no __pycache__, no editor files), so the asset hash that CDK computes
    from the folder depends on the code alone.
    """
    for name, source in files.items():
        if not source.is_file():
            raise StagingError(f"asset {dest.name}: {name} expects the file {source}, which does not exist")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name, source in sorted(files.items()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    return dest


def stage_python(
    dest: Path,
    entry: dict[str, Path],
    root: Path = REPO_ROOT,
    packages: Sequence[str] = LOCAL_PACKAGES,
) -> Path:
    """Stage `entry` (name in the asset → source file) and the local modules it imports, at package paths."""
    files = dict(entry)
    py_entries = [p for p in entry.values() if p.suffix == ".py"]
    for missing in (p for p in entry.values() if not p.is_file()):
        raise StagingError(f"asset {dest.name}: the entry file {missing} does not exist")
    for rel in local_closure(py_entries, root, packages):
        files.setdefault(rel.as_posix(), root / rel)
    return stage(dest, files)


def folder_digest(folder: Path) -> str:
    """sha256 over the relative paths and bytes of every file in folder (sorted): a content address."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def stage_deployer(outdir: Path) -> Path:
    """lambdas/deployer/handler.py at the asset's top (handler.lambda_handler), and the modules of its jobs
    (lambdas/deployer/*) and of fmrec that it imports, at their package paths."""
    entry = {"handler.py": DEPLOYER_DIR / "handler.py"}
    return stage_python(outdir / "staging" / "deployer", entry, packages=(*LOCAL_PACKAGES, "lambdas"))
