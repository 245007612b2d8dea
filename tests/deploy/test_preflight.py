"""`fmrec deploy preflight` against stubbed SSM, Lambda, API Gateway and Service Quotas clients (Stubber)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from fmrec.deploy import preflight
from fmrec.deploy.layers import PANDAS_LAYER_PARAMETER, POWERTOOLS_LAYER_PARAMETER
from fmrec.deploy.stage import StageConfig
from fmrec_cli import main as cli

REGION = "eu-west-1"
POWERTOOLS_ARN = f"arn:aws:lambda:{REGION}:017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:18"
PANDAS_ARN = f"arn:aws:lambda:{REGION}:336392948345:layer:AWSSDKPandas-Python313:5"
ROLE = "arn:aws:iam::123456789012:role/apigateway-cloudwatch"
CONFIG = StageConfig(
    stage="dev",
    region=REGION,
    name_prefix="fmrec-dev",
    processing_instance_type="ml.m5.xlarge",
    training_instance_type="ml.c5.xlarge",
    training_instance_count=2,
    endpoint_instance_type="ml.c5.large",
    endpoint_instance_count=1,
    endpoint_max_instance_count=3,
)


class Clients:
    """One stubbed client per service, handed out by name like the CLI's factory."""

    def __init__(self) -> None:
        kwargs = {"region_name": REGION, "aws_access_key_id": "x", "aws_secret_access_key": "x"}
        self.clients = {
            name: boto3.client(name, **kwargs) for name in ("ssm", "lambda", "apigateway", "service-quotas")
        }
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        self.asked: list[str] = []

    def __call__(self, service: str) -> Any:
        self.asked.append(service)
        return self.clients[service]

    def ok(self, service: str, operation: str, response: dict[str, Any], params: Any = None) -> None:
        self.stubs[service].add_response(operation, response, params)

    def error(self, service: str, operation: str, code: str, message: str = "x") -> None:
        self.stubs[service].add_client_error(operation, service_error_code=code, service_message=message)


@pytest.fixture
def clients() -> Iterator[Clients]:
    c = Clients()
    for stub in c.stubs.values():
        stub.activate()
    yield c
    for stub in c.stubs.values():
        stub.assert_no_pending_responses()
        stub.deactivate()


def _parameter(name: str, value: str) -> dict[str, Any]:
    return {"Parameter": {"Name": name, "Type": "String", "Value": value, "Version": 1}}


def _layer(arn: str, runtimes: list[str] | None = None) -> dict[str, Any]:
    return {
        "LayerVersionArn": arn,
        "Version": 5,
        "CompatibleRuntimes": runtimes or ["python3.13"],
        "CompatibleArchitectures": ["x86_64"],
    }


def _quota(name: str, value: float, code: str = "L-1234ABCD") -> dict[str, Any]:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": value}


def _expect_all_good(c: Clients, bootstrap: str = "27") -> None:
    c.ok(
        "ssm",
        "get_parameter",
        _parameter(POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_ARN),
        {"Name": POWERTOOLS_LAYER_PARAMETER},
    )
    c.ok("lambda", "get_layer_version_by_arn", _layer(POWERTOOLS_ARN), {"Arn": POWERTOOLS_ARN})
    c.ok(
        "ssm",
        "get_parameter",
        _parameter(PANDAS_LAYER_PARAMETER, PANDAS_ARN),
        {"Name": PANDAS_LAYER_PARAMETER},
    )
    c.ok("lambda", "get_layer_version_by_arn", _layer(PANDAS_ARN), {"Arn": PANDAS_ARN})
    c.ok(
        "ssm",
        "get_parameter",
        _parameter("/cdk-bootstrap/hnb659fds/version", bootstrap),
        {"Name": "/cdk-bootstrap/hnb659fds/version"},
    )
    c.ok("apigateway", "get_account", {"cloudwatchRoleArn": ROLE}, {})
    c.ok(
        "service-quotas",
        "list_service_quotas",
        {
            "Quotas": [
                _quota("ml.c5.xlarge for training job usage", 2),
                _quota("ml.m5.xlarge for processing job usage", 4),
                _quota("ml.c5.large for endpoint usage", 4),
            ]
        },
        {"ServiceCode": "sagemaker"},
    )


def test_a_ready_account_passes_every_check(clients: Clients) -> None:
    _expect_all_good(clients)
    checks = preflight.run_preflight(CONFIG, clients)
    assert [c.ok for c in checks] == [True] * 7, checks
    assert [c.name for c in checks] == [
        "layer Powertools 3.37.0",
        "layer AWS SDK for pandas 3.14.0 (numpy)",
        "CDK bootstrap",
        "API Gateway CloudWatch role",
        "quota ml.c5.xlarge for training job usage",
        "quota ml.m5.xlarge for processing job usage",
        "quota ml.c5.large for endpoint usage",
    ]
    assert checks[1].found == PANDAS_ARN
    assert checks[6].found.startswith("4 >= 4 (endpoint_max_instance_count + endpoint_instance_count")


def test_the_endpoint_needs_its_maximum_and_a_new_fleet_during_an_update() -> None:
    needs = {n.use: n.count for n in preflight.quota_needs(CONFIG)}
    assert needs == {"training job usage": 2, "processing job usage": 1, "endpoint usage": 4}


def test_a_missing_pandas_parameter_says_what_to_do(clients: Clients) -> None:
    clients.error("ssm", "get_parameter", "ParameterNotFound")
    check = preflight.check_layer(clients, REGION, "AWS SDK for pandas", PANDAS_LAYER_PARAMETER)
    assert not check.ok
    assert check.found == f"SSM parameter {PANDAS_LAYER_PARAMETER} does not exist in {REGION}"
    assert "-c fmrec:numpy_layer_arn=<layer version ARN>" in check.fix
    assert "fmrec/deploy/layers.py" in check.fix


