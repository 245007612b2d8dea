"""CDK test fixtures: dev by `python app.py`, prod by the npm CLI's `cdk synth`, once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
SYNTH_TIMEOUT = 420  # seconds; a synth takes 20-60 s on the shared 2 cores


@dataclass
class Assembly:
    """A synthesized cloud assembly: its folder, templates by stack name and the command's output."""

    outdir: Path
    templates: dict[str, dict[str, Any]]
    output: str

    def stack(self, suffix: str) -> dict[str, Any]:
        matches = [t for name, t in self.templates.items() if name.endswith(suffix)]
        assert len(matches) == 1, f"expected one stack ending in {suffix}, got {sorted(self.templates)}"
        return matches[0]

    def resources(self, suffix: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.stack(suffix)["Resources"].items() if v["Type"] == kind}


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a synth with no AWS credentials or profile at all (not even tests' fake ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("CDK_")}
    env.update(
        HOME=str(home),  # an empty home: no ~/.aws either
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        SAGEMAKER_SUPPRESS_V2_WARNING="1",
        CDK_DISABLE_CLI_TELEMETRY="1",
    )
    return env


def _no_network_prefix() -> list[str]:
    """`unshare -n` (a network namespace with no interfaces) where the machine allows it, so that any network
    access during synth fails; [] where it does not (then only the absence of credentials is enforced)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    return [unshare, "-rn"] if probe.returncode == 0 else []


def _start(cmd: list[str], home: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    home.mkdir(parents=True, exist_ok=True)
    env = offline_env(home)
    env.update(extra_env or {})
    return subprocess.Popen(
        [*_no_network_prefix(), *cmd],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], outdir: Path, what: str) -> Assembly:
    try:
        output, _ = proc.communicate(timeout=SYNTH_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
        pytest.fail(f"{what} timed out after {SYNTH_TIMEOUT} s:\n{output[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{what} exited {proc.returncode}:\n{output[-6000:]}")
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in sorted(outdir.glob("*.template.json"))
    }
    return Assembly(outdir, templates, output)


@pytest.fixture(scope="session")
def assemblies(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Assembly]]:
    """dev by `python app.py` and prod by the npm CLI's `cdk synth`, run side by side."""
    if not CDK_CLI.exists():
        pytest.fail(f"{CDK_CLI} is missing: run `make setup` (npm ci installs the pinned aws-cdk CLI)")
    root = tmp_path_factory.mktemp("cdk")
    dev_out, prod_out = root / "dev", root / "prod"
    dev = _start([sys.executable, "app.py"], root / "home-dev", {"CDK_OUTDIR": str(dev_out)})
    prod = _start(
        [str(CDK_CLI), "synth", "--quiet", "--no-notices", "-c", "fmrec:stage=prod", "-o", str(prod_out)],
        root / "home-prod",
    )
    yield {
        "dev": _finish(dev, dev_out, "python app.py"),
        "prod": _finish(prod, prod_out, "cdk synth -c fmrec:stage=prod"),
    }


@pytest.fixture(scope="session")
def dev(assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies["dev"]


@pytest.fixture(scope="session")
def prod(assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies["prod"]


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    return dict(json.loads((REPO / "cdk.json").read_text())["context"])
