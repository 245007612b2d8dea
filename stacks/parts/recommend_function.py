"""The recommend Lambda (lambdas/recommend) with its Powertools and numpy layers, and its policy."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks import nag
from stacks.config import NUMPY_LAYER_KEY, SERVING_PREFIX, ConfigError, StageConfig, resolve_numpy_layer
from stacks.lambda_function import RUNTIME_LAYER_TAG, PythonLambda
from stacks.nag import acknowledge
from stacks.parts.ratings_table import ratings_table_name, recommend_statement

HANDLER = "lambdas.recommend.app.lambda_handler"
# Powertools is not bundled: its public layer is resolved at deploy time from the SSM parameter AWS publishes
# per exact version, so the deployed Powertools equals the version pinned in requirements.txt.
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/x86_64/{RUNTIME_LAYER_TAG}/{POWERTOOLS_VERSION}"
RECOMMEND_MEMORY_MB = 1024
# numpy (every path's retrieval, and GET /movies/{movieId}/similar) comes from AWS's managed "AWS SDK for
# pandas" layer, whose ARNs are published per region, Python version and architecture
# (https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html): arn:aws:lambda:<region>:336392948345:layer:
# AWSSDKPandas-Python<3XY>[-Arm64]:<version>. The ARN is a literal of cdk.json (numpy_layer_arns per stage and
# region) because the public SSM parameters that once named it were removed from its docs (aws-sdk-pandas PR
# 2489). Such a layer must be the one of the function's runtime and x86_64 architecture.
PANDAS_LAYER_PREFIX = "AWSSDKPandas-"
PANDAS_LAYER_NAME = PANDAS_LAYER_PREFIX + "Python" + RUNTIME_LAYER_TAG.removeprefix("python").replace(".", "")


class RecommendFunction:
    """Powertools + NumpyLayer (imported layer versions), Recommend (a PythonLambda) and RecommendPolicy:
    invoke the stage's endpoint, read serving/, and list the bucket so that a missing key is a 404."""

    def __init__(
        self,
        scope: Construct,
        *,
        config: StageConfig,
        bucket: s3.IBucket,
        endpoint_name: str,
        endpoint_arn: str,
        asset_dir: Path,
    ) -> None:
        powertools = lambda_.LayerVersion.from_layer_version_arn(
            scope,
            "Powertools",
            ssm.StringParameter.value_for_string_parameter(scope, POWERTOOLS_LAYER_PARAMETER),
        )
        self.numpy_layer_arn = resolve_numpy_layer(config, scope.node.try_get_context(NUMPY_LAYER_KEY))
        layer_name = self.numpy_layer_arn.split(":")[6]
        if layer_name.startswith(PANDAS_LAYER_PREFIX) and layer_name != PANDAS_LAYER_NAME:
            raise ConfigError(
                f"numpy layer {self.numpy_layer_arn} of stage {config.stage}: expected the AWS SDK for "
                f"pandas layer of the recommend Lambda's runtime {RUNTIME_LAYER_TAG} on x86_64 "
                f"({PANDAS_LAYER_NAME}), got {layer_name}"
            )
        numpy_layer = lambda_.LayerVersion.from_layer_version_arn(scope, "NumpyLayer", self.numpy_layer_arn)
        self.function = PythonLambda(
            scope,
            "Recommend",
            config=config,
            function_name=config.name("recommend"),
            description="top-k movie recommendations from the FM endpoint",
            code=lambda_.Code.from_asset(str(asset_dir)),
            handler=HANDLER,
            environment={
                "FMREC_ARTIFACT_BUCKET": bucket.bucket_name,
                "FMREC_ARTIFACT_PREFIX": SERVING_PREFIX,
                "FMREC_ENDPOINT_NAME": endpoint_name,
                # Both paths rank with numpy (the layer); the fast path replacing the endpoint is per stage.
                "FMREC_FAST_PATH": "1" if config.fast_path else "0",
                "FMREC_RATINGS_TABLE": ratings_table_name(config),
                "POWERTOOLS_SERVICE_NAME": "fmrec-recommend",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            layers=[powertools, numpy_layer],
            # Both paths hold the model and its movie terms (the retrieval): at 59,047 movies and 162,541
            # users with the history block the peak is 479 MB, 47% of 1024 (docs/benchmarks.md).
            memory_size=RECOMMEND_MEMORY_MB,
            # under API Gateway's 29 s, above the endpoint retries' worst case
            timeout=cdk.Duration.seconds(15),
        )
        self.policy = iam.Policy(
            scope,
            "RecommendPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeEndpoint", actions=["sagemaker:InvokeEndpoint"], resources=[endpoint_arn]
                ),
                iam.PolicyStatement(
                    sid="ReadServingArtifacts",
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{SERVING_PREFIX}*")],
                ),
                # "If you have the s3:ListBucket permission on the bucket, Amazon S3 returns an HTTP
                # status code 404 (Not Found)" for a missing key, else 403 (Access Denied), which the Lambda
                # maps to 503 instead of its fallback (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
                # The grant has no s3:prefix condition: a GetObject carries no s3:prefix, and a condition on a
                # key absent from the request does not match, so a prefix-conditioned grant still answered 403
                # (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
                recommend_statement(config),  # only the ratings table, only Query and PutItem
                iam.PolicyStatement(
                    sid="MissingKeysAre404",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                ),
            ],
        )
        self.policy.attach_to_role(self.function.role)
        acknowledge(
            self.policy,
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{SERVING_PREFIX}*")),
                "The Lambda reads serving/current.json and serving/<model version>/...; versions are "
                "known at run time only.",
            ),
        )
