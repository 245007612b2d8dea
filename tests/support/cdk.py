"""The one CDK synth harness of the tests: offline `cdk synth` runs side by side, in-process builds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

import app as cdk_app
from stacks.api import ApiStack, stage_recommend_asset
from stacks.config import NUMPY_LAYER_KEY, StageConfig

REPO = Path(__file__).resolve().parents[2]
CDK_CLI = REPO / "node_modules" / ".bin" / "cdk"
NODE = REPO / "node_modules" / ".bin" / "node"  # Node.js LTS from the npm registry (package.json)
SYNTH_TIMEOUT = 420  # seconds; a synth takes 20-60 s on the shared 2 cores
# A numpy layer version other than cdk.json's, given on the command line by the "numpy-override" synth.
OTHER_NUMPY_LAYER = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python313:4"


@dataclass
class Assembly:
    """A synthesized cloud assembly: its folder, templates by stack name and the command's output."""

    outdir: Path
    templates: dict[str, dict[str, Any]]
    output: str = ""

    @classmethod
    def read(cls, outdir: Path, output: str = "") -> Assembly:
        templates = {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in sorted(outdir.glob("*.template.json"))
        }
        return cls(outdir, templates, output)

    def stack(self, suffix: str) -> dict[str, Any]:
        matches = [t for name, t in self.templates.items() if name.endswith(suffix)]
        assert len(matches) == 1, f"expected one stack ending in {suffix}, got {sorted(self.templates)}"
        return matches[0]

    def resources(self, suffix: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.stack(suffix)["Resources"].items() if v["Type"] == kind}


# --- synths in a subprocess, as a user runs them, with no AWS credentials and no network ------------------
@dataclass(frozen=True)
class SynthCommand:
    """One offline synth: `python app.py` (cdk.json's context only) or the npm CLI's `cdk synth` with the
    given -c context, written to <root>/<name>."""

    name: str
    cli_context: Mapping[str, str] | None = None  # None: `python app.py`, else `cdk synth -c k=v ...`
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def argv(self, outdir: Path) -> list[str]:
        if self.cli_context is None:
            return [sys.executable, "app.py"]
        context = [arg for key, value in self.cli_context.items() for arg in ("-c", f"{key}={value}")]
        return [str(CDK_CLI), "synth", "--quiet", "--no-notices", *context, "-o", str(outdir)]

    def env(self, outdir: Path) -> dict[str, str]:
        # `python app.py` has no -o: CDK_OUTDIR is how the CLI tells an app where to write.
        return {**self.extra_env, **({"CDK_OUTDIR": str(outdir)} if self.cli_context is None else {})}

    def describe(self) -> str:
        if self.cli_context is None:
            return "python app.py"
        return "cdk synth " + " ".join(f"-c {k}={v}" for k, v in self.cli_context.items())


# The synths the CDK tests share: dev by `python app.py`, prod by the npm CLI, and a -c override of the
# numpy layer by the npm CLI (test_numpy_layer.py).
SYNTHS = {
    command.name: command
    for command in (
        SynthCommand("dev"),
        SynthCommand("prod", {"fmrec:stage": "prod"}),
        SynthCommand("numpy-override", {NUMPY_LAYER_KEY: OTHER_NUMPY_LAYER}),
    )
}


def offline_env(home: Path) -> dict[str, str]:
    """The environment of a synth with no AWS credentials or profile at all (not even tests' fake ones)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and not k.startswith("CDK_")}
    env.update(
        HOME=str(home),  # an empty home: no ~/.aws either
        # The project's Node.js (package.json) first, as npx and make put it: no end-of-life banner.
        PATH=os.pathsep.join([str(NODE.parent), env.get("PATH", "")]),
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


def synth_side_by_side(commands: list[SynthCommand], root: Path) -> dict[str, Assembly]:
    """Start every synth at once (each with its own empty home), then wait for each: the assemblies by name.
    A synth that fails or times out fails the calling test or fixture with the end of its output."""
    if any(c.cli_context is not None for c in commands) and not CDK_CLI.exists():
        pytest.fail(f"{CDK_CLI} is missing: run `make setup` (npm ci installs the pinned aws-cdk CLI)")
    prefix = _no_network_prefix()
    running = []
    for command in commands:
        outdir, home = root / command.name, root / f"home-{command.name}"
        home.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [*prefix, *command.argv(outdir)],
            cwd=REPO,
            env={**offline_env(home), **command.env(outdir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running.append((command, outdir, proc))
    assemblies = {}
    for command, outdir, proc in running:
        try:
            output, _ = proc.communicate(timeout=SYNTH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"{command.describe()} timed out after {SYNTH_TIMEOUT} s:\n{output[-4000:]}")
        if proc.returncode != 0:
            pytest.fail(f"{command.describe()} exited {proc.returncode}:\n{output[-6000:]}")
        assemblies[command.name] = Assembly.read(outdir, output)
    return assemblies


# --- in-process builds: one stack or the whole stage, with cdk.json's context -------------------------------
def cdk_json_context() -> dict[str, Any]:
    return cdk_app.cdk_json_context()


def new_app(outdir: Path, context: Mapping[str, Any] | None = None) -> cdk.App:
    """An app with cdk.json's context (updated with `context`), as `cdk synth` would give it, writing to
    outdir."""
    return cdk.App(context={**cdk_json_context(), **dict(context or {})}, outdir=str(outdir))


def build_stage(
    outdir: Path, context: Mapping[str, Any] | None = None, nag: bool = False
) -> cdk_app.FmrecApp:
    """app.py's build_app: every stack of a stage, not yet synthesized."""
    return cdk_app.build_app(context, outdir=str(outdir), nag=nag)


def stage_templates(built: cdk_app.FmrecApp) -> dict[str, dict[str, Any]]:
    """Stack name -> template of every stack of a built stage."""
    stacks = (built.storage, built.pipeline, built.serving, built.api)
    return {s.stack_name: dict(Template.from_stack(s).to_json()) for s in stacks}


def api_stack(app: cdk.App, construct_id: str, config: StageConfig, staging_root: Path) -> ApiStack:
    """The API stack of `config` alone, with the recommend asset staged under staging_root."""
    return ApiStack(
        app,
        construct_id,
        config=config,
        endpoint_name=config.endpoint_name,
        asset_dir=stage_recommend_asset(staging_root),
        env=cdk.Environment(region=config.region),
    )
