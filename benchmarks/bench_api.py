"""Recommend API benchmark: handler time without the endpoint call, the seed's request building, end to end.

Data: synthetic MovieLens 100k (943 users, 1,682 movies; fmrec.data.synth) run through preprocess, so
the lookup is the real one; a num_factors=64 binary_classifier model with random weights (speed does not
depend on the weights), published as version v1 in a serving-artifacts folder.

1. Handler time: `lambda_handler` on API Gateway events for `GET /users/{id}/recommendations?k=10`, in
   process, with a sagemaker-runtime client double whose answer (the endpoint's real JSON for that user,
   precomputed with the endpoint twin's encoder) is handed back at once; the double's own time is subtracted,
   so the figure is everything the Lambda does except the endpoint call: routing, validation, candidates,
   request building, parsing the answer, top k, the JSON response and the INFO log line. Goal p50 <= 1 ms.
2. The seed's request building (its recommend() loop up to json.dumps, reimplemented here only as the
   baseline) against fmrec.serving.requests on the same users, in this one process run, with the ratio.
3. End to end: `fmrec serve endpoint` and `fmrec serve api` as child processes, and a load generator in a
   third process: 16 keep-alive HTTP/1.1 clients on loopback for --seconds. Goal p50 <= 15 ms, p99 <= 60 ms,
   0 errors.

    .venv/bin/python benchmarks/bench_api.py [--seconds 10] [--clients 1,16] [--requests 3000]
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
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ENDPOINT = "fmrec-endpoint"
VERSION = "v1"
NUM_FACTORS = 64


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def prepare(work: Path) -> dict[str, Any]:
    """Synthetic ml-100k -> preprocess -> lookup; a random model; a published serving-artifacts folder."""
    from fmrec.data.synth import SynthConfig, write_synth
    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams
    from fmrec.serving.lookup import read_lookup
    from pipeline.steps import preprocess
    from twins.api.server import publish_version

    data = work / "pre" / "input" / "data"
    write_synth(data, SynthConfig())
    preprocess.main(work / "pre", [])
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


class InstantRuntime:
    """A sagemaker-runtime double: returns the precomputed endpoint answer and keeps count of its own time."""

    def __init__(self, answers: dict[bytes, bytes]) -> None:
        self.answers = answers
        self.spent = 0.0

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        body = self.answers[kwargs["Body"]]
        out = {
            "Body": io.BytesIO(body),
            "ContentType": "application/json",
            "InvokedProductionVariant": VERSION,
        }
        self.spent += time.perf_counter() - started
        return out


def bench_handler(world: dict[str, Any], n_requests: int, n_users: int) -> dict[str, Any]:
    from fmrec.model.fm import predict
    from lambdas.recommend import app
    from lambdas.recommend.service import DirStore, EndpointCaller, Recommender
    from twins.api.server import LambdaContext, build_event
    from twins.endpoint.protocol import encode_response, parse_json

    lookup = world["lookup"]
    users = list(lookup.user_ids[:n_users])
    probe = Recommender(DirStore(world["artifacts"]), None, fast_path=True)
    bundle = probe.current_bundle()
    answers: dict[bytes, bytes] = {}
    sizes: list[int] = []
    candidates: list[int] = []
    for user in users:
        pos = lookup.user_position(user)
        rated = set(lookup.rated_positions(pos))
        positions = [p for p in range(len(lookup.movie_ids)) if p not in rated]
        for payload in bundle.builder.build(pos, positions):
            X = parse_json(payload.body, lookup.feature_dim)
            scores = np.asarray(predict(world["params"], X, "binary_classifier"), dtype=np.float32)
            answers[payload.body] = encode_response(scores, "binary_classifier", "application/json")
            sizes.append(len(payload.body))
        candidates.append(len(positions))
    runtime = InstantRuntime(answers)
    app.configure(Recommender(DirStore(world["artifacts"]), EndpointCaller(runtime, ENDPOINT)))
    # The INFO line per request is part of the handler's work; write it where the Lambda would (a stream).
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark
    for handler in app.logger.handlers:
        if hasattr(handler, "setStream"):
            handler.setStream(devnull)
    app.logger.setLevel("INFO")
    events = [
        build_event(
            "GET", f"/users/{u}/recommendations", [("k", "10")], [("accept", "application/json")], b""
        )
        for u in users
    ]
    context = LambdaContext(aws_request_id="bench")
    for evt in events[:50]:  # warm: cold start (lookup load) and first-call caches
        assert app.lambda_handler(evt, context)["statusCode"] == 200
    times: list[float] = []
    for i in range(n_requests):
        evt = events[i % len(events)]
        runtime.spent = 0.0
        started = time.perf_counter()
        result = app.lambda_handler(evt, context)
        elapsed = time.perf_counter() - started - runtime.spent
        if result["statusCode"] != 200:
            raise SystemExit(f"handler answered {result['statusCode']}: {result['body']}")
        times.append(elapsed * 1e3)
    build_times: list[float] = []
    for i in range(n_requests):
        user = users[i % len(users)]
        pos = lookup.user_position(user)
        rated = set(lookup.rated_positions(pos))
        started = time.perf_counter()
        positions = [p for p in range(len(lookup.movie_ids)) if p not in rated]
        bundle.builder.build(pos, positions)
        build_times.append((time.perf_counter() - started) * 1e3)
    app.configure(None)
    return {
        "requests": n_requests,
        "users": len(users),
        "candidates_mean": statistics.fmean(candidates),
        "body_bytes_mean": statistics.fmean(sizes),
        "handler_ms_p50": pct(times, 50),
        "handler_ms_p90": pct(times, 90),
        "handler_ms_p99": pct(times, 99),
        "build_ms_p50": pct(build_times, 50),
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
    from lambdas.recommend.service import DirStore, Recommender

    builder = Recommender(DirStore(world["artifacts"]), None, fast_path=True).current_bundle().builder
    users = list(lookup.user_ids[:n_users])
    seed_times, ours_times, seed_sizes, ours_sizes = [], [], [], []
    wrong = total = 0
    for user in users:
        started = time.perf_counter()
        body = seed_request(user, ratings, enc)
        seed_times.append((time.perf_counter() - started) * 1e3)
        seed_sizes.append(len(body))
        pos = lookup.user_position(user)
        started = time.perf_counter()
        rated = set(lookup.rated_positions(pos))
        positions = [p for p in range(len(lookup.movie_ids)) if p not in rated]
        payloads = builder.build(pos, positions)
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
        "seed_body_kb": statistics.fmean(seed_sizes) / 1000,
        "ours_body_kb": statistics.fmean(ours_sizes) / 1000,
        "seed_instances_without_a_movie_key": f"{wrong}/{total}",
    }


# --- end to end ------------------------------------------------------------------------------------------
async def _client(
    host: str, port: int, paths: list[str], deadline: float, out: list[float], errors: list[str]
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
            if status != 200 or b'"servingPath":"endpoint"' not in body:
                errors.append(f"{status} {body[:200]!r}")
    finally:
        writer.close()


async def _load(host: str, port: int, users: list[int], clients: int, seconds: float) -> dict[str, Any]:
    paths = [f"/users/{u}/recommendations?k=10" for u in users]
    warm: list[float] = []
    errors: list[str] = []
    warm_deadline = time.perf_counter() + 1.0
    await asyncio.gather(*[_client(host, port, paths, warm_deadline, warm, errors) for _ in range(clients)])
    times: list[float] = []
    errors.clear()
    print("measuring", flush=True)
    cpu0 = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*[_client(host, port, paths, deadline, times, errors) for _ in range(clients)])
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
    result = asyncio.run(_load(host, port, [int(u) for u in users.split(",")], clients, seconds))
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


def _spawn(argv: list[str], is_ready: Any, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not is_ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise SystemExit(f"{what} did not start:\n{err}")
        time.sleep(0.05)
    return proc


def bench_end_to_end(
    world: dict[str, Any], clients: list[int], seconds: float, endpoint_workers: int, api_workers: int
) -> list[dict[str, Any]]:
    from twins.api.server import ready
    from twins.endpoint.server import free_port, ping

    host = "127.0.0.1"
    ep_port, api_port = free_port(host), free_port(host)
    cli = [sys.executable, "-m", "fmrec.cli", "serve"]
    endpoint = _spawn(
        [
            *cli,
            *("endpoint", "--host", host, "--port", str(ep_port), "--workers", str(endpoint_workers)),
            *("--model", str(world["model_path"]), "--name", ENDPOINT, "--variant", VERSION),
        ],
        lambda: ping(host, ep_port, timeout=1.0),
        "endpoint twin",
    )
    try:
        api = _spawn(
            [
                *cli,
                *("api", "--host", host, "--port", str(api_port), "--workers", str(api_workers)),
                *("--artifacts", str(world["artifacts"]), "--endpoint-name", ENDPOINT),
                *("--endpoint-url", f"http://{host}:{ep_port}"),
            ],
            lambda: ready(host, api_port, timeout=1.0),
            "API twin",
        )
    except BaseException:
        endpoint.terminate()
        raise
    lookup = world["lookup"]
    users = ",".join(str(u) for u in lookup.user_ids[:200])
    results = []
    try:
        for n in clients:
            argv = [sys.executable, __file__, "--loadgen", host, str(api_port), str(n), str(seconds), users]
            gen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert gen.stdout is not None
            line = gen.stdout.readline()  # "measuring" once the warm-up second is over
            if line.strip() != "measuring":
                raise SystemExit(f"load generator failed:\n{line}{gen.communicate()[1][-2000:]}")
            cpu0 = (tree_cpu_seconds(endpoint.pid), tree_cpu_seconds(api.pid))
            out, err = gen.communicate(timeout=seconds + 120)
            cpu1 = (tree_cpu_seconds(endpoint.pid), tree_cpu_seconds(api.pid))
            if gen.returncode != 0:
                raise SystemExit(f"load generator failed:\n{err[-2000:]}")
            result = dict(json.loads(out.strip().splitlines()[-1]))
            n_req = max(1, result["requests"])
            ep_ms = (cpu1[0] - cpu0[0]) * 1e3 / n_req
            api_ms = (cpu1[1] - cpu0[1]) * 1e3 / n_req
            total = ep_ms + api_ms + result["loadgen_cpu_ms_per_request"]
            result.update(
                endpoint_cpu_ms_per_request=ep_ms,
                api_cpu_ms_per_request=api_ms,
                total_cpu_ms_per_request=total,
                # Derived, not measured: a closed loop of n clients on 2 otherwise idle cores.
                ceiling_rps_2_idle_cores=2000 / total,
            )
            results.append(result)
    finally:
        for proc in (api, endpoint):
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        return loadgen_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="end-to-end measured duration")
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts, one phase each")
    parser.add_argument("--requests", type=int, default=3000, help="handler-time requests")
    parser.add_argument("--seed-users", type=int, default=30, help="users for the seed comparison")
    parser.add_argument("--endpoint-workers", type=int, default=2, help="endpoint twin worker processes")
    parser.add_argument("--api-workers", type=int, default=1, help="API twin worker processes")
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        started = time.perf_counter()
        world = prepare(Path(tmp))
        print(f"prepared synthetic ml-100k, lookup and model in {time.perf_counter() - started:.1f} s")
        lookup = world["lookup"]
        print(
            f"lookup: {len(lookup.user_ids)} users, {len(lookup.movie_ids)} movies, "
            f"feature_dim {lookup.feature_dim}"
        )
        handler = bench_handler(world, args.requests, n_users=200)
        print("handler (no endpoint call): " + json.dumps({k: round(v, 4) for k, v in handler.items()}))
        seed = bench_seed(world, args.seed_users)
        print(
            "request building, seed vs ours: "
            + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in seed.items()})
        )
        if not args.skip_e2e:
            counts = [int(c) for c in args.clients.split(",")]
            for e2e in bench_end_to_end(world, counts, args.seconds, args.endpoint_workers, args.api_workers):
                print(
                    "end to end (API twin -> handler -> endpoint twin): "
                    + json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in e2e.items()})
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
