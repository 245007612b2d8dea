"""Cold start from S3 (stubbed s3 client), configuration from the environment, and the Lambda's import set."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from fmrec.serving.lookup import LOOKUP_FILES
from lambdas.recommend.endpoint import EndpointCaller
from lambdas.recommend.errors import Misconfigured, ServiceUnavailable
from lambdas.recommend.service import Recommender, recommender_from_env
from lambdas.recommend.store import DirStore, S3Store
from tests.support.lambda_world import ENDPOINT, runtime_client

ROOT = Path(__file__).resolve().parents[3]


def _object(data: bytes) -> dict[str, Any]:
    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)}


def test_cold_start_reads_current_json_and_the_versions_lookup_from_s3(world: Any) -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    stub = Stubber(s3)
    local = DirStore(world.artifacts)
    keys = ["current.json"] + [f"v1/lookup/{name}" for name in LOOKUP_FILES]
    for key in keys:
        stub.add_response(
            "get_object", _object(local.get(key) or b""), {"Bucket": "b", "Key": "serving/" + key}
        )
    rec = Recommender(S3Store("b", "serving/", s3), EndpointCaller(runtime_client(), ENDPOINT))
    with stub:
        bundle = rec.current_bundle()
        assert rec.current_bundle() is bundle  # warm: no second read
    stub.assert_no_pending_responses()
    assert bundle.version == "v1" and bundle.lookup.user_ids == world.lookup.user_ids


def test_missing_objects_and_denied_reads() -> None:
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    stub = Stubber(s3)
    stub.add_client_error("get_object", "NoSuchKey", "The specified key does not exist.", 404)
    stub.add_client_error("get_object", "AccessDenied", "Access Denied", 403)
    store = S3Store("b", "serving/", s3)
    with stub:
        assert store.get("current.json") is None
        with pytest.raises(ServiceUnavailable, match="cannot be read") as info:
            store.get("current.json")
    # The bucket and key go to the log (detail), not to the caller (message).
    assert info.value.detail == "s3://b/serving/current.json: AccessDenied" and "s3://" not in str(info.value)


def test_recommender_from_env() -> None:
    kwargs = {"aws_access_key_id": "t", "aws_secret_access_key": "t", "region_name": "us-east-1"}
    rec = recommender_from_env(
        {"FMREC_ARTIFACT_BUCKET": "bkt", "FMREC_ARTIFACT_PREFIX": "srv", "FMREC_ENDPOINT_NAME": "ep"}, kwargs
    )
    assert isinstance(rec.store, S3Store) and (rec.store.bucket, rec.store.prefix) == ("bkt", "srv/")
    assert rec.endpoint is not None and rec.endpoint.caller.endpoint_name == "ep" and not rec.fast_path
    config = rec.endpoint.caller.client.meta.config
    assert config.read_timeout == 2 and config.retries["total_max_attempts"] == 1
    rec = recommender_from_env({"FMREC_ARTIFACT_DIR": "/x", "FMREC_FAST_PATH": "1"}, kwargs)
    assert isinstance(rec.store, DirStore) and rec.fast_path and rec.endpoint is None
    with pytest.raises(Misconfigured, match="FMREC_ARTIFACT_BUCKET"):
        recommender_from_env({"FMREC_ENDPOINT_NAME": "ep"}, kwargs)


def test_the_lambda_imports_only_its_packaged_modules(world: Any) -> None:
    """The code asset docs/api.md lists is all the handler imports: no numpy, scipy or SageMaker SDK."""
    event = json.loads((Path(__file__).parent / "events" / "get_recommendations.json").read_text())
    event["path"] = "/users/4242/recommendations"
    event["pathParameters"] = {"userId": "4242"}
    script = f"""
import json, sys
from types import SimpleNamespace
from lambdas.recommend.app import lambda_handler
ctx = SimpleNamespace(function_name="f", memory_limit_in_mb=512, aws_request_id="r",
                      invoked_function_arn="arn:aws:lambda:us-east-1:000000000000:function:f")
result = lambda_handler(json.loads({json.dumps(json.dumps(event))}), ctx)
mods = sorted(m for m in sys.modules if "." not in m or m.startswith(("fmrec", "lambdas")))
print(json.dumps({{"status": result["statusCode"], "body": json.loads(result["body"]), "modules": mods}}))
"""
    env = {
        "PATH": "/usr/bin:/bin",
        "FMREC_ARTIFACT_DIR": str(world.artifacts),
        "FMREC_ENDPOINT_NAME": "ep",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["status"] == 200 and out["body"]["servingPath"] == "cold_start"
    modules = set(out["modules"])
    assert not modules & {"numpy", "scipy", "pandas", "sagemaker", "twins", "pydantic"}
    ours = {m for m in modules if m.startswith(("fmrec", "lambdas"))}
    assert ours <= {
        "fmrec",
        "fmrec.errors",
        "fmrec.features",
        "fmrec.features.columns",
        "fmrec.features.history",
        "fmrec.features.settings",  # stdlib only: the lookup's and the history block's defaults
        "fmrec.io_utils",
        "fmrec.numbers",
        "fmrec.ratings",
        "fmrec.ratings.body",
        "fmrec.ratings.fold_in",
        "fmrec.ratings.store",
        "fmrec.serving",
        "fmrec.serving.artifacts",
        "fmrec.serving.lookup",
        "fmrec.serving.neighbour_table",  # stdlib only: the neighbour table inside lookup.bin
        "fmrec.serving.requests",
        "lambdas",
        "lambdas.recommend",
        "lambdas.recommend.app",
        "lambdas.recommend.bundle",
        "lambdas.recommend.endpoint",
        "lambdas.recommend.errors",
        "lambdas.recommend.fast_path",
        "lambdas.recommend.params",
        "lambdas.recommend.queries",
        "lambdas.recommend.service",
        "lambdas.recommend.store",
        "lambdas.recommend.versions",
    }, ours