def test_a_layer_that_is_gone_or_of_another_runtime_fails(clients: Clients) -> None:
    clients.ok("ssm", "get_parameter", _parameter(POWERTOOLS_LAYER_PARAMETER, POWERTOOLS_ARN))
    clients.error("lambda", "get_layer_version_by_arn", "ResourceNotFoundException")
    gone = preflight.check_layer(clients, REGION, "Powertools", POWERTOOLS_LAYER_PARAMETER)
    assert (gone.ok, gone.found) == (
        False,
        f"{POWERTOOLS_LAYER_PARAMETER} -> {POWERTOOLS_ARN}: ResourceNotFoundException",
    )
    clients.ok("lambda", "get_layer_version_by_arn", _layer(PANDAS_ARN, ["python3.12"]))
    other = preflight.check_layer(clients, REGION, "numpy", None, PANDAS_ARN)
    assert not other.ok and "use a layer built for python3.13 on x86_64" in other.fix
    assert clients.asked.count("ssm") == 1  # an ARN given with -c is not looked up in SSM


@pytest.mark.parametrize(
    ("value", "found"),
    [
        (None, "/cdk-bootstrap/hnb659fds/version does not exist in eu-west-1"),
        ("5", "version 5, the templates need 6 or later"),
    ],
)
def test_a_missing_or_old_bootstrap_fails(clients: Clients, value: str | None, found: str) -> None:
    if value is None:
        clients.error("ssm", "get_parameter", "ParameterNotFound")
    else:
        clients.ok("ssm", "get_parameter", _parameter("/cdk-bootstrap/hnb659fds/version", value))
    check = preflight.check_bootstrap(clients, REGION, "hnb659fds")
    assert (check.ok, check.found) == (False, found)
    assert "npx cdk bootstrap aws://<account>/eu-west-1" in check.fix


def test_a_custom_qualifier_is_read(clients: Clients) -> None:
    clients.ok(
        "ssm",
        "get_parameter",
        _parameter("/cdk-bootstrap/myqual/version", "6"),
        {"Name": "/cdk-bootstrap/myqual/version"},
    )
    assert preflight.check_bootstrap(clients, REGION, "myqual").ok


def test_no_api_gateway_role_fails_naming_the_commands(clients: Clients) -> None:
    clients.ok("apigateway", "get_account", {})
    check = preflight.check_api_gateway_role(clients, REGION)
    assert not check.ok
    assert "AmazonAPIGatewayPushToCloudWatchLogs" in check.fix
    assert "aws apigateway update-account" in check.fix


def test_quotas_fall_back_to_defaults_and_name_the_increase(clients: Clients) -> None:
    """A quota with no applied value is left out of ListServiceQuotas: its default is what applies."""
    clients.ok(
        "service-quotas",
        "list_service_quotas",
        {"Quotas": [_quota("ml.c5.xlarge for training job usage", 1, "L-TRAIN")]},
    )
    clients.ok(
        "service-quotas",
        "list_aws_default_service_quotas",
        {"Quotas": [_quota("ml.m5.xlarge for processing job usage", 0, "L-PROC")]},
        {"ServiceCode": "sagemaker"},
    )
    training, processing, endpoint = preflight.check_quotas(clients, REGION, preflight.quota_needs(CONFIG))
    assert (training.ok, training.found) == (False, "1, the stage needs 2 (training_instance_count)")
    assert "--quota-code L-TRAIN --desired-value 2" in training.fix
    assert (processing.ok, processing.found) == (False, "0, the stage needs 1 (processing_instance_count)")
    assert "--quota-code L-PROC --desired-value 1" in processing.fix
    assert (endpoint.ok, endpoint.found) == (False, "SageMaker has no such quota in eu-west-1")
    assert "choose another instance type in cdk.json" in endpoint.fix


def test_the_cli_prints_each_failure_with_its_fix_and_exits_1(
    clients: Clients, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _expect_all_good(clients, bootstrap="4")

    class Session:
        def __init__(self, profile_name: str | None = None, region_name: str | None = None) -> None:
            assert region_name == REGION

        def client(self, service: str, region_name: str) -> Any:
            return clients(service)

    monkeypatch.setattr(boto3, "Session", Session)
    cdk_json = tmp_path / "cdk.json"
    cdk_json.write_text(
        '{"context": {"fmrec:stages": {"dev": {"region": "us-east-1", "name_prefix": "fmrec-dev"}, '
        '"eu": {"region": "eu-west-1", "name_prefix": "fmrec-eu", "training_instance_type": "ml.c5.xlarge", '
        '"training_instance_count": 2, "endpoint_instance_type": "ml.c5.large", '
        '"endpoint_max_instance_count": 3}}}}'
    )
    code = cli.main(["deploy", "preflight", "-c", "fmrec:stage=eu", "--cdk-json", str(cdk_json)])
    out = capsys.readouterr().out
    assert code == 1
    assert "preflight of stage eu in eu-west-1" in out
    assert "FAIL  CDK bootstrap: version 4, the templates need 6 or later" in out
    assert "      fix: bootstrap again: run `npx cdk bootstrap aws://<account>/eu-west-1`" in out
    assert "6 of 7 checks passed; fix the 1 above" in out


def test_a_bad_context_pair_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["deploy", "preflight", "-c", "fmrec:stage"]) == 2
    assert "expected KEY=VALUE, e.g. -c fmrec:stage=dev" in capsys.readouterr().err
