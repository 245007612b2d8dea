"""ECR repository ARNs of the SageMaker images the jobs and the endpoint pull (IAM resources, never URIs)."""

from __future__ import annotations

from fmrec.errors import InputError


def ecr_repository_arn(image_uri: str) -> str:
    """The repository ARN of an image URI <account>.dkr.ecr.<region>.<domain>/<name>:<tag>."""
    host, _, rest = image_uri.partition("/")
    parts = host.split(".")
    if len(parts) < 6 or parts[1:3] != ["dkr", "ecr"] or not parts[0].isdigit() or not rest:
        raise InputError(
            f"image URI {image_uri!r}: expected <account>.dkr.ecr.<region>.amazonaws.com/<repo>:<tag>"
        )
    account, region = parts[0], parts[3]
    repository = rest.split("@", 1)[0].rsplit(":", 1)[0]
    partition = "aws-cn" if host.endswith(".com.cn") else "aws"
    return f"arn:{partition}:ecr:{region}:{account}:repository/{repository}"
