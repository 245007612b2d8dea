"""Validation NDCG@10 of candidate objective settings and FM hyperparameters, epoch by epoch (issue 22).

    .venv/bin/python benchmarks/bench_search.py DATA [--flags "--history 256 --aux genres,year"]
        [--hp num_factors=128 ...] [--epochs 30] [--every 5] [--seed 0]

The same carve as bench_validation.py (DATA's train split only, 10 random ratings per user held out, seed 7)
is preprocessed once per set of preprocess --flags (the pipeline's defaults otherwise; cached under
--cache), trained by the local trainer (the training job's; `RECOMMENDED` plus --hp, seed --seed) and scored
every --every epochs by the evaluate step's functions, as bench_validation.py scores the pipeline's model.
One run gives the whole epoch curve, so the number of epochs is searched for free. EASE and popularity on
the same carve are printed beside it (`--ease` with no value skips EASE, whose inverse costs about a
minute of CPU on a 9k catalogue). The test split is never read.

--history-exponent A (an experiment, not a pipeline setting): every history column of a user with n rated
movies carries n ** -A instead of the library's n ** -0.5 (A = 1: the mean of the history's factors), in
training rows and in the served rows alike, by rescaling fmrec.features.history's values in this process.
--scale BLOCK=F (an experiment): multiplies the values of the user, movie or history block by F in the
training rows and the scored rows (F near 0 takes the user's own column out: the model keeps its history).
--history-fixed N (an experiment): every user's history is one fixed set of up to N evenly spaced rated
movies, each 1/sqrt(m), in every training row and at serving, instead of fresh draws per row.
--liked-weight W (an experiment): under `--positives weighted` a liked rating is written W times (the
library's rule is 2), each copy with its own negatives.
--walk-negatives F (an experiment): a share F of the train channel's sampled negatives are replaced by
two-step random-walk movies (user, a rated movie, another rater of it, their movie) the user has not rated.
--neighbours N [N ...] (an experiment, benchmarks/exp_neighbours.py): an item-item score of every (user,
movie) from --neighbours-from's weights (knn: binary cosine; ease:LAMBDA: EASE's; several may be given), cut
to each movie's N largest incoming weights (N > 0) or each rated movie's |N| largest outgoing ones (N < 0: a
request's bounded read), times n_u ** -B (--neighbours-beta). Each scored epoch records the FM's raw score
plus a * that score for a few a ("blend"), per source and cut; with --neighbours-column (knn only, the first
cut) the score is one more FM column instead, trained with the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exp_neighbours
from bench_validation import carve

from fmrec.codec.reader import read_spmatrix
from fmrec.evaluation.holdout import read_holdout
from fmrec.evaluation.peers import fit_ease
from fmrec.evaluation.ranking import K, ranking_metrics_at_k, ranking_task
from fmrec.evaluation.scorers import fm_scorer, lookup_rows, popularity_scorer, train_matrix
from fmrec.features.manifest import MANIFEST_FILE, read_manifest
from fmrec.features.options import build_arg_parser, config_from_args
from fmrec.features.settings import DEFAULTS
from fmrec.model.hyperparameters import RECOMMENDED
from fmrec.model.trainer import train
from fmrec.serving.lookup import read_lookup
from fmrec.stages.preprocess import preprocess


def patch_history_exponent(a: float) -> None:
    """Rescale training_rows' and served_history's history values by n ** (0.5 - a) (see the docstring)."""
    import fmrec.features.channels as channels  # local import: patched for this experiment only
    import fmrec.serving.lookup as lookup_module  # local import: patched for this experiment only
    from fmrec.features import history

    def rows(indptr, rated, row_user, row_movie, cfg, rng):
        r, c, v = history.training_rows(indptr, rated, row_user, row_movie, cfg, rng)
        count = np.bincount(r, minlength=int(row_user.size))[r]
        sampled = (count == cfg.cap) & (v > cfg.scale / np.sqrt(cfg.cap) * (1 + 1e-6))
        m = np.where(sampled, (v * cfg.cap / cfg.scale) ** 2, (cfg.scale / v) ** 2)
        return r, c, (v * m ** (0.5 - a)).astype(np.float32)

    def served(rated, scale, cap=history.SERVED_CAP, fixed=False):
        cols, value = history.served_history(rated, scale, cap, fixed)
        return cols, value * max(len(rated), 1) ** (0.5 - a)

    channels.training_rows = rows
    lookup_module.served_history = served


def patch_history_fixed(cap: int) -> None:
    """Every user's history is the library's fixed history of `cap` movies (fmrec.features.history.fixed_rows,
    served_history(fixed=True)), whatever the channel bound: what preprocess does only past the bound."""
    import fmrec.features.channels as channels  # local import: patched for this experiment only
    import fmrec.serving.lookup as lookup_module  # local import: patched for this experiment only
    from fmrec.features import history

    def rows(indptr, rated, row_user, row_movie, cfg, rng):
        return history.fixed_rows(indptr, rated, row_user, row_movie, replace(cfg, cap=cap, fixed=True))

    def served(rated, scale, cap_=cap, fixed=True):
        return history.served_history(rated, scale, cap, fixed=True)

    channels.training_rows = rows
    lookup_module.served_history = served


def patch_liked_weight(weight: int) -> None:
    """Positive rows per liked rating under `--positives weighted`: `weight` instead of the library's 2 (each
    with its own negatives, so the user's label ratio is unchanged), times the passes."""
    import fmrec.features.sampling as sampling  # local import: patched for this experiment only

    def positive_rows(rating, threshold, config):
        liked = np.asarray(rating) >= threshold
        if config.positives != "weighted":
            return original(rating, threshold, config)
        return (1 + (weight - 1) * liked.astype(np.int64)) * config.passes

    original = sampling.positive_rows
    sampling.positive_rows = positive_rows


