"""Endpoint twin load test: latency at 1 client, throughput at 16 clients, recordIO vs JSON, /ping under load.

The twin runs as `fmrec serve endpoint` in a child process; this process is the load generator (asyncio
over raw keep-alive HTTP/1.1 on loopback). Workload: one request scoring one user against every movie of
MovieLens 100k (1,682 sparse instances, feature_dim 943 + 1,682 = 2,625, keys [user, 943 + movie]: the seed's
JSON format with correct keys), against a num_factors=64 binary_classifier model with random weights (speed
does not depend on the weights). Every response is checked byte-for-byte against the first one, which is
fully decoded and checked against fmrec.model.fm.predict.

    .venv/bin/python benchmarks/bench_endpoint.py [--seconds 8] [--workers N] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from scipy.sparse import csr_matrix

from fmrec.features.columns import ColumnLayout

N_USERS, N_MOVIES, NUM_FACTORS = 943, 1682, 64
FEATURE_DIM = N_USERS + N_MOVIES
USER_POS = 41


def build_model(path: Path) -> None:
    from fmrec.model.artifact import FMModel, save_model_tar
    from fmrec.model.fm import FMParams

    rng = np.random.default_rng(7)
    params = FMParams(
        w0=0.2,
        w=rng.normal(0, 0.1, FEATURE_DIM).astype(np.float32),
        V=rng.normal(0, 0.1, (FEATURE_DIM, NUM_FACTORS)).astype(np.float32),
    )
    hp = {
        "feature_dim": str(FEATURE_DIM),
        "num_factors": str(NUM_FACTORS),
        "predictor_type": "binary_classifier",
    }
    save_model_tar(FMModel(params, "binary_classifier", hp, {}), path)


class MovieLensShape:
    """The id-to-column layout of MovieLens 100k (users first, then movies), for the request builder."""

    feature_dim = FEATURE_DIM
    user_ids = tuple(range(1, N_USERS + 1))
    movie_ids = tuple(range(1, N_MOVIES + 1))
    columns = ColumnLayout.build(N_USERS, N_MOVIES)

    def user_keys(self, user_pos: int) -> list[int]:
        return [self.columns.user_column(user_pos)]

    def user_values(self, user_pos: int) -> list[float]:
        return [1.0]

    def movie_keys(self, movie_pos: int) -> list[int]:
        return [self.columns.movie_column(movie_pos)]

    def movie_values(self, movie_pos: int) -> list[float]:
        return [1.0]


def workload() -> tuple[csr_matrix, bytes, bytes]:
    """One user against every movie: the recommend Lambda's JSON body, and the same rows as recordIO."""
    from fmrec.codec.writer import encode_request
    from fmrec.serving.requests import RequestBuilder
    from twins.endpoint.protocol import parse_json

    payloads = RequestBuilder(MovieLensShape()).build(USER_POS)
    if len(payloads) != 1:
        raise SystemExit(f"expected one request body, the builder made {len(payloads)}")
    body = payloads[0].body
    X = parse_json(body, FEATURE_DIM)
    expected_cols = np.column_stack([np.full(N_MOVIES, USER_POS), N_USERS + np.arange(N_MOVIES)])
    if X.shape[0] != N_MOVIES or not np.array_equal(np.sort(X.indices.reshape(-1, 2), axis=1), expected_cols):
        raise SystemExit("the request body does not hold [user, 943 + movie] keys for every movie")
    return X, body, encode_request(X)


