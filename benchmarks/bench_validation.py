"""NDCG@10 of the pipeline model (--param overrides) on a validation carve, with EASE, popularity.

    .venv/bin/python benchmarks/bench_validation.py DATA --param Epochs=10 [--param NAME=VALUE ...]
    .venv/bin/python benchmarks/bench_validation.py DATA --test      # the real split instead (report only)

The carve (issue 22: choose settings without the test split) takes DATA's train split only and holds out 10
random ratings per user (seed 7): an ml-100k folder becomes ua.base/ua.test of a new folder; an ml-latest
folder becomes a ratings.csv of the train ratings, from which the pipeline's own holdout draws 10 per user.
The pipeline then runs on it (bench_quality.py's driver); the model, popularity and EASE rank its holdout.
--neighbours N [N ...] [--neighbours-from knn|ease:LAMBDA ...] adds the model blended with an item-item score
(benchmarks/exp_neighbours.py, an experiment): one figure per source, cut and blend weight.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exp_neighbours
from bench_quality import _pipeline, evaluated

from fmrec.data.readers import Ratings, holdout_split, load_dataset
from fmrec.evaluation.peers import fit_ease
from fmrec.evaluation.ranking import K, ranking_metrics_at_k
from fmrec.evaluation.scorers import lookup_rows, model_scorer, popularity_scorer


def _write(path: Path, r: Ratings, sep: str, header: str = "") -> None:
    with open(path, "w", encoding="ascii") as fh:
        fh.write(header)
        for u, m, x, t in zip(r.user, r.movie, r.rating, r.timestamp, strict=True):
            value = f"{int(x)}" if sep == "\t" else f"{x:.1f}"
            fh.write(f"{u}{sep}{m}{sep}{value}{sep}{t}\n")


def carve(src: Path, out: Path) -> None:
    out.mkdir()
    ds = load_dataset(src)
    if ds.layout == "ml-100k":
        fit, val = holdout_split(ds.train, 10, 7)
        _write(out / "ua.base", fit, "\t")
        _write(out / "ua.test", val, "\t")
        for name in ("u.item", "u.user", "u.genre", "u.occupation", "u.info"):
            if (src / name).exists():
                shutil.copy(src / name, out / name)
    else:
        _write(out / "ratings.csv", ds.train, ",", "userId,movieId,rating,timestamp\n")
        if (src / "movies.csv").exists():
            shutil.copy(src / "movies.csv", out / "movies.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--test", action="store_true", help="score on the real test split (report only)")
    parser.add_argument("--ease", type=float, nargs="*", default=[500.0], help="EASE lambdas")
    parser.add_argument("--neighbours", type=int, nargs="*", default=[], help="experiment: item-item, top N")
    parser.add_argument("--neighbours-from", nargs="*", default=["knn"], help="experiment: knn, ease:LAMBDA")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        data = args.data
        if not args.test:
            data = Path(tmp) / "carve"
            carve(args.data, data)
        t0 = time.perf_counter()
        params, result, inputs = _pipeline(data, Path(tmp), args.param)
        world = evaluated(inputs, params)
        lookup, train, task, model = world.lookup, world.train, world.task, world.model
        users, items = lookup_rows(lookup)  # once: the model's row and every blend's
        scorers = {
            "fmrec": model_scorer(model, lookup, (users, items)),
            "popularity": popularity_scorer(np.asarray(lookup.movie_count)),
            **{f"EASE {lam:g}": fit_ease(train, 0, lam) for lam in args.ease},
        }
        figures = {name: ranking_metrics_at_k(s, task, K)[f"ndcg_at_{K}"] for name, s in scorers.items()}
        for name, nb in exp_neighbours.neighbour_sets(
            train, args.neighbours, args.neighbours_from, 0.5
        ).items():
            blend = exp_neighbours.blend_curve(model.params, users, items, nb, task)
            figures.update({f"fmrec + {a} {name}": v for a, v in blend.items()})
    split = "test" if args.test else "validation"
    print(
        f"{args.data} {split} {' '.join(args.param) or 'defaults'}: "
        + ", ".join(f"{name} {v:.4f}" for name, v in figures.items())
        + f"; TrainModel {result.seconds.get('TrainModel', float('nan')):.0f} s"
        + f", all {time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
