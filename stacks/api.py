"""API stack: the recommend Lambda behind a REST API that mirrors lambdas/recommend/openapi.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks import nag, staging
from stacks.config import NUMPY_LAYER_KEY, SERVING_PREFIX, ConfigError, StageConfig, resolve_numpy_layer
from stacks.lambda_function import RUNTIME_LAYER_TAG, PythonLambda, _retention
from stacks.nag import acknowledge
from stacks.storage import artifact_bucket

RECOMMEND_DIR = staging.REPO_ROOT / "lambdas" / "recommend"
OPENAPI_PATH = RECOMMEND_DIR / "openapi.json"
HANDLER = "lambdas.recommend.app.lambda_handler"
# Powertools is not bundled: its public layer is resolved at deploy time from the SSM parameter AWS publishes
# per exact version, so the deployed Powertools equals the version pinned in requirements.txt.
POWERTOOLS_VERSION = "3.37.0"
POWERTOOLS_LAYER_PARAMETER = f"/aws/service/powertools/python/x86_64/{RUNTIME_LAYER_TAG}/{POWERTOOLS_VERSION}"
# numpy (for the fast path and GET /movies/{movieId}/similar) comes from AWS's managed "AWS SDK for pandas"
# layer, whose ARNs are published per region, Python version and architecture
# (https://aws-sdk-pandas.readthedocs.io/en/stable/layers.html): arn:aws:lambda:<region>:336392948345:layer:
# AWSSDKPandas-Python<3XY>[-Arm64]:<version>. The ARN is a literal of cdk.json (numpy_layer_arns per stage and
# region) because the public SSM parameters that once named it were removed from its docs (aws-sdk-pandas PR
# 2489). Such a layer must be the one of the function's runtime and x86_64 architecture.
PANDAS_LAYER_PREFIX = "AWSSDKPandas-"
PANDAS_LAYER_NAME = PANDAS_LAYER_PREFIX + "Python" + RUNTIME_LAYER_TAG.removeprefix("python").replace(".", "")
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def openapi_routes(document: dict[str, Any]) -> list[tuple[str, str, dict[str, bool]]]:
    """(path, METHOD, {"method.request.<in>.<name>": required}) for every operation of an OpenAPI document."""
    routes = []
    for path, item in sorted(document.get("paths", {}).items()):
        shared = item.get("parameters", [])
        for method, operation in sorted(item.items()):
            if method not in _HTTP_METHODS:
                continue
            params: dict[str, bool] = {}
            for param in [*shared, *operation.get("parameters", [])]:
                where = {"query": "querystring", "path": "path", "header": "header"}.get(param.get("in", ""))
                if where is not None:
                    params[f"method.request.{where}.{param['name']}"] = bool(param.get("required", False))
            routes.append((path, method.upper(), params))
    return routes


def stage_recommend_asset(outdir: Path) -> Path:
    """lambdas/recommend (code + openapi.json) and the fmrec modules it imports, at their package paths."""
    entry = {
        f"lambdas/recommend/{p.name}": p
        for p in sorted(RECOMMEND_DIR.iterdir())
        if p.is_file() and p.suffix in (".py", ".json")
    }
    entry["lambdas/__init__.py"] = staging.REPO_ROOT / "lambdas" / "__init__.py"
    return staging.stage_python(outdir / "staging" / "recommend", entry, packages=("fmrec", "lambdas"))


class ApiStack(cdk.Stack):
    """REST API (IAM auth by default, or API key + usage plan), throttled, access-logged and traced."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        endpoint_name: str,
        asset_dir: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        bucket = artifact_bucket(self, config)
        region, account, partition = cdk.Aws.REGION, cdk.Aws.ACCOUNT_ID, cdk.Aws.PARTITION
        self.endpoint_arn = f"arn:{partition}:sagemaker:{region}:{account}:endpoint/{endpoint_name}"
        document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))

        powertools = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "Powertools",
            ssm.StringParameter.value_for_string_parameter(self, POWERTOOLS_LAYER_PARAMETER),
        )
        numpy_arn = resolve_numpy_layer(config, self.node.try_get_context(NUMPY_LAYER_KEY))
        layer_name = numpy_arn.split(":")[6]
        if layer_name.startswith(PANDAS_LAYER_PREFIX) and layer_name != PANDAS_LAYER_NAME:
            raise ConfigError(
                f"numpy layer {numpy_arn} of stage {config.stage}: expected the AWS SDK for pandas layer of "
                f"the recommend Lambda's runtime {RUNTIME_LAYER_TAG} on x86_64 ({PANDAS_LAYER_NAME}), "
                f"got {layer_name}"
            )
        numpy_layer = lambda_.LayerVersion.from_layer_version_arn(self, "NumpyLayer", numpy_arn)
        self.numpy_layer_arn = numpy_arn
        self.recommend = PythonLambda(
            self,
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
                # The numpy layer makes the fast path possible; whether it replaces the endpoint is per stage.
                "FMREC_FAST_PATH": "1" if config.fast_path else "0",
                "POWERTOOLS_SERVICE_NAME": "fmrec-recommend",
                "POWERTOOLS_LOG_LEVEL": "INFO",
            },
            layers=[powertools, numpy_layer],
            memory_size=1024 if config.fast_path else 512,  # docs/api.md "Lambda environment and packaging"
            timeout=cdk.Duration.seconds(
                15
            ),  # under API Gateway's 29 s, above the endpoint retries' worst case
        )
        policy = iam.Policy(
            self,
            "RecommendPolicy",
            statements=[
                iam.PolicyStatement(
                    sid="InvokeEndpoint", actions=["sagemaker:InvokeEndpoint"], resources=[self.endpoint_arn]
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
                iam.PolicyStatement(
                    sid="MissingKeysAre404",
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                ),
            ],
        )
        policy.attach_to_role(self.recommend.role)
        acknowledge(
            policy,
            (
                nag.wildcard_resource(nag.bucket_objects(config, f"{SERVING_PREFIX}*")),
                "The Lambda reads serving/current.json and serving/<model version>/...; versions are "
                "known at run time only.",
            ),
        )
        self.recommend_policy = policy

        # --- the REST API --------------------------------------------------------------------------------
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        iam_auth = config.api_auth == "iam"
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=config.name("api"),
            description=document.get("info", {}).get("title", "fmrec recommend API"),
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution and access logging need the account's API Gateway CloudWatch role, a setting of the
            # whole account and region: set once by hand (docs/deploy.md), never created or deleted by these
            # stacks, so destroying a stage does not break the logging of every other REST API there.
            # https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
            cloud_watch_role=False,
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                tracing_enabled=True,
                throttling_rate_limit=config.throttle_rate_limit,
                throttling_burst_limit=config.throttle_burst_limit,
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # request bodies stay out of the logs
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        validator = self.api.add_request_validator(
            "Validator",
            request_validator_name="parameters-and-body",
            validate_request_parameters=True,
            validate_request_body=True,
        )
        integration = apigw.LambdaIntegration(self.recommend.function, proxy=True)
        self.routes = openapi_routes(document)
        for path, method, params in self.routes:
            resource = self.api.root.resource_for_path(path)
            resource.add_method(
                method,
                integration,
                operation_name=_operation_id(document, path, method),
                request_parameters=params,
                request_validator=validator,
                authorization_type=apigw.AuthorizationType.IAM if iam_auth else apigw.AuthorizationType.NONE,
                api_key_required=not iam_auth,
            )
        if iam_auth:
            acknowledge(
                self.api,
                (
                    "AwsSolutions-COG4",
                    "Callers are AWS principals that sign with SigV4 (AWS_IAM auth), not Cognito users.",
                ),
            )
        else:
            key = self.api.add_api_key("ApiKey", api_key_name=config.name("api-key"))
            plan = self.api.add_usage_plan(
                "UsagePlan",
                name=config.name("usage-plan"),
                throttle=apigw.ThrottleSettings(
                    rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
                ),
                quota=apigw.QuotaSettings(limit=config.api_key_quota_per_day, period=apigw.Period.DAY),
            )
            plan.add_api_key(key)
            plan.add_api_stage(stage=self.api.deployment_stage)
            acknowledge(
                self.api,
                (
                    "AwsSolutions-APIG4",
                    "api_auth is 'api_key' in this stage's config: methods require an API key, and the usage "
                    "plan throttles and caps each key.",
                ),
                (
                    "AwsSolutions-COG4",
                    "api_auth is 'api_key' in this stage's config; there are no Cognito users.",
                ),
            )
        acknowledge(
            self.api,
            (
                "AwsSolutions-APIG3",
                "A read-only API behind SigV4 (or API keys) with stage and usage-plan throttling; a WAF "
                "web ACL adds cost and can be attached per account policy.",
            ),
        )

        cdk.CfnOutput(
            self, "ApiUrl", value=self.api.url, description="base URL of the recommend API (stage v1)"
        )
        cdk.CfnOutput(
            self, "EndpointName", value=endpoint_name, description="the SageMaker endpoint the API invokes"
        )
        cdk.CfnOutput(self, "RecommendFunction", value=self.recommend.function.function_name)


def _operation_id(document: dict[str, Any], path: str, method: str) -> str | None:
    operation = document["paths"][path][method.lower()]
    value = operation.get("operationId")
    return str(value) if value else None