def patch_walk_negatives(share: float) -> None:
    """A `share` of the train channel's sampled negatives become two-step random-walk movies (the user, one of
    their rated movies, another rater of it, one of that rater's movies), where the user has not rated it."""
    import fmrec.features.channels as channels  # local import: patched for this experiment only

    original = channels.sample_rows

    def sample_rows(user, movie, rating, *, n_users, popularity, **kw):
        rows = original(user, movie, rating, n_users=n_users, popularity=popularity, **kw)
        if kw.get("stream", 0) != 0:
            return rows  # the test channel stays as it is
        ui = sp.csr_matrix((np.ones(user.size, np.int8), (user, movie)), shape=(n_users, popularity.size))
        ui.sum_duplicates()
        iu = ui.T.tocsr()
        rng = np.random.default_rng(12345)
        neg = np.arange(rows.n_positive, len(rows))
        pick = neg[rng.random(neg.size) < share]

        def step(m: sp.csr_matrix, at: np.ndarray) -> np.ndarray:
            count = np.diff(m.indptr)[at]
            return m.indices[m.indptr[at] + (rng.random(at.size) * count).astype(np.int64)]

        u = rows.user[pick].astype(np.int64)
        j = step(ui, step(iu, step(ui, u)))
        ok = (np.asarray(ui[u, j]).ravel() == 0) & (popularity[j] > 0)
        rows.movie[pick[ok]] = j[ok].astype(rows.movie.dtype)
        return rows

    channels.sample_rows = sample_rows


def scale_blocks(lookup: Any, scales: list[str], *matrices: Any) -> None:
    """Multiply the columns of each named block (user, movie, history) by its factor in every matrix, in
    place: the same rows preprocess would write with those values (an experiment, not a pipeline setting)."""
    n_users, n_movies, dim = lookup.n_users, lookup.n_movies, matrices[0].shape[1]
    spans = {"user": (0, n_users), "movie": (n_users, n_users + n_movies), "history": (dim - n_movies, dim)}
    for item in scales:
        name, value = item.split("=", 1)
        lo, hi = spans[name]
        for m in matrices:
            inside = (m.indices >= lo) & (m.indices < hi)
            m.data[inside] *= float(value)


