"""The CDK runs on a supported Node.js LTS that the project installs from the npm registry (issue 24 item 5):
Node 20 printed an end-of-life banner on every synth, even with --quiet."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.cdk import NODE, REPO, SYNTHS, Assembly

# The releases jsii 1.142 supports (its banner lists ^24.0.0 and ^22.0.0); both are LTS lines.
SUPPORTED_MAJORS = (22, 24)


def _pinned_major() -> int:
    pinned = json.loads((REPO / "package.json").read_text(encoding="utf-8"))["devDependencies"]["node"]
    return int(pinned.split(".")[0])


def test_package_json_pins_a_supported_node() -> None:
    assert _pinned_major() in SUPPORTED_MAJORS


def test_the_installed_node_is_the_pinned_one() -> None:
    if not NODE.exists():
        pytest.fail(f"{NODE} is missing: run `make setup` (npm ci installs Node.js from package.json)")
    version = subprocess.run([str(NODE), "--version"], capture_output=True, text=True, check=True).stdout
    assert int(version.strip().lstrip("v").split(".")[0]) == _pinned_major(), version


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_a_synth_prints_no_end_of_life_banner(assemblies: dict[str, Assembly], stage: str) -> None:
    """dev by `python app.py`, prod by `npx cdk synth --quiet`; the machine's PATH after the project's."""
    output = assemblies[stage].output
    assert "end-of-life" not in output and "not supported anymore" not in output, (
        SYNTHS[stage].describe(),
        output[-2000:],
    )


def test_regenerating_the_pin_runs_on_the_projects_node() -> None:
    """`python -m tests.stacks.test_logical_ids` outside make (the machine's PATH, no silencing variable):
    importing it starts jsii's Node, which must be the project's."""
    project_bin = str(NODE.parent)
    env = {k: v for k, v in os.environ.items() if k != "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != project_bin)
    done = subprocess.run(
        [sys.executable, "-c", "import tests.stacks.test_logical_ids"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    assert "end-of-life" not in output and "not supported anymore" not in output, output[-2000:]
