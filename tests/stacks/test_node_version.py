"""The CDK runs on a supported Node.js LTS that the project installs from the npm registry (issue 24 item 5):
Node 20 printed an end-of-life banner on every synth, even with --quiet."""

from __future__ import annotations

import json
import subprocess

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
