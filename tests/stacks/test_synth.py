"""Offline synthesis of both stages: stacks, cdk-nag report, cfn-lint, and the staged code assets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cdk import REPO, Assembly

STACKS = ("Storage", "Pipeline", "Serving", "Api")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_stack_is_synthesized(assemblies: dict[str, Assembly], stage: str) -> None:
    prefix = f"Fmrec{stage.capitalize()}"
    assert sorted(assemblies[stage].templates) == sorted(prefix + name for name in STACKS)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cdk_nag_reports_no_unacknowledged_finding(assemblies: dict[str, Assembly], stage: str) -> None:
    # The app attaches AwsSolutionsChecks; an unacknowledged finding fails the synth and lands here too.
    report = json.loads((assemblies[stage].outdir / "validation-report.json").read_text())
    violations = [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])]
    assert violations == []


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_cfn_lint_finds_no_error(assemblies: dict[str, Assembly], stage: str) -> None:
    files = sorted(str(p) for p in assemblies[stage].outdir.glob("*.template.json"))
    assert len(files) == len(STACKS)
    run = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), "--format", "json", *files],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(run.stdout or "[]")
    errors = [f"{f['Filename']}: {f['Rule']['Id']} {f['Message']}" for f in findings if f["Level"] == "Error"]
    assert errors == [], "\n".join(errors)
    # Warnings are allowed, but only the known W3005 that CDK's Function emits (DependsOn its own role).
    assert {f["Rule"]["Id"] for f in findings} <= {"W3005"}


def _asset_dir(assembly: Assembly, stack: str, marker: str) -> Path:
    """The cdk.out folder of the asset of `stack` that contains the file `marker`."""
    manifest = json.loads((assembly.outdir / f"{stack}.assets.json").read_text())
    for asset in manifest["files"].values():
        path = assembly.outdir / asset["source"]["path"]
        if path.is_dir() and (path / marker).is_file():
            return path
    raise AssertionError(f"no asset of {stack} holds {marker}")


def _import_from(folder: Path, modules: list[str]) -> list[str]:
    """Import modules with `folder` first on sys.path, in a fresh interpreter; returns their files."""
    code = (
        "import importlib, json, sys\n"
        f"sys.path.insert(0, {str(folder)!r})\n"
        f"mods = [importlib.import_module(m) for m in {modules!r}]\n"
        "print(json.dumps([m.__file__ for m in mods] + [sys.modules['fmrec'].__file__]))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return list(json.loads(run.stdout.strip().splitlines()[-1]))


def test_the_recommend_asset_is_self_contained(dev: Assembly) -> None:
    asset = _asset_dir(dev, "FmrecDevApi", "lambdas/recommend/app.py")
    files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
    # docs/api.md's list of what the Lambda needs ...
    assert {
        "lambdas/__init__.py",
        "lambdas/recommend/__init__.py",
        "lambdas/recommend/app.py",
        "lambdas/recommend/service.py",
        "lambdas/recommend/bundle.py",
        "lambdas/recommend/endpoint.py",
        "lambdas/recommend/errors.py",
        "lambdas/recommend/fast_path.py",
        "lambdas/recommend/queries.py",
        "lambdas/recommend/store.py",
        "lambdas/recommend/versions.py",
        "lambdas/recommend/params.py",
        "lambdas/recommend/openapi.json",
        "fmrec/__init__.py",
        "fmrec/errors.py",
        "fmrec/serving/__init__.py",
        "fmrec/serving/artifacts.py",
        "fmrec/serving/lookup.py",
        "fmrec/serving/requests.py",
        "fmrec/features/columns.py",
    } <= files
    # ... and nothing but Python sources and the OpenAPI document: no caches, tests or data.
    assert all(f.endswith(".py") or f == "lambdas/recommend/openapi.json" for f in files), files
    assert not any(f.startswith(("tests/", "twins/", "pipeline/")) for f in files)
    loaded = _import_from(asset, ["lambdas.recommend.app", "fmrec.serving.lookup", "fmrec.serving.requests"])
    assert all(path.startswith(str(asset)) for path in loaded), loaded


def test_the_processing_code_tree_is_self_contained(dev: Assembly) -> None:
    asset = _asset_dir(dev, "FmrecDevPipeline", "pipeline/steps/preprocess.py")
    for step in ("preprocess", "evaluate"):
        assert (asset / "pipeline" / "steps" / f"{step}.py").is_file()
    loaded = _import_from(asset, ["pipeline.steps.preprocess", "pipeline.steps.evaluate"])
    assert all(path.startswith(str(asset)) for path in loaded), loaded


def test_the_deployer_asset_is_its_folder_and_the_artifact_contract(dev: Assembly) -> None:
    asset = _asset_dir(dev, "FmrecDevServing", "handler.py")
    files = {p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file()}
    jobs = ("endpoint", "publish", "registry_group", "settings")  # the deployer's jobs (issue 25 item 3)
    assert files == {
        "handler.py",
        "lambdas/__init__.py",
        "lambdas/deployer/__init__.py",
        *(f"lambdas/deployer/{job}.py" for job in jobs),
        "fmrec/__init__.py",
        "fmrec/errors.py",
        "fmrec/serving/__init__.py",
        "fmrec/serving/artifacts.py",
    }
    assert (asset / "handler.py").read_bytes() == (REPO / "lambdas" / "deployer" / "handler.py").read_bytes()
    loaded = _import_from(asset, ["handler", *(f"lambdas.deployer.{job}" for job in jobs)])
    assert all(path.startswith(str(asset)) for path in loaded), loaded