def prepared(data: Path, flags: str, cache: Path, seed: int, exponent: float | str) -> Path:
    """The carve of `data` preprocessed with `flags` (and --seed), made once and kept under `cache`."""
    # the library's defaults are part of the key: a flag set means other rows once a default changes
    defaults = json.dumps(DEFAULTS, sort_keys=True)
    key = hashlib.sha256(f"{data.resolve()}|{flags}|{seed}|{exponent}|{defaults}".encode()).hexdigest()[:12]
    out = cache / f"{data.name}-{key}"
    if (out / "done").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    carved = out / "carve"
    if not carved.exists():
        carve(data, carved)
    cfg = config_from_args(build_arg_parser().parse_args([*shlex.split(flags), "--seed", str(seed)]))
    (out / "pre").mkdir(exist_ok=True)
    preprocess(carved, out / "pre", cfg)
    (out / "done").write_text(flags + "\n")
    return out


def validation_world(folder: Path, threshold: float | None = None) -> tuple[Any, Any, Any, Any, Any]:
    """(lookup, its train matrix, the ranking task of the carve's held-out ratings, user rows, movie rows) of
    a prepared carve's preprocess folder: what the evaluate step's functions score a model on. `threshold`:
    relevance, default the lookup's label threshold (4 if it has none)."""
    lookup, held = read_lookup(folder / "lookup"), read_holdout(folder / "holdout")
    seen = train_matrix(lookup)
    threshold = float(lookup.label_threshold or 4.0) if threshold is None else threshold
    task = ranking_task(
        held.user, held.movie, held.rating, threshold,
        np.asarray(lookup.user_ids), np.asarray(lookup.movie_ids), seen, seed=0,
    )  # fmt: skip
    users, items = lookup_rows(lookup)
    return lookup, seen, task, users, items


def costs(
    t0: float, c0: float, train_wall: tuple[float, float], train_cpu: tuple[float, float]
) -> dict[str, float]:
    """A run's record of its training and whole wall and CPU seconds (from t0/c0) and the load average."""
    return {
        "train_wall_s": round(train_wall[1] - train_wall[0], 1),
        "train_cpu_s": round(train_cpu[1] - train_cpu[0], 1),
        "all_wall_s": round(time.perf_counter() - t0, 1),
        "all_cpu_s": round(time.process_time() - c0, 1),
        "load": os.getloadavg()[0],
    }


def apply_experiments(args: argparse.Namespace) -> float | str:
    """Patch the library for the experiment flags; returns the patched preprocess's part of the cache key (the
    history exponent alone where nothing else is patched, as before)."""
    if args.history_exponent != 0.5:
        patch_history_exponent(args.history_exponent)
    if args.history_fixed:
        patch_history_fixed(args.history_fixed)
    key: float | str = args.history_exponent if not args.history_fixed else -args.history_fixed
    if args.liked_weight != 2:
        patch_liked_weight(args.liked_weight)
        key = f"{key}|liked{args.liked_weight}"
    if args.walk_negatives:
        patch_walk_negatives(args.walk_negatives)
        key = f"{key}|walk{args.walk_negatives:g}"
    return key


def add_experiment_flags(parser: argparse.ArgumentParser) -> None:
    """The flags of the experiments (see the module docstring): none of them is a pipeline setting."""
    parser.add_argument("--history-exponent", type=float, default=0.5, help="experiment: n ** -A values")
    parser.add_argument("--history-fixed", type=int, default=0, help="experiment: a fixed history of N")
    parser.add_argument("--liked-weight", type=int, default=2, help="experiment: rows per liked positive")
    parser.add_argument("--walk-negatives", type=float, default=0.0, help="experiment: walk negatives share")
    parser.add_argument("--neighbours", type=int, nargs="*", default=[], help="experiment: item-item, top N")
    parser.add_argument("--neighbours-from", nargs="*", default=["knn"], help="experiment: knn, ease:LAMBDA")
    parser.add_argument("--neighbours-beta", type=float, default=0.5, help="experiment: values n_u ** -B")
    parser.add_argument("--neighbours-column", action="store_true", help="experiment: train it as a column")
    parser.add_argument(
        "--scale", action="append", default=[], metavar="BLOCK=FACTOR", help="experiment: user/movie/history"
    )


