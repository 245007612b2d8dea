"""The recommend Lambda gets numpy from the AWS SDK for pandas layer of its stage's region, resolved at
deploy time from the SSM parameter AWS SDK for pandas documents (no ARN per region), or a -c override."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

from fmrec.deploy.layers import PANDAS_LAYER_PARAMETER, POWERTOOLS_LAYER_PARAMETER
from stacks.config import NUMPY_LAYER_KEY, ConfigError, StageConfig
from tests.support.cdk import (
    OTHER_NUMPY_LAYER,
    SYNTHS,
    Assembly,
    api_stack,
    build_stage,
    cdk_json_context,
    new_app,
)

SSM_STRING = "AWS::SSM::Parameter::Value<String>"


def _function(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and r["Properties"]["Handler"] == "lambdas.recommend.app.lambda_handler"
    ]
    return function


def _layers(assembly: Assembly) -> list[Any]:
    return list(_function(assembly.stack("Api"))["Properties"]["Layers"])


def _ssm_layers(template: dict[str, Any]) -> list[str]:
    """The SSM parameter names the recommend function's layers resolve from."""
    parameters = template.get("Parameters", {})
    names = []
    for layer in _function(template)["Properties"]["Layers"]:
        assert isinstance(layer, dict) and set(layer) == {"Ref"}, f"not an SSM-resolved layer: {layer}"
        parameter = parameters[layer["Ref"]]
        assert parameter["Type"] == SSM_STRING
        names.append(parameter["Default"])
    return names


def test_the_parameter_is_the_one_aws_sdk_for_pandas_documents() -> None:
    """/aws/service/aws-sdk-pandas/<version>/py<X.Y>/<arch>/layer-arn, no region in the path, for the
    function's runtime and architecture (https://aws-sdk-pandas.readthedocs.io/en/stable/install.html)."""
    assert PANDAS_LAYER_PARAMETER == "/aws/service/aws-sdk-pandas/3.14.0/py3.13/x86_64/layer-arn"


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_both_layers_resolve_from_ssm_in_every_stage(assemblies: dict[str, Assembly], stage: str) -> None:
    template = assemblies[stage].stack("Api")
    assert sorted(_ssm_layers(template)) == sorted([POWERTOOLS_LAYER_PARAMETER, PANDAS_LAYER_PARAMETER])
    # No layer ARN is written into any template: each region resolves its own.
    assert ":layer:AWSSDKPandas" not in str(assemblies[stage].templates)


def test_cdk_json_holds_no_layer_arns() -> None:
    for settings in cdk_json_context()["fmrec:stages"].values():
        assert not any("layer" in key for key in settings)


def test_another_region_synthesizes_with_no_layer_configured(tmp_path: Path) -> None:
    """A stage moved to another region needs nothing more: the parameter is read in that region at deploy."""
    dev = dict(cdk_json_context()["fmrec:stages"]["dev"], region="eu-west-1")
    built = build_stage(tmp_path / "out", {"fmrec:stages": {"dev": dev}})
    template = Template.from_stack(built.api).to_json()
    assert sorted(_ssm_layers(template)) == sorted([POWERTOOLS_LAYER_PARAMETER, PANDAS_LAYER_PARAMETER])


def test_cli_context_overrides_the_layer(numpy_override: Assembly) -> None:
    """`cdk synth -c fmrec:numpy_layer_arn=...` (the npm CLI, as a user runs it) replaces the SSM layer."""
    assert SYNTHS["numpy-override"].cli_context == {NUMPY_LAYER_KEY: OTHER_NUMPY_LAYER}
    layers = _layers(numpy_override)
    assert OTHER_NUMPY_LAYER in layers and len(layers) == 2
    assert PANDAS_LAYER_PARAMETER not in str(numpy_override.stack("Api").get("Parameters", {}))


def _api(tmp_path: Path, config: StageConfig, context: dict[str, Any] | None = None) -> Template:
    return Template.from_stack(api_stack(new_app(tmp_path / "out", context), "LayerApi", config, tmp_path))


@pytest.mark.parametrize(
    ("arn", "message"),
    [
        (
            "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python313:5",
            "the layer is in eu-west-1, the function in us-east-1",
        ),
        ("AWSSDKPandas-Python313", "expected 'arn:aws:lambda:us-east-1:<account>:layer:<name>:<version>'"),
    ],
)
def test_a_bad_override_names_the_context_key(tmp_path: Path, arn: str, message: str) -> None:
    config = StageConfig(stage="dev", region="us-east-1", name_prefix="fmrec-lyr")
    with pytest.raises(ConfigError, match=f"context {NUMPY_LAYER_KEY} \\(stage dev\\): {message}"):
        _api(tmp_path, config, {NUMPY_LAYER_KEY: arn})


@pytest.mark.parametrize(
    "name", ["AWSSDKPandas-Python312", "AWSSDKPandas-Python313-Arm64", "AWSSDKPandas-Python314"]
)
def test_a_pandas_layer_of_another_runtime_or_architecture_is_refused(tmp_path: Path, name: str) -> None:
    arn = f"arn:aws:lambda:us-east-1:336392948345:layer:{name}:3"
    config = StageConfig(stage="dev", region="us-east-1", name_prefix="fmrec-lyr")
    with pytest.raises(
        ConfigError, match=f"runtime python3.13 on x86_64 \\(AWSSDKPandas-Python313\\), got {name}$"
    ):
        _api(tmp_path, config, {NUMPY_LAYER_KEY: arn})


def test_fast_path_setting_reaches_the_function(tmp_path: Path) -> None:
    config = StageConfig(stage="dev", region="us-east-1", name_prefix="fmrec-lyr", fast_path=True)
    template = _api(tmp_path, config)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.recommend.app.lambda_handler",
            "MemorySize": 1024,
            "Environment": {"Variables": Match.object_like({"FMREC_FAST_PATH": "1"})},
        },
    )
