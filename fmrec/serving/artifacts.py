"""The serving-artifact contract: current.json, <version>/lookup/, <version>/model.tar.gz, version names."""

# Standard library only: both Lambdas import this module, and it is on the recommend Lambda's cold start.
from __future__ import annotations

import json
import re

from fmrec.errors import InputError

# The layout under the serving prefix (s3://<bucket>/serving/) or in the API twin's --artifacts folder
# (docs/api.md, "Serving artifacts"):
#   current.json             {"modelVersion": "v7"}, written last: the published version
#   v7/lookup/<name>         the lookup files of version v7 (fmrec.serving.lookup.LOOKUP_FILES)
#   v7/model.tar.gz          its model, for the fast path and similar movies
# A bare lookup folder (no current.json) has the lookup files and model.tar.gz at its top: version None.
CURRENT_KEY = "current.json"
CURRENT_FIELD = "modelVersion"
LOOKUP_DIR = "lookup"
MODEL_FILE = "model.tar.gz"
# Model package version N is served as the endpoint's production variant, and published, as vN.
VERSION_PREFIX = "v"
# A model version names a folder of the artifacts and is an endpoint variant name: SageMaker's VariantName
# pattern (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ProductionVariant.html; EndpointName
# has the same one, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_CreateEndpoint.html), so no
# "..", "/" or empty part can lead a key outside the artifacts.
VARIANT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeModelPackage.html (ModelPackageArn)
PACKAGE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:model-package/([^/]+)/(\d+)$")
_PACKAGE_VERSION = re.compile(r"[0-9]+")


def is_variant_name(name: object) -> bool:
    """True for a string SageMaker accepts as a production variant name (and so as a model version)."""
    return isinstance(name, str) and VARIANT_NAME.fullmatch(name) is not None


def check_version(version: object, where: str) -> str:
    """`version` when it is a plain variant name; otherwise an InputError naming `where`."""
    if not is_variant_name(version):
        shown = str(version)[:80]
        raise InputError(
            f"{where}: model version {shown!r} is not a plain name (expected {VARIANT_NAME.pattern})"
        )
    return str(version)


def version_name(package_version: int | str) -> str:
    """The model version (and variant name) of model package version N: vN."""
    text = str(package_version)
    if not _PACKAGE_VERSION.fullmatch(text):
        raise InputError(f"model package version {text[:80]!r}: expected a whole number")
    return f"{VERSION_PREFIX}{text}"


def version_from_package_arn(package_arn: str) -> str:
    """The model version of a model package ARN (arn:...:model-package/<group>/<N> -> vN)."""
    match = PACKAGE_ARN.match(package_arn)
    if not match:
        raise InputError(f"ModelPackageArn {package_arn!r}: expected arn:...:model-package/<group>/<version>")
    return version_name(match.group(2))


def version_prefix(version: str) -> str:
    """The key prefix of everything published for `version`."""
    return f"{version}/"


def lookup_prefix(version: str | None) -> str:
    """The key prefix of a version's lookup files; "" for a bare lookup folder (version None)."""
    return f"{version}/{LOOKUP_DIR}/" if version else ""


def lookup_key(version: str | None, name: str) -> str:
    """The key of lookup file `name` of `version` (None: a bare lookup folder)."""
    return lookup_prefix(version) + name


def model_key(version: str | None) -> str:
    """The key of the model.tar.gz of `version` (None: a bare lookup folder)."""
    return f"{version}/{MODEL_FILE}" if version else MODEL_FILE


def dump_current(version: str) -> bytes:
    """The bytes of current.json publishing `version`."""
    return json.dumps({CURRENT_FIELD: check_version(version, CURRENT_KEY)}).encode()


def parse_current(raw: bytes | str, where: str = CURRENT_KEY) -> str:
    """The version current.json publishes; an InputError naming `where` unless it is {"modelVersion": v}."""
    try:
        version = json.loads(raw)[CURRENT_FIELD]
    except (ValueError, KeyError, TypeError):
        raise InputError(f'{where}: expected {{"{CURRENT_FIELD}": ...}}') from None
    return check_version(version, where)
