"""The batch-recommendations pipeline: one processing step, built offline, run by the local runner."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.validate import ParamValidator

from fmrec.model.artifact import load_model_tar
from fmrec.serving.batch import write_all_users
from pipeline.batch import BATCH_STEP, get_batch_pipeline
from pipeline.definition import CDK_ARGUMENTS
from tests.support.lambda_world import USERS, build_world
from twins.pipeline.runner import StepFailed, run_local
from twins.registry.registry import Registry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    def refuse(*args: Any, **_: Any) -> None:
        raise AssertionError(f"the definition build tried to open a network connection: {args}")

    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            mp.delenv(var, raising=False)
        mp.setattr(socket.socket, "connect", refuse)
        mp.setattr(socket, "create_connection", refuse)
        return get_batch_pipeline(region="us-east-1", **CDK_ARGUMENTS)


def test_one_processing_step_with_the_batch_script_and_parameters(definition: dict[str, Any]) -> None:
    (step,) = definition["Steps"]
    assert step["Name"] == BATCH_STEP and step["Type"] == "Processing"
    spec = step["Arguments"]["AppSpecification"]
    assert spec["ContainerEntrypoint"][-1].endswith("/pipeline/steps/batch_recommend.py")
    names = [p["Name"] for p in definition["Parameters"]]
    assert names == ["ModelDataUrl", "LookupUrl", "TopK", "ExcludeRated", "ProcessingInstanceType"]
    (out,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert "${ArtifactBucket}" in json.dumps(out["S3Output"]["S3Uri"])  # the CDK app's placeholder
    shape = botocore.session.get_session().get_service_model("sagemaker")
    input_shape = shape.operation_model("CreateProcessingJob").input_shape
    request = json.loads(
        json.dumps(step["Arguments"])
        .replace('{"Get": "Parameters.ProcessingInstanceType"}', '"ml.m5.xlarge"')
        .replace("${ArtifactBucket}", "bkt")
        .replace("${PipelineRoleArn}", "arn:aws:iam::123456789012:role/fmrec")
    )
    request["ProcessingJobName"] = "job"
    request["ProcessingInputs"] = [
        {**i, "S3Input": {**i["S3Input"], "S3Uri": "s3://bkt/x"}} for i in request["ProcessingInputs"]
    ]
    request["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] = "s3://bkt/out"
    request["AppSpecification"]["ContainerArguments"] = ["--k", "10", "--exclude-rated", "true"]
    report = ParamValidator().validate(request, input_shape)
    assert not report.has_errors(), report.generate_report()


def test_the_local_runner_writes_every_users_top_k(definition: dict[str, Any], tmp_path: Path) -> None:
    world = build_world(tmp_path / "world")
    model_dir = tmp_path / "approved"
    model_dir.mkdir()
    shutil.copy(world.model_path, model_dir / "model.tar.gz")
    result = run_local(
        definition,
        runs_root=tmp_path / "runs",
        registry=Registry(tmp_path / "registry"),
        overrides={
            "ModelDataUrl": str(model_dir / "model.tar.gz"),
            "LookupUrl": str(world.artifacts / "v1" / "lookup"),
            "TopK": "3",
        },
    )
    assert result.status == "Succeeded", result.failure_reason
    (out,) = (result.folder / "s3").rglob("recommendations.jsonl")
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["users"] == len(USERS) and summary["k"] == 3 and summary["exclude_rated"] is True
    expected = tmp_path / "expected.jsonl"
    write_all_users(expected, load_model_tar(world.model_path), world.lookup, 3)
    assert out.read_text() == expected.read_text()


def test_a_bad_k_fails_the_step_by_name(definition: dict[str, Any], tmp_path: Path) -> None:
    world = build_world(tmp_path / "world")
    with pytest.raises(StepFailed, match=r"--k 0: expected 1\.\.1000"):
        run_local(
            definition,
            runs_root=tmp_path / "runs",
            registry=Registry(tmp_path / "registry"),
            overrides={
                "ModelDataUrl": str(world.model_path),
                "LookupUrl": str(world.artifacts / "v1" / "lookup"),
                "TopK": "0",
            },
        )
    assert not list((tmp_path / "runs").rglob("recommendations.jsonl"))