class Conn:
    """A keep-alive HTTP/1.1 connection: sends a prebuilt request, reads a Content-Length response."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def http_request(path: str, body: bytes, content_type: str, accept: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: {content_type}\r\nAccept: {accept}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


PING = b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n"


@dataclass
class Result:
    requests: int
    seconds: float
    latencies_ms: list[float]
    ping_ms: list[float]
    server_cpu_seconds: float = float("nan")

    def pct(self, q: float, values: list[float] | None = None) -> float:
        data = sorted(self.latencies_ms if values is None else values)
        return data[min(len(data) - 1, int(q * len(data)))] if data else float("nan")


async def run_load(
    host: str, port: int, request: bytes, expected: bytes, clients: int, seconds: float, max_requests: int
) -> Result:
    conns = [await Conn.open(host, port) for _ in range(clients)]
    for conn in conns:  # warm-up: one request per connection
        status, out = await conn.call(request)
        if status != 200 or out != expected:
            raise SystemExit(f"warm-up response differs (status {status}): {out[:200]!r}")
    latencies: list[float] = []
    ping_ms: list[float] = []
    stop_at = time.perf_counter() + seconds
    done = 0

    async def client(conn: Conn) -> None:
        nonlocal done
        while time.perf_counter() < stop_at and done < max_requests:
            t0 = time.perf_counter()
            status, out = await conn.call(request)
            latencies.append((time.perf_counter() - t0) * 1e3)
            if status != 200 or out != expected:
                raise SystemExit(f"response differs (status {status}): {out[:200]!r}")
            done += 1

    async def pinger() -> None:
        conn = await Conn.open(host, port)
        while time.perf_counter() < stop_at and done < max_requests:
            t0 = time.perf_counter()
            status, _ = await conn.call(PING)
            if status != 200:
                raise SystemExit(f"/ping answered {status} under load")
            ping_ms.append((time.perf_counter() - t0) * 1e3)
            await asyncio.sleep(0.05)
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns), pinger())
    elapsed = time.perf_counter() - t0
    for conn in conns:
        conn.close()
    return Result(done, elapsed, latencies, ping_ms)


def server_side_breakdown(model: Any, body: bytes, repeat: int = 200) -> None:
    """Median time of each server step on the JSON workload (in this process), and what the GC pause saves."""
    import gc

    from fmrec.model.fm import predict
    from twins.endpoint import protocol

    def median_ms(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def loads_gc_paused() -> None:
        gc.disable()
        try:
            orjson.loads(body)  # freed before the collector resumes, as in the server
        finally:
            gc.enable()

    params, kind = model.params, model.predictor_type
    X = protocol.parse_json(body, FEATURE_DIM)
    scores = np.asarray(predict(params, X, kind), np.float32)
    steps: dict[str, Callable[[], object]] = {
        "parse_json (orjson + CSR)": lambda: protocol.parse_json(body, FEATURE_DIM),
        "fm.predict": lambda: predict(params, X, kind),
        "encode_response (JSON)": lambda: protocol.encode_response(scores, kind, protocol.JSON),
        "orjson.loads alone, GC paused": loads_gc_paused,
        "orjson.loads alone, GC running": lambda: orjson.loads(body),
    }
    print(f"server-side steps on the JSON workload (median of {repeat}, this process):")
    for name, fn in steps.items():
        print(f"  {name}: {median_ms(fn):.2f} ms")


def worker_cpu_seconds(server_pid: int | None) -> float:
    """CPU time (user + system) the server's workers used so far, from /proc: it sees past busy neighbours."""
    if server_pid is None:
        return float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for child in Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split():
        stat = Path(f"/proc/{child}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def check_first_response(out_json: bytes, out_recordio: bytes, scores: np.ndarray) -> None:
    from fmrec.codec.predictions import decode_predictions

    preds = orjson.loads(out_json)["predictions"]
    got = np.array([p["score"] for p in preds], np.float32)
    if len(preds) != N_MOVIES or not np.array_equal(got, scores):
        raise SystemExit("JSON response does not match fmrec.model.fm.predict")
    rec = decode_predictions(out_recordio)
    got = np.array([np.asarray(p["score"]).reshape(-1)[0] for p in rec], np.float32)
    if len(rec) != N_MOVIES or not np.array_equal(got, scores):
        raise SystemExit("recordIO response does not match fmrec.model.fm.predict")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="duration of each measured phase")
    parser.add_argument("--workers", type=int, default=None, help="server workers (default: one per core)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--latency-requests", type=int, default=1000, help="cap on 1-client requests per format"
    )
    args = parser.parse_args()

    from fmrec.model.artifact import load_model_tar
    from fmrec.model.fm import predict
    from twins.endpoint.server import default_workers, start_in_background

    workers = args.workers or default_workers()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.tar.gz"
        build_model(model_path)
        X, json_body, recordio_body = workload()
        model = load_model_tar(model_path)
        scores = np.asarray(predict(model.params, X, model.predictor_type), np.float32)
        print(
            f"workload: {N_MOVIES} instances, feature_dim {FEATURE_DIM}, num_factors {NUM_FACTORS}; "
            f"JSON body {len(json_body):,} B, recordIO body {len(recordio_body):,} B"
        )
        server_side_breakdown(model, json_body)
        print(f"server: fmrec serve endpoint, {workers} worker(s) on {os.cpu_count()} cores; load: asyncio")
        with start_in_background(model_path, process=True, workers=workers, name="bench") as server:
            formats = {
                "json": (json_body, "application/json"),
                "recordio": (recordio_body, "application/x-recordio-protobuf"),
            }
            requests = {
                k: http_request("/endpoints/bench/invocations", b, t, t) for k, (b, t) in formats.items()
            }

            async def first(req: bytes) -> bytes:
                conn = await Conn.open(server.host, server.port)
                status, out = await conn.call(req)
                conn.close()
                if status != 200:
                    raise SystemExit(f"status {status}: {out[:300]!r}")
                return out

            expected = {k: asyncio.run(first(r)) for k, r in requests.items()}
            check_first_response(expected["json"], expected["recordio"], scores)
            rows = []
            for fmt in formats:
                lat = asyncio.run(
                    run_load(
                        server.host,
                        server.port,
                        requests[fmt],
                        expected[fmt],
                        1,
                        args.seconds,
                        args.latency_requests,
                    )
                )
                cpu_before = worker_cpu_seconds(server.pid)
                thr = asyncio.run(
                    run_load(
                        server.host,
                        server.port,
                        requests[fmt],
                        expected[fmt],
                        args.clients,
                        args.seconds,
                        10**9,
                    )
                )
                thr.server_cpu_seconds = worker_cpu_seconds(server.pid) - cpu_before
                rows.append((fmt, lat, thr))
        print()
        for fmt, lat, thr in rows:
            rps = thr.requests / thr.seconds
            print(
                f"{fmt:8} 1 client: p50 {lat.pct(0.5):.2f} ms, p99 {lat.pct(0.99):.2f} ms, "
                f"mean {statistics.fmean(lat.latencies_ms):.2f} ms over {lat.requests} requests"
            )
            print(
                f"{fmt:8} {args.clients} clients: {rps * N_MOVIES:,.0f} rows/s ({rps:.1f} requests/s), "
                f"latency p50 {thr.pct(0.5):.1f} ms, p99 {thr.pct(0.99):.1f} ms; "
                f"/ping under load: p99 {thr.pct(0.99, thr.ping_ms):.1f} ms, max {max(thr.ping_ms):.1f} ms, "
                f"{len(thr.ping_ms)} pings all 200"
            )
            cpu_ms = thr.server_cpu_seconds / thr.requests * 1e3
            print(
                f"{fmt:8} {args.clients} clients: server workers used {thr.server_cpu_seconds:.2f} CPU-s in "
                f"{thr.seconds:.1f} s, {cpu_ms:.2f} CPU-ms per request, so "
                f"{N_MOVIES / cpu_ms * 1e3 * workers:,.0f} rows/s if {workers} cores served nothing else"
            )
        (_, jl, jt), (_, rl, rt) = rows
        throughput_ratio = (rt.requests / rt.seconds) / (jt.requests / jt.seconds)
        print(
            f"recordIO / JSON: 1-client p50 ratio {rl.pct(0.5) / jl.pct(0.5):.2f}, "
            f"{args.clients}-client throughput ratio {throughput_ratio:.2f}"
        )
        goals = [
            ("JSON 1-client p50 <= 5 ms", jl.pct(0.5) <= 5.0),
            (f"JSON {args.clients}-client >= 300,000 rows/s", jt.requests / jt.seconds * N_MOVIES >= 300_000),
        ]
        for text, ok in goals:
            print(f"goal {text}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
