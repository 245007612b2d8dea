"""`make test` (CI) and the pre-commit hooks run ruff check, ruff format --check and mypy on every source."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from tests.architecture.test_layout_doc import SOURCE_ROOTS

REPO = Path(__file__).resolve().parents[2]
CHECKS = ("ruff check", "ruff format --check", "mypy")


def make_target(makefile: str, target: str) -> str:
    """The recipe of one Makefile target (its tab-indented lines, continuation lines joined)."""
    match = re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n?)+)", makefile, re.MULTILINE)
    assert match, f"Makefile: no '{target}:' target"
    return match.group(1).replace("\\\n", " ")


def mypy_files(pyproject: str) -> set[str]:
    return {f.rstrip("/") for f in tomllib.loads(pyproject)["tool"]["mypy"]["files"]}


def python_sources(repo: Path) -> set[str]:
    """Top-level source folders and modules: the layout doc's source roots, benchmarks/, *.py at the root."""
    return {*SOURCE_ROOTS, "benchmarks", *(p.name for p in repo.glob("*.py"))}


def test_make_test_runs_every_check() -> None:
    recipe = make_target((REPO / "Makefile").read_text(), "test")
    for check in CHECKS:
        assert f"$(BIN)/{check}" in recipe, f"Makefile: `make test` does not run {check}"
    assert "pytest" in recipe


def test_mypy_covers_every_source_folder() -> None:
    missing = python_sources(REPO) - mypy_files((REPO / "pyproject.toml").read_text())
    assert not missing, f"pyproject.toml [tool.mypy] files leaves out {sorted(missing)}"


def test_mypy_coverage_check_can_fail() -> None:
    narrow = '[tool.mypy]\nfiles = ["fmrec", "fmrec_cli", "twins", "lambdas/recommend", "pipeline/steps"]\n'
    assert {"stacks", "app.py", "pipeline", "lambdas"} <= python_sources(REPO) - mypy_files(narrow)


def test_pre_commit_runs_the_same_pinned_tools() -> None:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert hooks["ruff-check"]["entry"].startswith(".venv/bin/ruff check")
    assert hooks["ruff-format"]["entry"].startswith(".venv/bin/ruff format --check")
    assert hooks["mypy"]["entry"] == ".venv/bin/mypy"
    assert hooks["mypy"]["pass_filenames"] is False  # pyproject's file list, not only the staged files
    pins = (REPO / "requirements-dev.txt").read_text()
    for tool in ("ruff", "mypy", "pre-commit"):
        assert re.search(rf"^{tool}==\d", pins, re.MULTILINE), f"requirements-dev.txt: {tool} is not pinned"
    for repo in config["repos"]:  # a remote hook repository would need the network and float apart from CI
        assert repo["repo"] == "local" or "rev" in repo, f"{repo['repo']}: a remote hook repo with no rev"
