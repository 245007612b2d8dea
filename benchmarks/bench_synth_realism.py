"""Are the synthetic presets as awkward as the real releases? Statistics; popularity / EASE / iALS NDCG@10."""

# Usage:
#   python benchmarks/bench_synth_realism.py                          # both presets, seeds 0 1 2
#   python benchmarks/bench_synth_realism.py --presets ml-100k --als  # one preset, plus a small implicit ALS
#   python benchmarks/bench_synth_realism.py --presets ml-latest-small --seeds 0  # EASE on 9k: minutes
#   python benchmarks/bench_synth_realism.py --presets --data-dir ml-100k        # any MovieLens folder
#
# Protocol (issue 12): the pipeline's split (fmrec.data.readers.load_dataset: ml-100k ua, other layouts 10 per
# user, seed 0); relevant = test ratings >= 4, candidates = every train movie the user has not rated, top 10;
# NDCG@10 and P@10 averaged over users with >= 1 relevant movie. A relevant movie absent from train stays in
# the relevant set but cannot be ranked. Self-contained (numpy/scipy): popularity = train rating count; EASE =
# closed form on the binary train matrix (Steck 2019), lambda 500.

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fmrec.data.readers import load_dataset
from fmrec.data.synth import PRESETS, preset, write_synth

K = 10
REAL_ML100K = {  # published figures of ml-100k (u.data, u.item) and its ua split
    "users": 943,
    "movies": 1682,
    "ratings": 100_000,
    "min / median / max ratings per user": "20 / 65 / 737",
    "max / median ratings per movie": "583 / 27",
    "movies with exactly 1 rating": 141,
    "rating 1 / 2 / 3 / 4 / 5 (%)": "6.1 / 11.4 / 27.1 / 34.2 / 21.2",
    "mean rating / share >= 4": "3.53 / 0.55",
    "ua.test ratings per user": "10",
    "ua.test rows whose movie is not in ua.base": 2,
    "titles listed twice": 18,
    "titles with non-ASCII (latin-1) bytes": "yes",
}


# ml-latest-small (2016, 100,004 ratings): users, movies, ratings from its README; the rest from the file
REAL_LATEST_SMALL = {
    "users": 671,
    "movies": "9125 (9066 rated)",
    "ratings": 100_004,
    "min / median / max ratings per user": "20 / 71 / 2391",
    "max / median ratings per movie": "341 / 3",
    "movies with exactly 1 rating": 3063,
    "rating 1 / 2 / 3 / 4 / 5 (%)": "4.4 / 9.0 / 24.5 / 39.3 / 22.8",
    "mean rating / share >= 4": "3.54 / 0.52",
    "ua.test ratings per user": "10 (holdout)",
    "ua.test rows whose movie is not in ua.base": "",
    "titles listed twice": "",
    "titles with non-ASCII (latin-1) bytes": "yes (UTF-8)",
}
REAL_RANKS = {  # issue 22: the same protocol on the real files (kept off this repository)
    "ml-100k": {"popularity": 0.133, "EASE": 0.309, "fmrec default": 0.297},
    "ml-latest-small": {"popularity": 0.088, "EASE": 0.213, "fmrec default": 0.180},
}


def split(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(user, movie, rating) of train and test as the pipeline's preprocess splits them (ml-100k: ua; other
    layouts: 10 per user, seed 0), and the listed titles. Ratings are x2 (half stars as whole numbers)."""
    ds = load_dataset(folder)

    def rows(r: Any) -> np.ndarray:
        return np.column_stack([r.user, r.movie, np.round(2 * r.rating)]).astype(np.int64)

    titles = list(ds.movies.titles) if ds.movies is not None else []
    return rows(ds.train), rows(ds.test), titles


def statistics(folder: Path) -> dict[str, object]:
    base, test, titles = split(folder)
    data = np.vstack([base, test])
    per_user = np.unique(data[:, 0], return_counts=True)[1]
    per_movie = np.unique(data[:, 1], return_counts=True)[1]
    stars = np.ceil(data[:, 2] / 2).astype(np.int64)  # half stars round up: 3.5 counts as 4
    hist = np.bincount(stars, minlength=6)[1:]
    test_per_user = np.unique(np.unique(test[:, 0], return_counts=True)[1])
    title_counts = np.unique(titles, return_counts=True)[1]
    return {
        "users": int(per_user.size),
        "movies": len(titles) if len(titles) == per_movie.size else f"{len(titles)} ({per_movie.size} rated)",
        "ratings": int(data.shape[0]),
        "min / median / max ratings per user": (
            f"{per_user.min()} / {np.median(per_user):.0f} / {per_user.max()}"
        ),
        "max / median ratings per movie": f"{per_movie.max()} / {np.median(per_movie):.0f}",
        "movies with exactly 1 rating": int((per_movie == 1).sum()),
        "rating 1 / 2 / 3 / 4 / 5 (%)": " / ".join(f"{100 * h / hist.sum():.1f}" for h in hist),
        "mean rating / share >= 4": f"{data[:, 2].mean() / 2:.2f} / {(data[:, 2] >= 8).mean():.2f}",
        "ua.test ratings per user": " / ".join(map(str, test_per_user)),
        "ua.test rows whose movie is not in ua.base": int((~np.isin(test[:, 1], base[:, 1])).sum()),
        "titles listed twice": int((title_counts > 1).sum()),
        "titles with non-ASCII (latin-1) bytes": "yes" if any(max(t) > "\x7f" for t in titles if t) else "no",
    }


def ranking_inputs(folder: Path) -> tuple[sp.csr_matrix, dict[int, np.ndarray], np.ndarray]:
    """Binary train matrix (users x train movies), each user's relevant test movies (column index, -1 when the
    movie is not in train), and the users' train row index."""
    base, test, _ = split(folder)
    users = np.unique(base[:, 0])
    movies = np.unique(base[:, 1])
    rows = np.searchsorted(users, base[:, 0])
    cols = np.searchsorted(movies, base[:, 1])
    X = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(users.size, movies.size))
    X.data[:] = 1.0
    liked = test[test[:, 2] >= 8]
    relevant: dict[int, np.ndarray] = {}
    for u in np.unique(liked[:, 0]):
        m = liked[liked[:, 0] == u, 1]
        pos = np.minimum(np.searchsorted(movies, m), movies.size - 1)
        known = movies[pos] == m
        relevant[int(np.searchsorted(users, u))] = np.where(known, pos, -1)
    return X, relevant, users


