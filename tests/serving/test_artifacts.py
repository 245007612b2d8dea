"""The serving-artifact contract: names, keys, version naming, current.json, and its stdlib-only import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fmrec.errors import InputError
from fmrec.serving import artifacts
from fmrec.serving.artifacts import (
    check_version,
    dump_current,
    is_variant_name,
    lookup_key,
    lookup_prefix,
    model_key,
    parse_current,
    version_from_package_arn,
    version_name,
    version_prefix,
)

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/fmrec-dev-models/7"


def test_keys_of_a_version_and_of_a_bare_lookup_folder() -> None:
    assert artifacts.CURRENT_KEY == "current.json"
    assert version_prefix("v7") == "v7/"
    assert lookup_prefix("v7") == "v7/lookup/" and lookup_prefix(None) == ""
    assert lookup_key("v7", "users.json") == "v7/lookup/users.json"
    assert lookup_key(None, "users.json") == "users.json"
    assert model_key("v7") == "v7/model.tar.gz" and model_key(None) == "model.tar.gz"
    # The same keys name local files: a trailing "/" does not change the path.
    assert Path("/srv") / lookup_prefix("v7") == Path("/srv/v7/lookup")
    assert Path("/srv") / lookup_prefix(None) == Path("/srv")


def test_package_versions_are_served_as_v_n() -> None:
    assert version_name(3) == "v3" and version_name("12") == "v12"
    assert version_from_package_arn(ARN) == "v7"
    assert version_from_package_arn(ARN.replace("arn:aws:", "arn:aws-cn:")) == "v7"
    for bad in (-1, "3a", "", "٣", "1.5"):
        with pytest.raises(InputError, match="expected a whole number"):
            version_name(bad)
    for arn in (ARN.rsplit("/", 1)[0], ARN + "/x", "arn:aws:sagemaker:us-east-1:1:model-package/g/7", "v7"):
        with pytest.raises(InputError, match=r"expected arn:\.\.\.:model-package/<group>/<version>"):
            version_from_package_arn(arn)


@pytest.mark.parametrize("name", ["v1", "AllTraffic", "a-b--c9", "x" * 63, "7"])
def test_variant_names(name: str) -> None:
    assert is_variant_name(name) and check_version(name, "here") == name


@pytest.mark.parametrize(
    "name", ["", "..", "../pre", "v1/../v1", "/tmp", "v1/", "-v1", "v1-", "v_1", "x" * 64, 7]
)
def test_names_that_are_not_plain_are_refused(name: object) -> None:
    assert not is_variant_name(name)
    with pytest.raises(InputError, match=r"^here: model version .* is not a plain name"):
        check_version(name, "here")


def test_current_json_round_trip_and_bytes() -> None:
    # The deployer writes exactly these bytes to S3 (tests/stacks/test_deployer.py pins them too).
    assert dump_current("v7") == json.dumps({"modelVersion": "v7"}).encode()
    assert parse_current(dump_current("v7")) == "v7"
    assert parse_current('{"modelVersion": "AllTraffic", "other": 1}\n') == "AllTraffic"
    with pytest.raises(InputError, match=r"current\.json: model version '\.\./x'"):
        dump_current("../x")  # never publish what the readers refuse


@pytest.mark.parametrize(
    "raw", [b"", b"{", b"[]", b'"v1"', b'{"other": "v1"}', b"\xff\xfe", b"null", b'{"modelVersion": null}']
)
def test_unreadable_current_json_names_the_file(raw: bytes) -> None:
    with pytest.raises(InputError, match=r"^s3://b/serving/current.json: "):
        parse_current(raw, "s3://b/serving/current.json")


@pytest.mark.parametrize("version", ['"../pre"', "7", '""', '"v1/"', "[1]"])
def test_current_json_naming_no_plain_version_is_refused(version: str) -> None:
    with pytest.raises(InputError, match="is not a plain name"):
        parse_current('{"modelVersion": ' + version + "}", "f")


def test_the_module_imports_only_the_standard_library() -> None:
    """Both Lambdas import it; the deployer's asset holds no third-party packages at all."""
    code = (
        "import sys; before = set(sys.modules); import fmrec.serving.artifacts; "
        "print('\\n'.join(sorted(set(sys.modules) - before)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in run.stdout.split()}
    assert loaded <= set(sys.stdlib_module_names) | {"fmrec"}, loaded - set(sys.stdlib_module_names)
    assert {n for n in run.stdout.split() if n.startswith("fmrec")} == {
        "fmrec",
        "fmrec.errors",
        "fmrec.serving",
        "fmrec.serving.artifacts",
    }
