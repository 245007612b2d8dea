"""Issue 13: what would break the first `cdk deploy` (or a later one), checked against AWS's documented
behaviour on the synthesized templates."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from stacks.config import StageConfig
from stacks.storage import StorageStack
from tests.stacks.test_iam import render, statements
from tests.support.cdk import Assembly, new_app
from twins.pipeline.graph import all_steps

BUCKET = "BUCKET"
_OUTPUT_REF = re.compile(r"^Steps\.(\w+)\.ProcessingOutputConfig\.Outputs\['(\w+)'\]\.S3Output\.S3Uri$")


@pytest.fixture(params=["dev", "prod"])
def assembly(request: pytest.FixtureRequest, assemblies: dict[str, Assembly]) -> Assembly:
    return assemblies[request.param]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _stage(assembly: Assembly) -> str:
    return "dev" if any(name.startswith("FmrecDev") for name in assembly.templates) else "prod"


def _pipeline_resource(assembly: Assembly, kind: str = "pipeline") -> dict[str, Any]:
    """The stage's training pipeline (kind "pipeline") or batch pipeline (kind "batch-recommend")."""
    name = f"fmrec-{_stage(assembly)}-{kind}"
    (pipeline,) = [
        p
        for p in assembly.resources("Pipeline", "AWS::SageMaker::Pipeline").values()
        if p["Properties"]["PipelineName"] == name
    ]
    return pipeline


def _definition(assembly: Assembly, kind: str = "pipeline") -> dict[str, Any]:
    pipeline = _pipeline_resource(assembly, kind)
    body, _variables = pipeline["Properties"]["PipelineDefinition"]["PipelineDefinitionBody"]["Fn::Sub"]
    body = body.replace("${ArtifactBucket}", BUCKET).replace("${PipelineRoleArn}", "ROLE")
    return dict(json.loads(body))


class Resolver:
    """A definition value as the S3 URI SageMaker would see, with run-time names as placeholders."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.steps = {s["Name"]: s for s in all_steps(definition)}
        self.params = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}

    def __call__(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and "Std:Join" in value:
            join = value["Std:Join"]
            return str(join["On"]).join(self(v) for v in join["Values"])
        if isinstance(value, dict) and "Get" in value:
            ref = str(value["Get"])
            if ref.startswith("Parameters."):
                return str(self.params[ref.split(".", 1)[1]])
            if ref.startswith("Execution."):
                return "EXECUTION"
            match = _OUTPUT_REF.match(ref)
            if match:
                outputs = self.steps[match[1]]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
                (out,) = [o for o in outputs if o["OutputName"] == match[2]]
                return self(out["S3Output"]["S3Uri"])
            if ref.endswith(".TrainingJobName"):
                return "JOB"
            if ref.endswith(".ModelArtifacts.S3ModelArtifacts"):
                return f"s3://{BUCKET}/models/JOB/output/model.tar.gz"
        raise AssertionError(f"cannot resolve {value!r}")

    def s3_inputs(self) -> Iterator[tuple[str, str]]:
        """(step, uri) of every S3 location a processing, training or tuning job of the pipeline reads."""
        for name, step in self.steps.items():
            args = step.get("Arguments", {})
            for item in args.get("ProcessingInputs", []):
                yield name, self(item["S3Input"]["S3Uri"])
            channels = [*args.get("InputDataConfig", [])]
            channels += args.get("TrainingJobDefinition", {}).get("InputDataConfig", [])
            for channel in channels:
                yield name, self(channel["DataSource"]["S3DataSource"]["S3Uri"])


def _key(uri: str) -> str:
    assert uri.startswith(f"s3://{BUCKET}/"), uri
    return uri[len(f"s3://{BUCKET}/") :]


def _role_statements(assembly: Assembly, logical_prefix: str) -> list[dict[str, Any]]:
    found = [s for _stack, lid, s in statements(assembly) if lid.startswith(logical_prefix)]
    assert found, logical_prefix
    return found


# --- item 1: every S3 input prefix is one the pipeline role may list ----------------------------------------
def _listable_and_readable(assembly: Assembly, policy_prefix: str) -> tuple[list[str], list[str]]:
    """(s3:prefix patterns of ListBucket, object key patterns of GetObject) of one execution policy."""
    policy = _role_statements(assembly, policy_prefix)
    prefixes = [
        p
        for s in policy
        if "s3:ListBucket" in _as_list(s["Action"])
        for p in _as_list(s["Condition"]["StringLike"]["s3:prefix"])
    ]
    readable = [
        render(r).split(":::", 1)[1].split("/", 1)[1]
        for s in policy
        if "s3:GetObject" in _as_list(s["Action"])
        for r in _as_list(s["Resource"])
    ]
    return prefixes, readable


@pytest.mark.parametrize(
    ("kind", "policy_prefix", "steps"),
    [
        ("pipeline", "PipelinePolicy", {"Preprocess", "TrainModel", "EvaluateModel", "CarveValidation"}),
        ("batch-recommend", "BatchPipelinePolicy", {"BatchRecommend"}),
    ],
)
def test_every_s3_input_of_the_pipeline_is_listable_and_readable_by_its_role(
    assembly: Assembly, kind: str, policy_prefix: str, steps: set[str]
) -> None:
    """SageMaker downloads an S3Prefix input by listing the bucket with Prefix=<the key as given>
    (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProcessingS3Input.html), so ListBucket's
    s3:prefix condition must match that exact key; `code` (no slash) did not match `code/*`."""
    prefixes, readable = _listable_and_readable(assembly, policy_prefix)
    inputs = list(Resolver(_definition(assembly, kind)).s3_inputs())
    assert {step for step, _ in inputs} >= steps
    for step, uri in inputs:
        key = _key(uri)
        assert any(fnmatch.fnmatchcase(key, p) for p in prefixes), (step, key, prefixes)
        assert any(fnmatch.fnmatchcase(key + "file", r) for r in readable), (step, key, readable)


def test_the_batch_role_reads_what_a_registered_package_points_to(assembly: Assembly) -> None:
    """An execution of the batch pipeline is started with a registered package's ModelDataUrl and LookupS3Uri
    (docs/deploy.md): both are where the training pipeline's RegisterModel steps put them, and the batch role
    may list and read them, and nothing else of the training pipeline's (data/, pipeline/)."""
    prefixes, readable = _listable_and_readable(assembly, "BatchPipelinePolicy")
    resolve = Resolver(_definition(assembly))
    registers = [s for s in resolve.steps.values() if s["Type"] == "RegisterModel"]
    assert len(registers) == 2
    for step in registers:
        (container,) = step["Arguments"]["InferenceSpecification"]["Containers"]
        model = _key(resolve(container["ModelDataUrl"]))
        lookup = _key(resolve(step["Arguments"]["CustomerMetadataProperties"]["LookupS3Uri"]))
        for key in (model, lookup):
            assert any(fnmatch.fnmatchcase(key, p) for p in prefixes), (step["Name"], key, prefixes)
            assert any(fnmatch.fnmatchcase(key + "x", r) for r in readable), (step["Name"], key, readable)
    assert sorted(prefixes) == ["code/*", "models/*"]
    assert sorted(readable) == ["code/*", "models/*"]


