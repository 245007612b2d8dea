"""The recommend Lambda's public layers (Powertools, AWS SDK for pandas): versions, SSM names, ARN checks."""

from __future__ import annotations

import re

from fmrec.deploy.stage import ConfigError, StageConfig

# The Lambdas' runtime as the public layers name it; stacks/lambda_function.py deploys this runtime.
RUNTIME_LAYER_TAG = "python3.13"
ARCHITECTURE = "x86_64"
# Powertools is not bundled: its public layer is resolved at deploy time from the SSM parameter AWS publishes
# per exact version, so the deployed Powertools equals the version pinned in requirements.txt
# (https://docs.powertools.aws.dev/lambda/python/latest/#aws-ssm-parameter-store).
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/{ARCHITECTURE}/{RUNTIME_LAYER_TAG}/{POWERTOOLS_VERSION}"
)
# numpy (for the fast path and GET /movies/{movieId}/similar) comes from AWS's managed "AWS SDK for pandas"
# layer, resolved at deploy time, like Powertools, from the public SSM parameter AWS SDK for pandas documents
# per library version, Python version and architecture: "/aws/service/aws-sdk-pandas/3.4.0/py3.10/x86_64/
# layer-arn" (https://aws-sdk-pandas.readthedocs.io/en/stable/install.html, "AWS Lambda Layer"). It holds the
# layer version ARN of the region it is read in, so no region's ARN is written here. 3.14.0 is the release
# whose us-east-1 layer (AWSSDKPandas-Python313:5) this stack deployed before; bump it to move numpy on.
AWS_SDK_PANDAS_VERSION = "3.14.0"
PANDAS_LAYER_PARAMETER = (
    f"/aws/service/aws-sdk-pandas/{AWS_SDK_PANDAS_VERSION}/py{RUNTIME_LAYER_TAG.removeprefix('python')}/"
    f"{ARCHITECTURE}/layer-arn"
)
# Its layers are arn:aws:lambda:<region>:336392948345:layer:AWSSDKPandas-Python<3XY>[-Arm64]:<version>
# (https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html).
PANDAS_LAYER_PREFIX = "AWSSDKPandas-"
PANDAS_LAYER_NAME = PANDAS_LAYER_PREFIX + "Python" + RUNTIME_LAYER_TAG.removeprefix("python").replace(".", "")
# `-c fmrec:numpy_layer_arn=<arn>` replaces the SSM-resolved numpy layer for one synth/deploy (a region where
# the parameter is missing, or a layer of your own).
NUMPY_LAYER_KEY = "fmrec:numpy_layer_arn"

# A layer *version* ARN, at most 140 characters, pattern
# arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+
# (https://docs.aws.amazon.com/lambda/latest/api/API_GetLayerVersionByArn.html), the region an AWS region.
_LAYER_ARN_RE = re.compile(
    r"^arn:[a-zA-Z0-9-]+:lambda:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}:layer:(?P<name>[a-zA-Z0-9_-]+):\d+$"
)
_LAYER_ARN_MAX = 140


def layer_arn_problem(arn: object, region: str) -> str | None:
    """Why `arn` is not a layer version ARN of `region` (for this runtime, when an AWS SDK for pandas layer),
    or None when it is."""
    match = _LAYER_ARN_RE.match(arn) if isinstance(arn, str) and len(arn) <= _LAYER_ARN_MAX else None
    if match is None:
        return f"expected 'arn:aws:lambda:{region}:<account>:layer:<name>:<version>', got {arn!r}"
    if match["region"] != region:
        # A layer version is a regional resource: AWS SDK for pandas publishes one ARN per region.
        return f"the layer is in {match['region']}, the function in {region}: expected a layer of {region}"
    name = match["name"]
    if name.startswith(PANDAS_LAYER_PREFIX) and name != PANDAS_LAYER_NAME:
        return (
            f"expected the AWS SDK for pandas layer of the recommend Lambda's runtime {RUNTIME_LAYER_TAG} on "
            f"{ARCHITECTURE} ({PANDAS_LAYER_NAME}), got {name}"
        )
    return None


def numpy_layer_override(config: StageConfig, override: object) -> str | None:
    """The numpy layer ARN given by context fmrec:numpy_layer_arn (None: resolve it from SSM), checked."""
    if override is None:
        return None
    problem = layer_arn_problem(override, config.region)
    if problem is not None:
        raise ConfigError(f"context {NUMPY_LAYER_KEY} (stage {config.stage}): {problem}")
    return str(override)
