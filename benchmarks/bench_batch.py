"""Batch recommendations benchmark: every user's top k (fmrec.serving.batch) at the ml-100k and ml-25m shapes.

1. ml-100k: synthetic MovieLens 100k through preprocess (the real lookup) and a random 64-factor model, as in
   bench_api.py; `write_all_users` for all 943 users (goal <= 10 s), in process, and the whole
   `fmrec recommend --all-users` command as a child process (imports, loading, writing; wall time).
2. ml-25m shape: bench_api.prepare_large's lookup (162,541 users x 59,047 movies) and model; `write_all_users`
   for --users users spread over the id range, timed, and extrapolated linearly to every user (the work per
   user does not depend on which users they are: one block product over all movies, a partial sort per user).

    .venv/bin/python benchmarks/bench_batch.py [--users 5000] [--work /tmp/ml25m] [--skip-large]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _time_batch(world: dict[str, Any], out: Path, k: int, positions: Any = None) -> dict[str, Any]:
    from fmrec.model.artifact import load_model_tar
    from fmrec.serving.batch import write_all_users

    model = load_model_tar(world["model_path"])
    cpu0, started = time.process_time(), time.perf_counter()
    n = write_all_users(out, model, world["lookup"], k, user_positions=positions)
    seconds = time.perf_counter() - started
    return {
        "users": n,
        "k": k,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu0,
        "users_per_s": n / seconds,
        "file_mb": out.stat().st_size / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--users", type=int, default=5000, help="ml-25m users timed (then extrapolated)")
    parser.add_argument("--work", default=None, help="bench_api's prepared ml-25m world (--work) to reuse")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    from benchmarks.bench_api import ML25M, prepare, prepare_large

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        small = prepare(Path(tmp) / "small")
        result = _time_batch(small, Path(tmp) / "small.jsonl", args.k)
        print("ml-100k, in process: " + json.dumps({k: round(v, 3) for k, v in result.items()}))
        started = time.perf_counter()
        command = [sys.executable, "-m", "fmrec_cli", "recommend", "--all-users", "--no-progress"]
        command += ["--out", str(Path(tmp) / "cli.jsonl"), "--artifacts", str(small["artifacts"])]
        proc = subprocess.run(
            [*command, "-k", str(args.k)],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        print(f"ml-100k, `fmrec recommend --all-users` wall time: {time.perf_counter() - started:.2f} s")
        if args.skip_large:
            return 0
        work = Path(args.work) if args.work else Path(tmp) / "large"
        work.mkdir(parents=True, exist_ok=True)
        large = prepare_large(work)
        n_users = len(large["lookup"].user_ids)
        step = max(1, n_users // args.users)
        positions = list(range(0, n_users, step))[: args.users]
        result = _time_batch(large, Path(tmp) / "large.jsonl", args.k, positions)
        shown = {k: round(v, 3) for k, v in result.items()}
        print(f"ml-25m shape, {len(positions)} of {n_users} users: " + json.dumps(shown))
        scale = ML25M["users"] / result["users"]
        print(
            "ml-25m shape, every user (extrapolated): "
            + json.dumps(
                {
                    "seconds": round(result["seconds"] * scale, 1),
                    "cpu_seconds": round(result["cpu_seconds"] * scale, 1),
                    "file_mb": round(result["file_mb"] * scale, 1),
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
