"""The fmrec CDK app: storage, pipeline, serving and API stacks of one stage, checked by cdk-nag."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# `cdk synth` runs this file as a script: the repository root must be importable (stacks/, pipeline/, fmrec/).
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aws_cdk as cdk
from aws_cdk import Validations
from cdk_nag import AwsSolutionsChecks

from fmrec.deploy.stage import read_cdk_context
from pipeline.definition import image_uris
from stacks.api import ApiStack, stage_recommend_asset
from stacks.config import StageConfig, load_stage
from stacks.images import ecr_repository_arn
from stacks.pipeline import PipelineStack, code_version, pipeline_definition, stage_code_tree
from stacks.serving import ServingStack
from stacks.storage import StorageStack


@dataclass
class FmrecApp:
    """The app and its stacks, so tests can reach each one."""

    app: cdk.App
    config: StageConfig
    storage: StorageStack
    pipeline: PipelineStack
    serving: ServingStack
    api: ApiStack


CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def cdk_json_context() -> dict[str, Any]:
    """cdk.json's context: `python app.py` gets none from the CLI, so the app reads it itself."""
    return read_cdk_context(CDK_JSON)


def build_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None, nag: bool = True
) -> FmrecApp:
    """Build (not synthesize) the app from cdk.json's context updated with `context`; the CLI's context (-c)
    still wins over both."""
    app = cdk.App(context={**cdk_json_context(), **dict(context or {})}, outdir=outdir)
    raw_context = {key: app.node.try_get_context(key) for key in ("fmrec:stages", "fmrec:stage")}
    config = load_stage({k: v for k, v in raw_context.items() if v is not None})
    env = cdk.Environment(account=config.account, region=config.region)
    prefix = "".join(part.capitalize() for part in config.name_prefix.split("-"))

    images = image_uris(config.region)
    staging_root = Path(app.outdir)
    storage = StorageStack(app, f"{prefix}Storage", config=config, env=env)
    code_dir = stage_code_tree(staging_root)
    pipeline = PipelineStack(
        app,
        f"{prefix}Pipeline",
        config=config,
        definition=pipeline_definition(config, code_version(code_dir)),
        code_dir=code_dir,
        image_repository_arns=[ecr_repository_arn(images["fm"]), ecr_repository_arn(images["sklearn"])],
        env=env,
    )
    serving = ServingStack(
        app,
        f"{prefix}Serving",
        config=config,
        fm_repository_arn=ecr_repository_arn(images["fm"]),
        env=env,
    )
    pipeline.node.add_dependency(storage)  # the pipeline writes to the artifact bucket
    serving.node.add_dependency(pipeline)  # the deployer reads the model package group
    api = ApiStack(
        app,
        f"{prefix}Api",
        config=config,
        endpoint_name=serving.endpoint_name,
        asset_dir=stage_recommend_asset(staging_root),
        env=env,
    )
    api.node.add_dependency(serving)  # the API invokes the endpoint the serving stack deploys
    for stack in (storage, pipeline, serving, api):
        cdk.Tags.of(stack).add("project", "fmrec")
        cdk.Tags.of(stack).add("stage", config.stage)
    if nag:
        Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return FmrecApp(app, config, storage, pipeline, serving, api)


def main() -> None:
    os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
    built = build_app()
    built.app.synth()


if __name__ == "__main__":
    main()