def neighbour_setup(
    args: argparse.Namespace, seen: Any, lookup: Any, X: Any
) -> tuple[dict[str, exp_neighbours.Neighbours], Any]:
    """(the neighbour scores of every --neighbours and --neighbours-from, the train rows: with the first's
    column under --neighbours-column)."""
    if not args.neighbours:
        return {}, X
    nbs = exp_neighbours.neighbour_sets(seen, args.neighbours, args.neighbours_from, args.neighbours_beta)
    if args.neighbours_column:
        X = exp_neighbours.add_column(X, next(iter(nbs.values())), seen, lookup.n_users, lookup.n_movies)
    return nbs, X


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--flags", default="", help="preprocess flags (fmrec preprocess), quoted")
    parser.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="FM hyperparameter")
    parser.add_argument("--epochs", type=int, default=int(RECOMMENDED["epochs"]))
    parser.add_argument("--every", type=int, default=5, help="score every N epochs (and the last)")
    parser.add_argument("--seed", type=int, default=0, help="preprocess (sampling) and trainer seed")
    parser.add_argument("--ease", type=float, nargs="*", default=[500.0], help="EASE lambdas")
    add_experiment_flags(parser)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/bench-search"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    t0, c0 = time.perf_counter(), time.process_time()
    folder = prepared(args.data, args.flags, args.cache, args.seed, apply_experiments(args)) / "pre"
    manifest = read_manifest(folder / MANIFEST_FILE).as_dict()
    lookup, seen, task, users, items = validation_world(folder, float(manifest["config"]["threshold"]))
    X, y = read_spmatrix(folder / "train")
    if args.scale:
        scale_blocks(lookup, args.scale, X, users, items)
    nbs, X = neighbour_setup(args, seen, lookup, X)
    hp = {
        **RECOMMENDED,
        "epochs": str(args.epochs),
        "feature_dim": str(X.shape[1]),
        "predictor_type": "binary_classifier",
    }
    hp.update(dict(h.split("=", 1) for h in args.hp))
    curve: dict[int, float] = {}
    blends: dict[int, dict[str, dict[str, float]]] = {}
    done = {"epoch": 0}

    def metrics(params):
        done["epoch"] += 1
        e = done["epoch"]
        if e % args.every and e != args.epochs:
            return {}
        if nbs and args.neighbours_column:
            scorer = exp_neighbours.column_scorer(params, users, items, next(iter(nbs.values())))
        else:
            scorer = fm_scorer(params, users, items)
            blends[e] = {
                k: exp_neighbours.blend_curve(params, users, items, nb, task) for k, nb in nbs.items()
            }
        curve[e] = ranking_metrics_at_k(scorer, task, K)[f"ndcg_at_{K}"]
        return {}

    t1, c1 = time.perf_counter(), time.process_time()
    train(X, y, hp, params_metrics=metrics, seed=args.seed)
    t2, c2 = time.perf_counter(), time.process_time()
    peers = {"popularity": popularity_scorer(np.asarray(lookup.movie_count))}
    peers.update({f"EASE {lam:g}": fit_ease(seen, 0, lam) for lam in args.ease})
    figures = {name: ranking_metrics_at_k(s, task, K)[f"ndcg_at_{K}"] for name, s in peers.items()}
    best = max(curve, key=lambda e: curve[e])
    record = {
        "data": str(args.data),
        "flags": args.flags,
        "hp": args.hp,
        "seed": args.seed,
        "history_exponent": args.history_exponent,
        "scale": args.scale,
        "history_fixed": args.history_fixed,
        "liked_weight": args.liked_weight,
        "walk_negatives": args.walk_negatives,
        "neighbours": [args.neighbours, args.neighbours_from, args.neighbours_beta, args.neighbours_column],
        "rows": int(X.shape[0]),
        "curve": {e: round(v, 4) for e, v in curve.items()},
        "best_epoch": best,
        **({"blend": blends} if nbs else {}),
        **{name: round(v, 4) for name, v in figures.items()},
        **costs(t0, c0, (t1, t2), (c1, c2)),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
