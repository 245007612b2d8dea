"""Item 4 of issue 24: every ```bash and ```python block of README.md and docs/*.md runs as written.

A block that cannot run offline says so on the line above it: `<!-- docs-test: skip: REASON -->` (an AWS
account, the real MovieLens, a server that runs until Ctrl-C). The others run in order, each file's blocks in
one workspace laid out as the docs assume after `make demo` and the README's steps: `build/pre` (preprocess
output), `build/fm/model.tar.gz` (a trained model), `prep` and `fm` (the same, by the names of
docs/training.md), with `fmrec` on PATH. Every `fmrec` command line, skipped or not, must parse with the real
command-line parser.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fmrec_cli.main import build_parser

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!-- docs-test: skip: (?P<reason>[^>]+?) -->")
FENCE = re.compile(r"^```(?P<lang>bash|python)\s*$")
BLOCK_SECONDS = 300


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        skip = SKIP.search(before)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        out.append(Block(path, i + 1, match["lang"], code, skip["reason"] if skip else None))
        i = end + 1
    return out


ALL = [b for path in DOCS for b in blocks(path)]
RUNNABLE = [b for b in ALL if b.skip is None]


def fmrec_lines(code: str) -> list[list[str]]:
    """Each `fmrec ...` command of a bash block (continuations joined; `&&`, `;`, `&`, comments split off)."""
    commands = []
    for line in re.sub(r"\\\n", " ", code).splitlines():
        if "fmrec " not in line:
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("&;|()"):
                if words and words[0] in ("fmrec", ".venv/bin/fmrec"):
                    commands.append(words[1:])
                words = []
            else:
                words.append(token)
    return commands


def test_the_docs_have_runnable_blocks_and_every_skip_has_a_reason() -> None:
    assert sum(b.lang == "python" for b in RUNNABLE) >= 2
    assert sum(b.lang == "bash" for b in RUNNABLE) >= 3
    assert all(len(b.skip.split()) >= 3 for b in ALL if b.skip is not None)


@pytest.mark.parametrize("block", [b for b in ALL if b.lang == "bash"], ids=lambda b: b.name)
def test_every_fmrec_command_in_the_docs_parses(block: Block) -> None:
    parser = build_parser()
    for words in fmrec_lines(block.code):
        try:
            parser.parse_args(words)
        except SystemExit as exc:
            if exc.code != 0:  # --help and --version exit 0
                pytest.fail(f"{block.name}: `fmrec {shlex.join(words)}` does not parse")


@pytest.fixture(scope="module")
def workspaces(pre: Path, trained: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, Path]:
    """One workspace per document, laid out as the docs assume."""
    out = {}
    for path in DOCS:
        ws = tmp_path_factory.mktemp(path.stem)
        shutil.copytree(pre, ws / "build" / "pre")
        (ws / "build" / "fm").mkdir()
        shutil.copy2(trained, ws / "build" / "fm" / "model.tar.gz")
        (ws / "prep").symlink_to(ws / "build" / "pre")
        (ws / "fm").symlink_to(ws / "build" / "fm")
        (ws / ".venv").symlink_to(ROOT / ".venv")
        shim = ws / "shim" / "fmrec"  # `fmrec` runs this checkout's code, whatever the venv's script runs
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m fmrec_cli "$@"\n')
        shim.chmod(0o755)
        out[path] = ws
    return out


def _environment(ws: Path) -> dict[str, str]:
    # No AWS variables: a local example must work without credentials or a region in the environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PATH"] = f"{ws / 'shim'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.name)
def test_block_runs_as_written(block: Block, workspaces: dict[Path, Path]) -> None:
    ws = workspaces[block.path]
    command = ["bash", "-euo", "pipefail", "-c", block.code]
    if block.lang == "python":
        command = [sys.executable, "-c", block.code]
    done = subprocess.run(
        command, cwd=ws, env=_environment(ws), capture_output=True, text=True, timeout=BLOCK_SECONDS
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
