"""Why movie genre and year columns cost NDCG@10 (issue 22): the carve of bench_search.py, with diagnostics.

    .venv/bin/python benchmarks/bench_aux.py DATA [--flags "--aux genres,year --aux-value 0.25"]
        [--genre-value sqrt] [--year-constant] [--shuffle-genres] [--epochs 4] [--seed 0]

Preprocesses DATA's validation carve (bench_search.py's, cached under --cache) with the preprocess --flags,
trains the local trainer (`RECOMMENDED`, --seed) and scores the validation ratings with the evaluate step's
functions, as bench_search.py does; then prints, besides NDCG@10, where the top 10s come from (catalogue
coverage, the median train count of a recommended movie, the share of recommendations among movies with
fewer than 5 train ratings), the last epoch's training log loss, what the aux blocks weigh in the trained
model (mean factor norm and linear weight per block) and how many nonzeros a row has per block.

Experiments of this script only (not preprocess settings; preprocess's own is --aux-value, passed in
--flags): --genre-value sqrt gives each of a movie's n genre columns 1/sqrt(n) times their value (each
movie's genre vector of unit length), in the training rows and the scored movie rows alike;
--year-constant puts every movie in the year block's first column (one column in every row, which says
nothing about any movie). --shuffle-genres carves a copy of DATA whose movies carry another
movie's genres and year (a seeded permutation of the movie file's metadata): the same number of columns of
the same frequencies, no tie to taste, the control that tells the columns' content from their presence.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_search import costs, prepared, validation_world

from fmrec.codec.reader import read_spmatrix
from fmrec.evaluation.ranking import K, ranking_metrics_at_k, top_k
from fmrec.evaluation.scorers import fm_scorer
from fmrec.model.hyperparameters import RECOMMENDED
from fmrec.model.trainer import train


def shuffled_copy(data: Path, out: Path, seed: int = 11) -> Path:
    """A copy of `data` whose movie lines carry a permutation of the movies' genres and release dates."""
    if (out / "done").exists():
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(data, out)
    rng = np.random.default_rng(seed)
    if (data / "u.item").exists():  # id|title|date|video|url|19 flags: permute date and flags
        lines = (data / "u.item").read_text(encoding="latin-1").splitlines()
        parts = [ln.split("|") for ln in lines]
        perm = rng.permutation(len(parts))
        rows = [
            [*p[:2], parts[j][2], *p[3:5], *parts[j][5:]] for p, j in zip(parts, perm.tolist(), strict=True)
        ]
        (out / "u.item").write_text("".join("|".join(r) + "\n" for r in rows), encoding="latin-1")
    else:  # movies.csv: permute the genres field and the "(Year)" of the titles
        import csv
        import io

        rows = list(csv.reader(io.StringIO((data / "movies.csv").read_text(encoding="utf-8"), newline="")))
        head, body = rows[0], rows[1:]
        perm = rng.permutation(len(body)).tolist()

        def split(title: str) -> tuple[str, str]:
            t = title.rstrip()
            return (t[:-6], t[-6:]) if len(t) >= 6 and t[-6] == "(" and t[-5:-1].isdigit() else (t, "")

        out_rows = [head]
        for row, j in zip(body, perm, strict=True):
            out_rows.append([row[0], split(row[1])[0] + split(body[j][1])[1], body[j][2]])
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(out_rows)
        (out / "movies.csv").write_text(buf.getvalue(), encoding="utf-8")
    (out / "done").write_text("shuffled\n")
    return out


def reweight(X: sp.csr_matrix, lookup, genre_value: str, year_constant: bool) -> sp.csr_matrix:
    """X with its aux columns' values changed (the experiments above): the rule of train and item rows."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    genre = [b for b in lookup.columns.aux if b.name == "movie_genre"]
    if genre_value == "sqrt" and genre:
        g = genre[0]
        in_g = (X.indices >= g.offset) & (X.indices < g.end)
        row = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        n = np.bincount(row[in_g], minlength=X.shape[0])
        X.data[in_g] /= np.sqrt(n[row[in_g]])
    year = [b for b in lookup.columns.aux if b.name == "movie_year"]
    if year_constant and year:  # every movie's decade column becomes the block's first: one constant column
        y = year[0]
        X.indices[(X.indices >= y.offset) & (X.indices < y.end)] = y.offset
    return X


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--flags", default="", help="preprocess flags (fmrec preprocess), quoted")
    parser.add_argument("--genre-value", choices=("one", "sqrt"), default="one")
    parser.add_argument("--shuffle-genres", action="store_true")
    parser.add_argument("--year-constant", action="store_true")
    parser.add_argument("--epochs", type=int, default=int(RECOMMENDED["epochs"]))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench-search"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0, c0 = time.perf_counter(), time.process_time()
    data = args.data
    if args.shuffle_genres:
        data = shuffled_copy(args.data, args.cache / f"{args.data.name}-shuffled")
    folder = prepared(data, args.flags, args.cache, args.seed, 0.5) / "pre"
    lookup, _seen, task, users, items = validation_world(folder)
    X, y = read_spmatrix(folder / "train")
    X = reweight(X, lookup, args.genre_value, args.year_constant)
    items = reweight(items, lookup, args.genre_value, args.year_constant)
    hp = {**RECOMMENDED, "epochs": str(args.epochs), "feature_dim": str(X.shape[1])}
    hp["predictor_type"] = "binary_classifier"
    t1, c1 = time.perf_counter(), time.process_time()
    params, history = train(X, y, hp, seed=args.seed)
    t2, c2 = time.perf_counter(), time.process_time()
    scorer = fm_scorer(params, users, items)
    m = ranking_metrics_at_k(scorer, task, K)
    count = np.asarray(lookup.movie_count, dtype=np.float64)
    s = np.array(scorer(task.users), dtype=np.float64)
    s[np.repeat(np.arange(s.shape[0]), np.diff(task.seen.indptr)), task.seen.indices] = -np.inf
    top = top_k(s, K)
    V, w = np.asarray(params.V, np.float64), np.asarray(params.w, np.float64)
    weights = {}
    for b in lookup.columns.blocks:
        cols = np.arange(b.offset, b.end)
        weights[b.name] = {
            "factor_norm": round(float(np.linalg.norm(V[cols], axis=1).mean()), 4),
            "linear_abs": round(float(np.abs(w[cols]).mean()), 4),
        }
    per_row = {
        b.name: round(float(((X.indices >= b.offset) & (X.indices < b.end)).sum() / X.shape[0]), 2)
        for b in lookup.columns.blocks
    }
    record = {
        "data": str(args.data),
        "flags": args.flags,
        "genre_value": args.genre_value,
        "shuffle_genres": args.shuffle_genres,
        "year_constant": args.year_constant,
        "seed": args.seed,
        "epochs": args.epochs,
        "ndcg_at_10": round(m[f"ndcg_at_{K}"], 4),
        "train_metrics": {k: round(v, 4) for k, v in history[-1]["train"].items()},
        "coverage": round(m["coverage"], 4),
        "top10_median_train_count": float(np.median(count[top])),
        "top10_share_under_5_ratings": round(float((count[top] < 5).mean()), 4),
        "nonzeros_per_row": per_row,
        "weights": weights,
        **costs(t0, c0, (t1, t2), (c1, c2)),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
