"""Recommend API benchmark: handler time on both paths, bytes per request, peak memory, end to end.

Data: synthetic MovieLens 100k (943 users, 1,682 movies; fmrec.data.synth) run through preprocess, so
the lookup is the real one; a binary_classifier model of the pipeline's default num_factors (RECOMMENDED)
with random weights (speed does not depend on the weights), published as version v1
in a serving-artifacts folder.

1. Handler time, fast path: `lambda_handler` on API Gateway events for `GET /users/{id}/recommendations?k=10`
   in process, scoring from the model artifact (one matrix-vector product over the catalogue, a partial sort).
2. Handler time, endpoint path: the same events, the shortlist (FMREC_SHORTLIST movies retrieved from the
   model's item terms) sent as the seed's sparse rows to a sagemaker-runtime double that scores each body as
   the endpoint twin would; the double's own time is subtracted. Bytes and bodies are per request (all the
   bodies of one request), with the largest body; the most active users are among the requests.
   With --memory: the peak RSS of a fresh process serving 200 requests as the Lambda does, per path, with
   scipy and without it (the Lambda's layers have numpy only).
   With --shortlists: per shortlist size, every user's served top 10 against the exact full-catalogue top 10,
   bytes and the endpoint's CPU per request (how FMREC_SHORTLIST's default was chosen).
3. The seed's request building (its recommend() loop up to json.dumps, reimplemented here only as the
   baseline) against ours (the shortlist's request) on the same users, in this one process run.
4. End to end: `fmrec serve endpoint` (--endpoint-workers, 2) and `fmrec serve api` (--api-workers, 2) as
   child processes, and a load generator in a third process: --clients keep-alive HTTP/1.1 clients on
   loopback for --seconds, for each of --paths (endpoint, then fast) in one run. CPU time per request of
   each process is reported beside the latency.
5. With --shape ml-25m: a synthetic lookup of MovieLens 25M's shape (162,541 users, 59,047 movies, about 25M
   training ratings with a popularity tail, users of 1,000+ ratings among them; built directly, no
   preprocess) with the default objective's history block, and a random 64-factor model: what the pipeline
   would serve.

    .venv/bin/python benchmarks/bench_api.py [--seconds 10] [--clients 1,16] [--requests 3000]
    .venv/bin/python benchmarks/bench_api.py --clients 16 --requests 1000 --seconds 10 --skip-seed
    .venv/bin/python benchmarks/bench_api.py --shortlists 10,20,50,100 --skip-e2e --skip-seed --requests 300
    .venv/bin/python benchmarks/bench_api.py --shape ml-25m --requests 300 --memory --skip-e2e --work /tmp/w25
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fmrec.model.hyperparameters import RECOMMENDED  # noqa: E402 (this checkout's fmrec, after the path)

ENDPOINT = "fmrec-endpoint"
VERSION = "v1"
# the pipeline's default model's rank, so serving is measured at the size it serves
NUM_FACTORS = int(RECOMMENDED["num_factors"])


ML25M = {"users": 162_541, "movies": 59_047, "ratings": 25_000_095}
GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def prepare(work: Path, preprocess_args: Sequence[str] = (), **synth: int) -> dict[str, Any]:
    """Synthetic ml-100k (or `synth`'s shape: items, users) -> preprocess (its defaults, or with
    `preprocess_args`) -> lookup; a random model; a published serving-artifacts folder."""
    from fmrec.data.synth import SynthConfig, write_synth
    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams
    from fmrec.serving.lookup import read_lookup
    from pipeline.steps import preprocess
    from twins.api.publish import publish_version

    data = work / "pre" / "input" / "data"
    write_synth(data, SynthConfig(**synth))  # type: ignore[arg-type]  # the int fields: users, items
    preprocess.main(work / "pre", list(preprocess_args))
    lookup_dir = work / "pre" / "output" / "lookup"
    lookup = read_lookup(lookup_dir)
    rng = np.random.default_rng(7)
    d = lookup.feature_dim
    params = FMParams(
        w0=0.1,
        w=rng.normal(0, 0.1, d).astype(np.float32),
        V=rng.normal(0, 0.1, (d, NUM_FACTORS)).astype(np.float32),
    )
    hp = {"feature_dim": str(d), "num_factors": str(NUM_FACTORS), "predictor_type": "binary_classifier"}
    model_path = work / "model.tar.gz"
    save_model_tar(FMModel(params, "binary_classifier", hp, {}), model_path)
    artifacts = work / "serving"
    publish_version(artifacts, VERSION, lookup_dir, model_path)
    return {
        "data": data,
        "lookup": lookup,
        "params": params,
        "model_path": model_path,
        "artifacts": artifacts,
    }


def prepare_large(work: Path, shape: dict[str, int] = ML25M, seed: int = 7) -> dict[str, Any]:
    """A lookup and a random model at ml-25m's shape with the default objective's history block (what the
    pipeline would serve), built directly (preprocessing 25M ratings is slow)."""
    from array import array

    from fmrec.model.artifact import FMModel, load_model_tar, save_model_tar
    from fmrec.model.fm import FMParams
    from fmrec.serving.lookup import Lookup, LookupHistory, read_lookup, write_lookup
    from twins.api.publish import publish_version

    marker = work / "shape.json"
    tag = {**shape, "seed": seed, "history": True, "neighbours": True}
    if marker.is_file() and json.loads(marker.read_text()) == tag:
        # --work DIR: a world prepared by an earlier run of this benchmark is reused as it is.
        model_path, artifacts = work / "model.tar.gz", work / "serving"
        return {
            "lookup": read_lookup(work / "lookup"),
            "params": load_model_tar(model_path).params,
            "model_path": model_path,
            "artifacts": artifacts,
        }
    rng = np.random.default_rng(seed)
    nu, nm = shape["users"], shape["movies"]
    # Ratings per user: at least 20 (as in MovieLens), a long tail, mean about ratings / users.
    mean = shape["ratings"] / nu
    counts = np.minimum(20 + rng.exponential(mean - 20, nu).astype(np.int64), nm // 4)
    popularity = 1.0 / (np.arange(nm) + 10.0) ** 0.9  # a popularity tail over a random movie order
    popularity = popularity[rng.permutation(nm)]
    popularity /= popularity.sum()
    users = np.repeat(np.arange(nu, dtype=np.int64), counts)
    movies = rng.choice(nm, size=users.size, p=popularity)
    pairs = np.unique(users * nm + movies)  # drops repeats, sorts by user then movie
    users, movies = pairs // nm, (pairs % nm).astype(np.uint32)
    del pairs
    indptr = np.zeros(nu + 1, dtype=np.uint64)
    indptr[1:] = np.cumsum(np.bincount(users, minlength=nu))
    movie_count = np.bincount(movies, minlength=nm).astype(np.uint32)
    movie_ids = np.sort(rng.choice(np.arange(1, 210_000), nm, replace=False)).tolist()
    lookup = Lookup(
        # users, movies, then the default objective's history block (one column per movie)
        feature_dim=nu + 2 * nm,
        history=LookupHistory(offset=nu + nm, scale=1.0, cap=64),
        user_ids=list(range(1, nu + 1)),
        movie_ids=movie_ids,
        titles=[f"Movie {m} ({1950 + m % 70})" for m in movie_ids],
        genres=[list(rng.choice(GENRES, 1 + int(rng.integers(0, 3)), replace=False)) for _ in range(nm)],
        movie_count=array("I", movie_count.tolist()),
        movie_mean=array("f", rng.uniform(2.5, 4.5, nm).astype(np.float32).tolist()),
        rated_indptr=array("Q", indptr.tolist()),
        rated_pos=array("I"),
    )
    lookup.rated_pos.frombytes(movies.astype("<u4").tobytes())
    _add_neighbours(lookup, users, movies)
    lookup_dir = work / "lookup"
    write_lookup(lookup_dir, lookup)
    d = lookup.feature_dim
    params = FMParams(
        w0=0.1,
        w=rng.normal(0, 0.1, d).astype(np.float32),
        V=rng.normal(0, 0.1, (d, NUM_FACTORS)).astype(np.float32),
    )
    hp = {"feature_dim": str(d), "num_factors": str(NUM_FACTORS), "predictor_type": "binary_classifier"}
    model_path = work / "model.tar.gz"
    save_model_tar(FMModel(params, "binary_classifier", hp, {}), model_path)
    artifacts = work / "serving"
    publish_version(artifacts, VERSION, lookup_dir, model_path)
    marker.write_text(json.dumps(tag))
    return {"lookup": lookup, "params": params, "model_path": model_path, "artifacts": artifacts}


def _add_neighbours(lookup: Any, users: np.ndarray, movies: np.ndarray) -> None:
    """The default neighbour table (preprocess's settings), fitted on these ratings, as the last column."""
    from fmrec.features.neighbours import fit_served
    from fmrec.features.options import PreprocessConfig

    cfg, column = PreprocessConfig(), lookup.feature_dim
    lookup.neighbours = fit_served(
        users,
        movies.astype(np.int64),
        (len(lookup.user_ids), len(lookup.movie_ids)),
        column,
        keep=cfg.neighbours,
        l2=cfg.neighbour_l2,
        max_movies=cfg.neighbour_movies,
        weight=cfg.neighbour_weight,
    )
    lookup.feature_dim = column + 1


def without_neighbours(world: dict[str, Any], work: Path) -> dict[str, Any]:
    """The same lookup and model less the neighbour column (its table and its last column), published in
    `work`: the other side of --compare-neighbours where preprocessing again would be slow (ml-25m)."""
    import dataclasses

    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams
    from fmrec.serving.lookup import write_lookup
    from twins.api.publish import publish_version

    lookup, params = world["lookup"], world["params"]
    d = lookup.feature_dim - 1
    plain = dataclasses.replace(lookup, neighbours=None, feature_dim=d)
    small = FMParams(w0=params.w0, w=params.w[:d], V=params.V[:d])
    work.mkdir(parents=True, exist_ok=True)
    write_lookup(work / "lookup", plain)
    hp = {"feature_dim": str(d), "num_factors": str(NUM_FACTORS), "predictor_type": "binary_classifier"}
    save_model_tar(FMModel(small, "binary_classifier", hp, {}), work / "model.tar.gz")
    publish_version(work / "serving", VERSION, work / "lookup", work / "model.tar.gz")
    return {
        "lookup": plain,
        "params": small,
        "model_path": work / "model.tar.gz",
        "artifacts": work / "serving",
    }


class InstantRuntime:
    """A sagemaker-runtime double: scores each body as the endpoint twin would (parse, FM, encode), keeping
    count of its own wall and CPU time (subtracted from the handler's), of the bodies and their bytes."""

    def __init__(self, params: Any, feature_dim: int) -> None:
        self.params, self.feature_dim = params, feature_dim
        self.spent = self.spent_cpu = 0.0
        self.bodies: list[int] = []
        self._lock = threading.Lock()

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        from fmrec.model.fm import predict
        from twins.endpoint.protocol import encode_response, parse_json

        started, cpu = time.perf_counter(), time.thread_time()
        X = parse_json(kwargs["Body"], self.feature_dim)
        scores = np.asarray(predict(self.params, X, "binary_classifier"), dtype=np.float32)
        body = encode_response(scores, "binary_classifier", "application/json")
        out = {
            "Body": io.BytesIO(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": VERSION,
        }
        with self._lock:
            self.bodies.append(len(kwargs["Body"]))
            self.spent += time.perf_counter() - started
            self.spent_cpu += time.thread_time() - cpu
        return out


def _quiet(app: Any) -> None:
    """The INFO line per request is part of the handler's work; write it where the Lambda would (a stream)."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    for handler in app.logger.handlers:
        if hasattr(handler, "setStream"):
            handler.setStream(devnull)
    app.logger.setLevel("INFO")


def bench_handler(world: dict[str, Any], n_requests: int, n_users: int, k: int = 10) -> dict[str, Any]:
    """lambda_handler on the endpoint path: the shortlist retrieved, its bodies built and sent to a runtime
    double that scores them (its time subtracted), the answer ranked. Bytes are per request."""
    from lambdas.recommend import app
    from lambdas.recommend.endpoint import EndpointCaller
    from lambdas.recommend.service import Recommender
    from lambdas.recommend.store import DirStore
    from twins.api.gateway import LambdaContext, build_event

    lookup = world["lookup"]
    users = list(lookup.user_ids[:: max(1, len(lookup.user_ids) // n_users)][:n_users])
    heavy = np.argsort(np.diff(np.asarray(lookup.rated_indptr, dtype=np.int64)))[-5:]
    users += [lookup.user_ids[int(p)] for p in heavy]  # the most active users too (1,000+ ratings at ml-25m)
    runtime = InstantRuntime(world["params"], lookup.feature_dim)
    rec = Recommender(DirStore(world["artifacts"]), EndpointCaller(runtime, ENDPOINT))
    started = time.perf_counter()
    rec.models.retrieval(rec.current_bundle())
    load_s = time.perf_counter() - started
    app.configure(rec)
    _quiet(app)
    events = [
        build_event(
            "GET", f"/users/{u}/recommendations", [("k", str(k))], [("accept", "application/json")], b""
        )
        for u in users
    ]
    context = LambdaContext(aws_request_id="bench")
    for evt in events[:20]:  # warm: first-call caches
        assert app.lambda_handler(evt, context)["statusCode"] == 200
    times: list[float] = []
    cpu: list[float] = []
    per_request_bytes: list[int] = []
    per_request_bodies: list[int] = []
    max_body = 0
    for i in range(n_requests):
        evt = events[i % len(events)]
        runtime.spent = runtime.spent_cpu = 0.0
        runtime.bodies = []
        started, cpu0 = time.perf_counter(), time.process_time()
        result = app.lambda_handler(evt, context)
        elapsed = time.perf_counter() - started - runtime.spent
        cpu.append((time.process_time() - cpu0 - runtime.spent_cpu) * 1e3)
        if result["statusCode"] != 200:
            raise SystemExit(f"handler answered {result['statusCode']}: {result['body']}")
        times.append(elapsed * 1e3)
        per_request_bytes.append(sum(runtime.bodies))
        per_request_bodies.append(len(runtime.bodies))
        max_body = max(max_body, *runtime.bodies)
    app.configure(None)
    return {
        "requests": n_requests,
        "users": len(users),
        "shortlist": rec.shortlist,
        "model_load_and_movie_terms_s": load_s,
        "request_bytes_mean": statistics.fmean(per_request_bytes),
        "request_bytes_max": max(per_request_bytes),
        "bodies_per_request_mean": statistics.fmean(per_request_bodies),
        "bodies_per_request_max": max(per_request_bodies),
        "body_bytes_max": max_body,
        "handler_ms_p50": pct(times, 50),
        "handler_ms_p90": pct(times, 90),
        "handler_ms_p99": pct(times, 99),
        "handler_cpu_ms_mean": statistics.fmean(cpu),
    }


def bench_fast_handler(world: dict[str, Any], n_requests: int, n_users: int, k: int = 10) -> dict[str, Any]:
    """lambda_handler on the fast path: the model artifact in process, every movie scored, a partial sort."""
    from lambdas.recommend import app
    from lambdas.recommend.service import Recommender
    from lambdas.recommend.store import DirStore
    from twins.api.gateway import LambdaContext, build_event

    lookup = world["lookup"]
    users = list(lookup.user_ids[:: max(1, len(lookup.user_ids) // n_users)][:n_users])
    rec = Recommender(DirStore(world["artifacts"]), None, fast_path=True)
    started = time.perf_counter()
    rec.current_bundle()
    lookup_s = time.perf_counter() - started
    started = time.perf_counter()
    rec.models.retrieval(rec.current_bundle())  # what the first request pays after the lookup
    model_s = time.perf_counter() - started
    app.configure(rec)
    _quiet(app)
    events = [
        build_event(
            "GET", f"/users/{u}/recommendations", [("k", str(k))], [("accept", "application/json")], b""
        )
        for u in users
    ]
    context = LambdaContext(aws_request_id="bench")
    for evt in events[:20]:
        assert app.lambda_handler(evt, context)["statusCode"] == 200
    times: list[float] = []
    cpu: list[float] = []
    candidates: list[int] = []
    for i in range(n_requests):
        started, cpu0 = time.perf_counter(), time.process_time()
        result = app.lambda_handler(events[i % len(events)], context)
        times.append((time.perf_counter() - started) * 1e3)
        cpu.append((time.process_time() - cpu0) * 1e3)
        if result["statusCode"] != 200:
            raise SystemExit(f"handler answered {result['statusCode']}: {result['body']}")
        if i < len(events):
            candidates.append(json.loads(result["body"])["candidates"])
    similar_times: list[float] = []
    movies = lookup.movie_ids[:: max(1, len(lookup.movie_ids) // 200)]
    similar_events = [
        build_event("GET", f"/movies/{m}/similar", [("k", "10")], [("accept", "application/json")], b"")
        for m in movies
    ]
    assert app.lambda_handler(similar_events[0], context)["statusCode"] == 200  # builds the cosine index
    for i in range(min(n_requests, 1000)):
        started = time.perf_counter()
        result = app.lambda_handler(similar_events[i % len(similar_events)], context)
        similar_times.append((time.perf_counter() - started) * 1e3)
        assert result["statusCode"] == 200, result["body"]
    app.configure(None)
    return {
        "requests": n_requests,
        "users": len(users),
        "k": k,
        "candidates_mean": statistics.fmean(candidates),
        "lookup_load_s": lookup_s,
        "model_load_and_movie_terms_s": model_s,
        "handler_ms_p50": pct(times, 50),
        "handler_ms_p90": pct(times, 90),
        "handler_ms_p99": pct(times, 99),
        "handler_cpu_ms_mean": statistics.fmean(cpu),
        "similar_ms_p50": pct(similar_times, 50),
        "similar_ms_p99": pct(similar_times, 99),
    }


def seed_request(user_id: int, data: Any, enc: Any) -> bytes:
    """The seed's recommend() request building, same algorithm (the baseline only; its keys are wrong)."""
    js: dict[str, Any] = {"instances": []}
    shape = len(enc.categories_[0]) + len(enc.categories_[1])
    movie = data.movieId[data.userId == user_id]
    movie_not = set(data.movieId.unique()) - set(movie)
    user_index = np.where(enc.categories_[0] == user_id)[0][0]
    for m in movie_not:
        movie_index = np.where(enc.categories_[1] == m)[0][0]
        js["instances"].append(
            {
                "data": {
                    "features": {
                        "keys": [int(user_index), int(movie_index)],
                        "shape": [shape],
                        "values": [1, 1],
                    }
                }
            }
        )
    return json.dumps(js).encode()


def bench_seed(world: dict[str, Any], n_users: int) -> dict[str, Any]:
    import pandas as pd
    from sklearn.preprocessing import OneHotEncoder

    from fmrec.serving.requests import decode_keys

    ratings = pd.read_csv(
        world["data"] / "ua.base", sep="\t", names=["userId", "movieId", "rating", "timestamp"]
    )
    enc = OneHotEncoder(handle_unknown="ignore")
    enc.fit(ratings[["userId", "movieId"]])
    lookup = world["lookup"]
    from lambdas.recommend.service import Recommender
    from lambdas.recommend.store import DirStore

    rec = Recommender(DirStore(world["artifacts"]), None, fast_path=True)
    bundle = rec.current_bundle()
    retrieval = rec.models.retrieval(bundle)
    users = list(lookup.user_ids[:n_users])
    seed_times, ours_times, seed_sizes, ours_sizes = [], [], [], []
    wrong = total = 0
    for user in users:
        started = time.perf_counter()
        body = seed_request(user, ratings, enc)
        seed_times.append((time.perf_counter() - started) * 1e3)
        seed_sizes.append(len(body))
        started = time.perf_counter()
        side = bundle.user_side(user)
        assert side is not None  # every benchmark user is in the lookup
        shortlist = sorted(retrieval.top(side, rec.shortlist).positions)
        payloads = bundle.builder.build_rows(side.keys, side.values, shortlist)
        ours_times.append((time.perf_counter() - started) * 1e3)
        ours_sizes.append(sum(len(p.body) for p in payloads))
        for inst in json.loads(body)["instances"][:200]:
            total += 1
            try:
                decode_keys(lookup, inst["data"]["features"]["keys"])
            except Exception:
                wrong += 1
    return {
        "users": len(users),
        "seed_ms_per_user": statistics.median(seed_times),
        "ours_ms_per_user": statistics.median(ours_times),
        "speedup": statistics.median(seed_times) / statistics.median(ours_times),
        "seed_request_kb": statistics.fmean(seed_sizes) / 1000,
        "ours_request_kb": statistics.fmean(ours_sizes) / 1000,
        "seed_instances_without_a_movie_key": f"{wrong}/{total}",
    }


# --- end to end ------------------------------------------------------------------------------------------
async def _client(
    host: str,
    port: int,
    paths: list[str],
    deadline: float,
    out: list[float],
    errors: list[str],
    expect: bytes = b'"servingPath":"endpoint"',
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    try:
        while time.perf_counter() < deadline:
            path = paths[i % len(paths)]
            i += 1
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            out.append((time.perf_counter() - started) * 1e3)
            if status != 200 or expect not in body:
                errors.append(f"{status} {body[:200]!r}")
    finally:
        writer.close()


async def _load(
    host: str, port: int, users: list[int], clients: int, seconds: float, path: str = "endpoint"
) -> dict[str, Any]:
    paths = [f"/users/{u}/recommendations?k=10" for u in users]
    expect = f'"servingPath":"{path}"'.encode()
    warm: list[float] = []
    errors: list[str] = []
    warm_deadline = time.perf_counter() + 1.0
    await asyncio.gather(
        *[_client(host, port, paths, warm_deadline, warm, errors, expect) for _ in range(clients)]
    )
    times: list[float] = []
    errors.clear()
    print("measuring", flush=True)
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *[_client(host, port, paths, deadline, times, errors, expect) for _ in range(clients)]
    )
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(times),
        "rps": len(times) / elapsed,
        "p50_ms": pct(times, 50),
        "p90_ms": pct(times, 90),
        "p99_ms": pct(times, 99),
        "errors": len(errors),
        "error_statuses": dict(collections.Counter(e.split(" ", 1)[0] for e in errors)),
        "first_error": errors[0] if errors else None,
        "loadgen_cpu_ms_per_request": (time.process_time() - cpu0) * 1e3 / max(1, len(times)),
    }


def loadgen_main(argv: list[str]) -> int:
    host, port, clients, seconds, users = argv[0], int(argv[1]), int(argv[2]), float(argv[3]), argv[4]
    path = argv[5] if len(argv) > 5 else "endpoint"
    result = asyncio.run(_load(host, port, [int(u) for u in users.split(",")], clients, seconds, path))
    print(json.dumps(result))
    return 0


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live descendants, from /proc (Linux)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def _spawn(
    argv: list[str], is_ready: Any, what: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    deadline = time.monotonic() + 300  # the ml-25m shape loads a 57 MB model and a 100 MB lookup
    while not is_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise SystemExit(f"{what} did not start:\n{err}")
        time.sleep(0.05)
    return proc


def bench_end_to_end(
    world: dict[str, Any],
    clients: list[int],
    seconds: float,
    endpoint_workers: int,
    api_workers: int,
    *,
    fast_path: bool = False,
    api_env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    from twins.api.server import ready
    from twins.endpoint.server import free_port, ping

    host = "127.0.0.1"
    ep_port, api_port = free_port(host), free_port(host)
    cli = [sys.executable, "-m", "fmrec_cli", "serve"]
    endpoint = None
    api_args = [
        *cli,
        *("api", "--host", host, "--port", str(api_port), "--workers", str(api_workers)),
        *("--artifacts", str(world["artifacts"]), "--endpoint-name", ENDPOINT),
    ]
    if fast_path:
        api_args.append("--fast-path")
    else:
        endpoint = _spawn(
            [
                *cli,
                *("endpoint", "--host", host, "--port", str(ep_port), "--workers", str(endpoint_workers)),
                *("--model", str(world["model_path"]), "--name", ENDPOINT, "--variant", VERSION),
            ],
            lambda: ping(host, ep_port, timeout=1.0),
            "endpoint twin",
        )
        api_args += ["--endpoint-url", f"http://{host}:{ep_port}"]
    try:
        api = _spawn(api_args, lambda: ready(host, api_port, timeout=1.0), "API twin", api_env)
    except BaseException:
        if endpoint is not None:
            endpoint.terminate()
        raise
    lookup = world["lookup"]
    users = ",".join(str(u) for u in lookup.user_ids[:200])
    expect = "fast_path" if fast_path else "endpoint"
    procs = [p for p in (api, endpoint) if p is not None]
    results = []
    try:
        for n in clients:
            argv = [
                sys.executable,
                __file__,
                "--loadgen",
                host,
                str(api_port),
                str(n),
                str(seconds),
                users,
                expect,
            ]
            gen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert gen.stdout is not None
            line = gen.stdout.readline()  # "measuring" once the warm-up second is over
            if line.strip() != "measuring":
                raise SystemExit(f"load generator failed:\n{line}{gen.communicate()[1][-2000:]}")
            ep0 = tree_cpu_seconds(endpoint.pid) if endpoint is not None else 0.0
            api0 = tree_cpu_seconds(api.pid)
            out, err = gen.communicate(timeout=seconds + 300)
            ep1 = tree_cpu_seconds(endpoint.pid) if endpoint is not None else 0.0
            api1 = tree_cpu_seconds(api.pid)
            if gen.returncode != 0:
                raise SystemExit(f"load generator failed:\n{err[-2000:]}")
            result = dict(json.loads(out.strip().splitlines()[-1]))
            n_req = max(1, result["requests"])
            ep_ms = (ep1 - ep0) * 1e3 / n_req
            api_ms = (api1 - api0) * 1e3 / n_req
            total = ep_ms + api_ms + result["loadgen_cpu_ms_per_request"]
            result.update(
                serving_path=expect,
                endpoint_cpu_ms_per_request=ep_ms,
                api_cpu_ms_per_request=api_ms,
                total_cpu_ms_per_request=total,
                # Derived, not measured: a closed loop of n clients on 2 otherwise idle cores.
                ceiling_rps_2_idle_cores=2000 / total,
            )
            results.append(result)
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


def bench_shortlist(world: dict[str, Any], sizes: list[int], k: int = 10) -> list[dict[str, Any]]:
    """For each shortlist size N: how many users' served top k equal the exact full-catalogue top k (every
    user, float64 scores of every movie), the bytes per request and the endpoint's CPU per request (the
    runtime double's parse, FM and encode: what the endpoint container spends)."""
    from fmrec.model.fm import score_matrix
    from fmrec.serving.ranking import movie_rows, user_rows
    from lambdas.recommend.endpoint import EndpointCaller
    from lambdas.recommend.queries import Query
    from lambdas.recommend.service import Recommender
    from lambdas.recommend.store import DirStore

    lookup = world["lookup"]
    exact = score_matrix(world["params"], user_rows(lookup, range(lookup.n_users)), movie_rows(lookup))
    expected = []
    for pos in range(lookup.n_users):
        exact[pos, lookup.rated_positions(pos)] = -np.inf
        top = np.lexsort((np.arange(lookup.n_movies), -exact[pos]))[:k]
        expected.append([lookup.movie_ids[p] for p in top])
    out = []
    for n in sizes:
        runtime = InstantRuntime(world["params"], lookup.feature_dim)
        rec = Recommender(DirStore(world["artifacts"]), EndpointCaller(runtime, ENDPOINT), shortlist=n)
        same = 0
        for pos, user in enumerate(lookup.user_ids):
            got = rec.recommend(Query(user, k=k))
            same += [it.movie_id for it in got.items] == expected[pos]
        out.append(
            {
                "shortlist": n,
                "k": k,
                "users_exact": f"{same}/{lookup.n_users}",
                "request_bytes_mean": sum(runtime.bodies) / lookup.n_users,
                "bodies_per_request": len(runtime.bodies) / lookup.n_users,
                "endpoint_cpu_ms_per_request": runtime.spent_cpu * 1e3 / lookup.n_users,
            }
        )
    return out


class ConstantRuntime:
    """A sagemaker-runtime double for the memory probe: 0.5 for every instance, holding no model."""

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        n = kwargs["Body"].count(b'"data"')
        body = json.dumps({"predictions": [{"score": 0.5, "predicted_label": 1}] * n}).encode()
        return {
            "Body": io.BytesIO(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": VERSION,
        }


def _vm_hwm_kb() -> int:
    """This process's peak RSS (VmHWM, Linux); not ru_maxrss, which keeps the forking parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise SystemExit("no VmHWM in /proc/self/status (Linux only)")


def memory_probe_main(argv: list[str]) -> int:
    """In a fresh process: the Lambda's recommender over the artifacts, 200 requests; the peak RSS."""
    from lambdas.recommend import app
    from lambdas.recommend.endpoint import EndpointCaller
    from lambdas.recommend.service import Recommender
    from lambdas.recommend.store import DirStore
    from twins.api.gateway import LambdaContext, build_event

    artifacts, path, users = Path(argv[0]), argv[1], [int(u) for u in argv[2].split(",")]
    before = _vm_hwm_kb()
    caller = None if path == "fast" else EndpointCaller(ConstantRuntime(), ENDPOINT)
    app.configure(Recommender(DirStore(artifacts), caller, fast_path=path == "fast"))
    _quiet(app)
    context = LambdaContext(aws_request_id="probe")
    for i in range(200):
        evt = build_event("GET", f"/users/{users[i % len(users)]}/recommendations", [], [], b"")
        result = app.lambda_handler(evt, context)
        assert result["statusCode"] == 200, result["body"]
    peak = _vm_hwm_kb()
    print(json.dumps({"path": path, "peak_rss_mb": peak / 1024, "rss_at_start_mb": before / 1024}))
    return 0


# The probe with scipy hidden, as in the Lambda, whose numpy layer has no scipy (fmrec.model.fm's numpy path).
_NO_SCIPY = (
    "import runpy, sys; sys.modules['scipy'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def bench_memory(world: dict[str, Any], path: str, numpy_only: bool = False) -> dict[str, Any]:
    """The peak resident memory of a process serving as the Lambda does (interpreter, imports, lookup,
    model, movie terms, 200 requests, the most active users among them): what the function must hold.
    numpy_only: without scipy, as the Lambda's layers are."""
    lookup = world["lookup"]
    heavy = np.argsort(np.diff(np.asarray(lookup.rated_indptr, dtype=np.int64)))[-10:]
    users = [lookup.user_ids[int(p)] for p in heavy] + list(lookup.user_ids[:: max(1, lookup.n_users // 50)])
    argv = [
        sys.executable,
        *(["-c", _NO_SCIPY] if numpy_only else []),
        __file__,
        "--memory-probe",
        str(world["artifacts"]),
        path,
        ",".join(map(str, users)),
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"memory probe failed:\n{out.stderr[-2000:]}")
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "scipy": not numpy_only}


def _show(label: str, doc: dict[str, Any]) -> None:
    print(label + ": " + json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in doc.items()}))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="end-to-end measured duration")
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts, one phase each")
    parser.add_argument("--requests", type=int, default=3000, help="handler-time requests")
    parser.add_argument("--seed-users", type=int, default=30, help="users for the seed comparison")
    parser.add_argument("--endpoint-workers", type=int, default=2, help="endpoint twin worker processes")
    # "For each concurrent request, Lambda provisions a separate instance of your execution environment"
    # (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html): no shared interpreter lock.
    parser.add_argument(
        "--api-workers",
        type=int,
        default=2,
        help="API twin worker processes (default 2, one per core: each Lambda environment is its own process "
        "on AWS, and one twin process serialises every environment's Python on one interpreter lock)",
    )
    parser.add_argument("--skip-e2e", action="store_true")
    parser.add_argument(
        "--compare-neighbours",
        action="store_true",
        help="also time both handlers on the same data without the neighbour column (no such column)",
    )
    parser.add_argument("--skip-seed", action="store_true", help="no seed comparison")
    parser.add_argument("--shape", choices=("ml-100k", "ml-25m"), default="ml-100k")
    parser.add_argument(
        "--paths",
        default="endpoint,fast",
        help="serving paths of the end-to-end phases, in one run (endpoint: API twin -> endpoint twin)",
    )
    parser.add_argument("--memory", action="store_true", help="peak memory of a Lambda-like process per path")
    parser.add_argument(
        "--shortlists", default="", help="comma-separated shortlist sizes to compare (exactness, bytes, CPU)"
    )
    parser.add_argument(
        "--handler-users", type=int, default=None, help="users of the endpoint-path handler phase"
    )
    parser.add_argument(
        "--request-max-bytes",
        type=int,
        default=None,
        help="FMREC_REQUEST_MAX_BYTES for the handler and the API twin (default the Lambda's, 256 KiB)",
    )
    parser.add_argument(
        "--work", default=None, help="ml-25m: keep the prepared world in this folder and reuse it next time"
    )
    return parser.parse_args()


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        return loadgen_main(sys.argv[2:])
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-probe":
        return memory_probe_main(sys.argv[2:])
    args = parse_args()
    if args.request_max_bytes is not None:
        os.environ["FMREC_REQUEST_MAX_BYTES"] = str(args.request_max_bytes)
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        started = time.perf_counter()
        large = args.shape == "ml-25m"
        if large:
            work = Path(args.work) if args.work else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            world = prepare_large(work)
        else:
            world = prepare(Path(tmp))
        print(f"prepared synthetic {args.shape}, lookup and model in {time.perf_counter() - started:.1f} s")
        lookup = world["lookup"]
        print(
            f"lookup: {len(lookup.user_ids)} users, {len(lookup.movie_ids)} movies, "
            f"feature_dim {lookup.feature_dim}, {len(lookup.rated_pos)} training ratings"
        )
        worlds = [("", world)]
        if args.compare_neighbours:  # the same data without the neighbour column, in this run
            plain = (
                without_neighbours(world, Path(tmp) / "plain")
                if large
                else prepare(Path(tmp) / "plain", ["--neighbours", "0"])
            )
            worlds.append((" [NeighbourTargets 0]", plain))
        for label, w in worlds:
            _show(f"fast path handler (in-Lambda scoring){label}", bench_fast_handler(w, args.requests, 200))
            _show(
                f"endpoint path handler (shortlist; the endpoint's own time subtracted){label}",
                bench_handler(w, args.requests, n_users=args.handler_users or 200),
            )
        if args.shortlists:
            for row in bench_shortlist(world, [int(n) for n in args.shortlists.split(",")]):
                _show("shortlist", row)
        if args.memory:
            for path in ("endpoint", "fast"):
                _show(f"peak memory ({path} path)", bench_memory(world, path))
                _show(f"peak memory ({path} path, numpy only)", bench_memory(world, path, numpy_only=True))
        if not args.skip_seed and not large:
            _show("request building, seed vs ours", bench_seed(world, args.seed_users))
        if not args.skip_e2e:
            counts = [int(c) for c in args.clients.split(",")]
            for path in args.paths.split(","):
                fast = path == "fast"
                label = "API twin -> handler (fast path)" if fast else "API twin -> handler -> endpoint twin"
                for e2e in bench_end_to_end(
                    world, counts, args.seconds, args.endpoint_workers, args.api_workers, fast_path=fast
                ):
                    _show(f"end to end ({label})", e2e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
