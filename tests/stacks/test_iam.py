"""IAM in every template: no "*" actions, InvokeEndpoint on the endpoint only, S3 on the bucket prefixes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.definition import image_uris
from stacks.images import ecr_repository_arn
from tests.support.cdk import Assembly

# Roles that aws-cdk-lib builds for its own custom resources; their grants are CDK's, acknowledged in cdk-nag.
CDK_MANAGED = ("CustomCDKBucketDeployment", "CustomS3AutoDeleteObjects")
CDK_ASSETS = "arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*"
OUR_PREFIXES = ("data/", "code/", "pipeline/", "models/", "serving/", "datacapture/", "batch/")
# Actions that have no resource-level permissions, the only ones allowed on "*".
STAR_RESOURCE_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "sagemaker:ListModelPackages",
    "sagemaker:ListModels",
    "sagemaker:ListEndpointConfigs",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:DeregisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
}


def render(value: Any) -> str:
    """A CloudFormation value as text: Ref → <Name>, GetAtt → <Name.Attr>, Join → joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((fn, arg),) = value.items()
        if fn == "Ref":
            return f"<{arg}>"
        if fn == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if fn == "Fn::Join":
            return str(arg[0]).join(render(part) for part in arg[1])
    raise AssertionError(f"unexpected CloudFormation value {value!r}")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(
    assembly: Assembly, include_cdk_managed: bool = False
) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(stack, logical id, statement) of every policy statement: IAM policies and roles' inline policies."""
    for stack, template in assembly.templates.items():
        for logical_id, resource in template["Resources"].items():
            if not include_cdk_managed and logical_id.startswith(CDK_MANAGED):
                continue
            documents = []
            if resource["Type"] == "AWS::IAM::Policy":
                documents.append(resource["Properties"]["PolicyDocument"])
            elif resource["Type"] == "AWS::IAM::Role":
                documents.extend(p["PolicyDocument"] for p in resource["Properties"].get("Policies", []))
            for document in documents:
                for statement in document["Statement"]:
                    yield stack, logical_id, statement


@pytest.fixture(params=["dev", "prod"])
def assembly(request: pytest.FixtureRequest, assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies[request.param]


def test_no_wildcard_actions(assembly: Assembly) -> None:
    bad = [
        (stack, lid, action)
        for stack, lid, s in statements(assembly, include_cdk_managed=True)
        for action in _as_list(s["Action"])
        if action == "*" or action.endswith(":*")
    ]
    assert bad == []


def test_star_resources_only_where_an_api_has_no_resource_permissions(assembly: Assembly) -> None:
    bad = [
        (stack, lid, s["Action"])
        for stack, lid, s in statements(assembly)
        if "*" in _as_list(s["Resource"]) and not set(_as_list(s["Action"])) <= STAR_RESOURCE_ACTIONS
    ]
    assert bad == []
    for _stack, _lid, s in statements(assembly):
        if "cloudwatch:PutMetricData" in _as_list(s["Action"]):
            assert s["Condition"] == {"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*"]}}


def test_invoke_endpoint_only_on_the_endpoint(assembly: Assembly) -> None:
    stage = "dev" if any(name.startswith("FmrecDev") for name in assembly.templates) else "prod"
    found = [
        s for _st, _lid, s in statements(assembly) if "sagemaker:InvokeEndpoint" in _as_list(s["Action"])
    ]
    assert len(found) == 1, found
    (statement,) = found
    assert _as_list(statement["Action"]) == ["sagemaker:InvokeEndpoint"]
    resources = [render(r) for r in _as_list(statement["Resource"])]
    assert resources == [
        f"arn:<AWS::Partition>:sagemaker:<AWS::Region>:<AWS::AccountId>:endpoint/fmrec-{stage}-endpoint"
    ]


def test_s3_only_on_the_bucket_prefixes(assembly: Assembly) -> None:
    stage = "dev" if any(name.startswith("FmrecDev") for name in assembly.templates) else "prod"
    bucket = f"arn:<AWS::Partition>:s3:::fmrec-{stage}-artifacts-<AWS::AccountId>-us-east-1"
    checked = 0
    for stack, lid, s in statements(assembly):
        actions = _as_list(s["Action"])
        if not any(a.startswith("s3:") for a in actions):
            continue
        assert all(a.startswith("s3:") for a in actions), (stack, lid, actions)
        for resource in (render(r) for r in _as_list(s["Resource"])):
            checked += 1
            if resource == CDK_ASSETS:  # the code deployment reads its asset zip, nothing else there
                assert actions == ["s3:GetObject"], (stack, lid)
                continue
            if resource == bucket:  # the bucket itself: ListBucket, narrowed to our prefixes by condition
                assert actions == ["s3:ListBucket"], (stack, lid)
                if s.get("Sid") == "MissingKeysAre404" and lid.startswith("RecommendPolicy"):
                    continue  # unconditioned, so that a missing key is a 404 (stacks/api.py)
                prefixes = _as_list(s["Condition"]["StringLike"]["s3:prefix"])
                assert all(p.startswith(OUR_PREFIXES) for p in prefixes), (stack, lid, prefixes)
            else:
                assert resource.startswith(bucket + "/"), (stack, lid, resource)
                key = resource[len(bucket) + 1 :]
                assert key.startswith(OUR_PREFIXES), (stack, lid, resource)
    assert checked >= 10  # the pipeline, model, deployer and recommend roles all touch S3


def test_pass_role_is_scoped_to_sagemaker(assembly: Assembly) -> None:
    passes = [s for _st, _lid, s in statements(assembly) if "iam:PassRole" in _as_list(s["Action"])]
    # the two pipelines pass themselves to their jobs; the deployer passes the model role
    assert len(passes) == 3
    for s in passes:
        assert s["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
        assert all(re.fullmatch(r"<\w+\.Arn>", render(r)) for r in _as_list(s["Resource"]))


def test_images_are_pulled_only_from_the_fm_and_sklearn_repositories(assembly: Assembly) -> None:
    images = image_uris("us-east-1")
    allowed = {ecr_repository_arn(images["fm"]), ecr_repository_arn(images["sklearn"])}
    pulls = [s for _st, _lid, s in statements(assembly) if "ecr:BatchGetImage" in _as_list(s["Action"])]
    # the pipeline role (FM + SKLearn), the batch pipeline role (SKLearn) and the model role (FM)
    assert len(pulls) == 3
    for s in pulls:
        assert set(_as_list(s["Resource"])) <= allowed
    assert {r for s in pulls for r in _as_list(s["Resource"])} == allowed
    batch = [s for _st, lid, s in statements(assembly) if lid.startswith("BatchPipelinePolicy")]
    (batch_pull,) = [s for s in batch if "ecr:BatchGetImage" in _as_list(s["Action"])]
    assert _as_list(batch_pull["Resource"]) == [ecr_repository_arn(images["sklearn"])]
    assert all(arn.endswith(("/factorization-machines", "/sagemaker-scikit-learn")) for arn in allowed)
