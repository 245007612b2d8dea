"""Load benchmark: the local recommend API (API twin -> handler -> endpoint twin) under 16 and 64 clients.

Loopback only and bounded in time (one phase of --seconds per client count, plus ~15 s of set-up). The world
(synthetic MovieLens 100k through preprocess, a num_factors=64 model, a published version) and the load
generator (asyncio keep-alive HTTP/1.1 clients cycling over 200 known users, run as a separate process) are
those of benchmarks/bench_api.py, imported rather than copied. The servers run as child processes:
`fmrec serve endpoint` (a supervisor and --endpoint-workers workers) and `fmrec serve api`. While each phase
runs, this process samples the resident set size (VmRSS) of every server process once a second, so a leak
shows as growth between the start and the end of a phase or between phases.

Figures: throughput, p50/p90/p99 latency, the error count (any non-200 answer or one not scored by the
endpoint), RSS per server role at the start, end and peak of each phase. Goal at 16 clients: 0 errors and
p99 <= 60 ms; memory flat.

    .venv/bin/python benchmarks/bench_load.py [--seconds 60] [--clients 16,64] [--endpoint-workers 2]
        [--attack]

With --every-user N, every user's top 10 is asked once at N clients and the wall time printed (issue 20's
target: a 9,000-movie catalogue, `--synth-items 9000 --synth-users 670 --every-user 4 --clients ''`, in 30 s
or less). With --slow-body, 62 connections to the endpoint twin announce 6 MB bodies and send none while 40
recommend requests go through the API, one after another; it prints how many failed (target 0).

With --attack, an attacker process runs beside the load in every phase (issue 14's attacks): 100 connections
to the endpoint twin that send 5.9 MB of a declared 6 MB body and then stall; 200 that trickle a 1 MB head
(4 KiB every 0.1 s); and against the API twin 20 that trickle a head and one that streams a 50 MB chunked
body, again and again. Each reconnects once the server answers or closes. It prints what the servers answered
them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _bench_api() -> Any:
    spec = importlib.util.spec_from_file_location("bench_api", HERE / "bench_api.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _children() -> dict[int, list[int]]:
    """ppid -> child pids, from /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    out, todo = [], list(tree.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += tree.get(p, [])
    return out


def _rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples VmRSS of the server process trees (endpoint, API) once per interval, in a thread."""

    def __init__(self, roots: dict[str, int], interval: float = 1.0) -> None:
        self.roots = roots
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []  # (t, role -> kB summed over its processes)
        self.processes: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        tree = _children()
        by_role: dict[str, int] = {}
        for role, root in self.roots.items():
            pids = [root, *_descendants(root, tree)]
            self.processes[role] = len(pids)
            by_role[role] = sum(_rss_kb(p) or 0 for p in pids)
        self.samples.append((time.monotonic(), by_role))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict[str, Any]:
        """Per role: MB over the first, middle and last 10% of the samples (medians), the peak, the growth
        over the phase and over its second half (warm-up, such as new threads and their malloc arenas, shows
        in the first half; a leak keeps growing in the second)."""
        out: dict[str, Any] = {}
        n = len(self.samples)
        edge = max(1, n // 10)
        mid = n // 2
        for role in self.roots:
            series = [s[role] / 1024 for _, s in self.samples]
            start, end = statistics.median(series[:edge]), statistics.median(series[-edge:])
            middle = statistics.median(series[max(0, mid - edge // 2) : mid + edge - edge // 2])
            out[role] = {
                "processes": self.processes.get(role, 0),
                "start_mb": round(start, 1),
                "mid_mb": round(middle, 1),
                "end_mb": round(end, 1),
                "peak_mb": round(max(series), 1),
                "growth_mb": round(end - start, 1),
                "second_half_growth_mb": round(end - middle, 1),
            }
        out["samples"] = n
        return out


def _server_roots(endpoint_pid: int, loadgen_pid: int | None = None) -> dict[str, int]:
    """The endpoint supervisor and the API twin process: both direct children of this process."""
    tree = _children()
    mine = [p for p in tree.get(os.getpid(), []) if p not in (endpoint_pid, loadgen_pid)]
    api = [p for p in mine if b"serve\x00api" in Path(f"/proc/{p}/cmdline").read_bytes()]
    if len(api) != 1:
        raise SystemExit(f"cannot find the API twin process among children {mine}")
    return {"endpoint": endpoint_pid, "api": api[0]}


def run_phase(
    api_bench: Any,
    host: str,
    port: int,
    users: str,
    clients: int,
    seconds: float,
    roots: dict[str, int],
    attack: tuple[str, int] | None = None,
) -> dict[str, Any]:
    argv = [
        sys.executable,
        str(HERE / "bench_api.py"),
        "--loadgen",
        host,
        str(port),
        str(clients),
        str(seconds),
        users,
    ]
    load_before = os.getloadavg()
    attacker = None
    if attack is not None:
        # from the load generator's start: its 1 s warm-up and set-up are attacked too
        attack_argv = [
            sys.executable,
            __file__,
            "--attacker",
            *map(str, attack),
            host,
            str(port),
            str(seconds + 2),
        ]
        attacker = subprocess.Popen(attack_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with RssSampler(roots) as sampler:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=seconds + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise SystemExit("load generator did not finish in time") from None
        attacked: dict[str, int] | None = None
        if attacker is not None:
            a_out, a_err = attacker.communicate(timeout=120)
            if attacker.returncode != 0:
                raise SystemExit(f"attacker failed:\n{a_err[-2000:]}")
            attacked = json.loads(a_out.strip().splitlines()[-1])
    if proc.returncode != 0:
        raise SystemExit(f"load generator failed:\n{err[-2000:]}")
    result: dict[str, Any] = dict(json.loads(out.strip().splitlines()[-1]))
    if attacked is not None:
        result["attacker_got"] = attacked
    result["rss"] = sampler.summary()
    result["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    return result


# --- the attacker ------------------------------------------------------------------------------------------
async def _answer(reader: asyncio.StreamReader, timeout: float) -> str:
    """The status code the server answered, or how the connection ended without one."""
    try:
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        return "no answer"
    except OSError:
        return "reset"
    return line.split(b" ", 2)[1].decode() if line.startswith(b"HTTP/") else "closed"


async def _attack_loop(
    kind: str, host: str, port: int, deadline: float, stats: collections.Counter[str]
) -> None:
    while time.monotonic() < deadline:
        left = deadline - time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            stats[f"{kind}: connect failed"] += 1
            await asyncio.sleep(0.5)
            continue
        try:
            if kind == "slow-body":
                writer.write(
                    b"POST /endpoints/fmrec-endpoint/invocations HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n" + b" " * 5_900_000
                )
                await writer.drain()
                status = await _answer(reader, left)  # stalls here, 100 KB short
            elif kind == "slow-head":
                writer.write(b"GET /ping HTTP/1.1\r\nHost: t\r\n")
                status = "closed"
                for i in range(256):  # 1 MB of header lines, 4 KiB every 0.1 s
                    writer.write(b"X-%d: %s\r\n" % (i, b"v" * 4080))
                    await writer.drain()
                    if reader.at_eof() or reader._buffer:  # type: ignore[attr-defined]
                        break
                    await asyncio.sleep(0.1)
                status = await _answer(reader, min(left, 60))
            else:  # big-body: a 50 MB chunked POST to the API twin
                writer.write(
                    b"POST /users/1/recommendations HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                chunk = b"%x\r\n%s\r\n" % (1 << 20, b"x" * (1 << 20))
                status = "closed"
                for _ in range(50):
                    writer.write(chunk)
                    await writer.drain()
                    if reader._buffer:  # type: ignore[attr-defined]
                        break
                status = await _answer(reader, min(left, 60))
        except OSError:
            status = "reset"
        stats[f"{kind}: {status}"] += 1
        writer.close()
        await asyncio.sleep(0.2)


async def _attack(endpoint: tuple[str, int], api: tuple[str, int], seconds: float) -> dict[str, int]:
    stats: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + seconds
    tasks = [_attack_loop("slow-body", *endpoint, deadline, stats) for _ in range(100)]
    tasks += [_attack_loop("slow-head", *endpoint, deadline, stats) for _ in range(200)]
    tasks += [_attack_loop("slow-head", *api, deadline, stats) for _ in range(20)]
    tasks += [_attack_loop("big-body", *api, deadline, stats)]
    await asyncio.gather(*tasks)
    return dict(sorted(stats.items()))


def attacker_main(argv: list[str]) -> int:
    ep_host, ep_port, api_host, api_port, seconds = argv
    result = asyncio.run(_attack((ep_host, int(ep_port)), (api_host, int(api_port)), float(seconds)))
    print(json.dumps(result))
    return 0


# --- issue 20's slow-body attack and every user's top 10 ----------------------------------------------------
async def _slow_body_attack(
    endpoint: tuple[str, int], api: tuple[str, int], users: list[int], connections: int, requests: int
) -> dict[str, Any]:
    """`connections` connections to the endpoint twin announce 6 MB bodies and send none; meanwhile
    `requests` recommend requests go through the API one after another. What they were answered."""
    holders = []
    for _ in range(connections):
        reader, writer = await asyncio.open_connection(*endpoint)
        writer.write(
            b"POST /endpoints/fmrec-endpoint/invocations HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n"
        )
        await writer.drain()
        holders.append(writer)
    await asyncio.sleep(1.0)  # the announced bodies are held by now
    statuses: collections.Counter[int] = collections.Counter()
    for user in users[:requests]:
        reader, writer = await asyncio.open_connection(*api)
        writer.write(
            f"GET /users/{user}/recommendations HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        line = await reader.readline()
        statuses[int(line.split(b" ", 2)[1])] += 1
        writer.close()
    for writer in holders:
        writer.close()
    failed = sum(n for status, n in statuses.items() if status != 200)
    return {"connections": connections, "requests": requests, "failed": failed, "statuses": dict(statuses)}


async def _every_user(host: str, port: int, users: list[int], clients: int) -> dict[str, Any]:
    """Every user's top 10 once, `clients` at a time: the wall time of the whole run."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for user in users:
        queue.put_nowait(user)
    statuses: collections.Counter[str] = collections.Counter()
    times: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while not queue.empty():
                user = queue.get_nowait()
                started = time.perf_counter()
                writer.write(f"GET /users/{user}/recommendations?k=10 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                times.append((time.perf_counter() - started) * 1e3)
                path = json.loads(body).get("servingPath", "error")
                statuses[f"{int(head.split(b' ', 2)[1])} {path}"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    return {
        "users": len(users),
        "clients": clients,
        "wall_s": time.perf_counter() - started,
        "p50_ms": statistics.median(times),
        "p99_ms": sorted(times)[int(0.99 * (len(times) - 1))],
        "answers": dict(statuses),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--attacker":
        return attacker_main(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured duration of each phase")
    parser.add_argument("--clients", default="16,64", help="comma-separated client counts, one phase each")
    parser.add_argument("--endpoint-workers", type=int, default=2, help="endpoint twin worker processes")
    parser.add_argument("--api-workers", type=int, default=1, help="API twin worker processes")
    parser.add_argument("--attack", action="store_true", help="run the attacker beside the load (see above)")
    parser.add_argument(
        "--slow-body", action="store_true", help="issue 20's slow-body attack: 62 stalled 6 MB announcements"
    )
    parser.add_argument(
        "--every-user", type=int, default=0, help="every user's top 10 once at this many clients, timed"
    )
    parser.add_argument("--synth-items", type=int, default=None, help="synthetic catalogue size (ml-100k's)")
    parser.add_argument("--synth-users", type=int, default=None, help="synthetic users (ml-100k's 943)")
    args = parser.parse_args()
    api_bench = _bench_api()
    from twins.api.server import start_in_background as start_api
    from twins.endpoint.server import start_in_background as start_endpoint

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        started = time.perf_counter()
        shape = {"items": args.synth_items, "users": args.synth_users}
        world = api_bench.prepare(Path(tmp), **{k: v for k, v in shape.items() if v is not None})
        lookup = world["lookup"]
        print(
            f"prepared synthetic ({len(lookup.user_ids)} users, {len(lookup.movie_ids)} movies, "
            f"feature_dim {lookup.feature_dim}) in {time.perf_counter() - started:.1f} s"
        )
        users = ",".join(str(u) for u in lookup.user_ids[:200])
        with (
            start_endpoint(
                world["model_path"],
                name=api_bench.ENDPOINT,
                variant=api_bench.VERSION,
                process=True,
                workers=args.endpoint_workers,
            ) as endpoint,
            start_api(
                world["artifacts"],
                endpoint.url,
                endpoint_name=api_bench.ENDPOINT,
                process=True,
                workers=args.api_workers,
            ) as api,
        ):
            assert endpoint.pid is not None
            roots = _server_roots(endpoint.pid)
            if args.every_user:
                every = asyncio.run(_every_user(api.host, api.port, list(lookup.user_ids), args.every_user))
                print("every user's top 10:", json.dumps(every))
            if args.slow_body:
                probe = _slow_body_attack(
                    (endpoint.host, endpoint.port), (api.host, api.port), list(lookup.user_ids), 62, 40
                )
                print("slow-body attack:", json.dumps(asyncio.run(probe)))
            for clients in (int(c) for c in args.clients.split(",") if c):
                attack = (endpoint.host, endpoint.port) if args.attack else None
                result = run_phase(api_bench, api.host, api.port, users, clients, args.seconds, roots, attack)
                print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
