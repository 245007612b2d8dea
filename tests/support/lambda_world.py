"""A tiny serving world for the API tests: a hand-built lookup, a random FM model, a published version."""

from __future__ import annotations

import io
import json
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.response import StreamingBody

from fmrec.model.artifact import FMModel, save_model_tar
from fmrec.model.fm import FMParams, predict
from fmrec.serving.lookup import Lookup, write_lookup
from lambdas.recommend.app import lambda_handler
from twins.api.gateway import LambdaContext, build_event
from twins.api.publish import publish_version
from twins.endpoint.protocol import parse_json

USERS = (1, 2, 3, 5, 8, 13)
MOVIES = (
    (1, "Toy Story (1995)", "Animation|Children's|Comedy"),
    (2, "GoldenEye (1995)", "Action|Adventure|Thriller"),
    (3, "Four Rooms (1995)", "Thriller"),
    (4, "Get Shorty (1995)", "Action|Comedy|Drama"),
    (5, "Copycat (1995)", "Crime|Drama|Thriller"),
    (7, "Twelve Monkeys (1995)", "Drama|Sci-Fi"),
    (8, "Babe (1995)", "Children's|Comedy|Drama"),
    (9, "Dead Man Walking (1995)", "Drama"),
    (11, "Seven (Se7en) (1995)", "Crime|Thriller"),
    (12, "Usual Suspects, The (1995)", "Crime|Thriller"),
    (50, "Star Wars (1977)", "Action|Adventure|Romance|Sci-Fi|War"),
    (100, "Fargo (1996)", "Crime|Drama|Thriller"),
)
# user id -> {movie id: rating}
RATINGS = {
    1: {1: 5, 2: 3, 50: 5, 100: 4},
    2: {1: 4, 9: 2, 50: 5},
    3: {3: 1, 50: 4, 12: 5},
    5: {1: 3, 4: 4, 7: 5, 8: 4, 100: 5},
    8: {50: 5, 11: 4},
    13: {2: 2, 5: 3, 9: 4, 12: 5, 50: 4, 100: 3},
}
NUM_FACTORS = 4
ENDPOINT = "fmrec-endpoint"


def make_lookup(users: tuple[int, ...] = USERS, ratings: dict[int, dict[int, int]] = RATINGS) -> Any:
    """The lookup preprocess would write for these ratings (user block first, then movies)."""
    movie_ids = [m for m, _, _ in MOVIES]
    movie_pos = {m: i for i, m in enumerate(movie_ids)}
    counts = [0] * len(movie_ids)
    sums = [0.0] * len(movie_ids)
    rated: list[list[int]] = []
    for u in users:
        rows = sorted(movie_pos[m] for m in ratings.get(u, {}))
        rated.append(rows)
        for m, r in ratings.get(u, {}).items():
            counts[movie_pos[m]] += 1
            sums[movie_pos[m]] += r
    means = [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]
    indptr = [0]
    for rows in rated:
        indptr.append(indptr[-1] + len(rows))
    return Lookup(
        feature_dim=len(users) + len(movie_ids),
        user_ids=list(users),
        movie_ids=movie_ids,
        titles=[t for _, t, _ in MOVIES],
        genres=[g.split("|") for _, _, g in MOVIES],
        movie_count=array("I", counts),
        movie_mean=array("f", means),
        rated_indptr=array("Q", indptr),
        rated_pos=array("I", [p for rows in rated for p in rows]),
    )


def make_model(feature_dim: int, seed: int = 0, predictor_type: str = "binary_classifier") -> Any:
    rng = np.random.default_rng(seed)
    params = FMParams(
        w0=float(rng.normal(0, 0.3)),
        w=rng.normal(0, 0.5, feature_dim).astype(np.float32),
        V=rng.normal(0, 0.5, (feature_dim, NUM_FACTORS)).astype(np.float32),
    )
    hp = {"feature_dim": str(feature_dim), "num_factors": str(NUM_FACTORS), "predictor_type": predictor_type}
    return FMModel(params, predictor_type, hp, {})


@dataclass
class World:
    root: Path
    artifacts: Path
    lookup: Any
    model: Any
    model_path: Path
    version: str


def build_world(root: Path, version: str = "v1", seed: int = 0, users: tuple[int, ...] = USERS) -> World:
    lookup = make_lookup(users)
    model = make_model(lookup.feature_dim, seed)
    lookup_dir = root / f"lookup-{version}"
    write_lookup(lookup_dir, lookup)
    model_path = root / f"model-{version}.tar.gz"
    save_model_tar(model, model_path)
    artifacts = root / "serving"
    publish_version(artifacts, version, lookup_dir, model_path)
    return World(root, artifacts, lookup, model, model_path, version)


def endpoint_scores(model: Any, lookup: Any, body: bytes) -> list[float]:
    """What the endpoint answers for a request body: the endpoint twin's own parsing and the FM math."""
    X = parse_json(body, lookup.feature_dim)
    return [float(s) for s in predict(model.params, X, model.predictor_type)]


def runtime_client() -> Any:
    return boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    )


def invoke_response(scores: list[float], variant: str) -> dict[str, Any]:
    body = json.dumps(
        {"predictions": [{"score": s, "predicted_label": int(s >= 0.5)} for s in scores]}
    ).encode()
    return {
        "Body": StreamingBody(io.BytesIO(body), len(body)),
        "ContentType": "application/json",
        "InvokedProductionVariant": variant,
    }


def event(
    path: str, query: dict[str, str] | None = None, method: str = "GET", request_id: str = "req-1"
) -> dict[str, Any]:
    pairs = list((query or {}).items())
    return build_event(method, path, pairs, [("accept", "application/json")], b"", request_id=request_id)


def context(request_id: str = "lambda-req-1") -> Any:
    return LambdaContext(aws_request_id=request_id)


def handle(evt: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
    result = lambda_handler(evt, context())
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers.setdefault(k.lower(), values[-1])
    return result["statusCode"], headers, json.loads(result["body"])
