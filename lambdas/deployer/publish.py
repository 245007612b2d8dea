"""Publishing a model version in serving/ for the recommend Lambda: its files, then current.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fmrec.serving.artifacts import CURRENT_KEY, dump_current, lookup_key, model_key, version_prefix
from lambdas.deployer.settings import DeployError, Settings

STAGED_KEY = "staged.json"  # written last into serving/<variant>/: the variant's artifacts are complete


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise DeployError(f"{uri!r}: expected s3://bucket/key")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def stage_version(s3: Any, settings: Settings, variant: str, package: Mapping[str, Any]) -> None:
    """Copy the package's lookup files and model.tar.gz under <serving prefix><variant>/ for the recommend
    Lambda (it loads the lookup of the variant that answered, and the model for its fast path).

    Done once per variant: STAGED_KEY, written last, marks a complete copy, so a later deploy or stack
    update does not copy again (nor need the sources, should they be gone by then).
    """
    dest = settings.serving_prefix + version_prefix(variant)
    marker = s3.list_objects_v2(Bucket=settings.artifact_bucket, Prefix=dest + STAGED_KEY, MaxKeys=1)
    if marker.get("KeyCount", 0) > 0:
        return
    metadata = package.get("CustomerMetadataProperties") or {}
    lookup_uri = metadata.get(settings.lookup_metadata_key)
    if not lookup_uri:
        raise DeployError(
            f"{package.get('ModelPackageArn')}: CustomerMetadataProperties has no "
            f"{settings.lookup_metadata_key!r} "
            "(the lookup folder the pipeline wrote for this model)"
        )
    containers = package.get("InferenceSpecification", {}).get("Containers", [])
    if not containers or not containers[0].get("ModelDataUrl"):
        raise DeployError(f"{package.get('ModelPackageArn')}: InferenceSpecification has no ModelDataUrl")
    src_bucket, src_prefix = split_s3(lookup_uri.rstrip("/") + "/")
    paginator = s3.get_paginator("list_objects_v2")
    copied = 0
    for page in paginator.paginate(Bucket=src_bucket, Prefix=src_prefix):
        for item in page.get("Contents", []):
            name = item["Key"][len(src_prefix) :]
            s3.copy_object(
                Bucket=settings.artifact_bucket,
                Key=settings.serving_prefix + lookup_key(variant, name),
                CopySource={"Bucket": src_bucket, "Key": item["Key"]},
            )
            copied += 1
    if copied == 0:
        raise DeployError(f"{lookup_uri}: no lookup files there")
    model_bucket, model_source = split_s3(containers[0]["ModelDataUrl"])
    s3.copy_object(
        Bucket=settings.artifact_bucket,
        Key=settings.serving_prefix + model_key(variant),
        CopySource={"Bucket": model_bucket, "Key": model_source},
    )
    s3.put_object(
        Bucket=settings.artifact_bucket,
        Key=dest + STAGED_KEY,
        Body=json.dumps({"package": package.get("ModelPackageArn"), "lookup": lookup_uri}).encode(),
        ContentType="application/json",
    )


def publish_current(s3: Any, settings: Settings, variant: str) -> None:
    """Point serving/current.json at `variant`: the recommend Lambda serves it from its next request on.
    Done once the endpoint serves that variant alone, after stage_version copied its files."""
    s3.put_object(
        Bucket=settings.artifact_bucket,
        Key=f"{settings.serving_prefix}{CURRENT_KEY}",
        Body=dump_current(variant),
        ContentType="application/json",
    )
