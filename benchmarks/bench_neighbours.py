"""Time and peak memory of fitting the neighbour table (fmrec.features.neighbours.fit_table) by catalogue.

    .venv/bin/python benchmarks/bench_neighbours.py [--movies 2000 5000 10000 20000] [--users 50000]

Each size runs in a child process (its peak RSS is its own): a random train matrix of --users users with
--ratings-per-user ratings each, drawn with a popularity skew (Zipf-like, as MovieLens), then fit_table at
λ 200, 10 targets per movie. The dense EASE inverse dominates: O(movies^3) time and one movies^2 float64
matrix of memory (fmrec.features.ease fits it in place), which is why fit_table stops at EASE_MAX_ITEMS
(20,000) movies and preprocess at NeighbourMovies (10,000 by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp


def one(movies: int, users: int, per_user: int, seed: int = 0) -> dict[str, float]:
    from fmrec.features.neighbours import fit_table  # local import: a slow dependency, child process only

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, movies + 1) ** 0.8
    p /= p.sum()
    cols = rng.choice(movies, size=(users, per_user), p=p)
    rows = np.repeat(np.arange(users), per_user)
    train = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols.ravel())), shape=(users, movies))
    train.sum_duplicates()
    t0 = time.perf_counter()
    table = fit_table(train, l2=200.0, keep=10)
    seconds = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "movies": movies,
        "train_ratings": int(train.nnz),
        "fit_s": round(seconds, 1),
        "peak_rss_mib": round(peak_kib / 1024),
        "table_bytes": int(table.indptr.nbytes + table.targets.nbytes + table.weights.nbytes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--movies", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--users", type=int, default=50000)
    parser.add_argument("--ratings-per-user", type=int, default=40)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child, args.users, args.ratings_per_user)))
        return 0
    print("| movies | train ratings | fit s | peak RSS MiB | table bytes |")
    print("|---|---|---|---|---|")
    for n in args.movies:
        cmd = [sys.executable, __file__, "--child", str(n), "--users", str(args.users)]
        cmd += ["--ratings-per-user", str(args.ratings_per_user)]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        cells = [f"{r['movies']:,}", f"{r['train_ratings']:,}", str(r["fit_s"]), f"{r['peak_rss_mib']:,}"]
        print("| " + " | ".join([*cells, f"{r['table_bytes']:,}"]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
