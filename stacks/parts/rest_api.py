"""The REST API that mirrors lambdas/recommend/openapi.json: auth, throttling, access logs and tracing."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks.config import StageConfig
from stacks.lambda_function import _retention
from stacks.nag import acknowledge

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


def _operation_id(document: dict[str, Any], path: str, method: str) -> str | None:
    operation = document["paths"][path][method.lower()]
    value = operation.get("operationId")
    return str(value) if value else None


class RecommendApi:
    """AccessLogs + Api (RestApi, stage v1) with one validated proxy method per OpenAPI operation, all to
    `function`; IAM auth, or API key + usage plan when the stage's api_auth is "api_key"."""

    def __init__(
        self, scope: Construct, *, config: StageConfig, document: dict[str, Any], function: lambda_.IFunction
    ) -> None:
        access_logs = logs.LogGroup(
            scope,
            "AccessLogs",
            retention=_retention(config.log_retention_days),
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        iam_auth = config.api_auth == "iam"
        self.api = apigw.RestApi(
            scope,
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
        integration = apigw.LambdaIntegration(function, proxy=True)
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
        self._add_catch_all(function, iam_auth)
        if iam_auth:
            acknowledge(
                self.api,
                (
                    "AwsSolutions-COG4",
                    "Callers are AWS principals that sign with SigV4 (AWS_IAM auth), not Cognito users.",
                ),
            )
        else:
            self._add_usage_plan(config)
        acknowledge(
            self.api,
            (
                "AwsSolutions-APIG3",
                "A read-only API behind SigV4 (or API keys) with stage and usage-plan throttling; a WAF "
                "web ACL adds cost and can be attached per account policy.",
            ),
        )

    def _add_catch_all(self, function: lambda_.IFunction, iam_auth: bool) -> None:
        """GET /openapi.json, and ANY on the root, on every resource of the document and on /{proxy+}: the
        Lambda answers them (the document, or a JSON 404 naming the method and path) under the same auth.

        Without them API Gateway itself answers a path or method with no method behind it, with 403
        "Missing Authentication Token" (https://repost.aws/knowledge-center/api-gateway-authentication-token-errors);
        a greedy {proxy+} resource catches every other path, the more specific resources match first
        (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-set-up-simple-proxy.html).
        """
        # One permission for the whole API instead of one per method (and per test-invoke): the Lambda
        # answers any of its paths (https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html).
        integration = apigw.LambdaIntegration(function, proxy=True, scope_permission_to_method=False)
        auth = apigw.AuthorizationType.IAM if iam_auth else apigw.AuthorizationType.NONE
        options: dict[str, Any] = {"authorization_type": auth, "api_key_required": not iam_auth}
        self.api.root.resource_for_path("/openapi.json").add_method("GET", integration, **options)
        declared = {path for path, _, _ in self.routes}
        prefixes = {
            "/".join(path.split("/")[: i + 1]) for path in declared for i in range(1, path.count("/") + 1)
        }
        for path in sorted(prefixes):
            self.api.root.resource_for_path(path).add_method("ANY", integration, **options)
        self.api.root.add_method("ANY", integration, **options)
        self.api.root.add_proxy(
            default_integration=integration,
            any_method=True,
            default_method_options=apigw.MethodOptions(**options),
        )

    def _add_usage_plan(self, config: StageConfig) -> None:
        """ApiKey + UsagePlan of the api_key mode: every key is throttled and has a daily quota."""
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
