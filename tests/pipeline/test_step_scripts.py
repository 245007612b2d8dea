"""Every step script's `__main__` is one helper: the container's arguments reach main; a failure, one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fmrec.errors import InputError
from pipeline.steps.script import call_main
from twins.pipeline.entry_points import STEP_ENTRY_POINTS

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", sorted(STEP_ENTRY_POINTS))
def test_each_script_main_block_is_the_shared_helper(script: str) -> None:
    text = (REPO / script).read_text(encoding="utf-8")
    name = Path(script).stem
    main_block = text.split('if __name__ == "__main__":')[-1]
    # the shared helper, given at most a `prepare` of the container's arguments (preprocess: its user shard)
    assert re.fullmatch(rf'\s*run_as_script\(\s*"{name}", main(, [^\n]+)?\s*\)\s*', main_block), script
    assert "/opt/ml" not in text.split('if __name__ == "__main__":')[0], f"{script}: /opt/ml outside __main__"


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(STEP_ENTRY_POINTS))
def test_a_bad_argument_in_a_container_is_one_error_line_and_exit_2(script: str) -> None:
    # As SageMaker runs it: python3 <code>/pipeline/steps/<name>.py ARGS, PYTHONPATH=<code>.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / script), "--no-such-flag"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert ": error: " in proc.stderr.strip().splitlines()[-1], proc.stderr  # argparse's or run_as_script's


def test_call_main_passes_arguments_only_to_a_main_that_takes_them(tmp_path: Path) -> None:
    seen: list[object] = []
    call_main(lambda base, argv: seen.append((base, argv)), tmp_path, ["--k", "3"], "a.py")
    call_main(lambda base: seen.append(base), tmp_path, [], "b.py")
    assert seen == [(tmp_path, ["--k", "3"]), tmp_path]
    with pytest.raises(InputError, match=r"b.py takes no arguments, got \['--k'\]"):
        call_main(lambda base: None, tmp_path, ["--k"], "b.py")
