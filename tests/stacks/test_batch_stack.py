"""The batch recommendation pipeline in the pipeline stack: resource, role, definition, how it is started."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from pipeline.batch import get_batch_pipeline
from tests.stacks.test_iam import render, statements
from tests.support.cdk import REPO, Assembly


@pytest.fixture(params=["dev", "prod"])
def assembly(request: pytest.FixtureRequest, assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies[request.param]


def _stage(assembly: Assembly) -> str:
    return "dev" if any(name.startswith("FmrecDev") for name in assembly.templates) else "prod"


def _batch(assembly: Assembly) -> tuple[str, dict[str, Any]]:
    name = f"fmrec-{_stage(assembly)}-batch-recommend"
    (found,) = [
        (lid, r)
        for lid, r in assembly.resources("Pipeline", "AWS::SageMaker::Pipeline").items()
        if r["Properties"]["PipelineName"] == name
    ]
    return found


def _substituted(resource: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    body, variables = resource["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    for name in variables:
        body = body.replace("${" + name + "}", values[name])
    return dict(json.loads(body))


def test_the_batch_pipeline_runs_as_its_own_role(assembly: Assembly) -> None:
    t = Template.from_json(assembly.stack("Pipeline"))
    t.resource_count_is("AWS::SageMaker::Pipeline", 2)
    _lid, resource = _batch(assembly)
    props = resource["Properties"]
    role = props["RoleArn"]["Fn::GetAtt"]
    assert role[0].startswith("BatchPipelineRole") and role[1] == "Arn"
    # As for the training pipeline: the role's policy is in place before the pipeline that runs as the role.
    assert any(d.startswith("BatchPipelinePolicy") for d in resource["DependsOn"]), resource["DependsOn"]
    body, variables = props["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    # The same two placeholders as the training pipeline; the role is this pipeline's, not the training one's.
    assert set(variables) == {"ArtifactBucket", "PipelineRoleArn"}
    assert variables["PipelineRoleArn"] == {"Fn::GetAtt": role}
    assert set(re.findall(r"\$\{([^}]*)\}", body)) == {"ArtifactBucket", "PipelineRoleArn"}
    t.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": Match.object_like(
                {
                    "Statement": [
                        Match.object_like(
                            {"Action": "sts:AssumeRole", "Principal": {"Service": "sagemaker.amazonaws.com"}}
                        )
                    ]
                }
            ),
            "Description": Match.string_like_regexp("batch-recommend"),
        },
    )
    t.has_output("BatchPipelineName", {"Value": f"fmrec-{_stage(assembly)}-batch-recommend"})


def test_the_batch_role_runs_processing_jobs_only(assembly: Assembly) -> None:
    batch = [s for _st, lid, s in statements(assembly) if lid.startswith("BatchPipelinePolicy")]
    assert {s["Sid"] for s in batch} == {
        "ReadInputsAndCode",
        "WriteOutputs",
        "ListOwnPrefixes",
        "PullImages",
        "EcrLogin",
        "JobLogs",
        "JobMetrics",
        "RunJobs",
        "PassSelfToJobs",
    }
    (run,) = [s for s in batch if s["Sid"] == "RunJobs"]
    assert all(a.endswith(("ProcessingJob", "AddTags")) for a in run["Action"]), run["Action"]
    resources = run["Resource"] if isinstance(run["Resource"], list) else [run["Resource"]]
    assert [render(r).rsplit(":", 1)[1] for r in resources] == ["processing-job/pipelines-*"]
    (logs,) = [s for s in batch if s["Sid"] == "JobLogs"]
    assert render(logs["Resource"]).endswith(":log-group:/aws/sagemaker/ProcessingJobs:*")
    (passes,) = [s for s in batch if s["Sid"] == "PassSelfToJobs"]
    assert render(passes["Resource"]).startswith("<BatchPipelineRole")
    # Nothing of the training role's: no training, tuning or registry actions.
    actions = {a for s in batch for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not {a for a in actions if "Training" in a or "Tuning" in a or "ModelPackage" in a}


def test_the_deployed_batch_definition_is_the_factorys_with_the_stage_settings(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    stage = _stage(assembly)
    settings = cdk_context["fmrec:stages"][stage]
    _lid, resource = _batch(assembly)
    deployed = _substituted(resource, {"ArtifactBucket": "bkt", "PipelineRoleArn": "arn:aws:iam::1:role/r"})
    (code,) = set(re.findall(r"s3://bkt/code/[0-9a-f]{16}/", json.dumps(deployed)))
    # The one code folder the stack stages, which the training pipeline reads too.
    (training,) = [
        r
        for r in assembly.resources("Pipeline", "AWS::SageMaker::Pipeline").values()
        if r["Properties"]["PipelineName"] == f"fmrec-{stage}-pipeline"
    ]
    assert code in json.dumps(_substituted(training, {"ArtifactBucket": "bkt", "PipelineRoleArn": "r"}))
    expected = get_batch_pipeline(
        region="us-east-1",
        role_arn="arn:aws:iam::1:role/r",
        artifact_bucket="bkt",
        code_uri=code,
        pipeline_name=f"fmrec-{stage}-batch-recommend",
        model_data_url="s3://bkt/models/approved/model.tar.gz",
        lookup_url="s3://bkt/models/approved/lookup/",
        processing_instance_type=settings.get("processing_instance_type", "ml.m5.xlarge"),
    )
    assert deployed == expected


def test_no_rule_starts_the_batch_pipeline(assembly: Assembly) -> None:
    """Started per package with start-pipeline-execution (docs/deploy.md): the approval event does not carry
    the package's lookup (docs/pipeline.md, "Batch recommendations")."""
    for name, template in assembly.templates.items():
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::Events::Rule":
                targets = json.dumps(resource["Properties"].get("Targets", []))
                assert "batch-recommend" not in targets, name
    starts = [
        s
        for _st, _lid, s in statements(assembly)
        if "sagemaker:StartPipelineExecution"
        in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert all("batch-recommend" not in json.dumps(s["Resource"]) for s in starts)


def _documented_start(text: str) -> list[str]:
    """The words of the `start-pipeline-execution` command of docs/deploy.md's batch section."""
    section = text.split("## Batch recommendations", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    command = block.replace("\\\n", " ")
    (line,) = [c for c in command.splitlines() if "start-pipeline-execution" in c]
    return shlex.split(line)


def test_the_documented_start_command_names_the_deployed_pipeline_and_its_parameters(dev: Assembly) -> None:
    words = _documented_start((REPO / "docs" / "deploy.md").read_text(encoding="utf-8"))
    assert words[words.index("--pipeline-name") + 1] == "fmrec-dev-batch-recommend"
    given = {w.split(",", 1)[0].removeprefix("Name=") for w in words if w.startswith("Name=")}
    _lid, resource = _batch(dev)
    deployed = _substituted(resource, {"ArtifactBucket": "b", "PipelineRoleArn": "r"})
    parameters = {p["Name"] for p in deployed["Parameters"]}
    assert given <= parameters, given - parameters
    # The two with no meaningful default are always given.
    assert {"ModelDataUrl", "LookupUrl"} <= given
