"""The recommend Lambda gets numpy from the AWS SDK for pandas layer of its stage's region: from cdk.json,
from a -c override, and a synth that fails with the fix named when the region has none."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template

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


def _layers(assembly: Assembly) -> list[Any]:
    (function,) = [
        f
        for f in assembly.resources("Api", "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "lambdas.recommend.app.lambda_handler"
    ]
    return list(function["Properties"]["Layers"])


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_recommend_lambda_has_the_layer_of_its_region(
    assemblies: dict[str, Assembly], cdk_context: dict[str, Any], stage: str
) -> None:
    settings = cdk_context["fmrec:stages"][stage]
    expected = settings["numpy_layer_arns"][settings["region"]]
    layers = _layers(assemblies[stage])
    assert expected in layers
    assert len(layers) == 2  # Powertools (SSM-resolved) and numpy
    # The layer is for the function's runtime (python3.13) and architecture (x86_64: no -Arm64 suffix).
    assert expected.split(":")[6] == "AWSSDKPandas-Python313"


def test_cli_context_overrides_the_layer(numpy_override: Assembly) -> None:
    """`cdk synth -c fmrec:numpy_layer_arn=...` (the npm CLI, as a user runs it) replaces cdk.json's ARN."""
    assert SYNTHS["numpy-override"].cli_context == {NUMPY_LAYER_KEY: OTHER_NUMPY_LAYER}
    layers = _layers(numpy_override)
    assert OTHER_NUMPY_LAYER in layers
    assert not any(isinstance(x, str) and x.endswith("AWSSDKPandas-Python313:5") for x in layers)


def _api(tmp_path: Path, config: StageConfig, context: dict[str, Any] | None = None) -> Template:
    return Template.from_stack(api_stack(new_app(tmp_path / "out", context), "LayerApi", config, tmp_path))


def test_missing_region_fails_the_synth_naming_the_fix(tmp_path: Path) -> None:
    """A stage moved to a region with no configured layer stops at synth, before anything is deployed."""
    dev = dict(cdk_json_context()["fmrec:stages"]["dev"], region="eu-west-1")
    with pytest.raises(ConfigError) as info:
        build_stage(tmp_path / "out", {"fmrec:stages": {"dev": dev}})
    message = str(info.value)
    assert "fmrec:stages.dev.numpy_layer_arns: no layer for region 'eu-west-1'" in message
    assert "configured: ['us-east-1']" in message
    assert "https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html" in message
    assert f"-c {NUMPY_LAYER_KEY}=<arn>" in message
    # The same stage in eu-west-1 synthesizes once the override gives that region's layer.
    eu = "arn:aws:lambda:eu-west-1:336392948345:layer:AWSSDKPandas-Python313:5"
    config = StageConfig.from_mapping("dev", dev)
    template = _api(tmp_path, config, {NUMPY_LAYER_KEY: eu})
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {"Handler": "lambdas.recommend.app.lambda_handler", "Layers": [eu, {"Ref": Match.any_value()}]},
    )


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
    config = StageConfig(
        stage="dev", region="us-east-1", name_prefix="fmrec-lyr", numpy_layer_arns={"us-east-1": arn}
    )
    with pytest.raises(
        ConfigError, match=f"runtime python3.13 on x86_64 \\(AWSSDKPandas-Python313\\), got {name}$"
    ):
        _api(tmp_path, config)


def test_fast_path_setting_reaches_the_function(tmp_path: Path) -> None:
    arn = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python313:5"
    config = StageConfig(
        stage="dev",
        region="us-east-1",
        name_prefix="fmrec-lyr",
        numpy_layer_arns={"us-east-1": arn},
        fast_path=True,
    )
    template = _api(tmp_path, config)
    template.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "lambdas.recommend.app.lambda_handler",
            "MemorySize": 1024,
            "Environment": {"Variables": Match.object_like({"FMREC_FAST_PATH": "1"})},
        },
    )