def test_the_batch_role_writes_only_its_output_prefix(assembly: Assembly) -> None:
    writes = [
        render(r).split(":::", 1)[1].split("/", 1)[1]
        for s in _role_statements(assembly, "BatchPipelinePolicy")
        if any(a.startswith("s3:Put") for a in _as_list(s["Action"]))
        for r in _as_list(s["Resource"])
    ]
    assert writes == ["batch/*"]
    resolve = Resolver(_definition(assembly, "batch-recommend"))
    (step,) = resolve.steps.values()
    (output,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    key = _key(resolve(output["S3Output"]["S3Uri"]))
    assert key == "batch/EXECUTION/recommendations"
    assert fnmatch.fnmatchcase(key + "/recommendations.jsonl", writes[0])


# --- item 10: the code folder is content-addressed, and its deployment touches code/ only -------------------
def test_code_is_deployed_to_a_content_addressed_folder_that_no_update_deletes(assembly: Assembly) -> None:
    (deployment,) = assembly.resources("Pipeline", "Custom::CDKBucketDeployment").values()
    props = deployment["Properties"]
    assert re.fullmatch(r"code/[0-9a-f]{16}", props["DestinationBucketKeyPrefix"]), props
    # retain_on_delete: CDK's handler would `s3 rm` the old folder when the prefix changes on an update, under
    # an execution that may still be reading it; nothing is pruned either.
    assert props["RetainOnDelete"] is True and props["Prune"] is False
    codes = {
        uri
        for kind in ("pipeline", "batch-recommend")  # both pipelines read the one staged folder
        for step, uri in Resolver(_definition(assembly, kind)).s3_inputs()
        if uri.startswith(f"s3://{BUCKET}/code")
    }
    assert codes == {f"s3://{BUCKET}/{props['DestinationBucketKeyPrefix']}/"}


def test_the_code_deployment_writes_under_code_only_and_deletes_nothing(assembly: Assembly) -> None:
    (function,) = [
        f
        for lid, f in assembly.resources("Pipeline", "AWS::Lambda::Function").items()
        if lid.startswith("CustomCDKBucketDeployment")
    ]
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    stage = _stage(assembly)
    bucket = f"arn:<AWS::Partition>:s3:::fmrec-{stage}-artifacts-<AWS::AccountId>-us-east-1"
    s3_statements = []
    for _stack, lid, s in statements(assembly, include_cdk_managed=True):
        template = assembly.stack("Pipeline")["Resources"].get(lid)
        if template is None or template["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role} not in template["Properties"].get("Roles", []):
            continue
        if any(a.startswith("s3:") for a in _as_list(s["Action"])):
            s3_statements.append(s)
    assert s3_statements
    for s in s3_statements:
        actions = _as_list(s["Action"])
        assert not any(a.startswith("s3:Delete") or a == "s3:*" for a in actions), actions
        for resource in (render(r) for r in _as_list(s["Resource"])):
            if resource.startswith(bucket):
                assert resource in (bucket, f"{bucket}/code/*"), resource


# --- item 9: a missing serving key is a 404 for the recommend Lambda ----------------------------------------
def _missing_key_status(policy: list[dict[str, Any]], bucket_arn: str) -> int:
    """GetObject on a missing key: "If you have the s3:ListBucket permission on the bucket, Amazon S3 returns
    an HTTP status code 404 (Not Found) error. If you don't ... 403 (Access Denied)"
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html). A GetObject request carries no
    s3:prefix, and a condition on a key that is absent from the request context does not match unless its
    operator ends in IfExists
    (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html)."""
    for s in policy:
        if s.get("Effect", "Allow") != "Allow" or "s3:ListBucket" not in _as_list(s["Action"]):
            continue
        if bucket_arn not in [render(r) for r in _as_list(s["Resource"])]:
            continue
        if all(op.endswith("IfExists") for op in s.get("Condition", {})):
            return 404
    return 403


def test_a_missing_serving_key_answers_404_so_the_lambda_falls_back(assembly: Assembly) -> None:
    bucket = f"arn:<AWS::Partition>:s3:::fmrec-{_stage(assembly)}-artifacts-<AWS::AccountId>-us-east-1"
    assert _missing_key_status(_role_statements(assembly, "RecommendPolicy"), bucket) == 404


def test_the_imitation_tells_403_from_404() -> None:
    bucket = "arn:aws:s3:::b"
    conditioned = {
        "Action": "s3:ListBucket",
        "Resource": bucket,
        "Condition": {"StringLike": {"s3:prefix": "x/*"}},
    }
    if_exists = {**conditioned, "Condition": {"StringLikeIfExists": {"s3:prefix": "x/*"}}}
    plain = {"Action": ["s3:ListBucket"], "Resource": [bucket]}
    assert _missing_key_status([conditioned], bucket) == 403
    assert _missing_key_status([if_exists], bucket) == 404
    assert _missing_key_status([plain], bucket) == 404
    assert _missing_key_status([{**plain, "Resource": "arn:aws:s3:::other"}], bucket) == 403


# --- item 6: the account-wide API Gateway logging role is not this app's ------------------------------------
def test_no_stack_creates_or_deletes_the_account_api_gateway_logging_role(assembly: Assembly) -> None:
    for name, template in assembly.templates.items():
        kinds = {r["Type"] for r in template["Resources"].values()}
        assert "AWS::ApiGateway::Account" not in kinds, name
        for resource in template["Resources"].values():
            arns = json.dumps(resource.get("Properties", {}).get("ManagedPolicyArns", []))
            assert "AmazonAPIGatewayPushToCloudWatchLogs" not in arns, name


# --- item 5: what a registered package points to does not expire --------------------------------------------
def test_registered_packages_point_to_artifacts_that_never_expire(assembly: Assembly) -> None:
    (bucket,) = [
        b
        for b in assembly.resources("Storage", "AWS::S3::Bucket").values()
        if "LifecycleConfiguration" in b["Properties"]
        and any(r.get("Prefix") == "pipeline/" for r in b["Properties"]["LifecycleConfiguration"]["Rules"])
    ]
    expiring = [
        r.get("Prefix", "")
        for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        if "ExpirationInDays" in r
    ]
    assert expiring == ["pipeline/"]
    resolve = Resolver(_definition(assembly))
    registers = [s for s in resolve.steps.values() if s["Type"] == "RegisterModel"]
    assert len(registers) == 2  # the plain chain and the tuning branch
    for step in registers:
        lookup = _key(resolve(step["Arguments"]["CustomerMetadataProperties"]["LookupS3Uri"]))
        assert not any(lookup.startswith(p) for p in expiring), (step["Name"], lookup)
        (container,) = step["Arguments"]["InferenceSpecification"]["Containers"]
        model = _key(resolve(container["ModelDataUrl"]))
        assert not any(model.startswith(p) for p in expiring), (step["Name"], model)


# --- item 8: destroy, then deploy again ---------------------------------------------------------------------
def test_the_model_package_group_survives_destroy_and_redeploy(assembly: Assembly) -> None:
    """A plain AWS::SageMaker::ModelPackageGroup with a fixed name fails the redeploy ("already exists") when
    it was retained, and fails the destroy when it still holds versions: the group is a custom resource that
    adopts an existing group and, where the stage does not retain it, empties it before deleting it."""
    assert not assembly.resources("Pipeline", "AWS::SageMaker::ModelPackageGroup")
    (group,) = assembly.resources("Pipeline", "Custom::FmrecModelPackageGroup").values()
    keep = {"dev": "false", "prod": "true"}[_stage(assembly)]
    assert group["Properties"]["KeepOnDelete"] == keep
    assert group["Properties"]["GroupName"] == f"fmrec-{_stage(assembly)}-models"
    pipeline = _pipeline_resource(assembly)
    (group_id,) = assembly.resources("Pipeline", "Custom::FmrecModelPackageGroup")
    assert group_id in pipeline.get("DependsOn", [])


def test_a_retained_bucket_needs_a_literal_name_to_be_adopted_again(tmp_path: Path) -> None:
    """Auto-import adopts only resources whose name is a literal and whose DeletionPolicy is Retain
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/import-resources-automatically.html)."""

    def storage(account: str | None) -> tuple[Template, list[str]]:
        app = new_app(tmp_path / f"out-{account}")
        config = StageConfig(
            stage="prod",
            region="us-east-1",
            name_prefix="fmrec-prod",
            account=account,
            removal_policy="retain",
        )
        stack = StorageStack(
            app, "S", config=config, env=cdk.Environment(account=account, region="us-east-1")
        )
        messages = [
            str(e.entry.data)
            for e in app.synth().get_stack_by_name("S").messages
            if e.entry.type == "aws:cdk:warning"
        ]
        return Template.from_stack(stack), messages

    template, warnings = storage("123456789012")
    buckets = template.find_resources("AWS::S3::Bucket", {"DeletionPolicy": "Retain"})
    names = [b["Properties"].get("BucketName") for b in buckets.values()]
    assert "fmrec-prod-artifacts-123456789012-us-east-1" in names
    assert not any("retain-without-account" in w for w in warnings)
    _template, warnings = storage(None)
    assert any("cannot adopt the retained bucket" in w for w in warnings), warnings


# --- item 3: a deployment that fails after its retries is kept and raises an alarm --------------------------
def test_deployer_failures_go_to_a_queue_with_an_alarm(assembly: Assembly) -> None:
    serving = assembly.stack("Serving")["Resources"]
    (queue_id,) = [k for k, v in serving.items() if v["Type"] == "AWS::SQS::Queue"]
    (invoke_config,) = [v for v in serving.values() if v["Type"] == "AWS::Lambda::EventInvokeConfig"]
    destination = invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 2
    rules = [v for v in serving.values() if v["Type"] == "AWS::Events::Rule"]
    assert len(rules) == 2
    for rule in rules:
        (target,) = rule["Properties"]["Targets"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    (alarm,) = [v for v in serving.values() if v["Type"] == "AWS::CloudWatch::Alarm"]
    props = alarm["Properties"]
    assert props["MetricName"] == "ApproximateNumberOfMessagesVisible" and props["Threshold"] == 1
    assert props["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue_id, "QueueName"]}}]
    (deployer,) = [
        v
        for v in serving.values()
        if v["Type"] == "AWS::Lambda::Function" and v["Properties"]["Handler"] == "handler.lambda_handler"
    ]
    assert deployer["Properties"]["Timeout"] == 900  # room to wait out a Failed endpoint's deletion


# --- item 4: every change of the group reconciles; the deployer picks the newest approved version -----------
def test_the_triggers_reconcile_on_any_package_change_and_on_in_service_or_failed(assembly: Assembly) -> None:
    stage = _stage(assembly)
    patterns = [
        v["Properties"]["EventPattern"]
        for v in assembly.stack("Serving")["Resources"].values()
        if v["Type"] == "AWS::Events::Rule"
    ]
    assert {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [f"fmrec-{stage}-models"]},
    } in patterns
    assert {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {"EndpointName": [f"fmrec-{stage}-endpoint"], "EndpointStatus": ["IN_SERVICE", "FAILED"]},
    } in patterns
