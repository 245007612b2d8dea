"""Fold-in benchmark: users held out of training, their first 5 ratings posted through the API twin.

10% of the users (seeded) are removed from the data entirely; the local pipeline trains on the rest with its
defaults. Each held-out user's first 5 ratings by timestamp are posted to POST /users/{userId}/ratings of the
API twin (fast path, SQLite store), then GET /users/{userId}/recommendations?k=10 is scored against the rest
of their ratings of 4+ (candidates: every movie they have not rated, i.e. all but the 5 posted; relevant
movies the model does not know count as misses). Compared, on the same users and the same 5 ratings:
popularity (the training ratings' counts) and EASE folded in (its item-item matrix applied to the 5 ratings).
Then latency on the twin: a recommendation for a user with 100 stored ratings, and POST-then-GET; last, no
lost writes: 16 clients posting 1,000 ratings each for overlapping (user, movie) keys through a twin of 2
worker processes sharing one SQLite file, then every key counted.

    .venv/bin/python benchmarks/bench_fold_in.py                 # synthetic (ml-100k shape)
    .venv/bin/python benchmarks/bench_fold_in.py ~/ml-100k       # any MovieLens folder
    .venv/bin/python benchmarks/bench_fold_in.py --writes 200    # a shorter no-lost-writes check

Targets (issue 21): fold-in NDCG@10 above popularity's and EASE folded in; POST-then-GET p50 <= 20 ms;
no lost writes. Exits 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fmrec.data.readers import detect_layout, load_dataset
from fmrec.data.synth import SynthConfig, write_synth
from fmrec.features.ease import ease_weights
from fmrec.ratings.export import HEADER
from fmrec.ratings.sqlite import SqliteRatings
from fmrec.serving.lookup import read_lookup
from fmrec_cli.pipeline import local_definition
from twins.api.publish import publish_version
from twins.api.server import start_in_background
from twins.pipeline.runner import run_local
from twins.registry.registry import Registry

K = 10
FIRST = 5


def split_users(folder: Path, root: Path, share: float, seed: int) -> tuple[Path, dict[int, np.ndarray]]:
    """A folder (ml-latest layout) without the held-out users, and each held-out user's ratings by time."""
    ds = load_dataset(folder, "holdout", holdout_per_user=0)  # every rating in train
    r = ds.train
    users = np.unique(r.user)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(users, max(1, round(share * users.size)), replace=False))
    out = root / "train-users"
    out.mkdir()
    keep = ~np.isin(r.user, held)
    lines = [HEADER.rstrip("\n")]
    lines += [
        f"{u},{m},{x:g},{t}"
        for u, m, x, t in zip(r.user[keep], r.movie[keep], r.rating[keep], r.timestamp[keep], strict=True)
    ]
    (out / "ratings.csv").write_text("\n".join(lines) + "\n")
    if ds.movies is not None:
        movies = out / "movies.csv"
        rows = ["movieId,title,genres"]
        for mid, title, genres in zip(ds.movies.ids, ds.movies.titles, ds.movies.genres, strict=True):
            escaped = '"' + title.replace('"', '""') + '"'
            rows.append(f"{mid},{escaped},{'|'.join(genres) or '(no genres listed)'}")
        movies.write_text("\n".join(rows) + "\n")
    per_user = {}
    for u in held.tolist():
        mask = r.user == u
        order = np.lexsort((r.movie[mask], r.timestamp[mask]))
        per_user[u] = np.stack(
            [r.movie[mask][order], r.rating[mask][order].astype(np.float64), r.timestamp[mask][order]], axis=1
        )
    return out, per_user


def train(data: Path, root: Path) -> tuple[Path, Path, float]:
    """The local pipeline with its defaults: (model.tar.gz, lookup folder, seconds)."""
    started = time.perf_counter()
    result = run_local(
        local_definition(),
        runs_root=root / "runs",
        registry=Registry(root / "registry"),
        overrides={"InputDataUrl": str(data)},
    )
    if result.status != "Succeeded" and not list(result.folder.rglob("model.tar.gz")):
        raise SystemExit(f"pipeline failed: {result.failure_reason}")
    model = sorted(result.folder.rglob("model.tar.gz"))[0]
    lookup = next(p.parent for p in result.folder.rglob("lookup.json") if "output" in p.parts)
    return model, lookup, time.perf_counter() - started


