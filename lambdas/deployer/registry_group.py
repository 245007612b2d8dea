"""The model package group as a custom resource: adopted on create, emptied then deleted (or kept)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdas.deployer.settings import DeployError, aws_error

GROUP_RESOURCE = "Custom::FmrecModelPackageGroup"


def group_lifecycle(event: Mapping[str, Any], sagemaker: Any) -> dict[str, Any]:
    """The model package group as a custom resource that survives destroy → deploy in both stages.

    Create adopts a group that is already there (one a retaining stage kept when it was destroyed), where a
    plain AWS::SageMaker::ModelPackageGroup would fail with "already exists". Delete keeps the group when
    the stage retains its registry; otherwise it deletes every version first: DeleteModelPackageGroup refuses
    a group that still holds versions (its ConflictException,
    https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DeleteModelPackageGroup.html).
    """
    props = event.get("ResourceProperties") or {}
    name = str(props.get("GroupName", ""))
    if not name:
        raise DeployError("ResourceProperties.GroupName is not set")
    result: dict[str, Any] = {"group": name}
    if event["RequestType"] == "Delete":
        if str(props.get("KeepOnDelete", "true")).lower() == "true":
            return {**result, "action": "kept"}
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except Exception as exc:
            code, message = aws_error(exc)
            missing = any(w in message.lower() for w in ("not find", "not exist", "not found"))
            if code in ("ValidationException", "ResourceNotFound") and missing:
                return {**result, "action": "already gone"}
            raise
        deleted = 0
        for page in sagemaker.get_paginator("list_model_packages").paginate(ModelPackageGroupName=name):
            for item in page.get("ModelPackageSummaryList", []):
                sagemaker.delete_model_package(ModelPackageName=item["ModelPackageArn"])
                deleted += 1
        sagemaker.delete_model_package_group(ModelPackageGroupName=name)
        return {**result, "action": "deleted", "versions": deleted}
    try:
        sagemaker.create_model_package_group(
            ModelPackageGroupName=name, ModelPackageGroupDescription=str(props.get("Description", ""))
        )
        return {**result, "action": "created"}
    except Exception as exc:
        if aws_error(exc)[0] != "ValidationException":
            raise
        # Not knowing the exact wording of "already exists", ask: the group is there, or the error stands.
        try:
            sagemaker.describe_model_package_group(ModelPackageGroupName=name)
        except Exception:
            raise exc from None
        return {**result, "action": "adopted"}
