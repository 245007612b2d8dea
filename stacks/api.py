"""API stack: the recommend Lambda behind a REST API that mirrors lambdas/recommend/openapi.json."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
from constructs import Construct

from stacks import staging
from stacks.config import StageConfig
from stacks.parts.recommend_function import RecommendFunction
from stacks.parts.rest_api import RecommendApi
from stacks.storage import artifact_bucket

RECOMMEND_DIR = staging.REPO_ROOT / "lambdas" / "recommend"
OPENAPI_PATH = RECOMMEND_DIR / "openapi.json"


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

        self.recommend = RecommendFunction(
            self,
            config=config,
            bucket=bucket,
            endpoint_name=endpoint_name,
            endpoint_arn=self.endpoint_arn,
            asset_dir=asset_dir,
        )
        self.rest_api = RecommendApi(
            self, config=config, document=document, function=self.recommend.function.function
        )

        cdk.CfnOutput(
            self,
            "ApiUrl",
            value=self.rest_api.api.url,
            description="base URL of the recommend API (stage v1)",
        )
        cdk.CfnOutput(
            self, "EndpointName", value=endpoint_name, description="the SageMaker endpoint the API invokes"
        )
        cdk.CfnOutput(self, "RecommendFunction", value=self.recommend.function.function.function_name)
