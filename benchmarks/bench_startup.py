"""Start-up costs the layering must keep small: `fmrec --help`, the recommend Lambda's import, the fast tests.

.venv/bin/python benchmarks/bench_startup.py                      # this checkout
.venv/bin/python benchmarks/bench_startup.py --baseline /tmp/old  # and another checkout, with ratios
.venv/bin/python benchmarks/bench_startup.py --fast-suite         # also time `pytest -m "not slow"` (~20 s)

Each figure is the median of --runs fresh interpreters (alternating between the checkouts, so a change in the
machine's load falls on both sides). A checkout from before the CLI moved to fmrec_cli/ is run as `fmrec.cli`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAMBDA_IMPORT = (
    "import time; t = time.perf_counter(); import lambdas.recommend.app; print(time.perf_counter() - t)"
)
FAST_SUITE = 'pytest -m "not slow" (wall)'


def _cli_module(checkout: Path) -> str:
    return "fmrec_cli" if (checkout / "fmrec_cli" / "__main__.py").is_file() else "fmrec.cli"


def _wall(argv: list[str], checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    started = time.perf_counter()
    subprocess.run(
        argv, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def _printed(argv: list[str], checkout: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run(argv, cwd=checkout, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def measure(checkout: Path, runs: int) -> dict[str, list[float]]:
    return {
        "fmrec --help (wall)": [
            _wall([sys.executable, "-m", _cli_module(checkout), "--help"], checkout) for _ in range(runs)
        ],
        "import lambdas.recommend.app": [
            _printed([sys.executable, "-c", LAMBDA_IMPORT], checkout) for _ in range(runs)
        ],
    }


def fast_suite(checkout: Path) -> float:
    return _wall([sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-p", "no:cacheprovider"], checkout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare with")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--fast-suite", action="store_true", help='also time pytest -m "not slow" here')
    args = parser.parse_args()
    sides = {"this checkout": REPO} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for _ in range(args.runs):  # alternate the sides run by run
        for name, checkout in sides.items():
            for key, values in measure(checkout, 1).items():
                results[name].setdefault(key, []).extend(values)
    for key in results["this checkout"]:
        here = statistics.median(results["this checkout"][key])
        line = f"{key:36s} {here * 1000:8.1f} ms"
        if args.baseline:
            base = statistics.median(results["baseline"][key])
            line += f"   baseline {base * 1000:8.1f} ms   ratio {here / base:5.2f}"
        print(line)
    if args.fast_suite:
        print(f"{FAST_SUITE:36s} {fast_suite(REPO):8.1f} s")


if __name__ == "__main__":
    main()