def ndcg_precision(
    scores: np.ndarray, X: sp.csr_matrix, relevant: dict[int, np.ndarray]
) -> tuple[float, ...]:
    """Mean NDCG@10, P@10 over users with a relevant movie, and catalog coverage of the top 10s."""
    discounts = 1.0 / np.log2(np.arange(2, K + 2))
    ndcg = prec = 0.0
    shown: set[int] = set()
    for u, rel in relevant.items():
        s = np.array(scores[u], dtype=np.float64, copy=True)
        s[X.indices[X.indptr[u] : X.indptr[u + 1]]] = -np.inf
        top = np.argpartition(-s, K)[:K]
        top = top[np.argsort(-s[top], kind="stable")]
        hits = np.isin(top, rel[rel >= 0]).astype(np.float64)
        ndcg += float(hits @ discounts) / discounts[: min(rel.size, K)].sum()
        prec += hits.sum() / K
        shown.update(top.tolist())
    n = len(relevant)
    return ndcg / n, prec / n, len(shown) / X.shape[1]


def popularity_scores(X: sp.csr_matrix) -> np.ndarray:
    counts = np.asarray(X.sum(axis=0)).ravel()
    return np.broadcast_to(counts, X.shape)


def ease_scores(X: sp.csr_matrix, lam: float = 500.0) -> np.ndarray:
    G = (X.T @ X).toarray()
    G[np.diag_indices_from(G)] += lam
    P = np.linalg.inv(G)
    B = -P / np.diag(P)
    B[np.diag_indices_from(B)] = 0.0
    return np.asarray(X @ B)


def ials_scores(
    X: sp.csr_matrix, factors: int = 64, alpha: float = 1.0, reg: float = 0.01, iters: int = 15, seed: int = 0
) -> np.ndarray:
    """Implicit ALS (Hu, Koren, Volinsky 2008): confidence 1 + alpha on rated pairs, exact least squares."""
    rng = np.random.default_rng(seed)
    U = 0.01 * rng.standard_normal((X.shape[0], factors))
    V = 0.01 * rng.standard_normal((X.shape[1], factors))
    Xt = X.T.tocsr()
    eye = reg * np.eye(factors)

    def solve(M: sp.csr_matrix, Y: np.ndarray, out: np.ndarray) -> None:
        YtY = Y.T @ Y + eye
        for r in range(M.shape[0]):
            idx = M.indices[M.indptr[r] : M.indptr[r + 1]]
            Yr = Y[idx]
            out[r] = np.linalg.solve(YtY + alpha * Yr.T @ Yr, (1.0 + alpha) * Yr.sum(axis=0))

    for _ in range(iters):
        solve(X, V, U)
        solve(Xt, U, V)
    return U @ V.T


def calibration(folder: Path, als: bool) -> dict[str, tuple[float, ...]]:
    X, relevant, _ = ranking_inputs(folder)
    out = {
        "popularity": ndcg_precision(popularity_scores(X), X, relevant),
        "EASE": ndcg_precision(ease_scores(X), X, relevant),
    }
    if als:
        out["iALS"] = ndcg_precision(ials_scores(X), X, relevant)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="*", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--data-dir", action="append", default=[], help="a MovieLens folder (repeatable)")
    parser.add_argument("--als", action="store_true", help="also a 64-factor implicit ALS (slower)")
    args = parser.parse_args(argv)
    real = {"ml-100k": REAL_ML100K, "ml-latest-small": REAL_LATEST_SMALL}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            columns: dict[str, dict[str, object]] = {f"{name} (real)": real[name]}
            ranks: dict[str, dict[str, tuple[float, ...]]] = {}
            folders = [(f"synth {name} seed {s}", Path(tmp) / f"{name}-{s}", s) for s in args.seeds]
            for label, folder, seed in folders:
                t0 = time.perf_counter()
                write_synth(folder, preset(name, seed=seed))
                print(f"{label}: generated in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
                columns[label] = statistics(folder)
                ranks[label] = calibration(folder, args.als)
            _print(columns, ranks, name)
        for d in args.data_dir:
            _print({Path(d).name: statistics(Path(d))}, {Path(d).name: calibration(Path(d), args.als)}, None)
    return 0


def _print(
    columns: dict[str, dict[str, object]], ranks: dict[str, dict[str, tuple[float, ...]]], real: str | None
) -> None:
    names = list(columns)
    print("| statistic | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for key in REAL_ML100K:
        print(f"| {key} | " + " | ".join(str(columns[n].get(key, "")) for n in names) + " |")
    print()
    print("| data | recommender | NDCG@10 | P@10 | coverage |")
    print("|---|---|---|---|---|")
    for model, ndcg in REAL_RANKS.get(real or "", {}).items():
        print(f"| {real} (real, issue 22) | {model} | {ndcg:.3f} | | |")
    for name, by_model in ranks.items():
        for model, (ndcg, prec, cov) in by_model.items():
            print(f"| {name} | {model} | {ndcg:.3f} | {prec:.3f} | {cov:.2f} |")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
