"""The recommend Lambda (lambdas/recommend) with its Powertools and numpy layers, and its policy."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from fmrec.deploy.layers import (
    NUMPY_LAYER_KEY,
    PANDAS_LAYER_PARAMETER,
    POWERTOOLS_LAYER_PARAMETER,
    POWERTOOLS_VERSION,
    numpy_layer_override,
)
from stacks import nag
from stacks.config import SERVING_PREFIX, StageConfig
from stacks.lambda_function import PythonLambda
from stacks.nag import acknowledge
from stacks.parts.ratings_table import ratings_table_name, recommend_statement

__all__ = ["HANDLER", "POWERTOOLS_LAYER_PARAMETER", "POWERTOOLS_VERSION", "RecommendFunction"]

HANDLER = "lambdas.recommend.app.lambda_handler"
# 1024 MB: with the default 128-factor model both paths peak at 393 MB at a 59,047-movie catalogue, 38% of it
# (767 MB while the model's read held four copies of V; docs/benchmarks.md, bench_api.py --memory)
RECOMMEND_MEMORY_MB = 1024


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
        # Both layers are resolved at deploy time from AWS's public SSM parameters of the target region
        # (fmrec.deploy.layers), unless -c fmrec:numpy_layer_arn names the numpy layer.
        self.numpy_layer_arn = numpy_layer_override(
            config, scope.node.try_get_context(NUMPY_LAYER_KEY)
        ) or ssm.StringParameter.value_for_string_parameter(scope, PANDAS_LAYER_PARAMETER)
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
            # users, history block and 128 factors: a peak of 393 MB, 38% of 1024 (docs/benchmarks.md)
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