def metrics(ranked: list[int], relevant: set[int]) -> tuple[float, float]:
    hits = [1.0 if m in relevant else 0.0 for m in ranked[:K]]
    dcg = sum(h / np.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), K)))
    return dcg / ideal, sum(hits) / K


def call(url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


def quality(url: str, lookup_dir: Path, data: Path, held: dict[int, np.ndarray]) -> dict[str, Any]:
    """NDCG@10 and P@10 of fold-in (through the API), popularity and EASE folded in, on the same users."""
    lookup = read_lookup(lookup_dir)
    r = load_dataset(data, "holdout", holdout_per_user=0).train
    movies = np.asarray(lookup.movie_ids)
    X = sp.csr_matrix(
        (
            np.ones(len(r)),
            (np.searchsorted(np.asarray(lookup.user_ids), r.user), np.searchsorted(movies, r.movie)),
        ),
        shape=(len(lookup.user_ids), movies.size),
    )
    X.data[:] = 1.0  # binary, whatever the duplicates
    B = ease_weights(X)
    popular = np.argsort(-np.asarray(X.sum(axis=0)).ravel(), kind="stable")
    rows: dict[str, list[tuple[float, float]]] = {"fold_in": [], "popularity": [], "ease_fold_in": []}
    paths: dict[str, int] = {}
    for user, rated in held.items():
        first, rest = rated[:FIRST], rated[FIRST:]
        relevant = {int(m) for m, x, _ in rest if x >= 4.0}
        if not relevant:
            continue
        items = [{"movieId": int(m), "rating": float(x), "timestamp": int(t)} for m, x, t in first]
        call(f"{url}/users/{user}/ratings", {"ratings": items})
        answer = call(f"{url}/users/{user}/recommendations?k={K}")
        paths[answer["servingPath"]] = paths.get(answer["servingPath"], 0) + 1
        rows["fold_in"].append(metrics([it["movieId"] for it in answer["items"]], relevant))
        posted = {int(m) for m in first[:, 0]}
        known = [p for p in range(movies.size) if int(movies[p]) in posted]
        rows["popularity"].append(metrics([int(movies[p]) for p in popular if p not in known][:K], relevant))
        scores = B[known].sum(axis=0)  # EASE folded in: the 5 ratings' binary row times B
        scores[known] = -np.inf
        ranked = np.argsort(-scores, kind="stable")[:K]
        rows["ease_fold_in"].append(metrics([int(movies[p]) for p in ranked], relevant))
    out: dict[str, Any] = {"users": len(rows["fold_in"]), "serving_paths": paths}
    for name, values in rows.items():
        out[name] = {
            "ndcg_at_10": round(float(np.mean([v[0] for v in values])), 4),
            "precision_at_10": round(float(np.mean([v[1] for v in values])), 4),
        }
    return out


def percentiles(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=20)
    return {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(q[18], 2), "n": len(ms)}


def latency(url: str, lookup_dir: Path, n: int) -> dict[str, Any]:
    """A user with 100 stored ratings: GET latency; then POST one rating and GET, timed together."""
    movies = read_lookup(lookup_dir).movie_ids
    rng = random.Random(1)
    user = 2_000_000_000
    picked = rng.sample(list(movies), min(100, len(movies)))
    call(f"{url}/users/{user}/ratings", {"ratings": [{"movieId": m, "rating": 4} for m in picked]})
    get_ms = []
    for _ in range(n):
        started = time.perf_counter()
        answer = call(f"{url}/users/{user}/recommendations?k={K}")
        get_ms.append((time.perf_counter() - started) * 1e3)
    assert answer["servingPath"] == "fold_in" and answer["storedRatings"] == len(picked)
    both_ms = []
    for i in range(n):
        other = user + 1 + i % 50
        started = time.perf_counter()
        call(f"{url}/users/{other}/ratings", {"ratings": [{"movieId": rng.choice(movies), "rating": 5}]})
        answer = call(f"{url}/users/{other}/recommendations?k={K}")
        both_ms.append((time.perf_counter() - started) * 1e3)
        assert answer["storedRatings"] >= 1  # the rating just posted is in this answer
    return {"get_with_100_stored": percentiles(get_ms), "post_then_get": percentiles(both_ms)}


def no_lost_writes(artifacts: Path, db: Path, clients: int, writes: int) -> dict[str, Any]:
    """`clients` threads, each posting `writes` single ratings over 20 users x 50 movies (overlapping keys),
    through a twin of 2 worker processes; then the store holds each key once, with its latest timestamp."""
    server = start_in_background(artifacts, None, fast_path=True, process=True, workers=2, ratings_db=db)
    latest: dict[tuple[int, int], int] = {}
    lock = threading.Lock()
    failures: list[BaseException] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(writes):
                user, movie, ts = 3_000_000 + rng.randrange(20), 1 + rng.randrange(50), rng.randrange(10**9)
                call(
                    f"{server.url}/users/{user}/ratings",
                    {"ratings": [{"movieId": movie, "rating": 3, "timestamp": ts}]},
                )
                with lock:
                    latest[(user, movie)] = max(ts, latest.get((user, movie), -1))
        except BaseException as exc:  # reported below
            failures.append(exc)

    started = time.perf_counter()
    try:
        threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        server.stop()
    seconds = time.perf_counter() - started
    store = SqliteRatings(db)
    rows = [r for r in store.scan() if r.user_id >= 3_000_000]
    stored = {(r.user_id, r.movie_id): r.timestamp for r in rows}
    lost = sum(1 for key, ts in latest.items() if stored.get(key) != ts)
    return {
        "clients": clients,
        "posts": clients * writes,
        "keys": len(latest),
        "rows": len(rows),
        "wrong_or_missing": lost,
        "failed_clients": len(failures),
        "posts_per_second": round(clients * writes / seconds, 1),
        "ok": not failures and lost == 0 and len(rows) == len(stored) == len(latest),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", nargs="?", type=Path, help="a MovieLens folder (default: synthetic)")
    parser.add_argument("--seed", type=int, default=0, help="which users are held out")
    parser.add_argument("--share", type=float, default=0.1, help="share of users held out (default 0.1)")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per latency figure")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--writes", type=int, default=1000, help="ratings each client posts (one per POST)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-fold-in-") as tmp:
        root = Path(tmp)
        data = args.data_dir
        if data is None:
            data = root / "ml-synth"
            write_synth(data, SynthConfig())
        print(
            f"data {data} ({detect_layout(data)}); holding out {args.share:.0%} of users (seed {args.seed})"
        )
        train_dir, held = split_users(data, root, args.share, args.seed)
        model, lookup_dir, seconds = train(train_dir, root)
        print(f"trained on the other users with the pipeline's defaults in {seconds:.1f} s")
        artifacts = root / "serving"
        publish_version(artifacts, "v1", lookup_dir, model)
        with start_in_background(artifacts, None, fast_path=True, ratings_db=root / "ratings.db") as api:
            report: dict[str, Any] = {"quality": quality(api.url, lookup_dir, train_dir, held)}
            report["latency"] = latency(api.url, lookup_dir, args.requests)
        report["no_lost_writes"] = no_lost_writes(artifacts, root / "writes.db", args.clients, args.writes)
        shutil.rmtree(root / "runs", ignore_errors=True)
    print(json.dumps(report, indent=2))
    q = report["quality"]
    checks = {
        "fold-in NDCG@10 > popularity": q["fold_in"]["ndcg_at_10"] > q["popularity"]["ndcg_at_10"],
        "fold-in NDCG@10 > EASE folded in": q["fold_in"]["ndcg_at_10"] > q["ease_fold_in"]["ndcg_at_10"],
        "POST-then-GET p50 <= 20 ms": report["latency"]["post_then_get"]["p50_ms"] <= 20.0,
        "no lost writes": report["no_lost_writes"]["ok"],
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
