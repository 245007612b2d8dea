"""Item 1 of issue 24: the commands the CLI prints, and the README's, work as typed without an active venv."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from fmrec_cli.hints import command, fmrec_command

ROOT = Path(__file__).resolve().parents[2]


def test_without_the_venv_on_path_the_hint_names_the_venv_script(tmp_path: Path) -> None:
    prefix = fmrec_command(path_env=str(tmp_path), cwd=ROOT)  # a PATH that holds no fmrec
    assert prefix != "fmrec"
    program = shlex.split(prefix)[0]
    resolved = Path(program) if Path(program).is_absolute() else ROOT / program
    assert resolved.is_file(), prefix
    # The printed command runs as typed from the repository root.
    done = subprocess.run(
        [*shlex.split(prefix), "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.startswith("fmrec "), done.stderr


def test_with_the_venv_on_path_the_hint_is_plain_fmrec() -> None:
    bin_dir = str(Path(sys.executable).parent)
    if not (Path(bin_dir) / "fmrec").is_file():
        return  # no console script in this interpreter's bin/ (not an installed checkout)
    assert fmrec_command(path_env=bin_dir) == "fmrec"
    assert shutil.which("fmrec", path=bin_dir) is not None


def test_command_quotes_its_words() -> None:
    line = command("recommend", "--api-url", "http://x/a b")
    assert shlex.split(line)[-1] == "http://x/a b"


def test_readme_says_how_to_put_fmrec_on_path_before_its_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    step = readme.index("## Step by step")
    activation = readme.find("source .venv/bin/activate")
    first_command = re.search(r"`fmrec [a-z]", readme[step:])
    assert first_command is not None
    assert 0 <= activation < step + first_command.start(), "README: activate the venv before `fmrec ...`"
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    demo_recipe = makefile[makefile.index("\ndemo:") :].split("\n\n")[0]
    assert "activate" in demo_recipe, "make demo: say how to put fmrec on PATH"
