"""Preprocess end to end on synthetic ratings (default 25M, ml-25m's shape): wall time and peak RSS.

    .venv/bin/python benchmarks/bench_preprocess.py                       # synthesize 25M ratings, preprocess
    .venv/bin/python benchmarks/bench_preprocess.py --data-dir /tmp/syn25  # reuse a synthetic folder
    .venv/bin/python benchmarks/bench_preprocess.py --data-dir /tmp/syn25 --objective rating  # seed's rows
Each stage runs in its own child process, which reports its own peak RSS (getrusage ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEAK = "import resource; print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"


def child(code: str) -> tuple[float, float, str]:
    """Run python code in a fresh process: (wall seconds, its peak RSS in GiB, stdout)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", f"{code}\n{PEAK}"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t
    if proc.returncode:
        sys.exit(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    peak_kib = int(lines[-1].split()[1])
    return wall, peak_kib / 2**20, "\n".join(lines[:-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ratings", type=int, default=25_000_000)
    p.add_argument("--users", type=int, default=162_541)
    p.add_argument("--items", type=int, default=59_047)
    p.add_argument("--data-dir", help="an existing synthetic folder (skips generation)")
    p.add_argument("--keep", action="store_true", help="keep the output folder")
    p.add_argument("--objective", choices=("ranking", "rating"), default="ranking")
    p.add_argument("--negatives", type=int, default=4, help="ranking: negatives per positive")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-preprocess-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        print(f"cpus {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        data = Path(args.data_dir) if args.data_dir else work / "synth"
        out = work / "out"
        if not args.data_dir:
            wall, peak, _ = child(
                "from fmrec.data.synth import SynthConfig, write_synth\n"
                f"write_synth({str(data)!r}, SynthConfig(users={args.users}, items={args.items}, "
                f"ratings={args.ratings}))"
            )
            print(f"synth: {args.ratings:,} ratings, {args.users:,} users, {args.items:,} items")
            print(f"  wall {wall:.1f} s   peak RSS {peak:.2f} GiB")
        wall, peak, stdout = child(
            "import json\n"
            "from fmrec.features.options import PreprocessConfig\n"
            "from fmrec.stages.preprocess import run\n"
            f"cfg = PreprocessConfig(objective={args.objective!r}, negatives_per_positive={args.negatives})\n"
            f"m = run({str(data)!r}, {str(out)!r}, cfg)\n"
            "print(json.dumps(m['counts']))"
        )
        counts = json.loads(stdout.strip().splitlines()[-1])
        size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        rows = counts["train_rows"] + counts["test_rows"]
        print(
            f"preprocess --objective {args.objective}: {rows:,} rows "
            f"({counts['train_rows']:,} train, {counts['test_rows']:,} test), "
            f"output {size / 2**30:.2f} GiB"
        )
        print(f"  wall {wall:.1f} s   peak RSS {peak:.2f} GiB   ({rows / wall:,.0f} rows/s end to end)")
        print("  goal <= 90 s and <= 4 GiB:", "met" if wall <= 90 and peak <= 4 else "NOT met")
        print(f"  load average after: {os.getloadavg()[0]:.1f}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
